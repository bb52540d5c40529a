"""Where a contract fails, in words: "H or W not a multiple of 4", "H = W from 33 to 63".

The proof knows the failing inputs of a contract's domain as a mask over its grid.
A count and the smallest one say little about *which* sizes to avoid; this says it
the way the domain of a model is said. Each name is described on its own (the set
of its values at which every input fails), and the description is given only when
those per-name sets account for every failing input exactly; otherwise the count
and the smallest input stand alone. Nothing here is approximate.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

#: The most values a description lists one by one.
LISTED = 5


def failing_in_words(values: Mapping[str, torch.Tensor], failing: torch.Tensor) -> str:
    """The failing inputs of a grid (one int64 tensor per name, ``failing`` a bool mask
    over it) in words, or "" where no per-name description is exact."""
    import torch

    count = int(failing.sum())
    if not count:
        return ""
    if count == failing.numel():
        return "every input of its domain"
    axes = _free_axes(values)
    if not axes:
        return ""
    described: list[tuple[str, str]] = []
    covered = torch.zeros_like(failing)
    for label, column in axes:
        # per value of this name: how many inputs there are, and how many of them run
        there = torch.bincount(column)
        running = torch.bincount(column, weights=(~failing).to(torch.float64), minlength=there.numel())
        domain = torch.nonzero(there).flatten().tolist()
        bad = torch.nonzero((there > 0) & (running == 0)).flatten().tolist()
        if not bad:
            continue
        is_bad = torch.zeros(there.numel(), dtype=torch.bool)
        is_bad[bad] = True
        covered |= is_bad[column]
        described.append((label, _set_in_words(bad, domain)))
    if not described or not bool(torch.equal(covered, failing)):
        return ""
    phrases = [phrase for _, phrase in described]
    if len(set(phrases)) == 1 and len(described) > 1:
        return " or ".join(label for label, _ in described) + " " + phrases[0]
    return " or ".join(f"{label} {phrase}" for label, phrase in described)


def _free_axes(values: Mapping[str, torch.Tensor]) -> list[tuple[str, torch.Tensor]]:
    """The names whose size varies on the grid, names tied to one size as one ("H = W")."""
    axes: list[tuple[list[str], torch.Tensor]] = []
    for name, column in values.items():
        if not bool((column != column[0]).any()):
            continue
        tied = next((names for names, seen in axes if seen is column), None)
        if tied is not None:
            tied.append(name)
        else:
            axes.append(([name], column))
    return [(" = ".join(names), column) for names, column in axes]


def _set_in_words(bad: Sequence[int], domain: Sequence[int]) -> str:
    """``bad``, a subset of ``domain`` (both sorted), in the fewest words that are exact."""
    chosen = set(bad)
    runs = _runs(bad, domain)
    if len(runs) == 1:
        return _runs_in_words(runs)
    kept = [v for v in domain if v not in chosen]
    inside = _runs(kept, domain)
    if len(inside) == 1:
        ((low, high),) = inside
        return f"other than {low}" if low == high else f"outside {low} to {high}"
    # "not a multiple of s": s divides every size that runs; "a multiple of s": every failing one
    for values, word in ((kept, "not a multiple of"), (bad, "a multiple of")):
        whole = math.gcd(*values)
        for step in (s for s in range(2, whole + 1) if whole % s == 0):
            if {v for v in domain if (v % step == 0) == (word == "a multiple of")} == chosen:
                return f"{word} {step}"
    if len(runs) <= 3:
        return _runs_in_words(runs)
    listed = ", ".join(str(v) for v in bad[:LISTED])
    more = f", … ({len(bad)} sizes)" if len(bad) > LISTED else ""
    return f"one of {listed}{more}"


def _runs_in_words(runs: Sequence[tuple[int, int]]) -> str:
    return " or ".join(f"= {a}" if a == b else f"from {a} to {b}" for a, b in runs)


def _runs(bad: Sequence[int], domain: Sequence[int]) -> list[tuple[int, int]]:
    """``bad`` as runs of neighbours in ``domain``: (first, last) of each."""
    position = {v: i for i, v in enumerate(domain)}
    runs: list[tuple[int, int]] = []
    for value in bad:
        if runs and position[value] == position[runs[-1][1]] + 1:
            runs[-1] = (runs[-1][0], value)
        else:
            runs.append((value, value))
    return runs
