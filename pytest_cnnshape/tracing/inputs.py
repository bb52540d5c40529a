"""Turn the ``inputs`` argument of ``trace`` into tensors on the device a trace runs on.

``inputs`` is a shape (``(1, 3, 32, 32)``, ``"1x3x32x32"``, ``"8x50:long"`` with
a dtype), a tensor, a list or tuple of those for several positional arguments, or
a dict for keyword arguments. Shapes become tensors of the model's dtype unless
they name one: empty ones on meta (no memory), random ones from a private
generator on a real device (the global RNG is never touched). Integer ones hold
valid indices: values below the smallest ``num_embeddings`` of the model's
Embedding layers (zeros when it has none).

A list or tuple of tensors is a batch of tensors (``[img, meta]``), never a
shape. Plain values (an int outside a shape, a float, a bool, None, an enum
member, a dict of those) go to ``forward`` unchanged; a string is always a shape
spec, so a string argument, or any value that must not be read as a shape (a
list of ints, a dict of strings, any other object), is wrapped in ``Arg``:
``trace(net, {"x": "1x3x64x64", "task": Arg("seg")})``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any

from ..errors import SizeLimitError, SpecError, TraceError
from ..shapes.spec import EXAMPLE, is_shape_text, looks_like_shape, parse_concrete_input
from ..shapes.tree import Shape, ShapeTree, first_shape, shape_tree

if TYPE_CHECKING:
    import torch
    from torch import nn

INPUT_SEED = 0


@dataclass(frozen=True)
class Arg:
    """A forward argument passed exactly as it is: never read as a shape, never moved to meta.

    ``trace(net, [(1, 3, 32, 32), Arg("seg")])`` calls ``net(x, "seg")``;
    ``{"x": "1x3x32x32", "task": Arg("seg")}`` calls ``net(x=x, task="seg")``.
    Needed for strings (which are shape specs otherwise) and for lists of ints
    (which are shapes); other plain values pass through without it.
    """

    value: Any


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

    def typed(self, dtype: torch.dtype | str | None) -> InputSpec:
        """The same inputs, shapes without a dtype of their own made ``dtype`` (or its torch name)."""
        kind = _torch_dtype(dtype) if isinstance(dtype, str) else dtype
        if kind is None:
            return self

        def retype(value: Any) -> Any:
            if isinstance(value, ShapeLeaf):
                return value if value.dtype is not None else ShapeLeaf(value.shape, kind)
            if isinstance(value, (tuple, list)):
                return rebuild(value, [retype(v) for v in value])
            if isinstance(value, Mapping):
                return {k: retype(v) for k, v in value.items()}
            return value

        return InputSpec(tuple(retype(a) for a in self.args), {k: retype(v) for k, v in self.kwargs.items()})

    def with_kwargs(self, extra: Mapping[str, Any], where: str = "forward_kwargs") -> InputSpec:
        """``extra`` added as keyword arguments, passed to forward as they are."""
        clash = sorted(set(extra) & set(self.kwargs))
        if clash:
            raise SpecError(
                f"{where}: {', '.join(map(repr, clash))} is also a keyword input; give each argument once"
            )
        return InputSpec(self.args, {**self.kwargs, **{str(k): Arg(v) for k, v in extra.items()}})

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
            if isinstance(value, Arg):
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
    if isinstance(value, Arg):
        return shape_tree(value.value)
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


def _torch_dtype(name: str | None) -> torch.dtype | None:
    import torch

    return None if name is None else getattr(torch, name)


def _shape_leaf(value: Any, where: str) -> ShapeLeaf:
    try:
        shape, dtype = parse_concrete_input(value, where)
    except SizeLimitError:
        raise
    except SpecError as exc:
        if isinstance(value, str):
            raise SpecError(
                f"{exc}; to pass the string {value!r} to forward as it is, write Arg({value!r}) "
                "(from pytest_cnnshape import Arg)"
            ) from None
        raise
    return ShapeLeaf(shape, _torch_dtype(dtype))


def _parse_item(value: Any, where: str) -> Any:
    """One argument: a tensor, a shape, a plain value, or (nested) a list/tuple/dict of those."""
    if isinstance(value, Arg) or _is_tensor(value):
        return value
    if is_shape_text(value) or (
        isinstance(value, (tuple, list)) and looks_like_shape(value) and len(value) > 0
    ):
        return _shape_leaf(value, where)
    if isinstance(value, (tuple, list)):
        if not value:
            raise SpecError(
                f"{where}: an empty {type(value).__name__} is not an input; {EXAMPLE} (to pass it to "
                f"forward as it is, write Arg({value!r}))"
            )
        return rebuild(value, [_parse_item(v, f"{where}[{i}]") for i, v in enumerate(value)])
    if isinstance(value, Mapping):
        return {str(k): _parse_item(v, f"{where}[{k!r}]") for k, v in value.items()}
    if value is None or isinstance(value, (int, float, complex, Enum)):
        return value  # plain values (and bools, enum members) go to forward unchanged
    hint = "torch.from_numpy(a) makes a tensor of a numpy array; " if hasattr(value, "__array__") else ""
    raise SpecError(
        f"{where}: {value!r} ({type(value).__name__}) is not a shape, a tensor or a plain value; "
        f"{EXAMPLE}; {hint}to pass it to forward as it is, write Arg(...) (from pytest_cnnshape import Arg)"
    )


def parse_inputs(inputs: Any) -> InputSpec:
    """Normalise ``trace``'s ``inputs``: one input, several positional, or keywords."""
    if isinstance(inputs, InputSpec):
        return inputs
    if isinstance(inputs, Arg) or _is_tensor(inputs) or is_shape_text(inputs):
        return InputSpec((_parse_item(inputs, "inputs"),), {})
    if isinstance(inputs, Mapping):
        if not inputs:
            raise SpecError(f"inputs: an empty dict gives the model nothing; {EXAMPLE}")
        return InputSpec((), {str(k): _parse_item(v, f"inputs[{k!r}]") for k, v in inputs.items()})
    if isinstance(inputs, (tuple, list)):
        if not inputs:
            raise SpecError(f"inputs: the empty shape {inputs!r} has no dimensions; {EXAMPLE}")
        if looks_like_shape(inputs):
            return InputSpec((_shape_leaf(inputs, "inputs"),), {})
        return InputSpec(tuple(_parse_item(v, f"inputs[{i}]") for i, v in enumerate(inputs)), {})
    hint = (
        "torch.from_numpy(a) makes a tensor of a numpy array"
        if hasattr(inputs, "__array__")
        else f"to call forward with it as the only argument, write [Arg({inputs!r})]"
    )
    raise SpecError(
        f"inputs: {inputs!r} ({type(inputs).__name__}) is not a shape, a tensor, or a "
        f"list/dict of those; {EXAMPLE}; {hint}"
    )


def index_bound(modules: Iterable[nn.Module]) -> int | None:
    """Integer inputs stay below this: the smallest ``num_embeddings`` of the model (None: zeros)."""
    from torch import nn

    from .wrappers import type_name

    sizes = [
        getattr(m, "num_embeddings", None)
        for m in modules
        if isinstance(m, (nn.Embedding, nn.EmbeddingBag)) or type_name(m) in ("Embedding", "EmbeddingBag")
    ]
    known = [n for n in sizes if isinstance(n, int) and n > 0]
    return min(known) if known else None


def _leaves(value: Any) -> Iterator[ShapeLeaf]:
    if isinstance(value, ShapeLeaf):
        yield value
    elif isinstance(value, (tuple, list)):
        for v in value:
            yield from _leaves(v)
    elif isinstance(value, Mapping):
        for v in value.values():
            yield from _leaves(v)


#: The most bytes a tensor can address: torch computes its storage size in an int64.
MAX_BYTES = 2**63 - 1


#: Inputs smaller than this fit anywhere: their CPU traces skip reading the free memory.
SMALL = 64 * 2**20


def _gib(n: int) -> str:
    return f"{n / 2**30:,.1f} GiB"


def available_memory() -> int | None:
    """Bytes of memory a new allocation can have on this machine (Linux: MemAvailable), if known."""
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_size(spec: InputSpec, device: torch.device, dtype: torch.dtype) -> None:
    """Refuse inputs no tensor can hold, and, for a real CPU run, inputs this machine cannot hold.

    Checked before a single byte is allocated: torch would otherwise fail deep in its
    allocator (a C++ message) or try for terabytes.
    """
    total = 0
    for leaf in _leaves((spec.args, spec.kwargs)):
        kind = leaf.dtype or dtype
        size = math.prod(leaf.shape) * kind.itemsize
        text = "x".join(map(str, leaf.shape))
        if size > MAX_BYTES:
            raise SizeLimitError(
                f"input {text} of {str(kind).removeprefix('torch.')} needs {size:.3g} bytes, more "
                "than a tensor can address (2**63 - 1); use a smaller input"
            )
        total += size
    if device.type != "cpu" or total < SMALL:
        return
    free = available_memory()
    if free is not None and total > free:
        raise TraceError(
            f"a real forward on cpu needs {total:,} bytes ({_gib(total)}) for the input alone, "
            f"more than the {_gib(free)} this machine has free; trace on device='meta' "
            "(no memory; a model meta cannot run needs a smaller input)"
        )


def materialize(
    spec: InputSpec, device: torch.device, dtype: torch.dtype, modules: Sequence[nn.Module] = ()
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Tensors for a run on ``device``: meta runs get meta copies of user tensors too.

    Integer tensors made from shapes hold values below ``index_bound(modules)`` (the
    model's modules; looked up only when a real run needs one), zeros without one.
    The sizes are checked first (``check_size``).
    """
    import torch

    check_size(spec, device, dtype)
    meta = device.type == "meta"
    generator = None if meta else torch.Generator(device=device).manual_seed(INPUT_SEED)
    bounds: list[int | None] = []

    def make(value: Any) -> Any:
        if isinstance(value, ShapeLeaf):
            kind = value.dtype or dtype
            if meta:
                return torch.empty(value.shape, dtype=kind, device=device)
            if kind.is_floating_point or kind.is_complex:
                return torch.randn(value.shape, dtype=kind, device=device, generator=generator)
            if not bounds:
                bounds.append(index_bound(modules))
            bound = bounds[0]
            if bound is None or kind == torch.bool:
                return torch.zeros(value.shape, dtype=kind, device=device)
            high = min(bound, torch.iinfo(kind).max + 1)
            return torch.randint(0, high, value.shape, dtype=kind, device=device, generator=generator)
        if isinstance(value, Arg):
            return value.value
        if isinstance(value, torch.Tensor):
            return torch.empty_like(value, device="meta") if meta else value
        if isinstance(value, (tuple, list)):
            return rebuild(value, [make(v) for v in value])
        if isinstance(value, Mapping):
            return {k: make(v) for k, v in value.items()}
        return value

    return tuple(make(a) for a in spec.args), {k: make(v) for k, v in spec.kwargs.items()}
