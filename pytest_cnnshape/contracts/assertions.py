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
    from ..tracing.request import TraceRequest

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
    request: TraceRequest | None = None,
) -> str:
    """The AssertionError text: every mismatch, the layer where each dim diverged and its
    verified fix (``attribution``, when the ``request`` that made the trace is given), the
    table."""
    from .attribution import Attribution, explain

    attribution = Attribution.of(request, bindings) if request is not None else None
    view = request.view if request is not None else None
    lines: list[str] = []
    for m in mismatches:
        lines.extend(describe_mismatch(m, bindings))
        lines.extend(explain(trace, m, attribution, view))
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
    from ..diagnostics.explain import traced
    from ..tracing.request import TraceRequest

    bound = bind_inputs(inputs, dims)
    spec = parse_expected(expected)
    request = TraceRequest.of(model, bound.inputs, device=device, dtype=dtype, train=train)
    result = traced(request, ())
    mismatches = compare_output(spec, result.output_shape, bound.bindings)
    if mismatches:
        raise OutputShapeError(output_failure_text(result, mismatches, bound.bindings, request))
    return result
