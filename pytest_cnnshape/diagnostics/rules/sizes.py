"""Inputs too small for the conv/pool stack: who runs out of pixels, and what is enough.

Every stride-2 conv and 2x2 pool halves the map; give a deep stack a small image
and some layer's kernel no longer fits ("Output size is too small", "Kernel size
can't be greater than actual input size"). The diagnosis names that layer (or the
``F.max_pool2d`` of forward code), shows how the size shrank on the way there, and
finds the input that fits by tracing the model on meta at other sizes (a few
milliseconds each) — per axis: an axis that fits keeps its size, only the ones that
run out grow (a 128x20 spectrogram needs 128x30, not 30x30). When the layer itself
is the natural place (a pooling window larger than the last map), its fix is
offered too: a smaller kernel, an adaptive pooling, padding.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ... import arith
from ...shapes.tree import Shape
from ...tracing.failure import FailureContext, Prober
from ...tracing.functional import FunctionalCall, FunctionalOps
from ...tracing.records import ShapeTrace
from ..common import input_of, layer_diagnosis, output_of, received
from ..edits import NewLayer
from ..fixes import layer_fix
from ..patches import ReplaceLayer, TransformInput
from ..report import Candidate, Diagnosis

if TYPE_CHECKING:
    from ...tracing.inputs import InputSpec

_WINDOWED = (nn.modules.conv._ConvNd, nn.modules.pooling._MaxPoolNd, nn.modules.pooling._AvgPoolNd)
_POOLS = (nn.modules.pooling._MaxPoolNd, nn.modules.pooling._AvgPoolNd)

#: The largest input side the minimum-size search tries.
SEARCH_LIMIT = 8192
#: Every spatial axis (the failing layer's axes do not map to the input's).
ALL = -1


def spatial_dims(module: nn.Module) -> int | None:
    """How many trailing dimensions a conv or pooling layer slides over."""
    if isinstance(module, nn.modules.conv._ConvTransposeNd) or not isinstance(module, _WINDOWED):
        return None
    kernel = getattr(module, "kernel_size", None)
    if isinstance(kernel, tuple) and len(kernel) > 1:
        return len(kernel)
    digit = type(module).__name__[-2:-1]
    return int(digit) if digit.isdigit() else 1


def runs_out(module: nn.Module, shape: Shape | None) -> tuple[int, ...] | None:
    """The (too small) output sizes when ``module`` cannot slide over ``shape``; else None."""
    dims = spatial_dims(module)
    if dims is None or shape is None or len(shape) < dims + 1:
        return None
    out = arith.spatial_output_of(module, shape[-dims:])
    if out is None or min(out) >= 1:
        return None
    return out


def failed_functional(ctx: FailureContext) -> FunctionalCall | None:
    """The functional conv or pooling of forward code that ran out of pixels, if that failed."""
    ops = ctx.observed(FunctionalOps)
    if ops is None:
        flow = ctx.flow if ctx.probe is not None else None
        ops = flow.functional if flow is not None else None
    call = ops.failed_call if ops is not None else None
    return call if call is not None and call.runs_out() else None


def starved_axes(result: ShapeTrace | FailureContext, dims: int) -> tuple[int, ...] | None:
    """The input's spatial axes (0 = the first side) that ran out of pixels; None when the
    run did not fail for lack of pixels; ``(ALL,)`` when they cannot be told apart."""
    if isinstance(result, ShapeTrace):
        return None
    running = result.innermost
    out: tuple[int, ...] | None = None
    layer_dims: int | None = None
    if running is not None and result.in_torch_layer:
        out = runs_out(running.module, received(running))
        layer_dims = spatial_dims(running.module)
    if out is None:
        ops = result.observed(FunctionalOps)
        call = ops.failed_call if ops is not None else None
        if call is not None and call.runs_out():
            out = call.spatial_output(call.input_shape[-call.dims :])
            layer_dims = call.dims
    if out is None or layer_dims is None:
        return None
    if layer_dims != dims:
        return (ALL,)
    return tuple(i for i, size in enumerate(out) if size < 1)


def _sides(shape: Shape, dims: int) -> str:
    return "x".join(str(s) for s in shape[-dims:])


def _window(settings: dict[str, object], dims: int) -> str:
    """What one window needs: ``kernel 5x5`` (and its dilation/padding when not plain)."""
    kernel = arith.per_dim(settings["kernel_size"], dims)
    text = "kernel " + "x".join(str(k) for k in kernel)
    dilation = arith.per_dim(settings.get("dilation") or 1, dims)
    padding = settings.get("padding") or 0
    if any(d != 1 for d in dilation):
        text += f", dilation {'x'.join(map(str, dilation))}"
    if padding not in (0, (0,) * dims, "valid"):
        shown = padding if isinstance(padding, str) else "x".join(map(str, arith.per_dim(padding, dims)))
        text += f", padding {shown}"
    return text


def size_path(ctx: FailureContext, dims: int, upto: str) -> str:
    """``32x32 -> 30x30 (conv1 Conv2d) -> 15x15 (F.max_pool2d) -> layer4.pool (MaxPool2d) fails``.

    The layers' sizes from the trace, the functional ops' from the failed run's data
    flow, in the order they ran.
    """
    start = ctx.model_input_shape()
    steps = [_sides(start, dims)] if start is not None and len(start) >= dims else []
    events: list[tuple[float, str]] = []
    for index, r in enumerate(ctx.records):
        if not (r.is_leaf and r.finished):
            continue
        shape_in, shape_out = input_of(r), output_of(r)
        if shape_in is None or shape_out is None or len(shape_out) < dims + 1:
            continue
        if shape_in[-dims:] != shape_out[-dims:] and len(shape_in) == len(shape_out):
            events.append((index, f"{_sides(shape_out, dims)} ({r.label} {r.type})"))
    flow = ctx.flow if ctx.probe is not None else None
    if flow is not None:
        for call in flow.functional.calls:
            out = call.output_shape
            if out is not None and len(out) >= dims + 1 and out[-dims:] != call.input_shape[-dims:]:
                events.append((call.position - 0.5, f"{_sides(out, dims)} ({call.label})"))
    steps += [text for _, text in sorted(events, key=lambda e: e[0])]
    steps.append(f"{upto} fails")
    return " -> ".join(steps)


def smallest_fitting_input(
    probe: Prober,
    inputs: InputSpec,
    shape: Shape,
    *,
    limit: int = SEARCH_LIMIT,
    square: bool = True,
    failed: FailureContext | None = None,
) -> tuple[Shape | None, ShapeTrace | FailureContext | None]:
    """The smallest first input no layer runs out of pixels on.

    ``shape`` is the first input's ``(N, C, *sides)``; N and C are kept. Square (cube,
    length) by default: the smallest side for all axes. With ``square=False`` each axis
    keeps its size if it fits and only the axes that run out grow, each to its own
    minimum. Output sizes never shrink when an input side grows, so "nobody runs out
    on this axis" is monotone in that side and a bisection finds it in O(log side) runs
    per axis; the failing layer's own formula bounds the range (its map shrank from the
    input by a known ratio), and axes that run out alike grow together. ``failed`` is the
    run at ``shape`` when it is already known. Also returns the run at the size found:
    the model may still fail there for another reason (a Linear sized for one input).
    """
    if len(shape) < 3:
        return None, None
    dims = len(shape) - 2
    runs: dict[Shape, ShapeTrace | FailureContext] = {}
    if failed is not None:
        runs[tuple(shape)] = failed

    def at(candidate: Shape) -> ShapeTrace | FailureContext:
        if candidate not in runs:
            runs[candidate] = probe(inputs.with_first_shape(candidate))
        return runs[candidate]

    def square_side() -> tuple[Shape | None, ShapeTrace | FailureContext | None]:
        found = arith.smallest_input(
            lambda s: 0 if starved_axes(at((*shape[:2], *(s,) * dims)), dims) else 1, 1, limit=limit
        )
        if found is None:
            return None, None
        best = (*shape[:2], *(found,) * dims)
        return best, at(best)

    if square:
        return square_side()
    grown = _grow(at, shape, limit)
    if grown == ALL:
        return square_side()
    if not isinstance(grown, tuple):
        return None, None
    return grown, at(grown)


def _grow(at: Callable[[Shape], ShapeTrace | FailureContext], shape: Shape, limit: int) -> Shape | int | None:
    """Grow the axes that run out, each to its minimum (``ALL``: they cannot be told apart)."""
    dims = len(shape) - 2
    current = list(shape)
    for _ in range(2 * dims + 1):  # each round grows at least one axis to its minimum
        result = at(tuple(current))
        starved = starved_axes(result, dims)
        if not starved:
            return tuple(current)
        if ALL in starved:  # the failing layer's axes do not map onto the input's
            return ALL
        bounds = _bounds(result, current, starved)
        for group in _alike(current, starved, bounds):

            def fits(side: int, group: tuple[int, ...] = group) -> bool:
                trial = list(current)
                for axis in group:
                    trial[2 + axis] = side
                return not set(group) & set(starved_axes(at(tuple(trial)), dims) or ())

            side = _bisect(fits, current[2 + group[0]], bounds.get(group[0]), limit)
            if side is None:
                return None
            for axis in group:
                current[2 + axis] = side
    return None


def _bounds(
    result: ShapeTrace | FailureContext, current: list[int], starved: tuple[int, ...]
) -> dict[int, tuple[int, int]]:
    """Per starved axis, a guess of the input sides between which the failing layer's window
    starts to fit: the sides its map needs, scaled by how much the map shrank from the input."""
    if not isinstance(result, FailureContext):
        return {}
    running = result.innermost
    sides: Shape | None = None
    needs: list[int] = []
    if running is not None and result.in_torch_layer and spatial_dims(running.module):
        got = received(running)
        dims = spatial_dims(running.module) or 1
        module = running.module
        sides = got[-dims:] if got is not None else None
        if sides is not None:
            needs = _needs(lambda s: arith.spatial_output_of(module, s), sides)
    else:
        ops = result.observed(FunctionalOps)
        call = ops.failed_call if ops is not None else None
        if call is not None:
            sides = call.input_shape[-call.dims :]
            needs = _needs(call.spatial_output, sides)
    if sides is None or len(needs) != len(current) - 2:
        return {}
    out = {}
    for axis in starved:
        if sides[axis] > 0 and needs[axis] > 0:
            out[axis] = (
                (needs[axis] - 1) * current[2 + axis] // sides[axis],
                -(-needs[axis] * current[2 + axis] // sides[axis]),
            )
    return out


def _needs(rule: Callable[[tuple[int, ...]], tuple[int, ...] | None], sides: Shape) -> list[int]:
    """Per axis, the smallest side on which a window with size rule ``rule`` gives an output."""

    def needed(axis: int) -> int:
        def out(n: int) -> int:
            given = rule(_with(sides, axis, n))
            return given[axis] if given is not None else 0

        return arith.smallest_input(out, 1) or 0

    return [needed(axis) for axis in range(len(sides))]


def _with(sides: Shape, axis: int, size: int) -> tuple[int, ...]:
    changed = list(sides)
    changed[axis] = size
    return tuple(changed)


def _alike(
    current: list[int], starved: tuple[int, ...], bounds: dict[int, tuple[int, int]]
) -> list[tuple[int, ...]]:
    """Starved axes grouped when they start at the same side with the same bounds (a square
    input into square layers): each group is searched once."""
    groups: dict[tuple[int, tuple[int, int] | None], list[int]] = {}
    for axis in starved:
        groups.setdefault((current[2 + axis], bounds.get(axis)), []).append(axis)
    return [tuple(g) for g in groups.values()]


def _bisect(fits: Callable[[int], bool], low: int, guess: tuple[int, int] | None, limit: int) -> int | None:
    """The smallest side above ``low`` (which does not fit) that fits; ``guess``: sides below and
    at which it should start to fit (checked: a wrong guess costs a run, never the answer)."""
    high = low * 2
    if guess is not None:
        below, high = guess
        if low < below < high and not fits(below):
            low = below
    high = max(high, low + 1)
    while not fits(high):
        if high >= limit:
            return None
        low, high = high, min(high * 2, limit)
    while high - low > 1:
        mid = (low + high) // 2
        if fits(mid):
            high = mid
        else:
            low = mid
    return high


def minimum_input(ctx: FailureContext) -> tuple[Shape | None, ShapeTrace | FailureContext | None]:
    """The input that fits, grown per axis from the failed run's input."""
    shape = ctx.model_input_shape()
    if shape is None or ctx.probe is None:
        return None, None
    flow = ctx.flow
    known = flow.context if flow is not None else ctx
    return smallest_fitting_input(ctx.probe, ctx.inputs, shape, square=False, failed=known)


def diagnose(ctx: FailureContext) -> Diagnosis | None:
    """A conv or pooling layer (or functional call) whose window no longer fits its map."""
    running = ctx.innermost
    if running is None:
        return None
    if not ctx.in_torch_layer:
        call = failed_functional(ctx)
        return _functional(ctx, call) if call is not None else None
    module = running.module
    shape = received(running)
    padding_fix = _pool_padding(ctx, module)
    if padding_fix is not None:
        return padding_fix
    out = runs_out(module, shape)
    if out is None or shape is None:
        return None
    dims = spatial_dims(module) or 1
    record = running.record
    settings = {k: getattr(module, k, None) for k in ("kernel_size", "dilation", "padding")}
    details = [
        ("received", f"{_sides(shape, dims)} map (shape {list(shape)})"),
        ("needs", f"{_window(settings, dims)}: the output would be {'x'.join(map(str, out))}"),
        ("path", size_path(ctx, dims, f"{record.label} ({record.type})")),
    ]
    facts: dict[str, object] = {"output": list(out)}
    candidates = _input_candidates(ctx, facts)
    candidates += _layer_candidates(
        ctx, module, shape[-dims:], last_pool=_is_last_window(ctx, module, shape[-dims:])
    )
    return layer_diagnosis(
        ctx,
        "input_too_small",
        f"runs out of pixels: its window does not fit the {_sides(shape, dims)} map it gets",
        details=details,
        fix_note="no input size up to "
        f"{SEARCH_LIMIT} makes every layer fit; the stack shrinks the map "
        "to nothing (check strides and pooling)",
        candidates=candidates,
        facts=facts,
    )


def _functional(ctx: FailureContext, call: FunctionalCall) -> Diagnosis:
    """``F.max_pool2d`` (or another functional window) in forward code ran out of pixels."""
    running = ctx.innermost
    assert running is not None
    dims = call.dims
    out = call.spatial_output(call.input_shape[-dims:]) or ()
    settings = dict(call.settings)
    if call.family == "conv":
        settings["kernel_size"] = tuple(settings["weight"][2:])
    details = [
        ("received", f"{_sides(call.input_shape, dims)} map (shape {list(call.input_shape)})"),
        ("needs", f"{_window(settings, dims)}: the output would be {'x'.join(map(str, out))}"),
        ("path", size_path(ctx, dims, call.label)),
    ]
    facts: dict[str, object] = {"output": list(out), "op": call.name}
    return layer_diagnosis(
        ctx,
        "input_too_small",
        f"runs out of pixels in its forward(): {call.label} does not fit the "
        f"{_sides(call.input_shape, dims)} map it gets",
        details=details,
        fix_note=f"no input size up to {SEARCH_LIMIT} makes every layer fit",
        candidates=_input_candidates(ctx, facts),
        facts=facts,
    )


def _input_candidates(ctx: FailureContext, facts: dict[str, object]) -> list[Candidate]:
    """The input that fits, grown per axis (the main fix unless the layer is the natural one):
    exactly, from the model's input domain followed where a quick search by tracing finds it
    runs (``domain_input``); the search's own answer where the engine cannot follow."""
    minimum, run = minimum_input(ctx)
    given = ctx.model_input_shape()
    if minimum is None or given is None:
        from_domain = domain_input(ctx, facts)
        return from_domain or []
    example = minimum if isinstance(run, ShapeTrace) else None
    facts.update(min_side=max(minimum[2:]), min_input=list(minimum))
    grown = [i for i in range(2, len(minimum)) if minimum[i] != given[i]]
    kept = [i for i in range(2, len(minimum)) if minimum[i] == given[i]]
    if kept:
        note = (
            "keeps "
            + ", ".join(f"axis {i} ({given[i]})" for i in kept)
            + ", which fit; grows "
            + ", ".join(f"axis {i} from {given[i]} to {minimum[i]}" for i in grown)
        )
    else:
        note = "the smallest input on which no layer runs out of pixels, every axis grown from " + "x".join(
            map(str, given[2:])
        )
    text = f"an input of at least {'x'.join(map(str, minimum))}"
    return [
        Candidate(
            TransformInput(shape=tuple(minimum), said=text),
            note=note,
            rank=1,
            cost=len(grown),
            refine=lambda: _with_facts(domain_input, ctx, example),
        )
    ]


def _with_facts(
    exact: Callable[[FailureContext, dict[str, object], Shape | None], list[Candidate] | None],
    ctx: FailureContext,
    example: Shape | None,
) -> list[Candidate] | None:
    """``exact``'s candidates (from the input domain), each carrying the facts it found."""
    facts: dict[str, object] = {}
    found = exact(ctx, facts, example)
    for candidate in found or ():
        candidate.facts.update(facts)
    return found


def _is_last_window(ctx: FailureContext, module: nn.Module, sides: Shape) -> bool:
    """A global pooling: the model's last conv or pooling layer, with a window wider than
    its map on every axis (an ``AvgPool2d(8)`` written for 8x8 maps, given 5x5)."""
    if not isinstance(module, _POOLS):
        return False
    windowed = [m for m in ctx.view.modules if isinstance(m, _WINDOWED)]
    kernel = arith.per_dim(module.kernel_size, len(sides))
    wide = all(k > s for k, s in zip(kernel, sides, strict=True)) and max(kernel) >= 4
    return wide and bool(windowed) and windowed[-1] is module


def _layer_candidates(
    ctx: FailureContext, module: nn.Module, sides: Shape, *, last_pool: bool
) -> list[Candidate]:
    """The failing layer changed to fit the map: kernel, adaptive pooling, padding."""
    running = ctx.innermost
    assert running is not None
    name = running.record.name
    dims = len(sides)
    rank = 0 if last_pool else 2
    out: list[Candidate] = []
    kernel = arith.per_dim(module.kernel_size, dims)
    if isinstance(module, _POOLS):
        fitted = tuple(min(k, s) for k, s in zip(kernel, sides, strict=True))
        padding = arith.per_dim(module.padding, dims)
        changes: dict[str, object] = {"kernel_size": fitted if len(set(fitted)) > 1 else fitted[0]}
        if any(p > f // 2 for p, f in zip(padding, fitted, strict=True)):
            changes["padding"] = 0
        if max(fitted) > 1:  # a 1x1 window would pool nothing
            out.append(
                Candidate(
                    layer_fix(name, module, **changes),
                    note=f"a window as large as the {'x'.join(map(str, sides))} map it gets",
                    rank=rank,
                )
            )
        adaptive = (
            "AdaptiveAvgPool" if isinstance(module, nn.modules.pooling._AvgPoolNd) else "AdaptiveMaxPool"
        )
        out.append(
            Candidate(
                ReplaceLayer(name, NewLayer(getattr(nn, f"{adaptive}{dims}d"), (1,))),
                note="pools whatever map it gets to 1 value per channel, at any input size",
                rank=rank,
                cost=2,
            )
        )
    elif isinstance(module, nn.modules.conv._ConvNd) and not isinstance(module.padding, str):
        dilation = arith.per_dim(module.dilation, dims)
        padding = arith.per_dim(module.padding, dims)
        needed = tuple(
            max(p, -(-(d * (k - 1) + 1 - s) // 2))
            for k, d, s, p in zip(kernel, dilation, sides, padding, strict=True)
        )
        out.append(
            Candidate(
                layer_fix(name, module, padding=needed if len(set(needed)) > 1 else needed[0]),
                note=f"pads the {'x'.join(map(str, sides))} map so that the kernel fits",
                rank=rank,
                cost=2,
            )
        )
    return out


def _pool_padding(ctx: FailureContext, module: nn.Module) -> Diagnosis | None:
    """Pooling refuses padding above half its kernel (a setting, not a size, error)."""
    if not isinstance(module, _POOLS):
        return None
    dims = spatial_dims(module) or 1
    kernel = arith.per_dim(module.kernel_size, dims)
    padding = arith.per_dim(module.padding, dims)
    if all(p <= k // 2 for p, k in zip(padding, kernel, strict=True)):
        return None
    fixed = tuple(min(p, k // 2) for p, k in zip(padding, kernel, strict=True))
    running = ctx.innermost
    assert running is not None
    return layer_diagnosis(
        ctx,
        "pool_padding",
        "has more padding than half its kernel",
        details=[("has", f"kernel_size={module.kernel_size}, padding={module.padding}")],
        candidates=[
            Candidate(
                layer_fix(running.record.name, module, padding=fixed if dims > 1 else fixed[0]),
                note="pooling pads at most kernel_size // 2 on each side",
            )
        ],
        facts={"padding": list(fixed)},
    )


#: Multiples tried when looking for the input-size rule (2^depth of a U-Net).
_MULTIPLES = (2, 4, 8, 16, 32, 64, 128)


def domain_input(
    ctx: FailureContext, facts: dict[str, object], example: Shape | None = None
) -> list[Candidate] | None:
    """The input that fits, exactly, from the sizes the model runs at (its input domain, by
    torch's symbolic shapes, followed at ``example`` where it runs, or found from the failing
    input): each side that fits kept, each other one grown to the smallest size its domain
    allows, or the nearest sizes that fit when the sides are tied (a fixed Linear). None
    where the engine cannot follow the model."""
    near = ctx.domain(example)
    given = ctx.model_input_shape()
    if near is None or given is None:
        return None
    domain = near.domain
    sizes = {}
    for name in near.sides:
        allowed = domain.name_set(name).allowed
        start = near.given[name]
        later = torch.nonzero(allowed[start - 1 :]).flatten() if start <= allowed.numel() else allowed[:0]
        if later.numel() == 0:
            return []
        sizes[name] = start + int(later[0])
    if not domain.contains(sizes):
        point = domain.nearest(near.given)
        if point is None:
            return []
        sizes = point
    minimum = near.shape(sizes)
    grown = [i for i in range(2, len(minimum)) if minimum[i] != given[i]]
    if not grown:
        return None
    monotone = all(_grows_freely(domain, near.sides[i - 2]) for i in grown)
    facts.update(min_side=max(minimum[2:]), min_input=list(minimum), domain=domain.words())
    kept = [i for i in range(2, len(minimum)) if i not in grown]
    moved = ", ".join(f"axis {i} from {given[i]} to {minimum[i]}" for i in grown)
    note = (
        f"keeps {', '.join(f'axis {i} ({given[i]})' for i in kept)}, which fit; grows {moved}"
        if kept
        else f"grows {moved}"
    )
    note += f"; the model runs for {domain.words()} (torch's symbolic shapes)"
    text = f"an input of {'at least ' if monotone else ''}{'x'.join(map(str, minimum))}"
    return [Candidate(TransformInput(shape=tuple(minimum), said=text), note=note, rank=1, cost=len(grown))]


def _grows_freely(domain: Any, name: str) -> bool:
    """Whether every size of ``name`` above its least one fits (alone, and in every relation)."""
    values = domain.name_set(name)
    free = values.high is None and (values.period == 1 or len(values.residues) == values.period)
    return free and not any(name in c.names for c in domain.coupled)


def domain_multiple(
    ctx: FailureContext, facts: dict[str, object], example: Shape | None = None
) -> list[Candidate] | None:
    """The multiple the input sides must be, exactly, from the model's input domain (followed
    at ``example`` where it runs, or found from the failing input): the smallest sizes of at
    least the given ones that are in it. None where the engine cannot follow the model (or
    its sides have no common multiple)."""
    near = ctx.domain(example)
    given = ctx.model_input_shape()
    if near is None or given is None:
        return None
    domain = near.domain
    residues = domain.residues()
    multiples = {residues[n].modulus for n in near.sides if n in residues and residues[n].residue == 0}
    if len(multiples) != 1 or any(n not in residues for n in near.sides):
        return None
    (m,) = multiples
    sizes = {}
    for name in near.sides:
        allowed = domain.name_set(name).allowed
        start = near.given[name]
        later = torch.nonzero(allowed[start - 1 :]).flatten()
        if later.numel() == 0:
            return None
        sizes[name] = start + int(later[0])
    if not domain.contains(sizes):
        return None
    fitted = near.shape(sizes)
    text = "x".join(map(str, fitted))
    sides = given[2:]
    pad = ", ".join(f"0, {f - s}" for f, s in reversed(list(zip(fitted[2:], sides, strict=True))))
    facts.update(multiple=m, example=list(fitted), domain=domain.words())
    return [
        Candidate(
            TransformInput(shape=fitted, said=f"input sides that are multiples of {m}, e.g. {text}"),
            note="the map sizes round down on the way down and double on the way up; pad the input to "
            f"it: F.pad(x, ({pad})); the model runs for {domain.words()} (torch's symbolic shapes)",
        )
    ]


def multiple_input_fix(ctx: FailureContext, facts: dict[str, object]) -> list[Candidate]:
    """Sizes that differ by rounding (a U-Net skip, an unpooling): the multiple the input sides
    must be (2^depth), exactly, from the model's input domain followed where a quick search by
    tracing the nearest multiples finds it runs (``domain_multiple``); the search's own answer
    where the engine cannot follow."""
    found = _nearest_multiple(ctx)
    shape = ctx.model_input_shape()
    if found is None or shape is None:
        return domain_multiple(ctx, facts) or []
    m, fitted = found
    example = "x".join(map(str, fitted))
    pad = ", ".join(f"0, {f - s}" for f, s in reversed(list(zip(fitted[2:], shape[2:], strict=True))))
    facts.update(multiple=m, example=list(fitted))
    return [
        Candidate(
            TransformInput(shape=fitted, said=f"input sides that are multiples of {m}, e.g. {example}"),
            note="the map sizes round down on the way down and double on the way up; pad "
            f"the input to it: F.pad(x, ({pad}))",
            refine=lambda: _with_facts(domain_multiple, ctx, fitted),
        )
    ]


def _nearest_multiple(ctx: FailureContext) -> tuple[int, Shape] | None:
    """The least multiple (2, 4, 8...) the model runs at, rounding the input's sides up to it
    (and one step further), with the input it runs at."""
    shape = ctx.model_input_shape()
    probe = ctx.probe
    if shape is None or probe is None or len(shape) < 3:
        return None
    sides = shape[2:]
    for m in _MULTIPLES:
        if all(s % m == 0 for s in sides):
            continue
        first = tuple(-(-s // m) * m for s in sides)
        second = tuple(f + m for f in first)
        if all(
            isinstance(probe(ctx.inputs.with_first_shape((*shape[:2], *c))), ShapeTrace)
            for c in (first, second)
        ):
            return m, (*shape[:2], *first)
    return None
