"""The ``--cnn-shapes`` terminal summary: an overview line per model, then tables."""

from __future__ import annotations

from typing import Any

from ..inspection.render import overview_cells, section_lines
from ..records import ShapeTrace
from ..table import grid
from .gather import ReportedModel, SessionModels

OVERVIEW_HEADERS = ("Model", "Input", "Output", "Params", "Trainable", "MACs", "Lint", "Device",
                    "Status")


def _count(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) else "-"


def overview_rows(models: list[ReportedModel]) -> list[list[str]]:
    """One row per model: what a reviewer scans first."""
    return [
        [m.entry.name, m.entry.input, m.output, _count(m.column("total_params")),
         _count(m.column("trainable_params")), *overview_cells(m.entry.extras),
         str(m.column("device", "-")),
         m.entry.status.upper() if m.failed else m.entry.status]
        for m in models
    ]


def model_section(model: ReportedModel, depth: int) -> list[str]:
    """Title, failure line and layer table of one model."""
    tests = model.nodeids[0] + (f" (+{len(model.nodeids) - 1} more)" if len(model.nodeids) > 1 else "")
    lines = [f"{model.entry.name}  [{tests}]"]
    if model.failed and model.entry.failure:
        lines.append(f"FAILED: {model.entry.failure}")
    if model.entry.trace:
        lines.append(ShapeTrace.from_dict(model.entry.trace).table(max_depth=depth))
    lines.extend(section_lines(model.entry.extras))
    return lines


def render(session: SessionModels, depth: int) -> list[str]:
    """All lines of the terminal summary section (the title is written by the caller)."""
    models = session.models()
    if not models:
        return ["no model was traced through cnn_shapes, cnn_model/cnn_trace or declared models"]
    counts = session.counts()
    lines = [grid(overview_rows(models), OVERVIEW_HEADERS)]
    lines.append(f"{counts['models']} model(s): {counts['passed']} passed, {counts['failed']} failed")
    for model in models:
        lines.append("")
        lines.extend(model_section(model, depth))
    return lines
