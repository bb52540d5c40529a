"""The input sizes a symbolic trace holds for, as a set a user can ask about and read.

A symbolic trace leaves conditions on the named sizes: the checks torch made
(a pooling window fits, two maps of a ``cat`` agree, a Linear gets its
in_features) and the branches the forward took. ``InputDomain`` is their
conjunction: ``contains`` evaluates them exactly; ``smallest`` and ``sample``
search a grid of candidate sizes built from each name's own set; ``str()`` says
it in plain words in the user's names.

Each name's own set (the conditions on that name alone) is computed exactly by
evaluating them at every size up to a bound past which they repeat (floor
divisions and remainders by constants make a condition periodic once its
comparisons settle): that is what the words describe, "H and W at least 32 and
multiples of 32", "H from 224 to 255", "L at least 335". A condition on several
names that holds exactly on a product of per-name sets (a view into windows:
``H*W = 16*(H//4)*(W//4)``) is said per name too; the others are said as relations
in the spec syntax (``(H//32)*(W//32) = 49``) with, for equal sides, what that
means: "with H = W: H and W from 224 to 255". ``contains`` always evaluates the
conditions themselves.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import torch

from ..errors import ArgumentError
from .formulas import Evaluator, Residue

#: The most sizes a name's own set is evaluated at (beyond it a condition has settled).
_MAX_SPAN = 1 << 22
#: The most grid points a search over coupled names evaluates at once.
_MAX_GRID = 1 << 21
#: The grid points a quick search (an implied relation, a guard's nearest breach) evaluates.
_CHECK_GRID = 1 << 16
#: The grid a condition on several names is split on (per name: 512 sizes for two names).
_SEPARATE_GRID = 1 << 18
#: Sizes every name's set is evaluated at, at least.
_MIN_SPAN = 4096


@dataclass(frozen=True)
class Condition:
    """One condition on the named sizes, with its words and where it came from."""

    #: The condition in the spec syntax and the user's names: ``H//16 >= 1``.
    text: str
    #: True (or a bool tensor) where the condition holds.
    holds: Evaluator
    names: frozenset[str]
    #: The least common multiple of its divisors and its largest added constant: how far it
    #: must be evaluated to have settled into repeating.
    period: int = 1
    reach: int = 0
    #: ``"check"`` (torch refuses other sizes), ``"branch"`` (the forward would take another path).
    kind: str = "check"
    #: The layer (label) running when torch made it, and the user's line for a branch.
    layer: str = ""
    where: str = ""


@dataclass(frozen=True)
class NameSet:
    """The sizes one name may take by the conditions on it alone: ``allowed[v - 1]`` for size v."""

    allowed: torch.Tensor
    #: Smallest and largest allowed size (``high`` None: no largest).
    low: int | None
    high: int | None
    #: The repeating pattern past ``low`` when unbounded: period and the residues it allows.
    period: int = 1
    residues: tuple[int, ...] = ()

    @property
    def empty(self) -> bool:
        return self.low is None

    def values(self, limit: int | None = None) -> list[int]:
        """The allowed sizes in increasing order (at most ``limit`` of them)."""
        found = torch.nonzero(self.allowed).flatten() + 1
        if limit is not None:
            found = found[:limit]
        return [int(v) for v in found.tolist()]

    def residue(self) -> Residue | None:
        """The one residue every allowed size has (None for an empty set)."""
        values = self.values(limit=4096)
        if not values:
            return None
        step = 0
        for v in values[1:]:
            step = math.gcd(step, v - values[0])
        if self.high is None and self.period > 1:
            step = math.gcd(step, self.period) if step else self.period
        if step <= 1:
            return None
        return Residue(step, values[0] % step)


def _bounds(conditions: Sequence[Condition]) -> tuple[int, int]:
    """How far to evaluate ``conditions`` to see all of their sets, and a multiple of their period."""
    period = 1
    reach = 0
    for c in conditions:
        period = min(math.lcm(period, max(c.period, 1)), _MAX_SPAN)
        reach = max(reach, c.reach)
    return int(min(max(_MIN_SPAN, 4 * period * (reach + 2)), _MAX_SPAN)), period


def name_set(name: str, conditions: Sequence[Condition]) -> NameSet:
    """The exact set of sizes of ``name`` the conditions on it alone allow."""
    n, period = _bounds(conditions)
    sizes = torch.arange(1, n + 1, dtype=torch.int64)
    allowed = torch.ones(n, dtype=torch.bool)
    for c in conditions:
        allowed &= torch.as_tensor(c.holds({name: sizes}), dtype=torch.bool).expand(n)
    return pattern(allowed, period)


def pattern(allowed: torch.Tensor, period_bound: int) -> NameSet:
    """The set ``allowed`` (size v at index v - 1) with its bounds and its repeating tail.

    ``allowed`` covers sizes far enough that its second half repeats with a period
    dividing ``period_bound`` (or is all False past the largest size).
    """
    n = allowed.numel()
    found = torch.nonzero(allowed).flatten()
    if found.numel() == 0:
        return NameSet(allowed, None, None)
    low, last = int(found[0]) + 1, int(found[-1]) + 1
    if last <= n // 2:
        return NameSet(allowed, low, last)
    tail = allowed[n // 2 :]
    period = next(
        (
            p
            for p in range(1, min(period_bound, tail.numel() // 2) + 1)
            if period_bound % p == 0 and bool(torch.equal(tail[p:], tail[:-p]))
        ),
        period_bound,
    )
    start = n // 2
    residues = {(start + int(i) + 1) % period for i in torch.nonzero(tail[:period]).flatten()}
    return NameSet(allowed, low, None, period, tuple(sorted(residues)))


def _join(names: Sequence[str]) -> str:
    if len(names) == 1:
        return names[0]
    return ", ".join(names[:-1]) + " and " + names[-1]


def describe(values: NameSet) -> str | None:
    """A name's set in words, after its name(s): ``at least 32 and multiples of 32``.

    None when the set has no short description (the conditions are said instead).
    """
    if values.empty:
        return "nothing (no size fits)"
    low = values.low
    assert low is not None
    if values.high is not None:
        high = values.high
        every = values.values()
        if high == low:
            return f"= {low}"
        if len(every) == high - low + 1:
            return f"from {low} to {high}"
        if len(every) <= 4:
            return "= " + ", ".join(map(str, every[:-1])) + f" or {every[-1]}"
        residue = values.residue()
        if residue is not None and len(every) == (high - low) // residue.modulus + 1:
            kind = "multiples of" if residue.residue == 0 else "in steps of"
            return f"from {low} to {high} and {kind} {residue.modulus}"
        return None
    period, residues = values.period, values.residues
    pattern_ok = _regular_from(values, low)
    if not pattern_ok:
        return None
    if period == 1 or len(residues) == period:
        return f"at least {low}"
    if len(residues) == 1:
        (r,) = residues
        if r == 0:
            return f"at least {low} and multiples of {period}"
        if period == 2:
            return f"at least {low} and odd"
        return f"at least {low} and {r} more than a multiple of {period}"
    return None


def _regular_from(values: NameSet, low: int) -> bool:
    """Whether every size from ``low`` on follows the repeating pattern (no exceptions near low)."""
    period, residues = values.period, set(values.residues)
    n = values.allowed.numel()
    sizes = torch.arange(low, n + 1)
    expected = torch.tensor(
        [(int(s) % period) in residues for s in sizes[: min(len(sizes), 4 * period + 64)]]
    )
    return bool(torch.equal(values.allowed[low - 1 : low - 1 + expected.numel()], expected))


@dataclass
class InputDomain:
    """The input sizes a symbolic trace holds for.

    ``contains({"B": 2, "H": 64, "W": 64})``, ``smallest()``, ``str()`` in plain
    words. Sizes are positive integers; every name of the input spec needs one.
    """

    #: Every name of the input spec, in the order written.
    names: tuple[str, ...]
    conditions: tuple[Condition, ...]
    #: The sizes the trace ran at (the branch it describes).
    example: dict[str, int]
    #: The input spec(s) in the user's words, e.g. ``("B x 3 x H x W",)``.
    inputs: tuple[str, ...] = ()
    #: Where the forward branches on sizes (``file.py:LINE``), when it does.
    branches: tuple[str, ...] = ()
    #: Which names are sides of an input (the same role: compared when equal).
    sides: tuple[str, ...] = ()
    _sets: dict[str, NameSet] = field(default_factory=dict, repr=False)

    # -- membership -------------------------------------------------------------------------

    def contains(self, sizes: Mapping[str, int]) -> bool:
        """True when the trace holds for these sizes (one per name)."""
        values = self._check_sizes(sizes)
        if any(v < 1 for v in values.values()):
            return False
        return all(bool(c.holds(values)) for c in self.conditions)

    def __contains__(self, sizes: object) -> bool:
        return isinstance(sizes, Mapping) and self.contains(sizes)

    def _check_sizes(self, sizes: Mapping[str, Any]) -> dict[str, int]:
        if not isinstance(sizes, Mapping):
            raise ArgumentError(
                f"give the sizes as a dict of the names, e.g. {dict(self.example)!r}, not {sizes!r}"
            )
        missing = [n for n in self.names if n not in sizes]
        unknown = sorted(set(sizes) - set(self.names))
        if missing or unknown:
            parts = []
            if missing:
                parts.append(f"no size for {_join(missing)}")
            if unknown:
                parts.append(f"{_join(unknown)} is not a name of {' and '.join(self.inputs) or 'the input'}")
            raise ArgumentError(f"{'; '.join(parts)}: give one size per name, e.g. {dict(self.example)!r}")
        out = {}
        for name in self.names:
            value = sizes[name]
            if isinstance(value, bool) or not isinstance(value, int):
                raise ArgumentError(f"{name}={value!r}: a size is a whole number")
            out[name] = value
        return out

    def mask(self, grid: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Where on a grid of sizes (one int64 tensor per name, same shape) the trace holds."""
        shape = next(iter(grid.values())).shape
        inside = torch.ones(shape, dtype=torch.bool)
        for name in self.names:
            inside &= grid[name] >= 1
        for c in self.conditions:
            inside &= torch.as_tensor(c.holds(grid), dtype=torch.bool).expand(shape)
        return inside

    # -- each name's own set ----------------------------------------------------------------

    def name_set(self, name: str) -> NameSet:
        """The sizes ``name`` may take by the conditions on it alone (and by the conditions on
        several names that hold name by name: ``H*W = 16*(H//4)*(W//4)``)."""
        if name not in self._sets:
            own = [c for c in self.conditions if c.names == {name}]
            own += [c for c in self._separated if c.names == {name}]
            self._sets[name] = name_set(name, own)
        return self._sets[name]

    def own_set(self, name: str) -> NameSet:
        """The sizes ``name`` may take by the conditions on it alone (what searches start from)."""
        key = f"own:{name}"
        if key not in self._sets:
            self._sets[key] = name_set(name, [c for c in self.conditions if c.names == {name}])
        return self._sets[key]

    @cached_property
    def _separated(self) -> tuple[Condition, ...]:
        """Per-name conditions for each condition on several names that holds exactly when each
        name is in a set of its own (on a grid past its period): what its words say."""
        out: list[Condition] = []
        own = {name: self.own_set(name).allowed.clone() for name in self.names}
        left = list(self.coupled)
        while left:  # one split may let another split (its sets narrowed the grid)
            done = []
            for c in left:
                split = _separate(c, own)
                if split is None:
                    continue
                done.append(c)
                out.extend(split)
                for part in split:
                    (name,) = part.names
                    sizes = torch.arange(1, own[name].numel() + 1, dtype=torch.int64)
                    own[name] &= torch.as_tensor(part.holds({name: sizes}), dtype=torch.bool)
            if not done:
                break
            left = [c for c in left if c not in done]
        return tuple(out)

    def _split(self, c: Condition) -> bool:
        return any(s.where == c.text for s in self._separated)

    @cached_property
    def coupled(self) -> tuple[Condition, ...]:
        """Conditions on several names at once."""
        return tuple(c for c in self.conditions if len(c.names) > 1)

    def residues(self) -> dict[str, Residue]:
        """Per name, the residue every size of its set has (for simplifying formulas)."""
        out = {}
        for name in self.names:
            found = self.name_set(name).residue()
            if found is not None:
                out[name] = found
        return out

    def groups(self) -> list[tuple[str, ...]]:
        """Names that conditions tie together (each group searched on its own grid)."""
        parent = {n: n for n in self.names}

        def root(n: str) -> str:
            while parent[n] != n:
                n = parent[n]
            return n

        for c in self.coupled:
            tied = sorted(c.names)
            for other in tied[1:]:
                parent[root(other)] = root(tied[0])
        found: dict[str, list[str]] = {}
        for n in self.names:
            found.setdefault(root(n), []).append(n)
        return [tuple(g) for g in found.values()]

    # -- searches ---------------------------------------------------------------------------

    def _candidates(
        self, name: str, count: int, near: int | None = None, limit: int | None = None
    ) -> list[int]:
        """Up to ``count`` sizes of ``name``'s own set: the smallest ones, and with ``near`` as
        many again closest to it (a relation such as a product may need either)."""
        values = self.own_set(name)
        if values.empty:
            return []
        if near is None:
            pool = values.values(limit=count)
            return [v for v in pool if limit is None or v <= limit]
        every = values.values()
        if limit is not None:
            every = [v for v in every if v <= limit]
        close = sorted(every, key=lambda v: (abs(v - near), v))[: max(1, count // 2)]
        return sorted(set(every[: max(1, count - len(close))]) | set(close))

    def _grid(self, group: Sequence[str], candidates: Mapping[str, list[int]]) -> dict[str, torch.Tensor]:
        axes = [torch.tensor(candidates[n], dtype=torch.int64) for n in group]
        mesh = torch.meshgrid(*axes, indexing="ij") if len(axes) > 1 else (axes[0],)
        return {n: m.reshape(-1) for n, m in zip(group, mesh, strict=True)}

    def _group_points(
        self,
        group: Sequence[str],
        *,
        near: Mapping[str, int] | None = None,
        limit: int | None = None,
        budget: int = _MAX_GRID,
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """A grid of candidate sizes for the names of ``group`` and where the domain holds on it."""
        per = max(2, int(budget ** (1 / len(group))))
        candidates = {
            n: self._candidates(n, per, None if near is None else near.get(n), limit) for n in group
        }
        if any(not v for v in candidates.values()):
            return {n: torch.empty(0, dtype=torch.int64) for n in group}, torch.empty(0, dtype=torch.bool)
        grid = self._grid(group, candidates)
        inside = torch.ones(grid[group[0]].shape, dtype=torch.bool)
        for c in self.conditions:
            if c.names and c.names <= set(group):
                inside &= torch.as_tensor(c.holds(grid), dtype=torch.bool).expand(inside.shape)
        return grid, inside

    def smallest(self) -> dict[str, int]:
        """The smallest sizes in the domain: per group of tied names, the least largest size,
        then the least sum (a square input before a long thin one).

        Raises ArgumentError when no size fits (the domain is empty).
        """
        out: dict[str, int] = {}
        for group in self.groups():
            grid, inside = self._group_points(group)
            if not bool(inside.any()):
                raise ArgumentError(f"no sizes fit: {self}")
            stacked = torch.stack([grid[n][inside] for n in group])
            score = stacked.max(dim=0).values * (stacked.sum(dim=0).max() + 1) + stacked.sum(dim=0)
            best = int(torch.argmin(score))
            out.update({n: int(stacked[i, best]) for i, n in enumerate(group)})
        return {n: out[n] for n in self.names}

    def nearest(self, target: Mapping[str, int], *, budget: int = _MAX_GRID) -> dict[str, int] | None:
        """The sizes in the domain closest to ``target`` (fewest changes first), None if none
        among the ``budget`` grid points nearest to it (a small grid is tried first)."""
        out: dict[str, int] = {}
        for group in self.groups():
            grid, inside = self._group_points(group, near=target, budget=min(budget, _CHECK_GRID))
            if not bool(inside.any()) and budget > _CHECK_GRID:
                grid, inside = self._group_points(group, near=target, budget=budget)
            if not bool(inside.any()):
                return None
            stacked = torch.stack([grid[n][inside] for n in group])
            goal = torch.tensor([target[n] for n in group]).unsqueeze(1)
            changed = (stacked != goal).sum(dim=0)
            distance = (stacked - goal).abs().sum(dim=0)
            unequal = torch.zeros_like(changed)  # sides equal in the target stay equal
            for i, a in enumerate(group):
                for j in range(i + 1, len(group)):
                    if target[a] == target[group[j]]:
                        unequal += (stacked[i] != stacked[j]).long()
            scale = distance.max() + 1
            score = (unequal * (len(group) + 1) + changed) * scale + distance
            best = int(torch.argmin(score))
            out.update({n: int(stacked[i, best]) for i, n in enumerate(group)})
        return {n: out[n] for n in self.names}

    def sample(
        self, count: int, *, seed: int = 0, max_size: int = 256, limits: Mapping[str, int] | None = None
    ) -> list[dict[str, int]]:
        """``count`` sizes drawn from the domain, reproducibly: every size up to ``max_size``, and
        up to ``limits[name]`` for the names it gives (a small batch)."""
        generator = torch.Generator().manual_seed(seed)
        columns: dict[str, torch.Tensor] = {}
        for group in self.groups():
            grid, inside = self._group_points(group, limit=max_size)
            for name, limit in (limits or {}).items():
                if name in grid:
                    inside = inside & (grid[name] <= limit)
            if not bool(inside.any()):
                raise ArgumentError(f"no sizes up to {max_size} fit: {self}")
            picks = torch.randint(0, int(inside.sum()), (count,), generator=generator)
            for n in group:
                columns[n] = grid[n][inside][picks]
        return [{n: int(columns[n][i]) for n in self.names} for i in range(count)]

    # -- words ------------------------------------------------------------------------------

    def clauses(self) -> list[str]:
        """The domain as short clauses in plain words."""
        described: dict[str, str] = {}
        said: list[str] = []
        for name in self.names:
            own = [c for c in self.conditions if c.names == {name}]
            if not own and not any(c.names == {name} for c in self._separated):
                continue
            words = describe(self.name_set(name))
            if words is None:
                said.extend(dict.fromkeys(c.text for c in own))
            else:
                described[name] = words
        out = []
        grouped: dict[str, list[str]] = {}
        for name, words in described.items():
            grouped.setdefault(words, []).append(name)
        for words, names in grouped.items():
            out.append(f"{_join(names)} {words}")
        out.extend(said)
        relations = _equalities([c.text for c in self._unimplied() if not self._split(c)])
        out.extend(dict.fromkeys(relations))
        if relations:
            square = self._equal_sides()
            if square:
                out.append(square)
        free = [n for n in self.names if not any(n in c.names for c in self.conditions)]
        if free and out:
            out.append(f"any {_join(free)}")
        return out

    def _unimplied(self) -> list[Condition]:
        """The conditions on several names that the names' own sets do not already imply."""
        kept = []
        for c in self.coupled:
            group = sorted(c.names)
            per = max(2, int(_CHECK_GRID ** (1 / len(group))))
            candidates = {n: self._candidates(n, per) for n in group}
            if any(not v for v in candidates.values()):
                kept.append(c)
                continue
            grid = self._grid(group, candidates)
            if not bool(torch.as_tensor(c.holds(grid)).all()):
                kept.append(c)
        return kept

    def _equal_sides(self) -> str | None:
        """What the domain means for sides of equal size (a square image, a cube)."""
        sides = [n for n in self.sides if n in self.names]
        if len(sides) < 2:
            return None
        tied = [c for c in self.conditions if c.names & set(sides)]
        if any(not c.names <= set(sides) for c in tied):
            return None
        n, period = _bounds(tied)
        sizes = torch.arange(1, n + 1, dtype=torch.int64)
        allowed = torch.ones(n, dtype=torch.bool)
        for c in tied:
            allowed &= torch.as_tensor(c.holds(dict.fromkeys(sides, sizes)), dtype=torch.bool).expand(n)
        values = pattern(allowed, period)
        if values.empty:
            return f"no size fits with {' = '.join(sides)}"
        words = describe(values)
        if words is None:
            return None
        return f"with {' = '.join(sides)}: {_join(sides)} {words}"

    def words(self) -> str:
        """The domain in plain words, e.g. ``H and W at least 32 and multiples of 32``."""
        clauses = self.clauses()
        text = (
            "; ".join(clauses) if clauses else f"any {_join(list(self.names))}" if self.names else "any input"
        )
        if self.branches:
            example = ", ".join(f"{n}={v}" for n, v in self.example.items())
            text += (
                f" (the branch the example {example} takes: the forward branches on sizes at "
                f"{_join(list(dict.fromkeys(self.branches)))})"
            )
        return text

    def __str__(self) -> str:
        return self.words()

    def __repr__(self) -> str:
        return f"InputDomain({' and '.join(self.inputs) or '-'}: {self.words()})"

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe: the words, the example and the conditions' texts."""
        return {
            "inputs": list(self.inputs),
            "words": self.words(),
            "example": dict(self.example),
            "conditions": [c.text for c in self.conditions],
            "branches": list(self.branches),
        }


def _equalities(relations: list[str]) -> list[str]:
    """``W <= H`` and ``W >= H`` said as ``W = H``."""
    out = list(dict.fromkeys(relations))
    for text in list(out):
        left, sep, right = text.partition(" <= ")
        if sep and f"{left} >= {right}" in out:
            out[out.index(text)] = f"{left} = {right}"
            out.remove(f"{left} >= {right}")
    return out


def _separate(c: Condition, own: Mapping[str, torch.Tensor]) -> list[Condition] | None:
    """``c`` as one condition per name, when, among the sizes each name's own conditions
    allow (``own``), it holds exactly on a product of per-name sets.

    Checked on a grid of every size up to a bound per name past the condition's
    thresholds (the grid must be the product of its projections) and each projection
    must repeat regularly there; the per-name conditions repeat that pattern. Only
    words and searches use them, never membership.
    """
    group = sorted(c.names)
    side = max(64, int(_SEPARATE_GRID ** (1 / len(group))))
    if side < 2 * (c.reach + 2) * max(c.period, 1) or any(own[n].numel() < side for n in group):
        return None  # the grid would not reach past the condition's thresholds
    first = min(side, 64)  # a product's corner is a product: a quick look first rules most out
    if first < side and _projections(c, own, group, first) is None:
        return None
    found = _projections(c, own, group, side)
    if found is None:
        return None
    out = []
    for name, allowed in zip(group, found, strict=True):
        if bool(allowed.all()):
            continue
        values = pattern(allowed, max(c.period, 1))
        if values.empty or (values.high is None and not _regular_from(values, values.low or 1)):
            return None
        if values.high is not None and values.high > side // 2:
            return None
        out.append(_pattern_condition(name, values, c))
    return out


def _projections(
    c: Condition, own: Mapping[str, torch.Tensor], group: Sequence[str], side: int
) -> list[torch.Tensor] | None:
    """Per name, the sizes up to ``side`` at which ``c`` holds for some sizes of the others,
    when ``c`` holds exactly on their product there (within the names' own sets); else None."""
    axes = [torch.arange(1, side + 1, dtype=torch.int64) for _ in group]
    mesh = torch.meshgrid(*axes, indexing="ij")
    grid = dict(zip(group, mesh, strict=True))
    inside = torch.as_tensor(c.holds(grid), dtype=torch.bool).expand(mesh[0].shape).clone()
    for axis, name in enumerate(group):
        shape = [1] * len(group)
        shape[axis] = side
        inside &= own[name][:side].reshape(shape)
    projections = []
    for axis in range(len(group)):
        others = tuple(d for d in range(len(group)) if d != axis)
        projections.append(inside.any(dim=others) if others else inside)
    product = projections[0]
    for p in projections[1:]:
        product = product.unsqueeze(-1) & p
    if not bool(torch.equal(product.reshape(inside.shape), inside)):
        return None
    return projections


def _pattern_condition(name: str, values: NameSet, source: Condition) -> Condition:
    """A condition on one name holding on the sizes of ``values`` (its pattern extended)."""
    low, high, period = values.low or 1, values.high, values.period
    residues = torch.tensor(values.residues or (0,), dtype=torch.int64)
    listed = values.values() if high is not None else []
    allowed_list = torch.tensor(listed, dtype=torch.int64)

    def holds(sizes: Mapping[str, Any]) -> Any:
        v = torch.as_tensor(sizes[name])
        if high is not None:
            return torch.isin(v, allowed_list)
        return (v >= low) & torch.isin(v % period, residues)

    return Condition(
        text=source.text,
        holds=holds,
        names=frozenset({name}),
        period=period,
        kind=source.kind,
        layer=source.layer,
        where=source.text,
    )
