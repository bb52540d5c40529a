"""How a stored baseline and the current model differ, row by row.

Rows are aligned in two passes so the diff says what happened, not what moved:

1. rows identical in everything (name, type, call, output, params) are matched
   in order (``difflib.SequenceMatcher``); they are unchanged;
2. in each stretch between them, rows equal in everything *but the name* are a
   rename (``~``, ``old -> new``): a renamed attribute, or the index shift of an
   ``nn.Sequential`` after an inserted layer, reads as such, not as one row removed
   and one added; rows with the same name (and call) are a change (``~``); the
   rest were removed (``-``) or added (``+``).

A layer both renamed and changed cannot be told from a removal plus an addition,
and is shown as one.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from difflib import SequenceMatcher
from operator import attrgetter
from typing import Any

from .snapshot import Row, Snapshot, shape_key

SAME, CHANGED, ADDED, REMOVED = " ", "~", "+", "-"


@dataclass(frozen=True)
class RowChange:
    """One row of the alignment: the baseline's row, the current one, or both."""

    mark: str
    old: Row | None
    new: Row | None

    @property
    def renamed(self) -> bool:
        """True for a row whose name (alone or with more) changed."""
        return self.old is not None and self.new is not None and self.old.name != self.new.name


def _match(
    old: Sequence[Row], new: Sequence[Row], keys: tuple[Callable[[Row], Hashable], ...]
) -> list[RowChange]:
    """Match rows in order on the first key; align what it leaves on the next key, and so on.

    Rows left unmatched by every key were removed or added. A matched pair is the same
    row when everything compared is equal, else a change (a rename when only the name
    differs).
    """
    if not keys:
        return [RowChange(REMOVED, o, None) for o in old] + [RowChange(ADDED, None, n) for n in new]
    key, rest = keys[0], keys[1:]
    out: list[RowChange] = []
    matcher = SequenceMatcher(None, [key(r) for r in old], [key(r) for r in new], autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            out += [
                RowChange(SAME if o.identity == n.identity else CHANGED, o, n)
                for o, n in zip(old[i1:i2], new[j1:j2], strict=True)
            ]
        else:
            out += _match(old[i1:i2], new[j1:j2], rest)
    return out


#: The passes: identical rows, then rows equal but for the name, then rows of the same name.
PASSES: tuple[Callable[[Row], Hashable], ...] = (
    attrgetter("identity"),
    attrgetter("content"),
    attrgetter("key"),
)


def align(old: Sequence[Row], new: Sequence[Row]) -> list[RowChange]:
    """Every row of both sides, in order, marked same, changed, added or removed."""
    return _match(old, new, PASSES)


@dataclass(frozen=True)
class SnapshotDiff:
    """The difference between a baseline (``old``) and the current model (``new``)."""

    old: Snapshot
    new: Snapshot
    rows: tuple[RowChange, ...]

    @property
    def mode_changed(self) -> bool:
        """True when one side compares every layer and the other only the output."""
        return self.old.output_only != self.new.output_only

    @property
    def output_changed(self) -> bool:
        return shape_key(self.old.output) != shape_key(self.new.output)

    @property
    def changes(self) -> list[RowChange]:
        """The rows that differ."""
        return [r for r in self.rows if r.mark != SAME]

    def changes_data(self) -> list[dict[str, Any]]:
        """The rows that differ as plain data (``mark``, ``old``, ``new`` rows as stored), and
        for a removed row the ``[name, call]`` of the current row before it (None: first)."""
        out: list[dict[str, Any]] = []
        after: list[Any] | None = None
        for row in self.rows:
            if row.mark != SAME:
                item: dict[str, Any] = {
                    "mark": row.mark,
                    "old": None if row.old is None else row.old.to_data(),
                    "new": None if row.new is None else row.new.to_data(),
                }
                if row.mark == REMOVED:
                    item["after"] = after
                out.append(item)
            if row.new is not None:
                after = [row.new.name, row.new.call]
        return out

    def counts(self) -> dict[str, int]:
        """How many rows were changed (in more than the name), added, removed and renamed."""
        changes = self.changes
        return {
            "changed": sum(r.mark == CHANGED and not r.renamed for r in changes),
            "renamed": sum(r.renamed for r in changes),
            "added": sum(r.mark == ADDED for r in changes),
            "removed": sum(r.mark == REMOVED for r in changes),
        }


def compare(old: Snapshot, new: Snapshot) -> SnapshotDiff:
    """The diff of two snapshots (rows aligned only when both compare layers)."""
    rows: tuple[RowChange, ...] = ()
    if old.layers is not None and new.layers is not None:
        rows = tuple(align(old.layers, new.layers))
    return SnapshotDiff(old, new, rows)
