"""Shape contracts: symbolic inputs bound to sizes, expected outputs checked against them.

``bind_inputs`` turns an input spec that may name dimensions (``"N x 3 x H x W"``
with ``dims={"N": 2, "H": 32, "W": 32}``) into concrete inputs for ``trace`` and
the bindings expected outputs are evaluated with; ``compare_output`` checks an
output shape tree against an expected spec (one shape, or a tuple/list/dict of
shapes for structured outputs), dimension by dimension.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import SpecError
from .spec import (
    DimCheck,
    ShapeSpec,
    conventional_bindings,
    is_shape_text,
    is_tensor_like,
    looks_like_shape,
    parse_shape,
)
from .tree import ShapeTree, format_shape, is_shape


@dataclass
class BoundInput:
    """Concrete inputs for ``trace`` and the sizes every name stands for."""

    inputs: Any
    bindings: dict[str, int]


def bind_inputs(inputs: Any, dims: Mapping[str, int] | None = None) -> BoundInput:
    """Resolve symbolic input shapes with ``dims``; bind conventional names too.

    A shape written with a dtype (``"B x 50:long"``) stays text, resolved
    (``"8x50:int64"``), so the dtype reaches ``trace``; anything that is not a
    shape (tensors, plain values, ``Arg``) is passed on untouched.
    """
    bindings: dict[str, int] = {}
    for name, value in (dims or {}).items():
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise SpecError(f"dims[{name!r}] = {value!r} must be a positive integer")
        bindings[str(name)] = int(value)
    first: list[tuple[int, ...]] = []

    def resolve(value: Any, where: str) -> Any:
        if is_tensor_like(value):
            first.append(tuple(value.shape))
            return value
        if is_shape_text(value) or (isinstance(value, (tuple, list)) and value and looks_like_shape(value)):
            spec = parse_shape(value, where)
            missing = sorted(spec.names - set(bindings))
            if missing:
                raise SpecError(
                    f"{where} {spec.text!r} names {', '.join(missing)} but no value is given; "
                    f"pass dims={{{', '.join(repr(m) + ': ...' for m in missing)}}}"
                )
            shape = spec.concrete(bindings, where)
            first.append(shape)
            return shape if spec.dtype is None else "x".join(map(str, shape)) + ":" + spec.dtype
        if isinstance(value, Mapping):
            return {k: resolve(v, f"{where}[{k!r}]") for k, v in value.items()}
        if isinstance(value, (tuple, list)):
            return type(value)(resolve(v, f"{where}[{i}]") for i, v in enumerate(value))
        return value

    concrete = resolve(inputs, "input")
    if first:
        for name, size in conventional_bindings(first[0]).items():
            bindings.setdefault(name, size)
    return BoundInput(concrete, bindings)


ExpectedTree = Any  # ShapeSpec | tuple/list/dict of ExpectedTree


def parse_expected(expected: Any, what: str = "expected output") -> ExpectedTree:
    """One shape spec, or a structure of them for a model returning several tensors."""
    if isinstance(expected, ShapeSpec):
        return expected
    if isinstance(expected, (str, tuple, list)) and looks_like_shape(expected) and expected:
        spec = parse_shape(expected, what)
        if spec.dtype is not None:
            raise SpecError(
                f"{what} {spec.text!r}: a dtype (':{spec.dtype}') goes on inputs only; an expected "
                "output is a shape, e.g. 'B x 10'"
            )
        return spec
    if isinstance(expected, Mapping):
        return {k: parse_expected(v, f"{what}[{k!r}]") for k, v in expected.items()}
    if isinstance(expected, (tuple, list)) and expected:
        return type(expected)(parse_expected(v, f"{what}[{i}]") for i, v in enumerate(expected))
    raise SpecError(
        f"{what}: {expected!r} is not a shape; write it like (1, 10), 'B x 10' or "
        "'B x 64 x H//8 x W//8' (a tuple of shapes for several outputs)"
    )


@dataclass(frozen=True)
class OutputMismatch:
    """One output (path ``""`` for a single tensor) that does not fit its spec."""

    path: str
    spec: ShapeSpec | None
    expected: str
    actual: ShapeTree
    checks: tuple[DimCheck, ...] = ()
    reason: str = ""

    @property
    def wrong_dims(self) -> list[int]:
        """Indices of the dimensions that differ."""
        return [c.index for c in self.checks if not c.ok]


def resolved_text(spec: ShapeSpec, bindings: Mapping[str, int]) -> str:
    """``[1, 64, 4, 4]`` for a spec under bindings, ``*`` and ``...`` kept."""
    parts = []
    for size in spec.resolve(bindings, "expected output"):
        parts.append("*" if size is None else "..." if size is ... else str(size))
    return "[" + ", ".join(parts) + "]"


def compare_output(
    expected: ExpectedTree, actual: ShapeTree, bindings: Mapping[str, int], path: str = ""
) -> list[OutputMismatch]:
    """Every place where ``actual`` does not fit ``expected``."""
    if isinstance(expected, ShapeSpec):
        if not is_shape(actual):
            return [
                OutputMismatch(
                    path,
                    expected,
                    resolved_text(expected, bindings),
                    actual,
                    reason=f"expected one tensor, got {format_shape(actual)}",
                )
            ]
        checks = expected.compare(actual, bindings)
        if all(c.ok for c in checks):
            return []
        return [OutputMismatch(path, expected, resolved_text(expected, bindings), actual, tuple(checks))]
    if isinstance(expected, Mapping):
        if not isinstance(actual, Mapping):
            return [
                OutputMismatch(
                    path, None, "a dict", actual, reason=f"expected a dict, got {format_shape(actual)}"
                )
            ]
        out = []
        for key, sub in expected.items():
            if key not in actual:
                out.append(
                    OutputMismatch(
                        f"{path}[{key!r}]", None, "present", None, reason=f"the output has no key {key!r}"
                    )
                )
            else:
                out.extend(compare_output(sub, actual[key], bindings, f"{path}[{key!r}]"))
        return out
    if not isinstance(actual, (tuple, list)) or is_shape(actual):
        return [
            OutputMismatch(
                path,
                None,
                f"{len(expected)} outputs",
                actual,
                reason=f"expected {len(expected)} outputs, got {format_shape(actual)}",
            )
        ]
    if len(actual) != len(expected):
        return [
            OutputMismatch(
                path,
                None,
                f"{len(expected)} outputs",
                actual,
                reason=f"expected {len(expected)} outputs, got {len(actual)}",
            )
        ]
    out = []
    for i, (sub, act) in enumerate(zip(expected, actual, strict=True)):
        out.extend(compare_output(sub, act, bindings, f"{path}[{i}]"))
    return out
