"""Inputs too small for the conv/pool stack: who runs out of pixels, and what is enough.

Every stride-2 conv and 2x2 pool halves the map; give a deep stack a small image
and some layer's kernel no longer fits ("Output size is too small", "Kernel size
can't be greater than actual input size"). The diagnosis names that layer, shows
how the size shrank on the way there, and computes the smallest input the whole
model runs on by tracing it on meta at other sizes (a few milliseconds each).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from torch import nn

from ... import arith
from ...shapes.tree import Shape
from ...tracing.failure import FailureContext, Prober
from ...tracing.records import ShapeTrace
from ..common import describe, input_of, layer_diagnosis, output_of, received
from ..fixes import layer_call
from ..report import Diagnosis

if TYPE_CHECKING:
    from ...tracing.inputs import InputSpec

_WINDOWED = (nn.modules.conv._ConvNd, nn.modules.pooling._MaxPoolNd, nn.modules.pooling._AvgPoolNd)

#: The largest input side the minimum-size search tries.
SEARCH_LIMIT = 8192


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


def _sides(shape: Shape, dims: int) -> str:
    return "x".join(str(s) for s in shape[-dims:])


def _window(module: nn.Module, dims: int) -> str:
    """What one window needs: ``kernel 5x5`` (and its dilation/padding when not plain)."""
    kernel = arith.per_dim(module.kernel_size, dims)
    text = "kernel " + "x".join(str(k) for k in kernel)
    dilation = arith.per_dim(getattr(module, "dilation", 1), dims)
    padding = getattr(module, "padding", 0)
    if any(d != 1 for d in dilation):
        text += f", dilation {'x'.join(map(str, dilation))}"
    if padding not in (0, (0,) * dims, "valid"):
        shown = padding if isinstance(padding, str) else "x".join(map(str, arith.per_dim(padding, dims)))
        text += f", padding {shown}"
    return text


def size_path(ctx: FailureContext, dims: int, upto: str) -> str:
    """``32x32 -> 30x30 (conv1 Conv2d) -> 15x15 (pool1 MaxPool2d) -> layer4.pool (MaxPool2d) fails``."""
    start = ctx.model_input_shape()
    steps = [_sides(start, dims)] if start is not None and len(start) >= dims else []
    for r in ctx.leaves_before(ctx.innermost.record if ctx.innermost else None):
        shape_in, shape_out = input_of(r), output_of(r)
        if shape_in is None or shape_out is None or len(shape_out) < dims + 1:
            continue
        if shape_in[-dims:] != shape_out[-dims:] and len(shape_in) == len(shape_out):
            steps.append(f"{_sides(shape_out, dims)} ({r.label} {r.type})")
    steps.append(f"{upto} fails")
    return " -> ".join(steps)


def _is_too_small(result: ShapeTrace | FailureContext) -> bool:
    if isinstance(result, ShapeTrace):
        return False
    running = result.innermost
    return running is not None and runs_out(running.module, received(running)) is not None


def smallest_fitting_input(
    probe: Prober,
    inputs: InputSpec,
    shape: Shape,
    *,
    limit: int = SEARCH_LIMIT,
) -> tuple[Shape | None, ShapeTrace | FailureContext | None]:
    """The smallest square (cube, length) first input no layer runs out of pixels on.

    ``shape`` is the first input's ``(N, C, *sides)``; N and C are kept. Output
    sizes never shrink when the input grows, so "nobody runs out" is monotone in
    the side and a doubling search plus bisection finds it in O(log side) runs.
    Also returns the run at that size: the model may still fail there for another
    reason (a Linear sized for one input, say).
    """
    if len(shape) < 3:
        return None, None
    dims = len(shape) - 2
    runs: dict[int, ShapeTrace | FailureContext] = {}

    def at(side: int) -> ShapeTrace | FailureContext:
        if side not in runs:
            runs[side] = probe(inputs.with_first_shape((*shape[:2], *(side,) * dims)))
        return runs[side]

    side = arith.smallest_input(lambda s: 0 if _is_too_small(at(s)) else 1, 1, limit=limit)
    if side is None:
        return None, None
    return (*shape[:2], *(side,) * dims), at(side)


def minimum_input(ctx: FailureContext) -> tuple[Shape | None, ShapeTrace | FailureContext | None]:
    """``smallest_fitting_input`` for the failed run's inputs."""
    shape = ctx.model_input_shape()
    if shape is None or ctx.probe is None:
        return None, None
    return smallest_fitting_input(ctx.probe, ctx.inputs, shape)


def diagnose(ctx: FailureContext) -> Diagnosis | None:
    """A conv or pooling layer whose window no longer fits the map it received."""
    running = ctx.innermost
    if running is None or not ctx.in_torch_layer:
        return None
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
    minimum, at_minimum = minimum_input(ctx)
    details = [
        ("received", f"{_sides(shape, dims)} map (shape {list(shape)})"),
        ("needs", f"{_window(module, dims)}: the output would be {'x'.join(map(str, out))}"),
        ("path", size_path(ctx, dims, f"{record.label} ({record.type})")),
    ]
    facts: dict[str, object] = {"output": list(out)}
    if minimum is None:
        return layer_diagnosis(
            ctx,
            "input_too_small",
            "runs out of pixels",
            details=details,
            fix_note="no input size up to "
            f"{SEARCH_LIMIT} makes every layer fit; the stack shrinks the map "
            "to nothing (check strides and pooling)",
            facts=facts,
        )
    side = minimum[-1]
    facts.update(min_side=side, min_input=list(minimum))
    fix = f"an input of at least {'x'.join(map(str, minimum))}"
    note = f"the smallest {_square(dims)} input on which no layer runs out of pixels"
    hint = None
    if isinstance(at_minimum, FailureContext) and at_minimum.innermost is not None:
        hint = (
            f"at that size the model still fails elsewhere: "
            f"{describe(at_minimum.innermost.record)}: "
            f"{str(at_minimum.exc).strip().splitlines()[0] if str(at_minimum.exc).strip() else ''}"
        )
    return layer_diagnosis(
        ctx,
        "input_too_small",
        f"runs out of pixels: its window does not fit the {_sides(shape, dims)} map it gets",
        details=details,
        fix=fix,
        fix_note=note,
        hint=hint,
        facts=facts,
    )


def _square(dims: int) -> str:
    return {1: "length of", 2: "square", 3: "cube"}.get(dims, "")


def _pool_padding(ctx: FailureContext, module: nn.Module) -> Diagnosis | None:
    """Pooling refuses padding above half its kernel (a setting, not a size, error)."""
    if not isinstance(module, (nn.modules.pooling._MaxPoolNd, nn.modules.pooling._AvgPoolNd)):
        return None
    dims = spatial_dims(module) or 1
    kernel = arith.per_dim(module.kernel_size, dims)
    padding = arith.per_dim(module.padding, dims)
    if all(p <= k // 2 for p, k in zip(padding, kernel, strict=True)):
        return None
    fixed = tuple(min(p, k // 2) for p, k in zip(padding, kernel, strict=True))
    return layer_diagnosis(
        ctx,
        "pool_padding",
        "has more padding than half its kernel",
        details=[("has", f"kernel_size={module.kernel_size}, padding={module.padding}")],
        fix=layer_call(module, padding=fixed if dims > 1 else fixed[0]),
        fix_note="pooling pads at most kernel_size // 2 on each side",
        facts={"padding": list(fixed)},
    )
