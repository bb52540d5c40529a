"""Linear layers that cannot take what they get: the most common CNN bug.

``nn.Linear(in_features, ...)`` after the conv stack must equal channels x height
x width of the last feature map, a number people compute by hand for one input
size. Three shapes of the mistake:

* the flattened features are not ``in_features`` (change in_features, or use
  ``nn.LazyLinear``, which infers it);
* the map reached the Linear unflattened (add the flatten);
* an ``nn.Flatten`` with the wrong ``start_dim`` (fix the flatten, not in_features).
"""

from __future__ import annotations

from torch import nn
from torch.nn.parameter import is_lazy

from ... import arith
from ...shapes.tree import Shape, format_shape
from ...tracing.failure import FailureContext
from ...tracing.lineage import INPUT, LAYER
from ...tracing.recorder import RunningCall
from ...tracing.records import LayerRecord
from ..common import (
    channels_last_producer,
    describe,
    input_of,
    input_origin,
    last_map,
    layer_diagnosis,
    output_of,
    previous_leaf,
    received,
    received_line,
)
from ..edits import LayerEdit, NewLayer, function
from ..fixes import layer_fix, product
from ..patches import FeedLayer, Patch, ReplaceLayer, joined
from ..report import Candidate, Diagnosis
from ..source import edit_call_argument


def _lazy_hint(fc: nn.Linear) -> str:
    return (
        f"nn.LazyLinear({fc.out_features}) infers in_features at its first call, so this "
        "number can never be wrong again"
    )


def _flatten_advice(ctx: FailureContext) -> str:
    """Where the flatten goes: a layer in a Sequential, a call in a forward()."""
    parent = ctx.running[-2].module if len(ctx.running) >= 2 else None
    if isinstance(parent, nn.Sequential):
        return "insert nn.Flatten() before it in the Sequential"
    return "flatten before the call: x = torch.flatten(x, 1)"


def diagnose(ctx: FailureContext) -> Diagnosis | None:
    """A Linear whose input's last dimension is not its in_features."""
    running = ctx.innermost
    if running is None or not isinstance(running.module, nn.Linear):
        return None
    fc = running.module
    if is_lazy(fc.weight):
        return None
    shape = received(running)
    if shape is None or shape[-1] == fc.in_features:
        return None
    expects = ("expects", f"[*, {fc.in_features}]    in_features={fc.in_features}")
    return (
        _wrong_flatten(ctx, fc, shape, expects)
        or _unflattened(ctx, fc, shape, expects)
        or _folded_batch(ctx, fc, shape, expects)
        or _flattened_batch(ctx, fc, shape, expects)
        or _in_features(ctx, fc, shape, expects)
    )


def _before(ctx: FailureContext) -> tuple[RunningCall, LayerRecord | None, Shape | None]:
    """The failing call, the last layer before it that returned a feature map, and that map."""
    running = ctx.innermost
    assert running is not None
    source = last_map(ctx, running.record)
    return running, source, output_of(source) if source is not None else None


def _flattened_batch(
    ctx: FailureContext, fc: nn.Linear, shape: Shape, expects: tuple[str, str]
) -> Diagnosis | None:
    """``torch.flatten(x)`` without ``start_dim``: the batch went into the one axis too."""
    running, source, map_shape = _before(ctx)
    if source is None or map_shape is None or len(shape) != 1:
        return None
    if arith.flatten_size(map_shape, 0) != shape[0] or map_shape[0] == 1:
        return None
    right = arith.flatten_size(map_shape, 1)
    patch: Patch = FeedLayer(
        name=running.record.name,
        transform=function("flatten", 1),
        source=source.name,
        why="torch.flatten(x) without start_dim=1 flattens the batch too",
    )
    if right != fc.in_features:
        patch = joined(patch, layer_fix(running.record.name, fc, in_features=right))
    return layer_diagnosis(
        ctx,
        "flatten_batch",
        f"cannot take its input: the batch of {map_shape[0]} was flattened into one vector",
        details=[
            (
                "received",
                received_line(shape, f"flattened from {describe(source)} -> {format_shape(map_shape)}"),
            ),
            expects,
        ],
        candidates=[
            Candidate(patch, note=f"keeps the batch axis: {right} = {product(map_shape[1:])} per sample")
        ],
        facts={"in_features": right, "batch": map_shape[0]},
    )


_AXIS_MOVES = frozenset({"permute", "transpose", "movedim", "moveaxis", "swapaxes", "swapdims"})


def _wrong_flatten(
    ctx: FailureContext, fc: nn.Linear, shape: Shape, expects: tuple[str, str]
) -> Diagnosis | None:
    """The layer before is an nn.Flatten whose start_dim is not 1."""
    running = ctx.innermost
    assert running is not None
    before = previous_leaf(ctx, running.record)
    flatten = ctx.view.module(before.name) if before is not None else None
    if before is None or not isinstance(flatten, nn.Flatten) or flatten.start_dim == 1:
        return None
    map_shape = input_of(before)
    if map_shape is None or len(map_shape) < 3:
        return None
    right = arith.flatten_size(map_shape, 1, flatten.end_dim)
    patch: Patch = layer_fix(before.name, flatten, start_dim=1)
    note = f"from dim 1 it gives [{map_shape[0]}, {right}] and keeps the batch axis"
    if right != fc.in_features:
        patch = joined(patch, layer_fix(running.record.name, fc, in_features=right))
        note += f"; {right} = {product(map_shape[1:])}"
    return layer_diagnosis(
        ctx,
        "flatten_start_dim",
        "cannot take its input: the Flatten before it merges the wrong axes",
        details=[
            (
                "received",
                received_line(
                    shape,
                    f"from {describe(before)} with start_dim={flatten.start_dim} of "
                    f"{format_shape(map_shape)}",
                ),
            ),
            expects,
        ],
        candidates=[Candidate(patch, note=note)],
        facts={"start_dim": flatten.start_dim, "in_features": right},
    )


def _unflattened(
    ctx: FailureContext, fc: nn.Linear, shape: Shape, expects: tuple[str, str]
) -> Diagnosis | None:
    """A feature map (N, C, H, W) reached the Linear without a flatten.

    Not a sequence (N, L, C) or (T, B, C): a Linear works on its last axis by design, as
    on what an LSTM, an Embedding or another Linear returns (``tracing.lineage``).
    """
    if len(shape) < 3:
        return None
    running = ctx.innermost
    assert running is not None
    found = input_origin(ctx, running)
    if found is not None and found.kind == LAYER and 0 <= found.index < len(ctx.records):
        if channels_last_producer(ctx.view.module(ctx.records[found.index].name)):
            return None
    elif found is not None and found.kind == INPUT and len(shape) == 3:
        return None  # (N, L, C) straight from the input: a sequence
    if found is not None and any(op in _AXIS_MOVES for op in found.ops):
        return None  # a map made into a sequence on purpose (a CRNN's (W, B, C))
    right = arith.flatten_size(shape, 1)
    name = running.record.name
    candidates = []
    edit = edit_call_argument(ctx, running, function("flatten", 1))
    if edit is not None:
        candidates.append(
            Candidate(
                joined(edit, layer_fix(name, fc, in_features=right)) if right != fc.in_features else edit,
                note=f"{right} = {product(shape[1:])}",
            )
        )
    flattened = NewLayer(nn.Sequential, (NewLayer(nn.Flatten), LayerEdit(fc, {"in_features": right})))
    if len(shape) == 3:  # (N, L, C): a Linear works on the last axis by design as often
        candidates.append(
            Candidate(
                layer_fix(name, fc, in_features=shape[-1]),
                note=f"the {shape[-1]} features on the last axis of each of the {shape[1]} positions",
                rank=0,
                kind="linear_in_features",
                headline=f"{describe(running.record)} cannot take its input",
            )
        )
    candidates.append(
        Candidate(
            ReplaceLayer(name, flattened),
            note=f"{right} = {product(shape[1:])}; {_flatten_advice(ctx)}",
            rank=1,
        )
    )
    return layer_diagnosis(
        ctx,
        "linear_unflattened",
        "cannot take its input: it received an unflattened feature map",
        details=[
            (
                "received",
                received_line(shape, f"a {len(shape)}-D map; Linear works on the last axis ({shape[-1]})"),
            ),
            expects,
        ],
        candidates=candidates,
        hint=None if right == fc.in_features else _lazy_hint(fc),
        facts={"in_features": right},
    )


def _folded_batch(
    ctx: FailureContext, fc: nn.Linear, shape: Shape, expects: tuple[str, str]
) -> Diagnosis | None:
    """Forward code reshaped the map with ``view(-1, K)``: the batch axis took the rest."""
    running, source, map_shape = _before(ctx)
    if map_shape is None or map_shape[0] == shape[0] or len(shape) != 2:
        return None
    if arith.flatten_size(map_shape, 0) != arith.flatten_size(shape, 0):
        return None
    assert source is not None
    right = arith.flatten_size(map_shape, 1)
    return layer_diagnosis(
        ctx,
        "view_batch_fold",
        f"cannot take its input: forward code turned the batch of {map_shape[0]} into {shape[0]}",
        details=[
            (
                "received",
                received_line(shape, f"reshaped from {describe(source)} -> {format_shape(map_shape)}"),
            ),
            expects,
        ],
        candidates=[
            Candidate(
                joined(
                    FeedLayer(
                        name=running.record.name,
                        transform=function("flatten", 1),
                        source=source.name,
                        why="in place of the view that folded the batch",
                    ),
                    *(
                        [layer_fix(running.record.name, fc, in_features=right)]
                        if right != fc.in_features
                        else []
                    ),
                ),
                note=f"view(-1, {shape[-1]}) folds features into the batch; per sample there are "
                f"{right} = {product(map_shape[1:])}",
            )
        ],
        hint=_lazy_hint(fc),
        facts={"in_features": right, "batch": [map_shape[0], shape[0]]},
    )


def _in_features(ctx: FailureContext, fc: nn.Linear, shape: Shape, expects: tuple[str, str]) -> Diagnosis:
    """The flattened features are not in_features: the number to change."""
    running = ctx.innermost
    assert running is not None
    features = shape[-1]
    source = last_map(ctx, running.record)
    map_shape = output_of(source) if source is not None else None
    origin, note = "", f"the {features} features it receives"
    if source is not None and map_shape is not None and arith.flatten_size(map_shape, 1) == features:
        origin = f"flattened from {describe(source)} -> {format_shape(map_shape)}"
        note = f"{features} = {product(map_shape[1:])}"
    return layer_diagnosis(
        ctx,
        "linear_in_features",
        "cannot take its input",
        details=[("received", received_line(shape, origin)), expects],
        candidates=[Candidate(layer_fix(running.record.name, fc, in_features=features), note=note)],
        hint=_lazy_hint(fc),
        facts={"in_features": features},
    )
