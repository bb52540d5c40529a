"""Recurrent layers after a conv stack: the features per time step.

A CRNN turns the conv map ``(B, C, H, W)`` into a sequence along the width: ``W``
steps of ``C * H`` features, ``(W, B, C * H)`` for an LSTM with
``batch_first=False`` (the default, and what CTC wants) or ``(B, W, C * H)`` with
``batch_first=True``. ``input_size`` must be ``C * H``: the height left after the
pooling is what people get wrong. The fixes: the LSTM's ``input_size``, or the
reshape that makes steps of ``C * H`` features from the map
(``x.permute(3, 0, 1, 2).reshape(w, b, c * h)``), each verified.
"""

from __future__ import annotations

import math

from torch import nn

from ...shapes.tree import Shape, first_shape, format_shape
from ...tracing.failure import FailureContext
from ...tracing.lineage import LAYER
from ..common import input_origin, layer_diagnosis, received, received_line
from ..edits import chain, method
from ..fixes import layer_fix
from ..patches import FeedLayer, joined
from ..report import Candidate, Diagnosis


def diagnose(ctx: FailureContext) -> Diagnosis | None:
    """An RNN/LSTM/GRU whose input's last axis is not its input_size, or of the wrong rank."""
    running = ctx.innermost
    if running is None or not isinstance(running.module, nn.RNNBase):
        return None
    rnn = running.module
    shape = received(running)
    if shape is None:
        return None
    if len(shape) in (2, 3) and shape[-1] == rnn.input_size:
        return None
    name = running.record.name
    layout = "(B, T, F)" if rnn.batch_first else "(T, B, F)"
    expects = ("expects", f"{layout} with F = input_size = {rnn.input_size}")
    found_map = conv_map = _conv_map(ctx)
    candidates: list[Candidate] = []
    if len(shape) in (2, 3):
        candidates.append(
            Candidate(
                layer_fix(name, rnn, input_size=shape[-1]),
                note=f"the sequence it gets has {shape[-1]} features per step",
                rank=1,
            )
        )
    if conv_map is not None:
        producer, mapped = conv_map
        b, c, h, w = mapped
        steps = (b, w, c * h) if rnn.batch_first else (w, b, c * h)
        if shape == steps:
            conv_map = None  # the map is already a sequence of c * h features: the LSTM is the mistake
    if conv_map is not None:
        producer, mapped = conv_map
        b, c, h, w = mapped
        order = (0, 3, 1, 2) if rnn.batch_first else (3, 0, 1, 2)
        feed = FeedLayer(
            name=name,
            transform=chain(method("permute", *order), method("flatten", 2)),
            source=producer,
            why=f"the map of {producer} as {w} steps of {c * h} features",
        )
        patch = feed if c * h == rnn.input_size else joined(feed, layer_fix(name, rnn, input_size=c * h))
        candidates.append(
            Candidate(
                patch,
                note=f"{c * h} = {c} * {h} features per step: channels times the height left",
                rank=0 if c * h == rnn.input_size or len(shape) not in (2, 3) else 2,
            )
        )
    if len(shape) in (2, 3):
        problem = (
            f"cannot take its input: it expects {rnn.input_size} features per step, received {shape[-1]}"
        )
    else:
        problem = f"cannot take a {len(shape)}-D input: it wants a sequence {layout}"
    facts: dict[str, object] = {"input_size": shape[-1] if len(shape) in (2, 3) else None}
    if found_map is not None:
        facts["map"] = list(found_map[1])
    return layer_diagnosis(
        ctx,
        "rnn_input_size",
        problem,
        details=[
            (
                "received",
                received_line(
                    shape, f"made from {found_map[0]} -> {format_shape(found_map[1])}" if found_map else ""
                ),
            ),
            expects,
        ],
        candidates=candidates,
        facts=facts,
    )


def _conv_map(ctx: FailureContext) -> tuple[str, Shape] | None:
    """The 4-D map the sequence was made from: the layer output it came from through forward
    code (``tracing.lineage``), or the received tensor itself."""
    running = ctx.innermost
    assert running is not None
    shape = received(running)
    found = input_origin(ctx, running)
    if found is None or found.kind != LAYER:
        return None
    record = ctx.records[found.index]
    out = first_shape(record.output_shape)
    if out is None or len(out) != 4:
        return None
    if shape is not None and math.prod(shape) != math.prod(out):
        return None
    return record.name, out
