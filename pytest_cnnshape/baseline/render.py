"""Baseline problems as text a reviewer reads once: test failures, summaries, Markdown.

A change shows only the rows that differ, a row of context either side, baseline
and now side by side (``~`` changed, ``+`` added, ``-`` removed, ``old -> new`` for a
rename or a new type), then the output and the totals with their delta, the file
and the command that accepts the change.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable
from typing import TYPE_CHECKING

from ..shapes.tree import shape_text
from ..tracing.table import LAZY_MARK, grid
from .diff import SAME, RowChange, SnapshotDiff
from .location import UPDATE
from .record import BaselineUse
from .snapshot import Row, Snapshot

if TYPE_CHECKING:
    from ..errors import BaselineFileError

HEADERS = ("", "Layer", "Type", "Output (baseline)", "Output (now)", "Params (baseline)", "Params (now)")
#: Unchanged rows shown before and after each changed one.
CONTEXT = 1


def accept_command(nodeid: str) -> str:
    """The command that accepts (writes) the baseline of the test ``nodeid``."""
    return f"{UPDATE} {shlex.quote(nodeid)}"


def describe(snapshot: Snapshot) -> str:
    """``lenet5 (8x1x28x28)``."""
    return f"{snapshot.model} ({snapshot.input})"


def delta(old: int, new: int) -> str:
    """``61,706 -> 64,122 (+2,416)``, or ``61,706 (unchanged)``."""
    if old == new:
        return f"{old:,} (unchanged)"
    return f"{old:,} -> {new:,} ({new - old:+,})"


def _pair(old: str | None, new: str | None) -> str:
    """One value, or ``old -> new`` when the two sides differ."""
    if old is None:
        return new or ""
    if new is None or old == new:
        return old
    return f"{old} -> {new}"


def _cells(row: Row | None) -> tuple[str, str]:
    if row is None:
        return "", ""
    return shape_text(row.output), f"{row.params:,}" + (LAZY_MARK if row.lazy else "")


def _table_row(change: RowChange) -> list[str]:
    old, new = change.old, change.new
    label = _pair(old.label if old else None, new.label if new else None)
    kind = _pair(old.type if old else None, new.type if new else None)
    old_out, old_params = _cells(old)
    new_out, new_params = _cells(new)
    return [change.mark, label, kind, old_out, new_out, old_params, new_params]


def shown_rows(rows: tuple[RowChange, ...]) -> list[list[str]]:
    """The changed rows with CONTEXT unchanged rows around them; ``...`` marks a gap."""
    keep = {i + k for i, r in enumerate(rows) if r.mark != SAME for k in range(-CONTEXT, CONTEXT + 1)}
    out: list[list[str]] = []
    last = -1
    for index in sorted(i for i in keep if 0 <= i < len(rows)):
        if out and index == last + 2:  # a gap of one row: the row itself is as short as "..."
            out.append(_table_row(rows[last + 1]))
        elif out and index != last + 1:
            out.append(["", "...", "", "", "", "", ""])
        out.append(_table_row(rows[index]))
        last = index
    return out


def summary(diff: SnapshotDiff) -> str:
    """``3 changed (1 renamed), 1 added; output 8x10 -> 8x12; params +2,416``."""
    parts = []
    if diff.mode_changed:
        parts.append("compares " + ("only the output now" if diff.new.output_only else "every layer now"))
    if diff.old.input != diff.new.input:
        parts.append(f"input {diff.old.input} -> {diff.new.input}")
    counts = diff.counts()
    rows = [f"{counts[k]} {k}" for k in ("changed", "added", "removed", "renamed") if counts[k]]
    if rows:  # "1 layer changed, 2 added", "3 layers renamed"
        number, kind = rows[0].split(" ")
        rows[0] = f"{number} {'layer' if number == '1' else 'layers'} {kind}"
        parts.append(", ".join(rows))
    if diff.output_changed:
        parts.append(f"output {shape_text(diff.old.output)} -> {shape_text(diff.new.output)}")
    if diff.old.total_params != diff.new.total_params:
        parts.append(f"params {diff.new.total_params - diff.old.total_params:+,}")
    elif diff.old.trainable_params != diff.new.trainable_params:
        parts.append(f"trainable params {diff.new.trainable_params - diff.old.trainable_params:+,}")
    return "; ".join(parts) or "the stored model name differs"


def changed(diff: SnapshotDiff, file: str, nodeid: str) -> tuple[str, str]:
    """Headline and full text of a baseline that differs from the model."""
    headline = f"shape baseline changed for {describe(diff.new)}: {summary(diff)}"
    lines = [headline, f"baseline: {file}"]
    if diff.mode_changed:
        lines.append(
            "the baseline compares "
            + ("every layer" if diff.new.output_only else "only the output and totals")
            + "; the test now asks for "
            + ("only the output and totals" if diff.new.output_only else "every layer")
        )
    if diff.old.model != diff.new.model:
        lines.append(f"model: {diff.old.model} -> {diff.new.model}")
    if diff.old.input != diff.new.input:
        lines.append(f"input: {diff.old.input} -> {diff.new.input}")
    if diff.changes:
        lines += ["", grid(shown_rows(diff.rows), HEADERS), ""]
    output = shape_text(diff.new.output)
    if diff.output_changed:
        output = f"{shape_text(diff.old.output)} -> {output}"
    lines.append(f"output: {output}{'' if diff.output_changed else ' (unchanged)'}")
    lines.append(
        f"params: {delta(diff.old.total_params, diff.new.total_params)}    "
        f"trainable: {delta(diff.old.trainable_params, diff.new.trainable_params)}"
    )
    lines.append(f"if the change is intended, accept it with: {accept_command(nodeid)}")
    return headline, "\n".join(lines)


def missing(snapshot: Snapshot, file: str, nodeid: str) -> tuple[str, str]:
    """Headline and full text of a baseline not written yet."""
    headline = f"no shape baseline for {describe(snapshot)} yet"
    text = "\n".join(
        [
            headline,
            f"expected at: {file}",
            f"record the current shapes with: {accept_command(nodeid)}",
            "(or set update_missing = true under [tool.cnnshape] to write missing baselines on local runs)",
        ]
    )
    return headline, text


def unreadable(err: BaselineFileError, snapshot: Snapshot, file: str, nodeid: str) -> tuple[str, str]:
    """Headline and full text of a baseline file that exists but cannot be used."""
    headline = f"shape baseline of {describe(snapshot)} cannot be used: {file} {err}"
    if err.conflicted:
        fix = (
            f"resolve by re-running `{accept_command(nodeid)}` on the merged code: the baseline "
            "is what the merged model traces to, not either side of the conflict"
        )
    elif err.newer:
        fix = (
            "upgrade pytest-cnnshape (pip install -U pytest-cnnshape), or rewrite the file "
            f"in this version's format with: {accept_command(nodeid)}"
        )
    else:
        fix = (
            f"restore it from version control (git checkout -- {shlex.quote(file)}), or "
            f"rewrite it from the current model with: {accept_command(nodeid)}"
        )
    return headline, f"{headline}\nthe file was left as it is; {fix}"


def markdown(uses: Iterable[tuple[str, BaselineUse]]) -> list[str]:
    """The Markdown report's opening section: each failed baseline (model name, its use) with
    its diff; no lines when none failed."""
    failed: dict[str, tuple[str, BaselineUse]] = {}
    for name, use in uses:
        if use.failed:
            failed.setdefault(use.file, (name, use))
    if not failed:
        return []
    lines = ["### Shape baselines that fail", ""]
    for file in sorted(failed):
        name, use = failed[file]
        lines += [
            f"- **{name}** ({use.status}) `{file}` — {use.headline}",
            "",
            "  <details><summary>details</summary>",
            "",
            "  ```text",
        ]
        lines += [f"  {line}".rstrip() for line in use.text.splitlines()]
        lines += ["  ```", "", "  </details>", ""]
    lines += [f"Accept intended changes with `{UPDATE}`.", ""]
    return lines
