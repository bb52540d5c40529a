"""Turn the ``inputs`` argument of ``trace`` into tensors on the device a trace runs on.

``inputs`` is a shape (``(1, 3, 32, 32)``, ``"1x3x32x32"``), a tensor, a list or
tuple of those for several positional arguments, or a dict for keyword arguments.
Shapes become tensors of the model's dtype: empty ones on meta (no memory), random
ones from a private generator on a real device (the global RNG is never touched).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import SpecError
from ..shapes.spec import EXAMPLE, looks_like_shape, parse_concrete_shape
from ..shapes.tree import Shape, ShapeTree, first_shape, shape_tree

if TYPE_CHECKING:
    import torch

INPUT_SEED = 0


@dataclass(frozen=True)
class ShapeLeaf:
    """An input given as a shape: the trace makes the tensor."""

    shape: Shape
    #: The tensor's dtype; None: the trace's (the model's) dtype.
    dtype: torch.dtype | None = None


@dataclass
class InputSpec:
    """Positional and keyword inputs; leaves are ShapeLeaf, tensors or plain values."""

    args: tuple[Any, ...]
    kwargs: dict[str, Any]

    def shapes(self) -> tuple[tuple[ShapeTree, ...], dict[str, ShapeTree]]:
        """Shape trees of the inputs as the model receives them."""
        return (
            tuple(_leaf_shapes(a) for a in self.args),
            {k: _leaf_shapes(v) for k, v in self.kwargs.items()},
        )

    def tensors(self) -> list[torch.Tensor]:
        """Every tensor the user passed (not those made from shapes)."""
        out: list[Any] = []
        _collect_tensors((self.args, self.kwargs), out)
        return out

    def first_shape(self) -> Shape | None:
        """Shape of the first input: what symbolic names bind to."""
        for value in (*self.args, *self.kwargs.values()):
            found = first_shape(_leaf_shapes(value))
            if found is not None:
                return found
        return None

    def first_dtype(self) -> torch.dtype | None:
        """The dtype of the first input: a tensor's, or the one its shape names (None: the
        model's)."""
        for value in (*self.args, *self.kwargs.values()):
            leaf = _first_leaf(value)
            if leaf is not None:
                return leaf.dtype  # type: ignore[no-any-return]
        return None

    def with_first_shape(self, shape: Shape, dtype: torch.dtype | None = None) -> InputSpec:
        """The same inputs with the first one resized (a tensor keeps its dtype, on meta;
        ``dtype`` changes it).

        What a diagnosis varies to find the sizes a model runs on, and how it tries a fix
        that transforms the input.
        """
        done = False

        def swap(value: Any) -> Any:
            nonlocal done
            if done:
                return value
            if isinstance(value, ShapeLeaf):
                done = True
                return ShapeLeaf(tuple(shape), dtype or value.dtype)
            if _is_tensor(value):
                done = True
                return ShapeLeaf(tuple(shape), dtype or value.dtype)
            if isinstance(value, (tuple, list)):
                return rebuild(value, [swap(v) for v in value])
            if isinstance(value, Mapping):
                return {k: swap(v) for k, v in value.items()}
            return value

        args = tuple(swap(a) for a in self.args)
        kwargs = {k: swap(v) for k, v in self.kwargs.items()}
        return InputSpec(args, kwargs)

    def with_batch(self, batch: int) -> InputSpec:
        """Every input with ``batch`` as its first size (a tensor becomes a shape of its dtype).

        What a memory budget ``batch=64`` estimates with; 0-d inputs and plain values stay.
        """

        def swap(value: Any) -> Any:
            if isinstance(value, ShapeLeaf) and value.shape:
                return ShapeLeaf((batch, *value.shape[1:]), value.dtype)
            if _is_tensor(value) and value.dim():
                return ShapeLeaf((batch, *value.shape[1:]), value.dtype)
            if isinstance(value, (tuple, list)):
                return rebuild(value, [swap(v) for v in value])
            if isinstance(value, Mapping):
                return {k: swap(v) for k, v in value.items()}
            return value

        return InputSpec(tuple(swap(a) for a in self.args), {k: swap(v) for k, v in self.kwargs.items()})


def _first_leaf(value: Any) -> Any:
    if isinstance(value, ShapeLeaf) or _is_tensor(value):
        return value
    if isinstance(value, (tuple, list)):
        return next((f for f in map(_first_leaf, value) if f is not None), None)
    if isinstance(value, Mapping):
        return next((f for f in map(_first_leaf, value.values()) if f is not None), None)
    return None


def _is_tensor(value: Any) -> bool:
    import torch

    return isinstance(value, torch.Tensor)


def _leaf_shapes(value: Any) -> ShapeTree:
    if isinstance(value, ShapeLeaf):
        return value.shape
    if isinstance(value, (tuple, list)):
        shaped: ShapeTree = rebuild(value, [_leaf_shapes(v) for v in value])
        return shaped
    if isinstance(value, Mapping):
        return {k: _leaf_shapes(v) for k, v in value.items()}
    return shape_tree(value)


def rebuild(container: Any, items: list[Any]) -> Any:
    """A tuple, list or namedtuple of the same type holding ``items``."""
    if hasattr(container, "_fields"):
        return type(container)(*items)
    return type(container)(items)


def _collect_tensors(value: Any, out: list[Any]) -> None:
    if _is_tensor(value):
        out.append(value)
    elif isinstance(value, (tuple, list)):
        for v in value:
            _collect_tensors(v, out)
    elif isinstance(value, Mapping):
        for v in value.values():
            _collect_tensors(v, out)


def _parse_item(value: Any, where: str) -> Any:
    """One argument: a tensor, a shape, or (nested) a list/tuple/dict of those."""
    if _is_tensor(value):
        return value
    if isinstance(value, str) or (
        isinstance(value, (tuple, list)) and looks_like_shape(value) and len(value) > 0
    ):
        return ShapeLeaf(parse_concrete_shape(value, where))
    if isinstance(value, (tuple, list)):
        if not value:
            raise SpecError(f"{where}: an empty {type(value).__name__} is not an input; {EXAMPLE}")
        return rebuild(value, [_parse_item(v, f"{where}[{i}]") for i, v in enumerate(value)])
    if isinstance(value, Mapping):
        return {str(k): _parse_item(v, f"{where}[{k!r}]") for k, v in value.items()}
    if value is None or isinstance(value, (int, float, bool)):
        return value  # plain values pass through to forward unchanged
    raise SpecError(f"{where}: {value!r} ({type(value).__name__}) is not a shape or a tensor; {EXAMPLE}")


def parse_inputs(inputs: Any) -> InputSpec:
    """Normalise ``trace``'s ``inputs``: one input, several positional, or keywords."""
    if isinstance(inputs, InputSpec):
        return inputs
    if _is_tensor(inputs) or isinstance(inputs, str):
        return InputSpec((_parse_item(inputs, "inputs"),), {})
    if isinstance(inputs, Mapping):
        if not inputs:
            raise SpecError(f"inputs: an empty dict gives the model nothing; {EXAMPLE}")
        return InputSpec((), {str(k): _parse_item(v, f"inputs[{k!r}]") for k, v in inputs.items()})
    if isinstance(inputs, (tuple, list)):
        if not inputs:
            raise SpecError(f"inputs: the empty shape {inputs!r} has no dimensions; {EXAMPLE}")
        if looks_like_shape(inputs):
            return InputSpec((ShapeLeaf(parse_concrete_shape(inputs, "inputs")),), {})
        return InputSpec(tuple(_parse_item(v, f"inputs[{i}]") for i, v in enumerate(inputs)), {})
    raise SpecError(
        f"inputs: {inputs!r} ({type(inputs).__name__}) is not a shape, a tensor, or a "
        f"list/dict of those; {EXAMPLE}"
    )


def materialize(
    spec: InputSpec, device: torch.device, dtype: torch.dtype
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Tensors for a run on ``device``: meta runs get meta copies of user tensors too."""
    import torch

    meta = device.type == "meta"
    generator = None if meta else torch.Generator(device=device).manual_seed(INPUT_SEED)

    def make(value: Any) -> Any:
        if isinstance(value, ShapeLeaf):
            kind = value.dtype or dtype
            if meta:
                return torch.empty(value.shape, dtype=kind, device=device)
            if kind.is_floating_point or kind.is_complex:
                return torch.randn(value.shape, dtype=kind, device=device, generator=generator)
            return torch.zeros(value.shape, dtype=kind, device=device)
        if isinstance(value, torch.Tensor):
            return torch.empty_like(value, device="meta") if meta else value
        if isinstance(value, (tuple, list)):
            return rebuild(value, [make(v) for v in value])
        if isinstance(value, Mapping):
            return {k: make(v) for k, v in value.items()}
        return value

    return tuple(make(a) for a in spec.args), {k: make(v) for k, v in spec.kwargs.items()}
