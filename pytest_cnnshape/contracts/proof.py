"""Shape contracts proven over their whole domain with torch's symbolic shapes.

A contract's domain is finite (each name has its range: ``batch``, ``min_side`` to
``max_side`` in steps of ``multiple_of``, ``dims``). One symbolic trace gives the
model's output as a formula of the input's names and the sizes it runs at
(``InputDomain``); the formula and the contract's expected output are then
compared at every input of the domain at once (integer tensors, exact), and the
inputs the model does not run at are failures. A forward that branches on sizes
is followed once more from the smallest input the branches so far do not cover,
up to ``PIECES`` times.

Where the engine cannot follow the model, or the contract is one the comparison
does not cover (a hypothesis strategy of shapes, a callable or structured
expected output, a domain of more than ``MAX_INPUTS`` inputs), ``prove`` says why
and ``assert_shape_contract`` falls back to hypothesis.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import SymbolicError
from ..shapes.tree import Shape

if TYPE_CHECKING:
    import torch
    from torch import nn

    from ..shapes.spec import ShapeSpec
    from ..tracing.input_domain import InputDomain

#: The most inputs a domain may have to be compared one by one.
MAX_INPUTS = 1 << 22
#: The most symbolic traces a forward that branches on sizes gets.
PIECES = 6


@dataclass(frozen=True)
class Proof:
    """What the symbolic check found: every input fits, or where it fails."""

    #: Inputs in the contract's domain (all of them were checked).
    inputs: int
    #: The failing inputs, as input shapes, smallest first (at most a few).
    failing: tuple[Shape, ...] = ()
    #: How many inputs fail.
    failures: int = 0
    #: The sizes the model runs at, in words (of the first branch followed).
    domain: str = ""
    #: The failing inputs in words ("H or W not a multiple of 4"); "" where no
    #: description by name is exact.
    where: str = ""

    @property
    def holds(self) -> bool:
        return not self.failures


class Unproven(Exception):
    """The symbolic check cannot decide this contract; the message says why (one line)."""


@dataclass
class _Grid:
    """Every input of a contract's domain: one int64 tensor per name (and their order)."""

    names: tuple[str, ...]
    values: dict[str, torch.Tensor]

    @property
    def size(self) -> int:
        return int(next(iter(self.values.values())).numel()) if self.values else 1

    def point(self, index: int) -> dict[str, int]:
        return {n: int(self.values[n][index]) for n in self.names}


def _ranges(
    spec: ShapeSpec,
    dims: Mapping[str, Any],
    *,
    min_side: int,
    max_side: int,
    batch: int | tuple[int, int],
    multiple_of: int,
) -> dict[str, list[int]]:
    from .domain import BATCH_NAMES

    out: dict[str, list[int]] = {}
    for name in sorted(spec.names):
        given = dims.get(name)
        if isinstance(given, int) and not isinstance(given, bool):
            out[name] = [given]
        elif isinstance(given, (tuple, list)) and len(given) == 2:
            out[name] = list(range(int(given[0]), int(given[1]) + 1))
        elif given is not None:
            raise Unproven(f"dims[{name!r}] is a hypothesis strategy, which only hypothesis can draw from")
        elif name in BATCH_NAMES:
            low, high = (batch, batch) if isinstance(batch, int) else batch
            out[name] = list(range(low, high + 1))
        else:
            first = -(-min_side // multiple_of) * multiple_of
            out[name] = list(range(first, max_side + 1, multiple_of))
    return out


def contract_grid(spec: ShapeSpec, dims: Mapping[str, Any], *, square: bool, **ranges: Any) -> _Grid:
    """Every input of the contract's domain, as a grid of sizes per name."""
    import torch

    from .domain import SIDE_NAMES

    values = _ranges(spec, dims, **ranges)
    tied = [n for n in values if square and n in SIDE_NAMES and n not in dims]
    axes = [n for n in values if n not in tied[1:]]
    count = math.prod(len(values[n]) for n in axes)
    if count > MAX_INPUTS:
        raise Unproven(f"the contract's domain has {count:,} inputs, too many to compare one by one")
    tensors = [torch.tensor(values[n], dtype=torch.int64) for n in axes]
    mesh = torch.meshgrid(*tensors, indexing="ij") if len(tensors) > 1 else tuple(tensors)
    flat = {n: m.reshape(-1) for n, m in zip(axes, mesh, strict=True)}
    for n in tied[1:]:
        flat[n] = flat[tied[0]]
    names = tuple(dict.fromkeys(d.text for d in spec.dims if d.kind == "name"))
    return _Grid(names, flat)


def _order(grid: _Grid) -> torch.Tensor:
    """A score per input: the smallest input is the one with the least largest size, then sum."""
    import torch

    stacked = torch.stack([grid.values[n] for n in grid.names]) if grid.names else torch.zeros(1, 1)
    return stacked.max(dim=0).values * (int(stacked.sum(dim=0).max()) + 1) + stacked.sum(dim=0)


def _input_shape(spec: ShapeSpec, sizes: Mapping[str, Any]) -> list[Any]:
    return [d.evaluate(sizes) for d in spec.dims]


def _fits(
    expected: ShapeSpec,
    output: list[Callable[[Mapping[str, Any]], Any]],
    spec: ShapeSpec,
    grid: Mapping[str, Any],
) -> torch.Tensor:
    """Where on the grid the output (its formula per dimension) fits the expected spec."""
    import torch

    from ..shapes.spec import CONVENTIONAL_NAMES

    sizes = dict(grid)
    shape = _input_shape(spec, sizes)
    for name, value in zip(CONVENTIONAL_NAMES.get(len(shape), ()), shape, strict=False):
        sizes.setdefault(name, value)
    if "B" in sizes:
        sizes.setdefault("N", sizes["B"])
    count = next(iter(grid.values())).numel() if grid else 1
    fits = torch.ones(count, dtype=torch.bool)
    if len(expected.dims) != len(output):
        return torch.zeros(count, dtype=torch.bool)
    for dim, size in zip(expected.dims, output, strict=True):
        if dim.kind == "any":
            continue
        fits &= torch.as_tensor(dim.evaluate(sizes) == size(sizes)).expand(count)
    return fits


def prove(
    model: nn.Module,
    spec: ShapeSpec,
    expected: ShapeSpec,
    dims: Mapping[str, Any],
    *,
    square: bool,
    probe: Callable[[Any], Any],
    **ranges: Any,
) -> Proof:
    """The contract checked at every input of its domain; Unproven says why it cannot be."""
    import torch

    from ..tracing.symbolic_follow import plan_symbolic
    from .failing_words import failing_in_words

    if any(d.kind == "rest" for d in expected.dims):
        raise Unproven("an expected output with '...' is checked by hypothesis")
    grid = contract_grid(spec, dims, square=square, **ranges)
    order = _order(grid)
    uncovered = torch.ones(grid.size, dtype=torch.bool)
    failing = torch.zeros(grid.size, dtype=torch.bool)
    example: dict[str, int] | None = None
    words = ""
    for _ in range(PIECES):
        plan = plan_symbolic(model, spec.text, dims=example)
        if plan.refused is not None:
            raise Unproven(str(plan.refused))
        if probe(plan.concrete()) is None:
            if example is None:
                raise Unproven("the model fails at every example size the engine tried")
            index = _index(grid, example)
            failing[index], uncovered[index] = True, False
        else:
            try:
                domain, output = _follow(plan, probe)
            except SymbolicError as exc:
                raise Unproven(str(exc)) from None
            words = words or domain.words()
            inside = domain.mask(grid.values) & uncovered
            fits = _fits(expected, output, spec, grid.values)
            failing |= inside & ~fits
            uncovered &= ~inside
            if not domain.branches:
                failing |= uncovered
                uncovered[:] = False
        if not bool(uncovered.any()):
            break
        example = grid.point(int(torch.argmin(torch.where(uncovered, order, order.max() + 1))))
    if bool(uncovered.any()):
        raise Unproven(f"the forward branches on sizes into more than {PIECES} pieces")
    count = int(failing.sum())
    picks = torch.argsort(torch.where(failing, order, order.max() + 1))[: min(count, 3)]
    shapes = tuple(tuple(_input_shape(spec, grid.point(int(i)))) for i in picks)
    return Proof(grid.size, shapes, count, words, failing_in_words(grid.values, failing))


def _index(grid: _Grid, point: Mapping[str, int]) -> int:
    import torch

    hit = torch.ones(grid.size, dtype=torch.bool)
    for name in grid.names:
        hit &= grid.values[name] == point[name]
    return int(torch.nonzero(hit).flatten()[0])


def _follow(
    plan: Any, probe: Callable[[Any], Any]
) -> tuple[InputDomain, list[Callable[[Mapping[str, Any]], Any]]]:
    """The domain of the branch at the plan's example, and the output's formula per dimension."""
    from ..tracing.formulas import compile_expr
    from ..tracing.symbolic import size_expr

    followed = plan.follow(probe)
    run = followed.run
    output = run.output
    if not hasattr(output, "shape"):
        raise SymbolicError("the model returns a structure, which hypothesis checks")
    formulas = [compile_expr(run.simplified(size_expr(v)), run.names) for v in output.shape]
    return followed.domain, formulas
