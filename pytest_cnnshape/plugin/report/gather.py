"""Entries of the whole session, de-duplicated and in a stable order.

Serial and xdist runs see the same entries in different orders; sorting by
(name, input, first nodeid) and merging identical entries makes the report (and
the JSON file) the same whichever way the tests were spread.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from ...shapes.tree import shape_text
from ..entries import FAILED, PASSED, XFAILED, ModelEntry


@dataclass
class ReportedModel:
    """One model in the report; ``nodeids`` are every test that traced it identically."""

    entry: ModelEntry
    nodeids: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return self.entry.status == FAILED

    @property
    def expected_failure(self) -> bool:
        """Failed inside a test that expected it (the report says xfailed)."""
        return self.entry.status == XFAILED

    @property
    def output(self) -> str:
        trace = self.entry.trace or {}
        if self.entry.status != PASSED and not trace.get("complete", True):
            return "-"
        return shape_text(trace.get("output_shape"))

    def contract_line(self) -> str | None:
        """``Contract: B x 3 x H x W -> B x 10, 100 examples: passed`` when one was checked."""
        note = self.entry.extras.get("contract")
        if not note:
            return None
        outcome = note["status"]
        if note.get("smallest_failing"):
            outcome += f" (smallest failing input {shape_text(note['smallest_failing'])}"
            outcome += f"; fails for {note['failing_where']})" if note.get("failing_where") else ")"
        if note.get("method") == "symbolic":
            over = (
                f"proven at all {note['checked']:,} inputs of its domain"
                if note.get("checked")
                else "proven at every input of its domain"
            )
            return f"Contract: {note['input']} -> {note['output']} {over} (symbolic shapes): {outcome}"
        why = f" (not proven symbolically: {note['why']})" if note.get("why") else ""
        return (
            f"Contract: {note['input']} -> {note['output']} over {note['examples']} "
            f"hypothesis examples{why}: {outcome}"
        )

    def column(self, key: str, default: Any = None) -> Any:
        return (self.entry.trace or {}).get(key, default)

    def to_dict(self) -> dict[str, Any]:
        """The JSON report's object for this model (the schema is documented in report/jsonfile.py)."""
        data = self.entry.to_dict()
        data.pop("nodeid")
        data["nodeids"] = list(self.nodeids)
        data["output"] = self.output
        data["total_params"] = self.column("total_params")
        data["trainable_params"] = self.column("trainable_params")
        data["device"] = self.column("device")
        return data


def _identity(entry: ModelEntry) -> str:
    data = entry.to_dict()
    data.pop("nodeid")
    return json.dumps(data, sort_keys=True)


@dataclass
class SessionModels:
    """Every entry the controller received, ready to report."""

    entries: list[ModelEntry] = field(default_factory=list)

    def add(self, entries: list[ModelEntry]) -> None:
        self.entries.extend(entries)

    def models(self) -> list[ReportedModel]:
        """Merged and sorted: identical entries from several tests appear once."""
        merged: dict[str, ReportedModel] = {}
        for entry in sorted(self.entries, key=lambda e: (e.name.lower(), e.name, e.input, e.nodeid)):
            key = _identity(entry)
            if key in merged:
                merged[key].nodeids.append(entry.nodeid)
            else:
                merged[key] = ReportedModel(entry, [entry.nodeid])
        return sorted(
            merged.values(), key=lambda m: (m.entry.name.lower(), m.entry.name, m.entry.input, m.nodeids[0])
        )

    def counts(self) -> dict[str, int]:
        models = self.models()
        return {
            "models": len(models),
            PASSED: sum(m.entry.status == PASSED for m in models),
            FAILED: sum(m.failed for m in models),
            XFAILED: sum(m.expected_failure for m in models),
        }

    def counts_line(self) -> str:
        """``3 model(s): 2 passed, 1 failed`` (and how many failed as their tests expected)."""
        counts = self.counts()
        line = f"{counts['models']} model(s): {counts[PASSED]} passed, {counts[FAILED]} failed"
        if counts[XFAILED]:
            line += f", {counts[XFAILED]} failed as their tests expected (xfailed)"
        return line

    def __bool__(self) -> bool:
        return bool(self.entries)
