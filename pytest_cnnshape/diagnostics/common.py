"""Small questions every rule asks: what did the layer get, who made it, how to say it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from ..shapes.tree import Shape, first_shape, format_shape
from ..tracing.lineage import INPUT, LAYER, Origin
from .report import Diagnosis

if TYPE_CHECKING:
    from ..tracing.failure import FailureContext
    from ..tracing.recorder import RunningCall
    from ..tracing.records import LayerRecord
    from .edits import Transform
    from .patches import Patch


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


def sequence_first(module: Any) -> bool:
    """A recurrent or attention layer that takes ``(T, B, ...)`` (``batch_first=False``)."""
    from torch import nn

    seq = (nn.RNNBase, nn.MultiheadAttention, nn.TransformerEncoderLayer, nn.TransformerDecoderLayer)
    return isinstance(module, seq) and not getattr(module, "batch_first", False)


def batch_change(ctx: FailureContext) -> BatchChange | None:
    """The first place where the batch size stops being the input's.

    Layers never change the batch; ``x.view(-1, K)`` with the wrong K does, by
    folding features into it, and the forward carries on with a wrong batch. A
    sequence-first layout is not a change: once the batch sits on axis 1 for a
    layer that takes ``(T, B, ...)`` (an LSTM with ``batch_first=False``), or got
    there by a permute in forward code (a CRNN's ``(T, B, C)`` for CTC), the layers
    after it see time first by design.
    """
    shape = ctx.model_input_shape()
    if shape is None or len(shape) < 2:
        return None
    batch = shape[0]
    previous: LayerRecord | None = None
    time_major = False
    for index, r in enumerate(ctx.records):
        if not r.is_leaf:
            continue
        got = first_shape(r.input_shapes)
        if got is not None and len(got) >= 2 and got[0] != batch:
            if len(got) >= 3 and got[1] == batch and (time_major or _time_major_at(ctx, index, r)):
                time_major = True
                previous = r if r.finished else previous
                continue
            produced = first_shape(previous.output_shape) if previous is not None else shape
            if produced is not None and len(produced) >= 2 and produced[0] == batch:
                return BatchChange(previous, r, batch, got[0])
            return None
        if r.finished:
            previous = r
    return None


def _time_major_at(ctx: FailureContext, index: int, record: LayerRecord) -> bool:
    if sequence_first(ctx.view.module(record.name)):
        return True
    flow = ctx.flow if ctx.probe is not None else None
    sources = flow.lineage.sources.get(index, ()) if flow is not None else ()
    moved = ("permute", "transpose", "movedim", "moveaxis", "swapaxes", "swapdims", "t")
    return bool(sources) and sources[0] is not None and any(op in moved for op in sources[0].ops)


# -- provenance: where the tensor a failing call received came from ------------------------


def input_origin(ctx: FailureContext, running: RunningCall) -> Origin | None:
    """The origin of the first tensor a running call received (``tracing.lineage``).

    From the failed run's data flow (watched again on meta when it was not); None
    when that is not known.
    """
    flow = ctx.flow
    if flow is None:
        return None
    sources = flow.lineage.sources.get(running.index, ())
    return sources[0] if sources else None


def layout_may_differ(ctx: FailureContext, running: RunningCall) -> bool:
    """True when a layout hypothesis (channels-last, a missing or extra axis) may apply.

    Only to a tensor that came from the model input or went through a reshape or
    permute in forward code: a map a layer produced has the layout that layer gives.
    """
    found = input_origin(ctx, running)
    if found is None:
        return origin(ctx, running) is None  # no data flow: only if no layer is known to have made it
    if found.kind == LAYER and 0 <= found.index < len(ctx.records):
        # layers whose outputs are channels-last by nature (an Embedding's (N, L, E), a
        # Linear's or an LSTM's (N, L, H)) feed a conv in the wrong layout as often as the input
        return channels_last_producer(ctx.view.module(ctx.records[found.index].name)) or found.reshaped
    return found.kind == INPUT or found.reshaped


def channels_first_layer_norm(module: Any, shape: Shape) -> bool:
    """A LayerNorm class of a library's over one size that moves the channels itself (timm's and
    torchvision's ``LayerNorm2d`` normalise axis 1 of an (N, C, H, W) map).

    Said by the class where it says so (ConvNeXt's ``data_format="channels_first"``, a name
    ending in ``2d``/``3d``); otherwise a class with its own forward is taken to normalise
    the channels of a map (four axes or more), not the features of tokens (timm's own
    ``LayerNorm`` overrides forward for speed and normalises the last axis)."""
    from torch import nn

    if not (
        isinstance(module, nn.LayerNorm)
        and len(module.normalized_shape) == 1
        and len(shape) >= 3
        and type(module).forward is not nn.LayerNorm.forward
    ):
        return False
    data_format = getattr(module, "data_format", None)
    if isinstance(data_format, str):
        return "first" in data_format
    name = type(module).__name__.lower()
    if name.endswith(("2d", "3d")) or "channelsfirst" in name or "channels_first" in name:
        return True
    return len(shape) >= 4


def channels_last_producer(module: Any) -> bool:
    """A layer that returns features on the last axis: Embedding, Linear, RNNs, attention,
    torch's LayerNorm."""
    from torch import nn

    kinds = (nn.Embedding, nn.Linear, nn.RNNBase, nn.MultiheadAttention, nn.TransformerEncoderLayer)
    if isinstance(module, nn.LayerNorm) and type(module).forward is nn.LayerNorm.forward:
        return True  # torch's own LayerNorm normalises the last axis: a ConvNeXt block's features
    return isinstance(module, kinds)


def from_model_input(ctx: FailureContext, running: RunningCall) -> bool:
    """True when the call received the model's first input, not reshaped on the way (nor cast:
    a float64 normalisation buffer makes a float32 batch double in forward code)."""
    got = next(iter(ctx.tensors_in(running)), None)
    given = next(iter(ctx.tensors_in(ctx.running[0])), None) if ctx.running else None
    if got is not None and given is not None and got.dtype != given.dtype:
        return False
    found = input_origin(ctx, running)
    if found is None:
        return not ctx.leaves_before(running.record) and got is not None
    return found.kind == INPUT and found.index == 0 and not found.reshaped


def input_written(ctx: FailureContext, running: RunningCall) -> str | None:
    """How the user's forward wrote the model input this layer got, where that is not the
    model's first argument itself: picked out of a dict or list batch (``batch["image"]``,
    ``inputs[1]``) or another argument (``pixel_values``); the layer call's argument on the
    forward line. None for a first argument that is a tensor, or a call not on a user's line."""
    from .source import as_written, call_site

    found = input_origin(ctx, running)
    if found is None or found.kind != INPUT or found.reshaped:
        return None
    root = ctx.running[0] if ctx.running else None
    if found.index == 0 and root is not None and root.args and isinstance(root.args[0], torch.Tensor):
        return None
    site = call_site(ctx, running)
    if site is not None:
        return as_written(site[0], site[1].args[0])
    got = next(iter(ctx.tensors_in(running)), None)
    return _picked(root, got) if root is not None and got is not None else None


def _picked(root: RunningCall, tensor: torch.Tensor) -> str | None:
    """Where ``tensor`` sits among the model's arguments, written with the forward's parameter
    names (``batch["image"]``, ``inputs[1]``): for a line we cannot read (a notebook's, a
    doctest's)."""
    import inspect

    try:
        names = list(inspect.signature(root.module.forward).parameters)
    except (TypeError, ValueError):
        return None
    values = [*zip(names, root.args, strict=False), *root.kwargs.items()]
    for name, value in values:
        path = _path_to(value, tensor)
        if path is not None:
            return name + path
    return None


def _path_to(value: Any, tensor: torch.Tensor, depth: int = 0) -> str | None:
    """``["image"]``, ``[1]`` or ``""`` when ``value`` is, or holds, ``tensor``."""
    if value is tensor:
        return ""
    if depth > 3:
        return None
    items = (
        value.items()
        if isinstance(value, dict)
        else enumerate(value)
        if isinstance(value, list | tuple)
        else ()
    )
    for key, inner in items:
        found = _path_to(inner, tensor, depth + 1)
        if found is not None:
            return f"[{key!r}]{found}".replace("'", '"') if isinstance(key, str) else f"[{key}]{found}"
    return None


def model_input_words(ctx: FailureContext, running: RunningCall) -> str:
    """``the model input``; ``the model input pixel_values`` for another argument, ``batch["image"]
    of the model input`` for a tensor picked out of a structured batch."""
    written = input_written(ctx, running)
    if not written:
        return "the model input"
    return f"the model input {written}" if written.isidentifier() else f"{written} of the model input"


def before_layer(ctx: FailureContext, running: RunningCall, transform: Transform) -> Patch:
    """A change of what a layer receives: ``transform`` of it (``x.permute(0, 3, 1, 2)``).

    At the model input when the layer gets the input itself (a tensor picked from a dict or
    list batch is changed where the forward picks it, or said in those terms); in the user's
    forward line when the layer is called there (``self.conv(x.permute(0, 3, 1, 2))``);
    otherwise as a statement before the call.
    """
    from .patches import FeedLayer, TransformInput
    from .source import edit_call_argument

    if from_model_input(ctx, running):
        written = input_written(ctx, running)
        if written is None:
            return TransformInput(transform=transform)
        picked = edit_call_argument(ctx, running, transform)
        return picked if picked is not None else TransformInput(transform=transform, written=written)
    edit = edit_call_argument(ctx, running, transform)
    if edit is not None:
        return edit
    return FeedLayer(name=running.record.name, transform=transform)
