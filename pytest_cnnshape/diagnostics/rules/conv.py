"""Convolutions given the wrong channels, or a tensor in the wrong layout.

A conv reads axis 1 as channels: ``(N, C, H, W)`` for Conv2d, ``(N, C, L)`` for
Conv1d, ``(N, C, D, H, W)`` for Conv3d, and silently takes a tensor one rank lower
as a single unbatched sample. So a grayscale batch into an RGB model, a
channels-last image ``(N, H, W, C)``, a sequence ``(N, L, C)`` into Conv1d, a clip
batch ``(B, T, C, H, W)`` into Conv3d or a batch without its channel axis all fail
with "expected input to have 3 channels" (CPU) or "Invalid channel dimensions"
(meta).

Layout hypotheses (channels last, frames before channels, a missing or an extra
axis) are only made for a tensor that came from the model input or went through a
reshape or permute in forward code (``common.layout_may_differ``): a map a conv
produced has the layout the conv gives it, and its channel count is the mistake.
"""

from __future__ import annotations

import math

from torch import nn

from ...shapes.tree import Shape, format_shape
from ...tracing.failure import FailureContext
from ...tracing.lineage import LAYER
from ..common import (
    before_layer,
    channels_last_producer,
    describe,
    from_model_input,
    input_origin,
    input_written,
    layer_diagnosis,
    layout_may_differ,
    model_input_words,
    origin,
    output_of,
    received,
    received_line,
)
from ..edits import Transform, chain, index, method
from ..fixes import layer_fix
from ..report import Candidate, Diagnosis


def diagnose(ctx: FailureContext) -> Diagnosis | None:
    """A conv whose input's channel axis does not hold its in_channels."""
    running = ctx.innermost
    if running is None or not isinstance(running.module, nn.modules.conv._ConvNd):
        return None
    conv = running.module
    shape = received(running)
    if shape is None:
        return None
    dims = len(conv.kernel_size)
    rank = len(shape)
    if rank == dims + 2 and shape[1] != conv.in_channels:
        return _channels(ctx, conv, shape)
    if rank == dims + 1 and shape[0] != conv.in_channels:
        return _unbatched(ctx, conv, shape)
    if rank == dims or rank > dims + 2:
        return _rank(ctx, conv, shape)
    return None


def _expects(conv: nn.modules.conv._ConvNd) -> tuple[str, str]:
    dims = len(conv.kernel_size)
    axes = {1: "L", 2: "H, W", 3: "D, H, W"}[dims]
    return (
        "expects",
        f"(N, {conv.in_channels}, {axes})    in_channels={conv.in_channels}, channels on axis 1",
    )


def _permutation(dims: int, batched: bool) -> Transform:
    """The permute that moves a last-axis channel to axis 1 (or 0 when unbatched)."""
    if batched:
        if dims == 1:
            return method("transpose", 1, 2)
        return method("permute", 0, dims + 1, *range(1, dims + 1))
    return chain(method("permute", dims, *range(dims)), method("unsqueeze", 0))


_LAYOUTS = {1: "(N, L, C)", 2: "(N, H, W, C)", 3: "(N, D, H, W, C)"}


def _channels_last(
    ctx: FailureContext, conv: nn.modules.conv._ConvNd, shape: Shape, batched: bool
) -> Candidate | None:
    """The channel count sits on the last axis: a channels-last image or an (N, L, C) sequence."""
    running = ctx.innermost
    assert running is not None
    if shape[-1] != conv.in_channels:
        return None
    dims = len(conv.kernel_size)
    layout = _LAYOUTS[dims] if batched else _LAYOUTS[dims].replace("N, ", "")
    sides = shape[1:-1] if batched else shape[:-1]
    # channels are usually fewer than positions; when they are not, the channel count
    # itself is the likelier mistake -- unless a layer that puts its features last (an
    # Embedding, a Linear) made the tensor: then the layout is certain
    found = input_origin(ctx, running)
    made = ctx.records[found.index] if found is not None and found.kind == LAYER else None
    certain = made is not None and channels_last_producer(ctx.view.module(made.name))
    likely = certain or all(conv.in_channels < s for s in sides)
    return Candidate(
        before_layer(ctx, running, _permutation(dims, batched)),
        note=f"moves the {conv.in_channels} channels to axis {1 if batched else 0}"
        + ("" if batched else " and adds the batch axis"),
        rank=0 if likely else 2,
        kind="channels_last",
        headline=f"{describe(running.record)} cannot take its input: the channels are on the last "
        f"axis {layout}",
        facts={"channels": conv.in_channels, "layout": layout},
    )


def _clip_layout(ctx: FailureContext, conv: nn.modules.conv._ConvNd, shape: Shape) -> Candidate | None:
    """A clip batch (B, T, C, H, W) into Conv3d, which wants (B, C, T, H, W)."""
    running = ctx.innermost
    assert running is not None
    if len(conv.kernel_size) != 3 or shape[2] != conv.in_channels:
        return None
    return Candidate(
        before_layer(ctx, running, method("permute", 0, 2, 1, 3, 4)),
        note=f"moves the {conv.in_channels} channels before the {shape[1]} frames: (B, C, T, H, W)",
        rank=0,
        kind="clip_layout",
        headline=f"{describe(running.record)} cannot take its input: a clip batch (B, T, C, H, W) has "
        "its frames on axis 1, where Conv3d wants its channels (B, C, T, H, W)",
        facts={"channels": conv.in_channels, "frames": shape[1]},
    )


def _image_hint(got: int, want: int, rank: int) -> tuple[Transform, str] | None:
    """Input-side fixes for the classic image channel mix-ups."""
    if got == 1 and want == 3:
        return (
            method("expand", -1, 3, *(-1,) * (rank - 2)),
            "a grayscale batch into a model built for RGB: repeat the gray channel",
        )
    if got == 3 and want == 1:
        return method("mean", 1, keepdim=True), "an RGB batch into a model built for grayscale: convert it"
    if got == 4 and want == 3:
        return index(slice(None), slice(None, 3)), "an RGBA batch: drop the alpha channel"
    return None


def _channels(ctx: FailureContext, conv: nn.modules.conv._ConvNd, shape: Shape) -> Diagnosis:
    """The channel axis holds another count: this layer's in_channels, the producer's
    out_channels, or the input's layout."""
    running = ctx.innermost
    assert running is not None
    got = shape[1]
    before = origin(ctx, running)
    changes: dict[str, int] = {"in_channels": got}
    groups_note = ""
    if conv.groups > 1:
        if conv.groups == conv.in_channels:  # depthwise: one filter group per channel
            changes.update(groups=got, out_channels=got * (conv.out_channels // conv.in_channels))
            groups_note = "; a depthwise conv has one group per channel"
        else:
            groups = math.gcd(math.gcd(conv.groups, got), conv.out_channels)
            if groups != conv.groups:
                changes["groups"] = groups
                groups_note = (
                    f"; groups must divide in_channels ({got}) and out_channels ({conv.out_channels})"
                )
    before_out = output_of(before) if before is not None else None
    model_input = from_model_input(ctx, running)
    if before is not None and before_out is not None:
        where = f"from {describe(before)} -> {format_shape(before_out)}"
        note = f"{describe(before)} gives {got} channels{groups_note}"
    elif model_input or input_written(ctx, running) is not None:
        where = model_input_words(ctx, running)
        note = f"{where} has {got} channels{groups_note}"
    else:
        where, note = "", f"the tensor it gets has {got} channels{groups_note}"
    name = running.record.name
    candidates = [Candidate(layer_fix(name, conv, **changes), note=note, rank=1, cost=len(changes))]
    if layout_may_differ(ctx, running):
        layouts = [c for c in (_channels_last(ctx, conv, shape, True), _clip_layout(ctx, conv, shape)) if c]
        if any(c.rank <= 0 for c in layouts):
            # the channels are plainly elsewhere: reading positions or frames as channels
            # would run, and be wrong for any other length
            candidates = []
        candidates += layouts
    if model_input:
        hint = _image_hint(got, conv.in_channels, len(shape))
        if hint is not None:
            candidates.append(Candidate(before_layer(ctx, running, hint[0]), note=hint[1], rank=1, cost=2))
    producer = ctx.view.module(before.name) if before is not None else None
    if isinstance(producer, nn.modules.conv._ConvNd) and before is not None and producer.groups == 1:
        candidates.append(
            Candidate(
                layer_fix(before.name, producer, out_channels=conv.in_channels),
                note=f"or make {describe(before)} give the {conv.in_channels} channels {name} expects",
                rank=2,
            )
        )
    return layer_diagnosis(
        ctx,
        "conv_in_channels",
        f"cannot take its input: it expects {conv.in_channels} channels, received {got}",
        details=[("received", received_line(shape, where)), _expects(conv)],
        fix_note=note,
        candidates=candidates,
        facts={"in_channels": got, **changes},
    )


def _unbatched(ctx: FailureContext, conv: nn.modules.conv._ConvNd, shape: Shape) -> Diagnosis:
    """One rank short: torch takes it as a single unbatched sample, axis 0 as channels."""
    running = ctx.innermost
    assert running is not None
    dims = len(conv.kernel_size)
    layout = layout_may_differ(ctx, running)
    candidates = [c for c in (_channels_last(ctx, conv, shape, False),) if c is not None and layout]
    if layout and conv.in_channels == 1:
        fixed = (shape[0], 1, *shape[1:])
        candidates.append(
            Candidate(
                before_layer(ctx, running, method("unsqueeze", 1)),
                note=f"adds the channel axis: {format_shape(fixed)}",
                kind="missing_channel_axis",
                headline=f"{describe(running.record)} cannot take its input: the batch has no channel axis",
                facts={"fixed_shape": list(fixed)},
            )
        )
    return layer_diagnosis(
        ctx,
        "conv_in_channels",
        f"cannot take its input: a {dims + 1}-D tensor is one unbatched sample, and axis 0 "
        f"holds {shape[0]}, not {conv.in_channels} channels",
        details=[("received", received_line(shape)), _expects(conv)],
        fix_note=f"give it (N, {conv.in_channels}, ...) input; x.unsqueeze(0) adds a batch "
        "axis to a single sample",
        candidates=candidates,
        facts={"in_channels": shape[0]},
    )


def _rank(ctx: FailureContext, conv: nn.modules.conv._ConvNd, shape: Shape) -> Diagnosis:
    """Far from the expected rank: no channel axis and no batch, or extra axes."""
    running = ctx.innermost
    assert running is not None
    dims = len(conv.kernel_size)
    layout = layout_may_differ(ctx, running)
    if len(shape) == dims and conv.in_channels == 1 and layout:
        return layer_diagnosis(
            ctx,
            "missing_batch_and_channel",
            "cannot take its input: it has neither a batch nor a channel axis",
            details=[("received", received_line(shape)), _expects(conv)],
            candidates=[
                Candidate(
                    before_layer(ctx, running, index(None, None)),
                    note=f"gives {format_shape((1, 1, *shape))}",
                )
            ],
            facts={"fixed_shape": [1, 1, *shape]},
        )
    if len(shape) == dims + 3 and shape[2] == conv.in_channels and layout:
        merged = (shape[0] * shape[1], *shape[2:])
        return layer_diagnosis(
            ctx,
            "conv_extra_axis",
            f"cannot take a {len(shape)}-D input: it has an extra axis before the channels",
            details=[
                ("received", received_line(shape, "(N, T, C, ...) like a clip of frames")),
                _expects(conv),
            ],
            candidates=[
                Candidate(
                    before_layer(ctx, running, method("flatten", 0, 1)),
                    note=f"merges the first two axes into the batch: {format_shape(merged)}; "
                    "unflatten the output back with .unflatten(0, (N, T))",
                )
            ],
            facts={"fixed_shape": list(merged)},
        )
    return layer_diagnosis(
        ctx,
        "conv_rank",
        f"cannot take a {len(shape)}-D input",
        details=[("received", received_line(shape)), _expects(conv)],
    )
