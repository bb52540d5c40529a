"""Shape trees: the shapes of whatever a module takes or returns.

A tensor becomes a tuple of ints; tuples, lists, dicts and namedtuples keep their
structure with shapes at the leaves; anything that is not a tensor becomes None.
These are plain Python values so a trace can be compared, printed and turned into
JSON without holding on to a single tensor.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeAlias

Shape: TypeAlias = tuple[int, ...]
ShapeTree: TypeAlias = Any  # Shape | None | tuple/list/dict of ShapeTree


def is_shape(value: object) -> bool:
    """True for a leaf shape: a tuple of ints (the empty tuple is a 0-d tensor)."""
    return type(value) is tuple and all(type(v) is int for v in value)


def shape_tree(value: Any) -> ShapeTree:
    """The shape structure of ``value``; cheap enough to run in a per-layer hook."""
    shape = getattr(value, "shape", None)
    if shape is not None and hasattr(value, "dtype") and hasattr(value, "device"):
        return tuple(shape)
    if isinstance(value, tuple):
        items = [shape_tree(v) for v in value]
        if hasattr(value, "_fields"):  # namedtuple: keep its type and field names
            try:
                return type(value)(*items)
            except TypeError:
                return tuple(items)
        return tuple(items)
    if isinstance(value, list):
        return [shape_tree(v) for v in value]
    if isinstance(value, Mapping):
        return {k: shape_tree(v) for k, v in value.items()}
    return None


def to_json(tree: ShapeTree) -> Any:
    """A JSON-safe form: shapes as lists, namedtuples as dicts, keys as strings."""
    if tree is None:
        return None
    if is_shape(tree):
        return list(tree)
    if isinstance(tree, tuple) and hasattr(tree, "_fields"):
        return {str(k): to_json(v) for k, v in zip(tree._fields, tree, strict=True)}
    if isinstance(tree, (tuple, list)):
        return [to_json(v) for v in tree]
    if isinstance(tree, Mapping):
        return {str(k): to_json(v) for k, v in tree.items()}
    return None


def format_shape(tree: ShapeTree) -> str:
    """Human form, as torchinfo prints it: ``[1, 3, 32, 32]``, structures nested."""
    if tree is None:
        return "-"
    if is_shape(tree):
        return "[" + ", ".join(str(d) for d in tree) + "]"
    if isinstance(tree, tuple) and hasattr(tree, "_fields"):
        inner = ", ".join(f"{k}={format_shape(v)}" for k, v in zip(tree._fields, tree, strict=True))
        return f"{type(tree).__name__}({inner})"
    if isinstance(tree, tuple):
        return "(" + ", ".join(format_shape(v) for v in tree) + ("," if len(tree) == 1 else "") + ")"
    if isinstance(tree, list):
        return "[" + ", ".join(format_shape(v) for v in tree) + "]"
    if isinstance(tree, Mapping):
        return "{" + ", ".join(f"{k}: {format_shape(v)}" for k, v in tree.items()) + "}"
    return "?"


def first_shape(tree: ShapeTree) -> Shape | None:
    """The first leaf shape in a structure (what a single-tensor view shows)."""
    if tree is None or is_shape(tree):
        return tree  # type: ignore[no-any-return]
    values = tree.values() if isinstance(tree, Mapping) else tree
    for v in values:
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
    values = tree.values() if isinstance(tree, Mapping) else tree
    out: list[Shape] = []
    for v in values:
        out.extend(leaf_shapes(v))
    return out
