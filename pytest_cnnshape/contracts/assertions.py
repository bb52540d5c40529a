"""``assert_output_shape``: trace a model and fail readably when the output is off."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..errors import OutputShapeError
from ..shapes.expected import OutputMismatch, bind_inputs, compare_output, parse_expected
from ..shapes.tree import format_shape, is_shape

if TYPE_CHECKING:
    import torch
    from torch import nn

    from ..tracing.records import ShapeTrace

__tracebackhide__ = True


def mark_line(actual: tuple[int, ...], wrong: list[int], offset: int) -> str:
    """A line of carets under the wrong dimensions of ``format_shape(actual)``."""
    line = [" "] * (offset + len(format_shape(actual)))
    pos = offset + 1  # after "["
    for i, size in enumerate(actual):
        text = str(size)
        if i in wrong:
            for k in range(len(text)):
                line[pos + k] = "^"
        pos += len(text) + 2  # ", "
    return "".join(line).rstrip()


def describe_mismatch(m: OutputMismatch, bindings: Mapping[str, int]) -> list[str]:
    """Lines for one mismatching output: expected vs actual, wrong dims marked."""
    where = f"output{m.path}"
    if m.reason:
        return [f"{where}: {m.reason}"]
    symbolic = m.spec is not None and not m.spec.is_concrete
    used = sorted(m.spec.names) if m.spec is not None else []
    lines = [f"{where} shape {format_shape(m.actual)} does not match the expected {m.expected}"]
    expected_line = f"  expected  {m.expected}"
    if symbolic and m.spec is not None:
        values = ", ".join(f"{n}={bindings[n]}" for n in used)
        expected_line += f"    ({m.spec.text}" + (f" with {values})" if values else ")")
    lines.append(expected_line)
    lines.append(f"  actual    {format_shape(m.actual)}")
    if m.wrong_dims and is_shape(m.actual) and len(m.actual):
        lines.append(mark_line(m.actual, [i for i in m.wrong_dims if i < len(m.actual)], 12))
    for c in m.checks:
        if c.ok:
            continue
        if c.actual is None:
            lines.append(
                f"  dim {c.index}: expected {c.expected_value} ({c.expected}), "
                "but the output has no such dimension"
            )
        elif c.expected_value is None and c.expected == "(none)":
            lines.append(f"  dim {c.index}: the output has an extra dimension of size {c.actual}")
        else:
            extra = "" if c.expected == str(c.expected_value) else f" ({c.expected})"
            lines.append(f"  dim {c.index}: expected {c.expected_value}{extra}, got {c.actual}")
    return lines


def output_failure_text(
    trace: ShapeTrace,
    mismatches: list[OutputMismatch],
    bindings: Mapping[str, int],
    model: nn.Module | None = None,
    inputs: Any = None,
) -> str:
    """The AssertionError text: every mismatch, the layer where each dim diverged and its
    verified fix (``attribution``), the table. ``inputs``: what the model was traced with
    (default: the trace's input shapes)."""
    from .attribution import Attribution, explain

    attribution = None
    if model is not None:
        given = inputs if inputs is not None else list(trace.input_shapes)
        if inputs is None and len(trace.input_shapes) == 1 and not trace.input_kwargs:
            given = trace.input_shapes[0]
        attribution = Attribution.of(model, given, bindings)
    lines: list[str] = []
    for m in mismatches:
        lines.extend(describe_mismatch(m, bindings))
        lines.extend(explain(trace, m, model, attribution))
    lines.append("")
    lines.append(trace.table())
    return "\n".join(lines)


def assert_output_shape(
    model: nn.Module,
    inputs: Any,
    expected: Any,
    *,
    dims: Mapping[str, int] | None = None,
    device: str | torch.device = "auto",
    dtype: torch.dtype | str | None = None,
    train: bool = False,
) -> ShapeTrace:
    """Trace ``model`` and assert its output shape; return the trace.

    ``expected`` may be concrete (``(1, 10)``), symbolic (``"B x 64 x H//8 x W//8"``,
    names bound from the input by layout or from ``dims``) and hold wildcards
    (``None``, ``-1``, ``*``; ``...`` for any number of dimensions). Several outputs:
    a tuple/list/dict of shapes. A failing forward raises ShapeMismatchError.
    """
    from ..diagnostics.explain import trace as run_trace

    bound = bind_inputs(inputs, dims)
    spec = parse_expected(expected)
    result = run_trace(model, bound.inputs, device=device, dtype=dtype, train=train)
    mismatches = compare_output(spec, result.output_shape, bound.bindings)
    if mismatches:
        raise OutputShapeError(output_failure_text(result, mismatches, bound.bindings, model, bound.inputs))
    return result
