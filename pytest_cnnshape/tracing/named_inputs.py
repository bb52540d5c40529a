"""The inputs of a symbolic trace: shapes whose sizes are names (``"B x 3 x H x W"``).

Every shape of the inputs becomes a ``NamedInput``: a number stays a number, a
name becomes a symbol. The first input given as numbers or as a tensor takes
the conventional names of its rank (B, C, L / B, C, H, W / B, C, D, H, W) and
gives their example sizes; ``dims=`` gives example sizes by name; the other
names get sizes by their position (a batch of 2, 3 channels, sides of 224).
``concrete`` turns the inputs back into what ``trace`` takes, at any sizes.

Torch-free apart from recognising tensors; imported with the symbolic engine.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import SpecError
from ..shapes.spec import CONVENTIONAL_NAMES, is_shape_text, is_tensor_like, looks_like_shape, parse_shape
from .inputs import Arg, InputSpec, ShapeLeaf, parse_inputs, rebuild

#: Example sizes by position in an input when nothing gives one: a batch of 2 (torch treats
#: 0 and 1 apart), 3 channels, and sides by the number of sides.
BATCH, CHANNELS = 2, 3
SIDES = {1: 1024, 2: 224, 3: 32}


@dataclass(frozen=True)
class NamedInput:
    """One input tensor given as a spec: each dimension a number (kept) or a name (a symbol)."""

    dims: tuple[int | str, ...]
    dtype: str | None
    text: str


@dataclass
class SymbolicInputs:
    """The inputs of a symbolic trace: their structure, their names and the example sizes given."""

    #: The inputs as given, with a ``NamedInput`` for each shape (an ``InputSpec`` for the CLI's).
    structure: Any
    names: tuple[str, ...]
    #: Example sizes the caller gave: from a concrete input or ``dims=``.
    given: dict[str, int]
    #: Sizes for the names nothing gave one, by their position in an input.
    defaults: dict[str, int]
    #: Names that are sides of an input (position 2 on): compared in "with H = W".
    sides: tuple[str, ...]
    #: Each named input, in the order the inputs hold them.
    leaves: list[NamedInput] = field(default_factory=list)

    @property
    def texts(self) -> tuple[str, ...]:
        """The inputs' specs as the user reads them: ``("B x 3 x H x W",)``."""
        return tuple(leaf.text for leaf in self.leaves)

    @property
    def complete(self) -> bool:
        """True when the caller gave an example size for every name."""
        return all(n in self.given for n in self.names)

    def start(self) -> dict[str, int]:
        """The example sizes to start from: the given ones, defaults for the others."""
        return {n: self.given.get(n, self.defaults[n]) for n in self.names}

    def concrete(self, sizes: Mapping[str, int]) -> InputSpec:
        """The inputs at these sizes, as ``trace`` takes them."""

        def fill(value: Any) -> Any:
            if isinstance(value, NamedInput):
                shape = "x".join(str(sizes[d] if isinstance(d, str) else d) for d in value.dims)
                return f"{shape}:{value.dtype}" if value.dtype else shape
            if isinstance(value, Arg) or is_tensor_like(value):
                return value
            if isinstance(value, (tuple, list)):
                return rebuild(value, [fill(v) for v in value])
            if isinstance(value, Mapping):
                return {k: fill(v) for k, v in value.items()}
            return value

        if isinstance(self.structure, InputSpec):  # positional and keyword inputs (the CLI's)
            args = parse_inputs([fill(a) for a in self.structure.args]).args if self.structure.args else ()
            kwargs = {k: fill(v) for k, v in self.structure.kwargs.items()}
            return InputSpec(args, parse_inputs(kwargs).kwargs if kwargs else {})
        return parse_inputs(fill(self.structure))


def _dims_of(value: Any, what: str) -> tuple[tuple[int | str, ...], str | None, str]:
    """A shape spec's dimensions as numbers and names (formulas and wildcards refused)."""
    spec = parse_shape(value, what)
    dims: list[int | str] = []
    for d in spec.dims:
        if d.kind == "int":
            assert d.value is not None
            if d.value < 1:
                raise SpecError(f"{what} {spec.text!r}: {d.text} is not a size; every size is at least 1")
            dims.append(d.value)
        elif d.kind == "name":
            dims.append(d.text)
        else:
            raise SpecError(
                f"{what} {spec.text!r}: {d.text!r} is not a name or a number; a symbolic input names "
                "each size it leaves free, e.g. 'B x 3 x H x W' (formulas such as 'H//2' come out, "
                "they do not go in)"
            )
    return tuple(dims), spec.dtype, spec.text


class _Namer:
    """Walks the inputs once: each shape a NamedInput, the first one named by convention."""

    def __init__(self) -> None:
        self.given: dict[str, int] = {}
        self.leaves: list[NamedInput] = []
        self.first = True

    def conventional(self, shape: Sequence[int], dtype: str | None, what: str) -> NamedInput:
        names = CONVENTIONAL_NAMES.get(len(shape))
        if names is None:
            raise SpecError(
                f"{what}: a {len(shape)}-d input has no conventional names; name its sizes, e.g. "
                "'B x 3 x T x H x W'"
            )
        self.given.update(zip(names, (int(s) for s in shape), strict=True))
        return self.leaf(tuple(names), dtype, " x ".join(names))

    def leaf(self, dims: tuple[int | str, ...], dtype: str | None, text: str) -> NamedInput:
        named = NamedInput(dims, dtype, text)
        self.leaves.append(named)
        return named

    def walk(self, value: Any, what: str) -> Any:
        if isinstance(value, Arg):
            return value
        if is_tensor_like(value):
            if not self.first:
                return value
            self.first = False
            return self.conventional(tuple(value.shape), str(value.dtype).removeprefix("torch."), what)
        if is_shape_text(value) or (isinstance(value, (tuple, list)) and value and looks_like_shape(value)):
            dims, dtype, text = _dims_of(value, what)
            first, self.first = self.first, False
            if first and all(isinstance(d, int) for d in dims):
                return self.conventional([int(d) for d in dims], dtype, what)
            return self.leaf(dims, dtype, text)
        if isinstance(value, (tuple, list)):
            return rebuild(value, [self.walk(v, f"{what}[{i}]") for i, v in enumerate(value)])
        if isinstance(value, Mapping):
            return {str(k): self.walk(v, f"{what}[{k!r}]") for k, v in value.items()}
        return value


def _names(leaves: Sequence[NamedInput]) -> tuple[list[str], dict[str, int], list[str]]:
    """Every name once (in order), its default size by position, and the names of sides."""
    names: list[str] = []
    defaults: dict[str, int] = {}
    sides: list[str] = []
    for leaf in leaves:
        spatial = max(len(leaf.dims) - 2, 0)
        for position, d in enumerate(leaf.dims):
            if not isinstance(d, str):
                continue
            if d not in names:
                names.append(d)
                by_position = {0: BATCH, 1: CHANNELS}
                defaults[d] = by_position.get(position, SIDES.get(spatial, 64))
            if position >= 2 and d not in sides:
                sides.append(d)
    return names, defaults, sides


def _add_dims(given: dict[str, int], dims: Mapping[str, Any], names: Sequence[str]) -> None:
    """``dims=``: example sizes by name, checked against the names and the sizes given."""
    for key, value in dims.items():
        if key not in names:
            raise SpecError(
                f"dims names {key!r}, which the input does not ({', '.join(names)}); give example sizes of "
                "the names the input spec uses"
            )
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise SpecError(f"dims[{key!r}] = {value!r}: an example size is a whole number of at least 1")
        if key in given and given[key] != value:
            raise SpecError(
                f"dims[{key!r}] = {value} but the input gives {key} = {given[key]}; give the size once"
            )
        given[key] = value


def parse_symbolic(inputs: Any, dims: Mapping[str, Any] | None = None) -> SymbolicInputs:
    """The inputs of a symbolic trace, every shape a ``NamedInput`` (see the module docstring).

    SpecError (one line) when a size is neither a name nor a number, when no size is
    named, or when ``dims=`` names a size the inputs do not.
    """
    namer = _Namer()
    if isinstance(inputs, InputSpec):
        structure: Any = InputSpec(
            tuple(namer.walk(a, f"inputs[{i}]") for i, a in enumerate(inputs.args)),
            {k: namer.walk(v, f"inputs[{k!r}]") for k, v in inputs.kwargs.items()},
        )
    else:
        structure = namer.walk(inputs, "inputs")
    names, defaults, sides = _names(namer.leaves)
    if not names:
        raise SpecError(
            "inputs: a symbolic trace needs named sizes, e.g. trace(model, 'B x 3 x H x W', symbolic=True)"
        )
    _add_dims(namer.given, dims or {}, names)
    return SymbolicInputs(structure, tuple(names), namer.given, defaults, tuple(sides), namer.leaves)


def with_named_first(inputs: InputSpec, text: str) -> InputSpec:
    """The inputs with the first shape written as ``text`` (named sides: ``"2 x 3 x H x W"``) and
    every other shape as its text: what ``parse_symbolic`` names from a failing input."""
    done = False

    def swap(value: Any) -> Any:
        nonlocal done
        if isinstance(value, ShapeLeaf):
            dtype = f":{str(value.dtype).removeprefix('torch.')}" if value.dtype is not None else ""
            if not done:
                done = True
                return f"{text}{dtype}"
            return "x".join(map(str, value.shape)) + dtype
        if isinstance(value, (tuple, list)):
            return rebuild(value, [swap(v) for v in value])
        if isinstance(value, Mapping):
            return {k: swap(v) for k, v in value.items()}
        return value

    return InputSpec(tuple(swap(a) for a in inputs.args), {k: swap(v) for k, v in inputs.kwargs.items()})
