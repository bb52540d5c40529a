"""Small questions every rule asks: what did the layer get, who made it, how to say it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..shapes.tree import Shape, first_shape, format_shape
from .report import Diagnosis

if TYPE_CHECKING:
    from ..tracing.failure import FailureContext
    from ..tracing.recorder import RunningCall
    from ..tracing.records import LayerRecord


def describe(record: LayerRecord) -> str:
    """``features.5 (MaxPool2d)``; ``(root)`` for the model itself."""
    return f"{record.label} ({record.type})"


def received(running: RunningCall) -> Shape | None:
    """Shape of the first tensor a call received."""
    return first_shape(running.record.input_shapes)


def input_of(record: LayerRecord) -> Shape | None:
    """Shape of the first tensor a recorded call received."""
    return first_shape(record.input_shapes)


def output_of(record: LayerRecord) -> Shape | None:
    """Shape of the (first) tensor a recorded call returned."""
    return first_shape(record.output_shape)


def layer_diagnosis(ctx: FailureContext, kind: str, problem: str, **fields: Any) -> Diagnosis:
    """A Diagnosis about the innermost running call: ``name (Type) <problem>``."""
    running = ctx.innermost
    assert running is not None
    record = running.record
    return Diagnosis(
        kind=kind,
        layer=record.name,
        module_type=record.type,
        received_shapes=record.input_shapes,
        headline=f"{describe(record)} {problem}",
        **fields,
    )


def received_line(shape: Shape, origin: str = "") -> str:
    """``[1, 800]    flattened from ...``: the ``received`` detail."""
    return format_shape(shape) + (f"    {origin}" if origin else "")


def last_map(ctx: FailureContext, record: LayerRecord, min_rank: int = 3) -> LayerRecord | None:
    """The most recent finished leaf before ``record`` whose output is a feature map."""
    for r in reversed(ctx.leaves_before(record)):
        shape = first_shape(r.output_shape)
        if shape is not None and len(shape) >= min_rank:
            return r
    return None


def origin(ctx: FailureContext, running: RunningCall) -> LayerRecord | None:
    """The call that made the tensor a running call received.

    The exact producer when the hooks saw it returned; otherwise the last leaf
    before it if that one's output has the same shape (forward code such as
    ``F.relu`` may sit between them); None for the model input or the unknown.
    """
    tensors = list(ctx.tensors_in(running))
    if tensors:
        made = ctx.producer(tensors[0])
        if made is not None:
            return made
    before = previous_leaf(ctx, running.record)
    if before is not None and output_of(before) == received(running):
        return before
    return None


def previous_leaf(ctx: FailureContext, record: LayerRecord) -> LayerRecord | None:
    """The finished leaf call just before ``record``."""
    before = ctx.leaves_before(record)
    return before[-1] if before else None


@dataclass(frozen=True)
class BatchChange:
    """Forward code between two layers changed the batch size."""

    before: LayerRecord | None  # None: the model input
    after: LayerRecord
    was: int
    now: int

    def where(self) -> str:
        """``between features.5 (MaxPool2d) and fc (Linear)``."""
        start = describe(self.before) if self.before is not None else "the model input"
        return f"between {start} and {describe(self.after)}"


def batch_change(ctx: FailureContext) -> BatchChange | None:
    """The first place where the batch size stops being the input's.

    Layers never change the batch; ``x.view(-1, K)`` with the wrong K does, by
    folding features into it, and the forward carries on with a wrong batch.
    """
    shape = ctx.model_input_shape()
    if shape is None or len(shape) < 2:
        return None
    batch = shape[0]
    previous: LayerRecord | None = None
    for r in ctx.records:
        if not r.is_leaf:
            continue
        got = first_shape(r.input_shapes)
        if got is not None and len(got) >= 2 and got[0] != batch:
            produced = first_shape(previous.output_shape) if previous is not None else shape
            if produced is not None and len(produced) >= 2 and produced[0] == batch:
                return BatchChange(previous, r, batch, got[0])
            return None
        if r.finished:
            previous = r
    return None
