"""Following a model symbolically: the example, the input domain, the formulas of a trace.

``plan_symbolic`` parses the named inputs and chooses example sizes: the ones
given, or found by the engine from defaults, where a check fails, by moving to
the nearest sizes that pass it and every check before it (``find_example``).
``SymbolicPlan.follow`` runs the engine there and builds the input domain
(``build_domain``): torch's checks and the forward's branches are its
conditions; every other guard torch made in its own code (memory layout, a fast
path for a size of 1) is tested by a plain meta forward at the nearest sizes
that break it: if that forward fails, the guard is a check; if it runs with the
shapes the formulas give, it is dropped; with other shapes, it is a branch. A
guard that fixes a name to one number and is no check (torch or the model turned
a size into a plain int) is a SymbolicError: no formula holds for other sizes.

``attach`` writes each row's output formula on a concrete trace at the example
(the formulas must give the sizes torch computed there, row by row), simplified
under the domain; ``domain_near`` finds the domain from a failing input, for the
diagnostics' size fixes.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sympy
import torch
from torch import nn
from torch.utils._sympy import functions as tf

from ..errors import SpecError, SymbolicError
from ..shapes.spec import CONVENTIONAL_NAMES
from .devices import model_dtype, parse_dtype
from .formulas import (
    Unwritable,
    Writer,
    compile_expr,
    factored,
    normalised,
    shortest,
    tidy,
    under_domain,
    write_relation,
)
from .guard import guarded
from .input_domain import Condition, InputDomain
from .inputs import InputSpec
from .modelview import ModelView
from .named_inputs import SymbolicInputs, parse_symbolic, with_named_first
from .request import as_module
from .symbolic import (
    GuardOrigin,
    SymbolicRun,
    map_shapes,
    record_evaluators,
    refuse,
    run_symbolic,
    shapes_equal,
    size_expr,
)
from .wrappers import type_name, unwrap

if TYPE_CHECKING:
    from .records import ShapeTrace

#: How many times the example search moves to sizes that pass the check that failed.
SEARCH_STEPS = 10


def _divisors(expr: sympy.Basic) -> tuple[int, int]:
    """The least common multiple of the divisors in ``expr``, and its largest added constant.

    Together they bound where the condition settles into repeating: a threshold such as
    ``H//16 >= 3`` or ``(H//4 - 3)*(W//4 - 3) = 25`` lies below (constant + 2) * period.
    Multiplying coefficients (``16*(H//4) = H``) set no threshold.
    """
    period = 1
    reach = 0
    for node in sympy.preorder_traversal(expr):
        if isinstance(node, (tf.FloorDiv, tf.CleanDiv, tf.CeilDiv, sympy.Mod, tf.PythonMod, tf.Mod)):
            divisor = node.args[1]
            if isinstance(divisor, sympy.Integer) and int(divisor) > 0:
                period = math.lcm(period, int(divisor))
        elif isinstance(node, sympy.Rational) and not isinstance(node, sympy.Integer):
            period = math.lcm(period, int(node.q))
        elif isinstance(node, sympy.Add):
            constant = node.as_coeff_Add()[0]
            if constant.is_Integer:
                reach = max(reach, abs(int(constant)))
        elif isinstance(node, sympy.core.relational.Relational):
            for side in (node.lhs, node.rhs):
                if side.is_Integer:
                    reach = max(reach, abs(int(side)))
    return min(period, 1 << 22), min(reach, 1 << 22)


def conditions(
    expr: sympy.Basic, run: SymbolicRun, origin: GuardOrigin, kind: str, *, words: bool = True
) -> list[Condition]:
    """A guard as conditions of the domain, one per part of a conjunction (``H//2 >= 1 and
    W//2 >= 1`` is a condition on H and one on W)."""
    parts = expr.args if isinstance(expr, sympy.And) else (expr,)
    return [condition(part, run, origin, kind, words=words) for part in parts]


def condition(
    expr: sympy.Basic, run: SymbolicRun, origin: GuardOrigin, kind: str, *, words: bool = True
) -> Condition:
    """A guard as a condition of the domain: compiled, in words (unless ``words`` is False: a
    condition only searched with), in the user's names."""
    if not words:
        period, reach = _divisors(expr)
        names = frozenset(run.names[s] for s in expr.free_symbols if s in run.names)
        return Condition(
            "", compile_expr(expr, run.names), names, period, reach, kind, origin.layer, origin.where
        )
    writer = Writer(run.names)
    expr = normalised(expr, frozenset(run.names))
    period, reach = _divisors(expr)
    try:
        text = write_relation(expr, writer)
    except Unwritable as exc:  # said by what it involves and where torch made it
        involved = ", ".join(sorted(run.names[s] for s in expr.free_symbols if s in run.names))
        text = f"a condition {origin.layer} makes on {involved} ({exc})"
    return Condition(
        text=text,
        holds=compile_expr(expr, run.names),
        names=frozenset(run.names[s] for s in expr.free_symbols if s in run.names),
        period=period,
        reach=reach,
        kind=kind,
        layer=origin.layer,
        where=origin.where,
    )


# -- following a model -----------------------------------------------------------------------------


#: Runs the model on inputs at other sizes, undiagnosed: a trace, or None when it fails.
Probe = Callable[[InputSpec], "ShapeTrace | None"]


@dataclass
class Followed:
    """A model followed symbolically at an example: the run and its domain."""

    run: SymbolicRun
    domain: InputDomain
    inputs: SymbolicInputs


def _prior(run: SymbolicRun, upto: int) -> list[Condition]:
    """The guards before ``upto`` as conditions (the path to a failure, as it went)."""
    out = []
    for expr, origin in zip(run.guards[:upto], run.origins[:upto], strict=True):
        if expr.free_symbols and expr.free_symbols <= set(run.names):
            out.extend(conditions(expr, run, origin, "check", words=False))
    return out


def _roundest(domain: InputDomain, point: dict[str, int], start: Mapping[str, int]) -> dict[str, int]:
    """``point`` moved, name by name, to the size with the most factors of 2 among the allowed
    sizes next to it (within a quarter of it): 28 rather than 31 for a LeNet, 320 rather than
    300 for a model that needs 300, as long as the domain still holds."""
    out = dict(point)
    for name in domain.names:
        if out[name] == start[name]:
            continue
        allowed = domain.own_set(name).allowed
        value = out[name]
        reach = max(1, value // 4)
        low = high = value
        while low > max(1, value - reach) and bool(allowed[low - 2]):
            low -= 1
        while high < min(allowed.numel(), value + reach) and bool(allowed[high]):
            high += 1
        sizes = torch.arange(low, high + 1, dtype=torch.int64)
        grid = {n: sizes if n == name else torch.full_like(sizes, out[n]) for n in domain.names}
        inside = domain.mask(grid)
        fits = [int(v) for v in sizes[inside].tolist()]
        if fits:
            out[name] = min(fits, key=lambda v: (-_twos(v), abs(v - value)))
    return out


def _given(name: str, size: int) -> Condition:
    """The condition that ``name`` keeps the size the caller gave it."""
    return Condition(f"{name} = {size}", lambda sizes: sizes[name] == size, frozenset({name}))


def _twos(value: int) -> int:
    return (value & -value).bit_length()


def find_example(
    view: ModelView, inputs: SymbolicInputs, *, dtype: torch.dtype, train: bool, round_sizes: bool = True
) -> tuple[dict[str, int], SymbolicRun]:
    """Sizes the model runs at, starting from the given and default ones: where a check fails,
    the nearest sizes that pass it and every check before it (each step one symbolic forward);
    moved to round sizes (``round_sizes``) for a readable example."""
    start = inputs.start()
    example = dict(start)
    seen: set[tuple[int, ...]] = {tuple(example.values())}
    run = run_symbolic(view, inputs, example, dtype=dtype, train=train)
    for _ in range(SEARCH_STEPS):
        if run.failure is None or run.failed is None:
            break
        failed = run.guards[run.failed]
        if not failed.free_symbols <= set(run.names):
            break
        needed = condition(sympy.Not(failed), run, run.origins[run.failed], "check", words=False)
        given = [_given(name, size) for name, size in inputs.given.items()]  # the caller's sizes stay
        domain = InputDomain(inputs.names, (*_prior(run, run.failed), needed, *given), example)
        point = domain.nearest(start)
        if point is None:
            break
        if round_sizes:
            point = _roundest(domain, point, start)
        key = tuple(point.values())
        if key in seen:
            break
        seen.add(key)
        example = point
        run = run_symbolic(view, inputs, example, dtype=dtype, train=train)
    return example, run


@dataclass
class SymbolicPlan:
    """A symbolic trace, planned: the model, its named inputs and the example sizes chosen.

    Split from the symbolic forward so that a caller traces the example concretely
    (and diagnoses a failure there) first; ``follow`` then runs the engine.
    """

    module: nn.Module
    view: ModelView
    inputs: SymbolicInputs
    example: dict[str, int]
    dtype: torch.dtype
    train: bool
    #: Why the engine cannot follow this model at all (it is then traced at the example only).
    refused: SymbolicError | None = None
    #: The symbolic forward the example search ended with (reused when it ran at the example).
    run: SymbolicRun | None = None

    def concrete(self) -> InputSpec:
        """The inputs at the example sizes."""
        return self.inputs.concrete(self.example)

    def follow(self, probe: Probe) -> Followed:
        """The symbolic forward at the example, and its domain (``probe`` tests torch's guards)."""
        if self.refused is not None:
            raise self.refused
        with guarded(self.module, type_name(self.module)):
            run = self.run
            if run is None or run.example != self.example or run.failure is not None:
                run = run_symbolic(self.view, self.inputs, self.example, dtype=self.dtype, train=self.train)
            if run.failure is not None:
                raise SymbolicError(
                    f"torch's symbolic shapes cannot run {type_name(self.module)} at {_sizes(self.example)}, "
                    f"where a plain forward runs ({_short(run.failure, run)})"
                )
            domain = build_domain(run, self.inputs, probe)
        return Followed(run, domain, self.inputs)


def plan_symbolic(
    model: Any,
    inputs: Any,
    *,
    dims: Mapping[str, Any] | None = None,
    dtype: torch.dtype | str | None = None,
    train: bool = False,
) -> SymbolicPlan:
    """Parse the named inputs and choose the example: the sizes given, or found by the engine
    from defaults (a batch of 2, 3 channels, sides of 224) where a check fails."""
    module = unwrap(as_module(model)).module
    parsed = parse_symbolic(inputs, dims)
    view = ModelView.of(module)
    kind = parse_dtype(dtype) or model_dtype(module)
    plan = SymbolicPlan(module, view, parsed, parsed.start(), kind, train)
    try:
        refuse(view)
        if not parsed.complete:
            with guarded(module, type_name(module)):
                plan.example, plan.run = find_example(view, parsed, dtype=kind, train=train)
    except SymbolicError as exc:
        plan.refused = exc
    return plan


def _sizes(sizes: Mapping[str, int]) -> str:
    return ", ".join(f"{n}={v}" for n, v in sizes.items())


def _short(exc: BaseException, run: SymbolicRun) -> str:
    """The first line of the engine's error, torch's symbols written as the user's names."""
    text = str(exc).strip().splitlines()
    first = text[0] if text else type(exc).__name__
    names = {str(symbol): name for symbol, name in run.names.items()}
    first = re.sub(r"\b[su]\d+\b", lambda m: names.get(m.group(0), "a size"), first)
    return first if len(first) <= 160 else first[:157] + "..."


def build_domain(run: SymbolicRun, inputs: SymbolicInputs, probe: Probe) -> InputDomain:
    """The domain of a run: its checks and branches; torch's other guards tested by plain runs.

    A guard under test is broken at the nearest sizes where every check (of the whole
    run) and every branch kept so far still holds, so a failing plain forward there
    fails because of that guard.
    """
    names = set(run.names)
    guards = [
        (expr, origin)
        for expr, origin in zip(run.guards, run.origins, strict=True)
        if expr.free_symbols and expr.free_symbols <= names
    ]
    checks = [
        c for expr, origin in guards if origin.kind == "check" for c in conditions(expr, run, origin, "check")
    ]
    kept: list[Condition] = []
    branches: list[str] = []
    formulas = record_evaluators(run)
    for expr, origin in guards:
        if origin.kind == "check":
            continue
        verdict = _test_guard(
            expr, origin, run, inputs, kept=[*checks, *kept], probe=probe, formulas=formulas
        )
        if verdict != "drop":
            kept.extend(conditions(expr, run, origin, verdict))
        if verdict == "branch":
            branches.append(origin.where)
    return InputDomain(
        names=inputs.names,
        conditions=tuple(_dedupe([*checks, *kept])),
        example=dict(run.example),
        inputs=inputs.texts,
        branches=tuple(branches),
        sides=inputs.sides,
    )


def _dedupe(conditions: list[Condition]) -> list[Condition]:
    seen: set[str] = set()
    out = []
    for c in conditions:
        if c.text not in seen:
            seen.add(c.text)
            out.append(c)
    return out


def _pins(expr: sympy.Basic, run: SymbolicRun) -> str | None:
    """The name a guard fixes to one number (``Eq(H, 224)``), if it does."""
    if isinstance(expr, sympy.Eq):
        sides = (expr.lhs, expr.rhs)
        for a, b in (sides, sides[::-1]):
            if isinstance(a, sympy.Symbol) and a in run.names and isinstance(b, sympy.Integer):
                return run.names[a]
    return None


def _test_guard(
    expr: sympy.Basic,
    origin: GuardOrigin,
    run: SymbolicRun,
    inputs: SymbolicInputs,
    *,
    kept: list[Condition],
    probe: Probe,
    formulas: list[Callable[[Mapping[str, int]], Any]],
) -> str:
    """``check``, ``branch`` or ``drop``: what a plain forward at the nearest sizes breaking the
    guard shows (SymbolicError when the guard fixes a size that is free)."""
    broken = condition(sympy.Not(expr), run, origin, "check", words=False)
    trial = InputDomain(inputs.names, (*kept, broken), run.example)
    point = trial.nearest(run.example, budget=1 << 16)
    if point is None:
        return "drop"  # implied by the checks already kept
    traced = probe(inputs.concrete(point))
    if traced is None:
        return "check"
    pinned = _pins(expr, run)
    if pinned is not None:
        raise SymbolicError(
            f"{origin.where} in {origin.layer} turns {pinned} into the number {run.example[pinned]} "
            f"(a plain forward also runs at {pinned}={point[pinned]}): its formulas would hold for that "
            "size only"
        )
    if origin.kind == "branch":
        return "branch"
    same = len(traced.layers) == len(run.records) and all(
        shapes_equal(r.output_shape, f(point)) for r, f in zip(traced.layers, formulas, strict=False)
    )
    return "drop" if same else "branch"


# -- formulas on a concrete trace -----------------------------------------------------------------


def fixed_values(run: SymbolicRun) -> dict[sympy.Expr, int]:
    """Sizes a check pins to one number on the whole domain (a flatten feeding a Linear:
    ``16*(H//4 - 2)*(W//4 - 2)`` is 400 wherever the model runs), by their expanded form."""
    out: dict[sympy.Expr, int] = {}
    for expr, origin in zip(run.guards, run.origins, strict=True):
        if origin.kind != "check" or not isinstance(expr, sympy.Eq):
            continue
        for side, other in ((expr.lhs, expr.rhs), (expr.rhs, expr.lhs)):
            if other.is_Integer and not side.is_Integer:
                out[sympy.expand(side)] = int(other)
    return out


class SizeWriter:
    """Writes a run's sizes in the user's names, each in its shortest exact form on the domain
    (each distinct size once: a network repeats a handful of them)."""

    def __init__(self, run: SymbolicRun, domain: InputDomain) -> None:
        self.run = run
        self.writer = Writer(run.names)
        self.residues = {run.symbols[n]: r for n, r in domain.residues().items()}
        self.fixed = fixed_values(run)
        self.written: dict[Any, str] = {}

    def size(self, value: Any) -> str:
        raw = size_expr(value)
        if raw not in self.written:
            self.written[raw] = self._write(self.run.simplified(raw))
        return self.written[raw]

    def _write(self, expr: Any) -> str:
        if isinstance(expr, int):
            return str(expr)
        expanded = sympy.expand(expr)
        if expanded in self.fixed:
            return str(self.fixed[expanded])
        known = under_domain(expr, self.residues)
        return shortest(self.writer, known, tidy(known), factored(known), expr, tidy(expr))

    def shape(self, shape: Sequence[Any]) -> str:
        """One shape as a spec: ``B x 64 x H//4 x W//4``."""
        return " x ".join(self.size(v) for v in shape) if shape else "()"


def attach(result: ShapeTrace, followed: Followed, example: Mapping[str, int]) -> ShapeTrace:
    """Give each row of the concrete ``result`` its output formula, and the trace its domain.

    The formulas evaluated at the example must be the concrete sizes, row by row;
    a SymbolicError says where they are not.
    """
    run, domain = followed.run, followed.domain
    if len(run.records) != len(result.layers) or any(
        (a.name, a.call) != (b.name, b.call) for a, b in zip(run.records, result.layers, strict=True)
    ):
        raise SymbolicError("the symbolic forward called other modules than the plain one at the example")
    sizes = SizeWriter(run, domain)
    evaluators = record_evaluators(run)
    for symbolic, concrete, evaluate in zip(run.records, result.layers, evaluators, strict=True):
        if not shapes_equal(concrete.output_shape, evaluate(example)):
            raise SymbolicError(
                f"the formula of {concrete.label} ({concrete.type}) does not give the size torch "
                "computes at the example"
            )
        try:
            concrete.output_formula = map_shapes(symbolic.output_shape, sizes.shape)
        except Unwritable as exc:
            raise SymbolicError(f"the output size of {concrete.label} ({concrete.type}) is {exc}") from None
    result.domain = domain
    result.symbolic = {
        "inputs": list(followed.inputs.texts),
        "example": dict(example),
        "domain": domain.words(),
    }
    return result


# -- the domain around a failing input (for the diagnostics' size fixes) -------------------------


@dataclass(frozen=True)
class NearbyDomain:
    """The input domain found from a failing input: its sides named, where the model runs."""

    domain: InputDomain
    #: The first input's sides, named (``H``, ``W``), and their sizes in the failing input.
    sides: tuple[str, ...]
    given: dict[str, int]
    #: The first input's shape at given sizes of the sides (batch and channels kept).
    head: tuple[int, ...]

    def shape(self, sizes: Mapping[str, int]) -> tuple[int, ...]:
        return (*self.head, *(sizes[n] for n in self.sides))


def domain_near(
    view: ModelView,
    inputs: InputSpec,
    *,
    dtype: torch.dtype,
    train: bool,
    probe: Probe,
    start: Sequence[int] | None = None,
) -> NearbyDomain | None:
    """The domain of the sizes the model runs at, for ``inputs`` where it fails: the first
    input's sides named, the model followed at ``start`` (a first-input shape where it runs,
    found by a quick search) or, without one, at the nearest sizes where it runs found by the
    engine (fewest sides changed). None where the engine cannot follow the model or finds no
    such sizes."""
    shape = inputs.first_shape()
    names = CONVENTIONAL_NAMES.get(len(shape)) if shape is not None else None
    if (
        shape is None
        or names is None
        or len(shape) < 3
        or any(isinstance(v, torch.Tensor) for v in inputs.tensors())
        or (start is not None and (len(start) != len(shape) or tuple(start[:2]) != tuple(shape[:2])))
    ):
        return None
    sides = tuple(names[2:])
    given = dict(zip(sides, shape[2:], strict=True))
    try:
        refuse(view)
        parsed = parse_symbolic(with_named_first(inputs, " x ".join([str(shape[0]), str(shape[1]), *sides])))
        with guarded(view.root, type_name(view.root)):
            if start is not None:
                example = dict(zip(sides, start[2:], strict=True))
                run = run_symbolic(view, parsed, example, dtype=dtype, train=train)
            else:
                parsed.defaults.update(given)
                _, run = find_example(view, parsed, dtype=dtype, train=train, round_sizes=False)
            if run.failure is not None:
                return None
            domain = build_domain(run, parsed, probe)
    except (SymbolicError, SpecError):
        return None
    return NearbyDomain(domain, sides, given, tuple(shape[:2]))
