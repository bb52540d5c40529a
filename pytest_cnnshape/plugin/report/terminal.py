"""The ``--cnn-shapes`` terminal summary: an overview line per model, then tables."""

from __future__ import annotations

from typing import Any

from ...inspection.render import memory_lines, overview_cells, section_lines
from ...tracing.records import ShapeTrace
from ...tracing.table import grid
from .gather import ReportedModel, SessionModels

OVERVIEW_HEADERS = (
    "Model",
    "Input",
    "Output",
    "Params",
    "Trainable",
    "MACs",
    "Memory",
    "Lint",
    "Device",
    "Status",
)


def _count(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) else "-"


def overview_rows(models: list[ReportedModel]) -> list[list[str]]:
    """One row per model: what a reviewer scans first."""
    return [
        [
            m.entry.name,
            m.entry.input,
            m.output,
            _count(m.column("total_params")),
            _count(m.column("trainable_params")),
            *overview_cells(m.entry.extras),
            str(m.column("device", "-")),
            m.entry.status.upper() if m.failed else m.entry.status,
        ]
        for m in models
    ]


def _structure(model: ReportedModel) -> tuple[object, ...] | None:
    """What makes two traces the same architecture: each call's name, type and params.

    And what was traced of a wrapper: a TorchScript trace has no per-layer shapes
    to share with the eager model's.
    """
    trace = model.entry.trace
    if not trace or not trace.get("complete", True):
        return None
    calls = tuple((r["name"], r["type"], r["call"], r["num_params"]) for r in trace["layers"])
    return (trace.get("wrapper"), *calls)


def model_section(model: ReportedModel, depth: int, shown: dict[object, str] | None = None) -> list[str]:
    """Title, failure line and layer table of one model.

    ``shown`` maps architectures already printed to their model's name: the same
    network traced at another input size (a parametrized test) gets one line
    instead of a second copy of the table.
    """
    tests = model.nodeids[0] + (f" (+{len(model.nodeids) - 1} more)" if len(model.nodeids) > 1 else "")
    lines = [f"{model.entry.name}  [{tests}]"]
    structure = _structure(model)
    if shown is not None and structure is not None and structure in shown:
        lines.append(
            f"the layers of {shown[structure]} above, with input {model.entry.input} -> output {model.output}"
        )
        lines.extend(memory_lines(model.entry.extras))
        return lines
    if shown is not None and structure is not None:
        shown[structure] = model.entry.name
    if model.entry.failure and (model.failed or model.expected_failure):
        lines.append(
            f"{'XFAILED (the test expected it)' if model.expected_failure else 'FAILED'}: "
            f"{model.entry.failure}"
        )
    if model.entry.trace:
        lines.append(ShapeTrace.from_dict(model.entry.trace).table(max_depth=depth))
    contract = model.contract_line()
    if contract:
        lines.append(contract)
    lines.extend(section_lines(model.entry.extras))
    return lines


def render(session: SessionModels, depth: int) -> list[str]:
    """All lines of the terminal summary section (the title is written by the caller)."""
    models = session.models()
    if not models:
        return ["no model was traced through cnn_shapes, cnn_model/cnn_trace or declared models"]
    lines = [grid(overview_rows(models), OVERVIEW_HEADERS), session.counts_line()]
    shown: dict[object, str] = {}
    for model in models:
        lines.append("")
        lines.extend(model_section(model, depth, shown))
    return lines
