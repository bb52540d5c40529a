"""Convolutions given the wrong channels, or a tensor in the wrong layout.

A conv reads axis 1 as channels: ``(N, C, H, W)`` for Conv2d, ``(N, C, L)`` for
Conv1d, and silently takes a tensor one rank lower as a single unbatched sample.
So a grayscale batch into an RGB model, a channels-last image ``(N, H, W, C)``, a
sequence ``(N, L, C)`` into Conv1d or a batch without its channel axis all fail
with "expected input to have 3 channels" (CPU) or "Invalid channel dimensions"
(meta). The layout is told from where the expected channel count sits.
"""

from __future__ import annotations

import math

from torch import nn

from ...shapes.tree import Shape, format_shape
from ...tracing.failure import FailureContext
from ..common import describe, layer_diagnosis, origin, output_of, received, received_line
from ..fixes import layer_call
from ..report import Diagnosis


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
        return _channels_last(ctx, conv, shape, batched=True) or _channels(ctx, conv, shape)
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


def _permutation(dims: int, batched: bool) -> str:
    """The permute that moves a last-axis channel to axis 1 (or 0 when unbatched)."""
    if batched:
        if dims == 1:
            return "x = x.transpose(1, 2)"
        order = (0, dims + 1, *range(1, dims + 1))
        return f"x = x.permute{order}"
    order = (dims, *range(dims))
    return f"x = x.permute{order}.unsqueeze(0)"


def _channels_last(
    ctx: FailureContext, conv: nn.modules.conv._ConvNd, shape: Shape, batched: bool
) -> Diagnosis | None:
    """The channel count sits on the last axis: a channels-last image or an (N, L, C) sequence."""
    if shape[-1] != conv.in_channels:
        return None
    dims = len(conv.kernel_size)
    layout = {1: "(N, L, C)", 2: "(N, H, W, C)", 3: "(N, D, H, W, C)"}[dims]
    if not batched:
        layout = layout.replace("N, ", "")
    return layer_diagnosis(
        ctx,
        "channels_last",
        f"cannot take its input: the channels are on the last axis {layout}",
        details=[("received", received_line(shape, f"{shape[-1]} on the last axis")), _expects(conv)],
        fix=_permutation(dims, batched),
        fix_note=f"moves the {conv.in_channels} channels to axis {1 if batched else 0}"
        + ("" if batched else " and adds the batch axis"),
        facts={"channels": conv.in_channels, "layout": layout},
    )


def _image_hint(got: int, want: int) -> tuple[str | None, str | None]:
    """Input-side fixes for the classic image channel mix-ups."""
    if got == 1 and want == 3:
        return (
            "x = x.expand(-1, 3, *x.shape[2:])",
            "a grayscale batch into a model built for RGB: repeat the gray channel, or "
            "build the first conv for 1 channel",
        )
    if got == 3 and want == 1:
        return (
            "x = x.mean(1, keepdim=True)",
            "an RGB batch into a model built for grayscale: convert it, or build the first "
            "conv for 3 channels",
        )
    if got == 4 and want == 3:
        return "x = x[:, :3]", "an RGBA batch: drop the alpha channel"
    return None, None


def _channels(ctx: FailureContext, conv: nn.modules.conv._ConvNd, shape: Shape) -> Diagnosis:
    """The channel axis holds another count: fix this layer's in_channels (or the input)."""
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
    hint = None
    before_out = output_of(before) if before is not None else None
    if before is not None and before_out is not None:
        where = f"from {describe(before)} -> {format_shape(before_out)}"
        note = f"{describe(before)} gives {got} channels{groups_note}"
    elif not ctx.leaves_before(running.record):
        where = "the model input"
        note = f"the model input has {got} channels{groups_note}"
        input_fix, why = _image_hint(got, conv.in_channels)
        if input_fix is not None:
            hint = f"or fix the input: {input_fix}   # {why}"
    else:
        where, note = "", f"the tensor it gets has {got} channels{groups_note}"
    fix = layer_call(conv, **changes)
    return layer_diagnosis(
        ctx,
        "conv_in_channels",
        f"cannot take its input: it expects {conv.in_channels} channels, received {got}",
        details=[("received", received_line(shape, where)), _expects(conv)],
        fix=fix,
        fix_note=note,
        hint=hint,
        facts={"in_channels": got, **changes},
    )


def _unbatched(ctx: FailureContext, conv: nn.modules.conv._ConvNd, shape: Shape) -> Diagnosis:
    """One rank short: torch takes it as a single unbatched sample, axis 0 as channels."""
    dims = len(conv.kernel_size)
    channels_last = _channels_last(ctx, conv, shape, batched=False)
    if channels_last is not None:
        return channels_last
    if conv.in_channels == 1:
        fixed = (shape[0], 1, *shape[1:])
        return layer_diagnosis(
            ctx,
            "missing_channel_axis",
            "cannot take its input: the batch has no channel axis",
            details=[
                ("received", received_line(shape, f"read as one sample with {shape[0]} channels")),
                _expects(conv),
            ],
            fix="x = x.unsqueeze(1)",
            fix_note=f"adds the channel axis: {format_shape(fixed)}",
            facts={"fixed_shape": list(fixed)},
        )
    return layer_diagnosis(
        ctx,
        "conv_in_channels",
        f"cannot take its input: a {dims + 1}-D tensor is one unbatched sample, and axis 0 "
        f"holds {shape[0]}, not {conv.in_channels} channels",
        details=[("received", received_line(shape)), _expects(conv)],
        fix_note=f"give it (N, {conv.in_channels}, ...) input; x.unsqueeze(0) adds a batch "
        "axis to a single sample",
        facts={"in_channels": shape[0]},
    )


def _rank(ctx: FailureContext, conv: nn.modules.conv._ConvNd, shape: Shape) -> Diagnosis:
    """Far from the expected rank: no channel axis and no batch, or extra axes."""
    dims = len(conv.kernel_size)
    if len(shape) == dims:
        if conv.in_channels == 1:
            return layer_diagnosis(
                ctx,
                "missing_batch_and_channel",
                "cannot take its input: it has neither a batch nor a channel axis",
                details=[("received", received_line(shape)), _expects(conv)],
                fix="x = x[None, None]",
                fix_note=f"gives {format_shape((1, 1, *shape))}",
                facts={"fixed_shape": [1, 1, *shape]},
            )
        return layer_diagnosis(
            ctx,
            "conv_rank",
            f"cannot take a {len(shape)}-D input",
            details=[("received", received_line(shape)), _expects(conv)],
        )
    if len(shape) == dims + 3 and shape[2] == conv.in_channels:
        merged = (shape[0] * shape[1], *shape[2:])
        return layer_diagnosis(
            ctx,
            "conv_extra_axis",
            f"cannot take a {len(shape)}-D input: it has an extra axis before the channels",
            details=[
                ("received", received_line(shape, "(N, T, C, ...) like a clip of frames")),
                _expects(conv),
            ],
            fix="x = x.flatten(0, 1)",
            fix_note=f"merges the first two axes into the batch: {format_shape(merged)}; "
            "unflatten the output back with .unflatten(0, (N, T))",
            facts={"fixed_shape": list(merged)},
        )
    return layer_diagnosis(
        ctx,
        "conv_rank",
        f"cannot take a {len(shape)}-D input",
        details=[("received", received_line(shape)), _expects(conv)],
    )
