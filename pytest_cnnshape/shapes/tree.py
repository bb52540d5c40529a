"""Shape trees: the shapes of whatever a module takes or returns.

A tensor becomes a tuple of ints; tuples, lists, dicts and namedtuples keep their
structure with shapes at the leaves; anything that is not a tensor becomes None.
These are plain Python values so a trace can be compared, printed and turned into
JSON without holding on to a single tensor.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, TypeAlias

if TYPE_CHECKING:
    from typing_extensions import TypeIs

Shape: TypeAlias = tuple[int, ...]
#: A leaf shape, None for a non-tensor, or a tuple/list/dict of shape trees.
ShapeTree: TypeAlias = "Shape | tuple[ShapeTree, ...] | list[ShapeTree] | dict[Any, ShapeTree] | None"


def is_shape(value: object) -> TypeIs[Shape]:
    """True for a leaf shape: a tuple of ints (the empty tuple is a 0-d tensor)."""
    return type(value) is tuple and all(type(v) is int for v in value)


def children(tree: ShapeTree) -> Iterable[ShapeTree]:
    """The sub-trees of a structure (none for a leaf shape or None)."""
    if tree is None or is_shape(tree):
        return ()
    if isinstance(tree, Mapping):
        return tree.values()
    return tree


def shape_tree(value: Any) -> ShapeTree:
    """The shape structure of ``value``; cheap enough to run in a per-layer hook."""
    shape = getattr(value, "shape", None)
    if shape is not None and hasattr(value, "dtype") and hasattr(value, "device"):
        return tuple(shape)
    if isinstance(value, tuple):
        items = [shape_tree(v) for v in value]
        if hasattr(value, "_fields"):  # namedtuple: keep its type and field names
            try:
                return type(value)(*items)  # type: ignore[arg-type]
            except TypeError:
                return tuple(items)
        return tuple(items)
    if isinstance(value, list):
        return [shape_tree(v) for v in value]
    if isinstance(value, Mapping):
        return {k: shape_tree(v) for k, v in value.items()}
    return None


def _fields(tree: ShapeTree) -> tuple[str, ...] | None:
    """The field names of a namedtuple of shapes; None for anything else."""
    return getattr(tree, "_fields", None) if isinstance(tree, tuple) else None


def to_json(tree: ShapeTree) -> Any:
    """A JSON-safe form: shapes as lists, namedtuples as dicts, keys as strings."""
    if tree is None:
        return None
    if is_shape(tree):
        return list(tree)
    if isinstance(tree, Mapping):
        return {str(k): to_json(v) for k, v in tree.items()}
    names = _fields(tree)
    if names is not None:
        return {str(k): to_json(v) for k, v in zip(names, children(tree), strict=True)}
    return [to_json(v) for v in children(tree)]


def from_json(value: Any) -> ShapeTree:
    """A shape tree back from ``to_json`` form: lists of ints become shapes (namedtuples
    come back as dicts, which is how they travel)."""
    if isinstance(value, list) and all(isinstance(d, int) for d in value):
        return tuple(value)
    if isinstance(value, list):
        return [from_json(v) for v in value]
    if isinstance(value, dict):
        return {k: from_json(v) for k, v in value.items()}
    return None


def format_shape(tree: ShapeTree) -> str:
    """Human form, as torchinfo prints it: ``[1, 3, 32, 32]``, structures nested."""
    if tree is None:
        return "-"
    if is_shape(tree):
        return "[" + ", ".join(str(d) for d in tree) + "]"
    if isinstance(tree, Mapping):
        return "{" + ", ".join(f"{k}: {format_shape(v)}" for k, v in tree.items()) + "}"
    items = [format_shape(v) for v in children(tree)]
    names = _fields(tree)
    if names is not None:
        inner = ", ".join(f"{k}={v}" for k, v in zip(names, items, strict=True))
        return f"{type(tree).__name__}({inner})"
    if isinstance(tree, tuple):
        return "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"
    return "[" + ", ".join(items) + "]"


def first_shape(tree: ShapeTree) -> Shape | None:
    """The first leaf shape in a structure (what a single-tensor view shows)."""
    if tree is None or is_shape(tree):
        return tree
    for v in children(tree):
        found = first_shape(v)
        if found is not None:
            return found
    return None


def leaf_shapes(tree: ShapeTree) -> list[Shape]:
    """Every leaf shape, in order."""
    if tree is None:
        return []
    if is_shape(tree):
        return [tree]
    out: list[Shape] = []
    for v in children(tree):
        out.extend(leaf_shapes(v))
    return out


def shape_text(shape: Any) -> str:
    """``1x3x32x32`` for a shape in JSON form; structures fall back to their JSON text."""
    if isinstance(shape, (list, tuple)) and all(isinstance(d, int) for d in shape):
        return "x".join(str(d) for d in shape) if shape else "scalar"
    if shape is None:
        return "-"
    return json.dumps(shape)
