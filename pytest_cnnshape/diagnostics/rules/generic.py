"""The diagnosis when no rule recognises the failure, and notes every diagnosis gets."""

from __future__ import annotations

import math

from ...shapes.tree import format_shape
from ...tracing.failure import FailureContext
from ...tracing.table import inputs_cell
from ..common import BatchChange, batch_change, describe, received
from ..edits import function
from ..fixes import layer_fix
from ..patches import FeedLayer, Patch, TransformInput, joined
from ..report import Candidate, Diagnosis


def generic(ctx: FailureContext) -> Diagnosis:
    """The layer (or the forward code) that failed, what it received, torch's words."""
    running = ctx.innermost
    message = ctx.message.strip() or type(ctx.exc).__name__
    first = message.splitlines()[0]
    word = (
        "failed" if isinstance(ctx.exc, (RuntimeError, ValueError)) else (f"raised {type(ctx.exc).__name__}")
    )
    if running is None:
        return Diagnosis(
            kind="forward_error",
            layer="",
            module_type=type(ctx.model).__name__,
            received_shapes=(),
            headline=f"{type(ctx.model).__name__} {word}: {first}",
            details=[("received", "-")],
        )
    record = running.record
    where = describe(record) if ctx.in_torch_layer else f"the forward() of {describe(record)}"
    operands = () if ctx.in_torch_layer or ctx.flow is None else ctx.flow.functional.failed_shapes
    if operands:  # forward code raised in a torch op: what that op was given, not the module's input
        shown = ", ".join(format_shape(s) for s in operands)
        return Diagnosis(
            kind="forward_error",
            layer=record.name,
            module_type=record.type,
            received_shapes=operands,
            headline=f"{where} {word}: {first}",
            details=[
                ("received", f"{shown}    the operands of the op that raised"),
                ("module in", inputs_cell(record)),
            ],
        )
    return Diagnosis(
        kind="forward_error",
        layer=record.name,
        module_type=record.type,
        received_shapes=record.input_shapes,
        headline=f"{where} {word}: {first}",
        details=[("received", inputs_cell(record))],
    )


def with_common_notes(ctx: FailureContext, diagnosis: Diagnosis) -> Diagnosis:
    """Fill what every diagnosis shows: torch's message, the user's line, the device,
    and a batch size that forward code changed on the way (a cause of many failures)."""
    diagnosis.original = ctx.message  # inside TorchScript: the error, not the interpreter's header
    diagnosis.device = str(ctx.device)
    if diagnosis.source is None:
        frame = ctx.frame
        diagnosis.source = str(frame) if frame else None
    if diagnosis.library is None:
        from ..source import library_line, user_traceback

        tb = user_traceback(ctx)
        diagnosis.library = library_line(tb) if tb is not None else None
    change = batch_change(ctx)
    if change is not None and diagnosis.kind != "view_batch_fold":
        diagnosis.facts.setdefault("batch_changed", [change.was, change.now])
        running = ctx.innermost
        note = (
            f"the batch changed from {change.was} to {change.now} {change.where()}: a "
            "view(-1, K) folded features into the batch"
        )
        if running is not None and change.after is running.record:
            # the fold is the cause: undo it (and size the layer for one sample) rather
            # than resize the layer to the folded rows
            fold = _undo_fold(ctx, change, diagnosis)
            if fold is not None:
                diagnosis.candidates.insert(0, fold)
        else:
            note += "; keep it with x.view(x.size(0), -1) or torch.flatten(x, 1)"
        diagnosis.hint = note if diagnosis.hint is None else f"{diagnosis.hint}\n{note}"
    return diagnosis


def _undo_fold(ctx: FailureContext, change: BatchChange, diagnosis: Diagnosis) -> Candidate | None:
    """Flatten per sample what the layer before the fold returned, and size the layer for it."""
    from torch import nn

    running = ctx.innermost
    assert running is not None
    shape = received(running)
    per_sample = math.prod(shape) // change.was if shape else None
    name = running.record.name
    feed: Patch
    if change.before is not None:
        feed = FeedLayer(
            name=name,
            transform=function("flatten", 1),
            source=change.before.name,
            why="in place of the view that folded the batch",
        )
    else:
        feed = TransformInput(transform=function("flatten", 1))
    module = running.module
    resize: dict[str, int] = {}
    if per_sample is not None and isinstance(module, nn.Linear) and module.in_features != per_sample:
        resize = {"in_features": per_sample}
    elif per_sample is not None and isinstance(module, nn.BatchNorm1d) and module.num_features != per_sample:
        resize = {"num_features": per_sample}
    patch = joined(feed, layer_fix(name, module, **resize)) if resize else feed
    return Candidate(
        patch,
        note=f"keeps the batch of {change.was}: the layer then gets {per_sample} features per sample"
        if per_sample
        else None,
        rank=-1,
    )
