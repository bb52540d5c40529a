"""The layer table: a ShapeTrace rendered the way a torchinfo user reads at once."""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Sequence
from functools import cache
from typing import TYPE_CHECKING, Any

from tabulate import tabulate

from ..shapes.tree import format_shape

if TYPE_CHECKING:
    from .records import LayerRecord, ShapeTrace

HEADERS = ("Layer", "Type", "Input", "Output", "Params")
#: The headers of a symbolic trace: the output's formula beside its example sizes.
SYMBOLIC_HEADERS = ("Layer", "Type", "Input", "Output", "Output formula", "Params")
INDENT = "  "


@cache
def _tabulate_keeps_whitespace() -> bool:
    """tabulate >= 0.10 can keep leading blanks per call; older ones strip them."""
    return "preserve_whitespace" in inspect.signature(tabulate).parameters


def grid(rows: Iterable[Sequence[Any]], headers: Sequence[str], **kwargs: Any) -> str:
    """tabulate with our defaults: plain text, numbers left as formatted, blanks kept."""
    if _tabulate_keeps_whitespace():
        kwargs["preserve_whitespace"] = True
    return tabulate(
        list(rows),
        headers=list(headers),
        tablefmt=kwargs.pop("tablefmt", "simple"),
        disable_numparse=True,
        **kwargs,
    )


def indent(depth: int) -> str:
    """Indentation for a row at ``depth`` that survives tabulate of any version."""
    if _tabulate_keeps_whitespace():
        return INDENT * depth
    return "· " * depth


#: After the parameter count of a lazy layer not initialised yet: the count it will have.
LAZY_MARK = " (lazy)"


def params_cell(record: LayerRecord) -> str:
    """Parameter count of a row; later calls of a reused module say so instead."""
    if record.call:
        return "(reused)"
    return f"{record.num_params:,}" + (LAZY_MARK if record.lazy else "")


def inputs_cell(record: LayerRecord) -> str:
    """Input shapes: one input plain, several as a tuple, keywords by name."""
    parts = [format_shape(s) for s in record.input_shapes]
    parts += [f"{k}={format_shape(v)}" for k, v in record.input_kwargs.items()]
    return ", ".join(parts) if parts else "-"


def output_cell(record: LayerRecord) -> str:
    """Output shape; a call that never returned shows where the forward stopped."""
    if not record.finished:
        return "FAILED" if record.output_shape is None else format_shape(record.output_shape)
    return format_shape(record.output_shape)


def formula_cell(record: LayerRecord) -> str:
    """A symbolic trace's output formula (``B x 64 x H//4 x W//4``), structures as tuples."""
    return formula_text(record.output_formula)


def formula_text(tree: Any) -> str:
    """A formula tree as text: one formula as it is, several in parentheses."""
    if tree is None:
        return "-"
    if isinstance(tree, str):
        return tree
    if isinstance(tree, dict):
        return "{" + ", ".join(f"{k}: {formula_text(v)}" for k, v in tree.items()) + "}"
    return "(" + ", ".join(formula_text(v) for v in tree) + ")"


def layer_rows(
    layers: Iterable[LayerRecord], max_depth: int | None = None, *, formulas: bool = False
) -> list[list[str]]:
    """One row per call at most ``max_depth`` deep (None: every call); with ``formulas``, the
    output formula of a symbolic trace after the output."""
    rows = []
    for r in layers:
        if max_depth is not None and r.depth > max_depth:
            continue
        row = [indent(r.depth) + r.label, r.type, inputs_cell(r), output_cell(r), params_cell(r)]
        if formulas:
            row.insert(4, formula_cell(r))
        rows.append(row)
    return rows


def totals_lines(trace: ShapeTrace) -> list[str]:
    """The lines under the table: parameter totals and how the trace ran."""
    mode = "train mode" if trace.train else "eval mode"
    inputs = ", ".join(format_shape(s) for s in trace.input_shapes)
    if trace.input_kwargs:
        kwargs = ", ".join(f"{k}={format_shape(v)}" for k, v in trace.input_kwargs.items())
        inputs = f"{inputs}, {kwargs}" if inputs else kwargs
    lines = [
        f"Total params: {trace.total_params:,}    Trainable: {trace.trainable_params:,}"
        f"    Non-trainable: {trace.non_trainable_params:,}",
        f"Input {inputs or '-'} -> output {format_shape(trace.output_shape)}"
        f"    traced on {trace.device} ({trace.dtype}, {mode})",
    ]
    if trace.wrapper:
        lines.append(f"Note: {trace.wrapper}")
    if trace.lazy:
        lines.append(
            "Note: (lazy) marks lazy layers the model has not initialised: their counts are those "
            "after the first forward, which this trace ran on a copy (the model stays uninitialised)"
        )
    if trace.symbolic:
        lines += symbolic_lines(trace.symbolic)
    if trace.note:
        lines.append(f"Note: {trace.note}")
    return lines


def symbolic_lines(symbolic: dict[str, Any]) -> list[str]:
    """The lines of a symbolic trace: its inputs and example sizes, and its domain in words."""
    example = ", ".join(f"{n}={v}" for n, v in symbolic.get("example", {}).items())
    inputs = ", ".join(symbolic.get("inputs", []))
    lines = [f"Symbolic: input {inputs} (the sizes above are for {example})"]
    if symbolic.get("domain"):
        lines.append(f"Domain: {symbolic['domain']}")
    return lines


def render_trace(trace: ShapeTrace, max_depth: int | None = None) -> str:
    """The whole table with totals; folded to ``max_depth`` levels when given."""
    formulas = any(r.output_formula is not None for r in trace.layers)
    body = grid(
        layer_rows(trace.layers, max_depth, formulas=formulas), SYMBOLIC_HEADERS if formulas else HEADERS
    )
    return body + "\n" + "\n".join(totals_lines(trace))
