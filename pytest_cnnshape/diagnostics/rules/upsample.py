"""Upsampling that cannot undo what came before: PixelShuffle and MaxUnpool (and the
PixelUnshuffle that cannot cut its input into blocks).

``nn.PixelShuffle(r)`` turns ``C * r^2`` channels into ``C`` channels at ``r`` times
the sides (ESPCN's sub-pixel conv), so the conv before it must give a multiple of
``r^2`` channels; the fix is that conv's ``out_channels``.

``nn.MaxUnpool2d`` puts each value back where ``MaxPool2d(return_indices=True)``
found it. Without ``output_size=`` it unpools to ``(n - 1) * stride + kernel``,
which is smaller than the map the pool saw when that map's side was odd: the
indices then point past the end (CPU: "Found an invalid max index"; on meta the
same check is made by the trace, see ``tracing.metamode``). The fix in code, when
the pooling is in the same method, passes ``output_size=`` the size of what it
pooled (the model then takes every size); otherwise an input whose sides pool
evenly.
"""

from __future__ import annotations

from torch import nn

from ...shapes.tree import Shape, first_shape
from ...tracing.failure import FailureContext
from ...tracing.functional import FunctionalOps
from ..codesearch import unpool_output_size
from ..common import describe, last_map, layer_diagnosis, origin, output_of, received, received_line
from ..fixes import layer_fix
from ..report import Candidate, Diagnosis
from .sizes import multiple_input_fix


def diagnose(ctx: FailureContext) -> Diagnosis | None:
    """A PixelShuffle given channels not divisible by r^2, or a MaxUnpool off its pool's map."""
    running = ctx.innermost
    if running is None:
        return None
    module = running.module
    shape = received(running)
    if isinstance(module, nn.PixelShuffle) and shape is not None and len(shape) >= 3:
        return _pixel_shuffle(ctx, module.upscale_factor, shape)
    if isinstance(module, nn.PixelUnshuffle) and shape is not None and len(shape) >= 3:
        return _pixel_unshuffle(ctx, module.downscale_factor, shape)
    if isinstance(module, nn.modules.pooling._MaxUnpoolNd) and (
        "invalid max index" in ctx.message or "shape of indices" in ctx.message
    ):
        return _unpool(ctx, shape)
    if not ctx.in_torch_layer:
        flow = ctx.flow
        call = flow.functional.failed_call if flow is not None else None
        ops = ctx.observed(FunctionalOps)
        call = call or (ops.failed_call if ops is not None else None)
        if call is not None and call.name == "pixel_shuffle" and len(call.input_shape) >= 3:
            return _pixel_shuffle(ctx, int(call.settings.get("upscale_factor", 1)), call.input_shape)
    return None


def _pixel_shuffle(ctx: FailureContext, factor: int, shape: Shape) -> Diagnosis | None:
    running = ctx.innermost
    assert running is not None
    channels, square = shape[-3], factor * factor
    if square <= 1 or channels % square == 0:
        return None
    producer = origin(ctx, running) if ctx.in_torch_layer else last_map(ctx, running.record)
    conv = ctx.view.module(producer.name) if producer is not None else None
    candidates = []
    if isinstance(conv, nn.modules.conv._ConvNd) and producer is not None and output_of(producer) is not None:
        low, high = channels // square, -(-channels // square)
        given = ctx.model_input_shape()
        image = given[1] if given is not None and len(given) == len(shape) else None
        # a super-resolution net usually shuffles back to the image's own channels
        for rank, k in enumerate(dict.fromkeys(k for k in (image, high, low) if k is not None and k >= 1)):
            candidates.append(
                Candidate(
                    layer_fix(producer.name, conv, out_channels=k * square),
                    note=f"{k * square} = {k} * {factor}^2: the shuffle then gives {k} channels at "
                    f"{factor}x the sides",
                    rank=rank,
                )
            )
    where = f"from {describe(producer)}" if producer is not None else ""
    what = "PixelShuffle" if ctx.in_torch_layer else "F.pixel_shuffle"
    problem = (
        f"cannot take its input: {what}({factor}) needs channels divisible by {factor}^2 = {square}, "
        f"received {channels}"
    )
    return layer_diagnosis(
        ctx,
        "pixel_shuffle_channels",
        problem
        if ctx.in_torch_layer
        else f"failed in its forward(): {problem.removeprefix('cannot take its input: ')}",
        details=[
            ("received", received_line(shape, where)),
            ("expects", f"C * {square} channels on axis -3 for C output channels"),
        ],
        fix_note=f"the layer before must give a multiple of {square} channels",
        candidates=candidates,
        facts={"channels": channels, "upscale_factor": factor},
    )


def _pixel_unshuffle(ctx: FailureContext, factor: int, shape: Shape) -> Diagnosis | None:
    """A PixelUnshuffle (space-to-depth) given sides that are not multiples of its factor: the
    input sides it can take come from the search (``search._split_input``)."""
    sides = shape[-2:]
    odd = [n for n in sides if n % factor]
    if not odd:
        return None
    return layer_diagnosis(
        ctx,
        "input_not_divisible",
        f"cannot take its input: PixelUnshuffle({factor}) needs sides divisible by {factor}, received "
        f"{'x'.join(map(str, sides))}",
        details=[("received", received_line(shape))],
        facts={"downscale_factor": factor, "sides": list(sides)},
    )


def _pool_of(ctx: FailureContext, pooled: Shape | None) -> tuple[str, Shape] | None:
    """The max pooling whose indices the unpooling got: its name and the map it pooled."""
    running = ctx.innermost
    assert running is not None
    indices = first_shape(running.record.input_shapes[1:2]) if len(running.record.input_shapes) > 1 else None
    want = indices or pooled
    for r in reversed(ctx.leaves_before(running.record)):
        module = ctx.view.module(r.name)
        out = output_of(r)
        if (
            isinstance(module, nn.modules.pooling._MaxPoolNd)
            and module.return_indices
            and out is not None
            and want is not None
            and out[-2:] == want[-2:]
        ):
            source = first_shape(r.input_shapes[:1])
            if source is not None:
                return describe(r), source
    return None


def _unpool(ctx: FailureContext, shape: Shape | None) -> Diagnosis:
    running = ctx.innermost
    assert running is not None
    module = running.module
    dims = len(shape) - 2 if shape is not None else 2
    pool = _pool_of(ctx, shape)
    facts: dict[str, object] = {}
    details = [("received", received_line(shape) if shape is not None else "-")]
    if pool is not None and shape is not None:
        name, source = pool
        kernel = module.kernel_size if isinstance(module.kernel_size, tuple) else (module.kernel_size,) * dims
        stride = module.stride if isinstance(module.stride, tuple) else (module.stride,) * dims
        padding = module.padding if isinstance(module.padding, tuple) else (module.padding,) * dims
        out = tuple(
            (n - 1) * s - 2 * p + k
            for n, k, s, p in zip(shape[-dims:], kernel, stride, padding, strict=False)
        )
        sides = "x".join(map(str, source[-dims:]))
        details.append(
            (
                "because",
                f"its indices point into the {sides} map {name} pooled, and without output_size= it "
                f"unpools to {'x'.join(map(str, out))}",
            )
        )
        facts.update(pooled=list(source[-dims:]), unpooled=list(out))
    in_code = unpool_output_size(ctx)
    hint = (
        None
        if in_code
        else "in code (not verified: the pooling is not in the same method): keep the size before "
        "the pooling, size = x.shape, and unpool with output_size=size"
    )
    return layer_diagnosis(
        ctx,
        "max_unpool_size",
        "cannot put the values back: the map it unpools to is smaller than the one its indices come from",
        details=details,
        fix_note="give output_size= the size before the pooling",
        hint=hint,
        candidates=in_code + multiple_input_fix(ctx, facts),
        facts=facts,
    )
