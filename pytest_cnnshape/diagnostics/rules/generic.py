"""The diagnosis when no rule recognises the failure, and notes every diagnosis gets."""

from __future__ import annotations

import math

from ...tracing.failure import FailureContext
from ...tracing.table import inputs_cell
from ..common import batch_change, describe, received
from ..report import Diagnosis


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
    diagnosis.original = str(ctx.exc)
    diagnosis.device = str(ctx.device)
    if diagnosis.source is None:
        frame = ctx.frame
        diagnosis.source = str(frame) if frame else None
    change = batch_change(ctx)
    if change is not None and diagnosis.kind != "view_batch_fold":
        diagnosis.facts.setdefault("batch_changed", [change.was, change.now])
        running = ctx.innermost
        note = (
            f"the batch changed from {change.was} to {change.now} {change.where()}: a "
            "view(-1, K) folded features into the batch"
        )
        if running is not None and change.after is running.record:
            # the fold is the cause: undo it rather than resize the layer to the folded rows
            shape = received(running)
            per_sample = math.prod(shape) // change.was if shape else None
            if diagnosis.fix is not None:
                note += f" (resizing the layer instead would be: {diagnosis.fix})"
            diagnosis.fix = "x = torch.flatten(x, 1)   (or x.view(x.size(0), -1))"
            diagnosis.fix_note = (
                f"keeps the batch of {change.was}: the layer then gets {per_sample} features per sample"
                if per_sample
                else None
            )
        else:
            note += "; keep it with x.view(x.size(0), -1) or torch.flatten(x, 1)"
        diagnosis.hint = note if diagnosis.hint is None else f"{diagnosis.hint}\n{note}"
    return diagnosis
