"""Normalisation layers given the wrong features or the wrong rank.

BatchNorm normalises axis 1 and each class wants one rank: BatchNorm1d (N, C) or
(N, C, L), BatchNorm2d (N, C, H, W), BatchNorm3d (N, C, D, H, W). The classic
slips: num_features copied from the wrong layer, a BatchNorm2d left in a Linear
head, BatchNorm1d on an (N, L, C) sequence, a batch of one in training, and a
missing batch axis that the convs before ran as one unbatched image. GroupNorm
needs channels divisible by its groups; LayerNorm normalises the trailing axes.
"""

from __future__ import annotations

import ast
import math

from torch import nn

from ...shapes.tree import Shape, format_shape
from ...tracing.failure import FailureContext
from ..common import (
    channels_first_layer_norm,
    describe,
    input_of,
    layer_diagnosis,
    origin,
    received,
    received_line,
)
from ..edits import NewLayer, method
from ..fixes import layer_fix
from ..patches import ReplaceLayer, TransformInput
from ..report import Candidate, Diagnosis
from ..source import call_site, edit_at

_BN_RANKS = {
    nn.BatchNorm1d: (2, 3),
    nn.BatchNorm2d: (4,),
    nn.BatchNorm3d: (5,),
    nn.InstanceNorm1d: (2, 3),
    nn.InstanceNorm2d: (3, 4),
    nn.InstanceNorm3d: (4, 5),
}


def diagnose(ctx: FailureContext) -> Diagnosis | None:
    """A normalisation layer that cannot normalise what it received."""
    running = ctx.innermost
    if running is None:
        return None
    module = running.module
    shape = received(running)
    if shape is None:
        return None
    if isinstance(module, (nn.modules.batchnorm._BatchNorm, nn.modules.instancenorm._InstanceNorm)):
        return _batch_norm(ctx, module, shape)
    if isinstance(module, nn.GroupNorm):
        return _group_norm(ctx, module, shape)
    if isinstance(module, nn.LayerNorm):
        return _layer_norm(ctx, module, shape)
    return None


def _ranks(module: nn.Module) -> tuple[int, ...] | None:
    return next((ranks for cls, ranks in _BN_RANKS.items() if isinstance(module, cls)), None)


def _family(module: nn.Module) -> str:
    return "InstanceNorm" if isinstance(module, nn.modules.instancenorm._InstanceNorm) else "BatchNorm"


def _for_rank(module: nn.Module, rank: int) -> str | None:
    """The class of the same family that takes inputs of ``rank``."""
    dims = {2: 1, 3: 1, 4: 2, 5: 3}.get(rank)
    return None if dims is None else f"{_family(module)}{dims}d"


def unbatched_conv(ctx: FailureContext) -> tuple[str, Shape] | None:
    """The first conv that ran one rank short (as one unbatched sample), and what it got."""
    for r in ctx.records:
        module = ctx.view.module(r.name)
        shape = input_of(r)
        if (
            isinstance(module, nn.modules.conv._ConvNd)
            and shape is not None
            and len(shape) == len(module.kernel_size) + 1
        ):
            return describe(r), shape
    return None


def _batch_norm(ctx: FailureContext, bn: nn.Module, shape: Shape) -> Diagnosis | None:
    ranks = _ranks(bn)
    num = int(bn.num_features)  # type: ignore[arg-type]
    expects = ("expects", f"{_family(bn)} over {num} features on axis 1")
    if ranks is not None and len(shape) not in ranks:
        return _bn_rank(ctx, bn, shape, expects)
    if len(shape) < 2:
        return None
    got = shape[1]
    if got != num:
        running = ctx.innermost
        assert running is not None
        if len(shape) == 3 and shape[-1] == num:
            return layer_diagnosis(
                ctx,
                "batchnorm_channels_last",
                f"cannot take its input: its {num} features are on the last axis (N, L, C)",
                details=[("received", received_line(shape)), expects],
                candidates=_transposed(ctx, bn, num),
                facts={"num_features": num},
            )
        before = origin(ctx, running)
        unit = "features" if len(shape) == 2 else "channels"
        note = (
            f"{describe(before)} gives {got} {unit}"
            if before is not None
            else f"the tensor it gets has {got} {unit}"
        )
        return layer_diagnosis(
            ctx,
            "norm_num_features",
            f"cannot take its input: it normalises {num} features, received {got}",
            details=[
                ("received", received_line(shape, f"from {describe(before)}" if before else "")),
                expects,
            ],
            candidates=[Candidate(layer_fix(running.record.name, bn, num_features=got), note=note)],
            facts={"num_features": got},
        )
    if (
        bn.training
        and isinstance(bn, nn.modules.batchnorm._BatchNorm)
        and shape[0] * math.prod(shape[2:]) == 1
    ):
        given = ctx.model_input_shape()
        candidates = []
        if given is not None and given[0] == 1:
            bigger = (2, *given[1:])
            candidates.append(
                Candidate(
                    TransformInput(
                        shape=bigger, said=f"a batch of at least 2: an input of {'x'.join(map(str, bigger))}"
                    ),
                    note="training-mode BatchNorm needs more than one value per channel (or trace "
                    "with train=False)",
                )
            )
        return layer_diagnosis(
            ctx,
            "batchnorm_single_value",
            "cannot compute batch statistics: one value per channel in training mode",
            details=[("received", received_line(shape)), expects],
            fix_note="training-mode BatchNorm needs more than one value per channel; trace with train=False",
            candidates=candidates,
            facts={"batch": shape[0]},
        )
    return None


def _bn_rank(ctx: FailureContext, bn: nn.Module, shape: Shape, expects: tuple[str, str]) -> Diagnosis:
    name = type(bn).__name__
    unbatched = unbatched_conv(ctx) if len(shape) in (2, 3, 4) else None
    model_input = ctx.model_input_shape()
    if unbatched is not None and model_input is not None and unbatched[1] == model_input:
        fixed = (1, *model_input)
        return layer_diagnosis(
            ctx,
            "missing_batch_axis",
            f"cannot take a {len(shape)}-D input: the model input has no batch axis",
            details=[
                ("received", received_line(shape)),
                (
                    "because",
                    f"{unbatched[0]} took the input {format_shape(model_input)} as one unbatched sample",
                ),
                expects,
            ],
            candidates=[
                Candidate(
                    TransformInput(transform=method("unsqueeze", 0)),
                    note=f"adds the batch axis: {format_shape(fixed)}",
                )
            ],
            facts={"fixed_shape": list(fixed)},
        )
    right = _for_rank(bn, len(shape))
    if right is None:
        return layer_diagnosis(
            ctx,
            "norm_rank",
            f"cannot take a {len(shape)}-D input",
            details=[("received", received_line(shape)), expects],
        )
    features = shape[1]
    where = "in a Linear head " if len(shape) == 2 and name != right else ""
    running = ctx.innermost
    assert running is not None
    return layer_diagnosis(
        ctx,
        "norm_rank",
        f"cannot take a {len(shape)}-D input: {name} {where}is the wrong class for it",
        details=[("received", received_line(shape)), expects],
        candidates=[
            Candidate(
                ReplaceLayer(running.record.name, NewLayer(getattr(nn, right), (features,))),
                note=f"{right} normalises {len(shape)}-D input over its {features} features on axis 1",
            )
        ],
        facts={"class": right, "num_features": features},
    )


def _largest_divisor(n: int, at_most: int) -> int:
    return max(d for d in range(1, min(n, at_most) + 1) if n % d == 0)


def _group_norm(ctx: FailureContext, gn: nn.GroupNorm, shape: Shape) -> Diagnosis | None:
    if len(shape) < 2:
        return None
    got = shape[1]
    if got == gn.num_channels and got % gn.num_groups == 0:
        return None
    groups = gn.num_groups if got % gn.num_groups == 0 else _largest_divisor(got, gn.num_groups)
    note = f"the tensor it gets has {got} channels"
    if groups != gn.num_groups:
        note += f"; {gn.num_groups} groups do not divide {got}, {groups} do"
    return layer_diagnosis(
        ctx,
        "groupnorm_channels",
        f"cannot take its input: it expects {gn.num_channels} channels in {gn.num_groups} "
        f"groups, received {got}",
        details=[
            ("received", received_line(shape)),
            ("expects", f"{gn.num_channels} channels on axis 1, divisible by num_groups={gn.num_groups}"),
        ],
        candidates=[Candidate(layer_fix(_name(ctx), gn, num_groups=groups, num_channels=got), note=note)],
        facts={"num_channels": got, "num_groups": groups},
    )


def _layer_norm(ctx: FailureContext, ln: nn.LayerNorm, shape: Shape) -> Diagnosis | None:
    normalized = tuple(ln.normalized_shape)
    k = len(normalized)
    if channels_first_layer_norm(ln, shape):
        return _channels_first_layer_norm(ctx, ln, shape)
    if tuple(shape[-k:]) == normalized:
        return None
    expects = (
        "expects",
        f"[*, {', '.join(map(str, normalized))}]    normalized_shape={list(normalized)} (the trailing axes)",
    )
    if k == 1 and len(shape) >= 3 and shape[1] == normalized[0]:
        return layer_diagnosis(
            ctx,
            "layernorm_channels",
            f"cannot take its input: it normalises the last axis, and the {normalized[0]} "
            "channels are on axis 1",
            details=[("received", received_line(shape)), expects],
            candidates=_channels_last_norm(ctx, normalized[0], len(shape)),
            facts={"normalized_shape": list(shape[-k:])},
        )
    return layer_diagnosis(
        ctx,
        "layernorm_shape",
        f"cannot take its input: its trailing axes are {list(shape[-k:])}, not {list(normalized)}",
        details=[("received", received_line(shape)), expects],
        candidates=[
            Candidate(
                layer_fix(_name(ctx), ln, normalized_shape=tuple(shape[-k:]) if k > 1 else shape[-1]),
                note=f"normalized_shape must equal the last {k} {'axis' if k == 1 else 'axes'} of the input",
            )
        ],
        facts={"normalized_shape": list(shape[-k:])},
    )


def _channels_first_layer_norm(ctx: FailureContext, ln: nn.LayerNorm, shape: Shape) -> Diagnosis | None:
    """A LayerNorm class of a library's that moves the channels itself (timm's ``LayerNorm2d``
    normalises axis 1 of an (N, C, H, W) map): its size against the channels it got."""
    size = ln.normalized_shape[0]
    if shape[1] == size:
        return None
    running = ctx.innermost
    assert running is not None
    before = origin(ctx, running)
    return layer_diagnosis(
        ctx,
        "norm_num_features",
        f"cannot take its input: it normalises {size} channels, received {shape[1]}",
        details=[
            ("received", received_line(shape, f"from {describe(before)}" if before else "")),
            ("expects", f"{type(ln).__name__} over {size} channels on axis 1"),
        ],
        candidates=[
            Candidate(
                layer_fix(running.record.name, ln, normalized_shape=(shape[1],)),
                note=f"the map it gets has {shape[1]} channels",
            )
        ],
        facts={"num_features": shape[1]},
    )


def _channels_last_norm(ctx: FailureContext, channels: int, rank: int) -> list[Candidate]:
    """A LayerNorm over the channels of a channels-first map: the channels moved to the last
    axis around it (ConvNeXt's ``LayerNorm2d`` does this), in the line that calls it.

    ``nn.GroupNorm(1, C)`` also takes the map, but normalises each sample over its channels
    and positions together, where the LayerNorm normalises each position's channels: other
    numbers, so it is offered as another norm, never as the same one.
    """
    running = ctx.innermost
    assert running is not None
    out = []
    last = (0, *range(2, rank), 1)
    back = (0, rank - 1, *range(1, rank - 1))
    site = call_site(ctx, running)
    if site is not None:
        tb, node = site
        argument = ast.unparse(node.args[0])
        moved = method("permute", *last).expression(argument)
        code = method("permute", *back).expression(ast.unparse(node).replace(argument, moved, 1))
        edit = edit_at(ctx, tb, node, code)
        if edit is not None:
            out.append(
                Candidate(
                    edit,
                    note=f"LayerNorm({channels}) normalises the last axis: the {channels} channels "
                    "moved there and back",
                )
            )
    out.append(
        Candidate(
            ReplaceLayer(_name(ctx), NewLayer(nn.GroupNorm, (1, channels))),
            note="another norm: each sample over all its channels and positions together (not each "
            "position's channels, as a LayerNorm over channels-last maps)",
            rank=1,
        )
    )
    return out


def _name(ctx: FailureContext) -> str:
    running = ctx.innermost
    assert running is not None
    return running.record.name


def _transposed(ctx: FailureContext, bn: nn.Module, num: int) -> list[Candidate]:
    """BatchNorm1d over the features of an (N, L, C) sequence: transpose around it (in the
    user's forward line), or normalise the last axis with LayerNorm."""
    running = ctx.innermost
    assert running is not None
    out = []
    site = call_site(ctx, running)
    if site is not None:
        tb, node = site
        call = ast.unparse(node)
        argument = ast.unparse(node.args[0])
        code = call.replace(argument, f"{argument}.transpose(1, 2)", 1) + ".transpose(1, 2)"
        edit = edit_at(ctx, tb, node, code)
        if edit is not None:
            out.append(
                Candidate(edit, note=f"{type(bn).__name__} normalises axis 1: put the {num} features there")
            )
    out.append(
        Candidate(
            ReplaceLayer(running.record.name, NewLayer(nn.LayerNorm, (num,))),
            note=f"normalises the last axis, where the {num} features are (the usual norm for (N, L, C))",
            rank=1,
        )
    )
    return out
