"""The Markdown report (``--cnn-shapes-report=x.md``), fit for $GITHUB_STEP_SUMMARY.

Failed models first, each model's layer table folded inside <details>.
"""

from __future__ import annotations

from ...baseline.record import use_in
from ...baseline.render import markdown as baseline_section
from ...inspection.render import markdown_lines
from ...tracing.records import ShapeTrace
from ...tracing.table import HEADERS, layer_rows
from .gather import ReportedModel, SessionModels
from .terminal import OVERVIEW_HEADERS, overview_rows


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ").strip() or " "


def table(
    headers: tuple[str, ...] | list[str], rows: list[list[str]], right: tuple[int, ...] = ()
) -> list[str]:
    """A GitHub-flavoured Markdown table."""
    align = ["---:" if i in right else "---" for i in range(len(headers))]
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return lines


def _status(model: ReportedModel) -> str:
    if model.expected_failure:
        return "☑️ failed as expected"
    return "❌ failed" if model.failed else "✅ passed"


def model_details(model: ReportedModel, depth: int) -> list[str]:
    """A collapsible section with the model's layer table."""
    summary = f"<b>{model.entry.name}</b> {model.entry.input} → {model.output} ({_status(model)})"
    lines = ["<details>", f"<summary>{summary}</summary>", ""]
    lines.append(f"Tests: {', '.join(f'`{n}`' for n in model.nodeids)}")
    lines.append("")
    if (model.failed or model.expected_failure) and model.entry.failure:
        lines += ["```", model.entry.failure, "```", ""]
    if model.entry.trace:
        trace = ShapeTrace.from_dict(model.entry.trace)
        rows = [[row[0].replace("  ", "&nbsp;&nbsp;"), *row[1:]] for row in layer_rows(trace.layers, depth)]
        lines += table(HEADERS, rows, right=(4,))
        lines += [
            "",
            f"Total params: {trace.total_params:,} · trainable: {trace.trainable_params:,}"
            f" · traced on {trace.device}",
        ]
        contract = model.contract_line()
        if contract:
            lines += ["", contract]
        lines += markdown_lines(model.entry.extras)
    lines += ["", "</details>", ""]
    return lines


def render(session: SessionModels, depth: int) -> str:
    """The whole Markdown document."""
    models = session.models()
    ordered = sorted(models, key=lambda m: not m.failed)
    lines = ["## CNN shapes", ""]
    lines.append(session.counts_line())
    lines.append("")
    # failed baselines first: what a reviewer must decide
    lines += baseline_section((e.name, use) for e in session.entries if (use := use_in(e.extras)))
    lines += table(
        OVERVIEW_HEADERS,
        [[*row[:-1], _status(m)] for row, m in zip(overview_rows(ordered), ordered, strict=True)],
        right=(3, 4, 5, 6, 7),
    )
    lines.append("")
    for model in ordered:
        lines += model_details(model, depth)
    return "\n".join(lines).rstrip() + "\n"
