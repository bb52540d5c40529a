"""Fixes searched along the data flow, not looked up.

A rule recognises a failure and proposes what it believes in: the layer that refused
its input accepting what it got. The search adds what the data flow offers on the
other side: the layer that *made* the tensor giving what the consumer expects (a
conv's ``out_channels``, followed back through the norms and activations that only
pass a width on), the strides and paddings of the layers inside the block whose
branches no longer meet, and any layer near the failure whose setting is the odd one
out among its siblings (the same layer of the other instances of its block). Library
blocks (torchvision, timm) are read like the user's own.

Every candidate is tried on a twin (``verify.attempt``). One that gets the model past
the failure to another of the same cause (the same wrong width reaching the next
layer, the next instance of the same block) is extended by the candidates for that
failure, up to ``MAX_SITES`` sites, and shown as one fix naming every site. The
verified ones are ranked: fewest sites, the cheapest kind of change, the root cause
over its symptom (a setting moved back to what its siblings have, away from it
last), the rule's belief.
"""

from __future__ import annotations

import ast
import math
import re
from collections import Counter
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from torch import nn

from ..shapes.tree import first_shape
from ..tracing.lineage import LAYER, Origin
from .codesearch import code_candidates
from .common import channels_first_layer_norm
from .edits import LayerEdit
from .patches import ReplaceLayer, joined
from .report import Candidate

if TYPE_CHECKING:
    from ..tracing.failure import FailureContext
    from ..tracing.modelview import ModelView
    from ..tracing.recorder import RunningCall
    from ..tracing.records import LayerRecord

#: Sites one fix may change at most (a width carried through a BatchNorm, four blocks).
MAX_SITES = 4

_CONV = nn.modules.conv._ConvNd
_NORMS = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)
_POOLS = (nn.modules.pooling._MaxPoolNd, nn.modules.pooling._AvgPoolNd)
#: Layers that give the next what they got on the channel axis.
_PASSING = (
    nn.modules.batchnorm._NormBase,
    nn.GroupNorm,
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.SiLU,
    nn.GELU,
    nn.Hardswish,
    nn.Hardsigmoid,
    nn.Sigmoid,
    nn.Tanh,
    nn.ELU,
    nn.Mish,
    nn.Identity,
    nn.modules.dropout._DropoutNd,
    nn.modules.pooling._MaxPoolNd,
    nn.modules.pooling._AvgPoolNd,
    nn.modules.pooling._AdaptiveAvgPoolNd,
    nn.modules.pooling._AdaptiveMaxPoolNd,
)


# -- siblings: what the other instances of a block have ---------------------------------------


class Siblings:
    """For each module, the same layer in the other instances of its parent's class."""

    def __init__(self, view: ModelView) -> None:
        self.view = view
        self._of_type: dict[type, list[nn.Module]] | None = None
        self._consensus: dict[tuple[str, str], Any] = {}

    def _instances(self, cls: type) -> list[nn.Module]:
        if self._of_type is None:
            self._of_type = {}
            for module in self.view.modules:
                self._of_type.setdefault(type(module), []).append(module)
        return self._of_type.get(cls, [])

    def of(self, name: str) -> list[nn.Module]:
        parent, _, attr = name.rpartition(".")
        owner = self.view.module(parent) if attr else None
        module = self.view.module(name)
        if owner is None or module is None:
            return []
        out = []
        for other in self._instances(type(owner)):
            sibling = other._modules.get(attr) if other is not owner else None
            if sibling is not None and type(sibling) is type(module):
                out.append(sibling)
        return out

    def consensus(self, name: str, setting: str) -> Any:
        """What most siblings (two at least, two thirds of them) have for ``setting``, or None."""
        key = (name, setting)
        if key not in self._consensus:
            values = [v for v in (_setting(s, setting) for s in self.of(name)) if v is not None]
            found = None
            if len(values) >= 2:
                value, count = Counter(values).most_common(1)[0]
                found = value if count * 3 >= 2 * len(values) else None
            self._consensus[key] = found
        return self._consensus[key]


def _setting(module: nn.Module, setting: str) -> Any:
    value = getattr(module, setting, None)
    if isinstance(value, list):
        value = tuple(value)
    if isinstance(value, (int, tuple, str)) and not isinstance(value, bool):
        return value
    return None


def prior(siblings: Siblings, candidate: Candidate) -> int:
    """The root cause over its symptom: +1 for each setting moved to its siblings' value, -1 for
    each moved away from it (the siblings say which layer is the odd one out); and what the
    candidate's own consensus says (``Candidate.agreed_by``)."""
    score = candidate.agreed_by
    for part in candidate.patch.parts():
        if not isinstance(part, ReplaceLayer) or not isinstance(part.recipe, LayerEdit):
            continue
        for setting, value in part.recipe.changes.items():
            agreed = siblings.consensus(part.name, setting)
            if agreed is None:
                continue
            now = _setting(part.recipe.original, setting)
            new = value if not isinstance(value, list) else tuple(value)
            same = _same_setting(new, agreed)
            if same and not _same_setting(now, agreed):
                score += 1
            elif not same and _same_setting(now, agreed):
                score -= 1
    return score


def every_instance(view: ModelView, patch: Any) -> Candidate | None:
    """The same change of the same layer in two or more instances of a block's class, made in
    every instance at once and said once, at the class (``fc2 of every SqueezeExcite (3)``):
    None when the instances' layers differ (each then keeps its own change)."""
    parts = list(patch.parts())
    if len(parts) < 2 or not all(
        isinstance(p, ReplaceLayer) and isinstance(p.recipe, LayerEdit) for p in parts
    ):
        return None
    keys = set()
    for part in parts:
        parent, _, attr = part.name.rpartition(".")
        owner = view.module(parent) if parent else None
        keys.add((type(owner), attr, part.recipe.text()))
    if len(keys) != 1:
        return None
    cls, attr, text = keys.pop()
    if cls is type(None):
        return None
    changes = parts[0].recipe.changes
    edits = []
    for owner in view.modules:
        child = owner._modules.get(attr) if type(owner) is cls else None
        if child is None:
            continue
        edit = LayerEdit(child, dict(changes))
        if edit.text() != text:
            return None  # an instance built otherwise: not one change of the class
        edits.append(ReplaceLayer(f"{view.name_of(owner)}.{attr}", edit))
    if len(edits) < len(parts):
        return None
    said = f"{attr} of every {cls.__name__} ({len(edits)}): {text}"
    return Candidate(joined(*edits, text=said, place=f"{cls.__name__}.__init__"), rank=0, cost=1)


def _same_setting(a: Any, b: Any) -> bool:
    from .edits import same

    return same(a, b)


# -- candidates from the data flow -------------------------------------------------------------


def flow_candidates(ctx: FailureContext, facts: dict[str, Any] | None = None) -> list[Candidate]:
    """What the rules do not propose: the producer's side of a width the failing layer does
    not take, and the settings of the block whose branches do not meet (``facts``: the
    rule's, ``axis`` the one they differ on)."""
    out: list[Candidate] = []
    running = ctx.innermost
    if running is None:
        return out
    axis = (facts or {}).get("axis")
    out += _producer_side(ctx, running)  # a torch layer, or a library's subclass of one
    out += _odd_contributor(ctx, running)  # one of several joined (a DenseNet's concatenation)
    if not ctx.in_torch_layer and isinstance(axis, int):
        out += _operand_producers(ctx, axis)
    if not ctx.in_torch_layer and (not isinstance(axis, int) or axis >= 2):
        out += _block_settings(ctx, running)  # the batch or the channels: not a stride's doing
    out += _odd_ones_out(ctx, running)
    out += _unbatched_input(ctx)
    out += _channels_last_input(ctx)
    out += _declared_input_size(ctx)
    out += _view_producer(ctx)
    out += _split_input(ctx, running)
    out += _fold_size(ctx, running)
    out += code_candidates(ctx)
    return out


def _unbatched_input(ctx: FailureContext) -> list[Candidate]:
    """The model input given without its batch axis: the first conv took it as one unbatched
    sample and the failure came later (a Linear after the flatten, a cat, a norm)."""
    from ..tracing.lineage import INPUT
    from .edits import method
    from .patches import TransformInput

    given = ctx.model_input_shape()
    flow = ctx.flow
    if given is None or flow is None:
        return []
    for index, record in enumerate(ctx.records):
        module = ctx.view.module(record.name)
        if not isinstance(module, _CONV):
            continue
        sources = flow.lineage.sources.get(index, ())
        shape = first_shape(record.input_shapes)
        unbatched = shape is not None and len(shape) == len(module.kernel_size) + 1
        from_input = bool(sources) and sources[0] is not None and sources[0].kind == INPUT
        if unbatched and from_input and shape == given:
            return [
                Candidate(
                    TransformInput(transform=method("unsqueeze", 0)),
                    note=f"{record.name} took the {len(shape)}-D input {list(shape)} as one sample "
                    "without a batch axis: add it",
                    rank=0,
                    kind="missing_batch_axis",
                )
            ]
        return []  # the first conv got a batch: not this
    return []


def _channels_last_input(ctx: FailureContext) -> list[Candidate]:
    """A channels-last image (N, H, W, C) refused before any conv was called (a library's patch
    embedding asserts on the sizes first): the channels moved to axis 1, where the model's
    first conv takes them."""
    from .edits import method
    from .patches import TransformInput

    given = ctx.model_input_shape()
    if (
        given is None
        or len(given) not in (3, 4, 5)
        # a conv that ran, or refused the input, says this itself (the conv rule's fix)
        or any(isinstance(ctx.view.module(r.name), _CONV) for r in ctx.records)
    ):
        return []
    first = next((m for m in ctx.view.modules if isinstance(m, _CONV)), None)
    if first is None or len(given) != len(first.kernel_size) + 2:
        return []
    channels = first.in_channels
    if given[-1] != channels or given[1] == channels:
        return []
    dims = len(first.kernel_size)
    return [
        Candidate(
            TransformInput(transform=method("permute", 0, dims + 1, *range(1, dims + 1))),
            note=f"the input has its {channels} channels on the last axis; {type(first).__name__} "
            "takes them on axis 1",
            rank=1,
            kind="channels_last",
        )
    ]


#: Attributes in which models declare the one input size they take (ViT patch embeddings).
_SIZE_ATTRIBUTES = ("img_size", "image_size", "input_size")


def _declared_input_size(ctx: FailureContext) -> list[Candidate]:
    """A model that declares the input size it takes (``PatchEmbed.img_size = (224, 224)``),
    given another: that size."""
    from .patches import TransformInput

    given = ctx.model_input_shape()
    if given is None or len(given) < 3:
        return []
    for module in ctx.view.modules:
        for attr in _SIZE_ATTRIBUTES:
            value = vars(module).get(attr)
            sides = _tuple(value) if isinstance(value, (int, tuple, list)) else None
            if sides is None or len(sides) != len(given) - 2 or not all(isinstance(v, int) for v in sides):
                continue
            if tuple(given[2:]) == sides:
                return []
            wanted = (*given[:2], *sides)
            return [
                Candidate(
                    TransformInput(shape=wanted, said=f"an input of {'x'.join(map(str, wanted))}"),
                    note=f"{ctx.view.name_of(module)} ({type(module).__name__}) is built for "
                    f"{'x'.join(map(str, sides))} ({attr}={_shown(value)})",
                    rank=1,
                    kind="declared_input_size",
                )
            ]
    return []


def _wanted_width(module: nn.Module, shape: tuple[int, ...]) -> tuple[int, int] | None:
    """(what the layer takes on its feature axis, what it got), when they differ."""
    if isinstance(module, _CONV) and len(shape) >= 2:
        got = shape[1] if len(shape) == len(module.kernel_size) + 2 else shape[0]
        return (module.in_channels, got) if got != module.in_channels else None
    if isinstance(module, nn.modules.batchnorm._NormBase) and len(shape) >= 2:
        return (module.num_features, shape[1]) if shape[1] != module.num_features else None
    if isinstance(module, nn.GroupNorm) and len(shape) >= 2:
        return (module.num_channels, shape[1]) if shape[1] != module.num_channels else None
    if isinstance(module, nn.LayerNorm) and channels_first_layer_norm(
        module, shape
    ):  # a library's LayerNorm2d: the channels on axis 1
        size = module.normalized_shape[0]
        return (size, shape[1]) if shape[1] != size else None
    if isinstance(module, nn.LayerNorm) and len(module.normalized_shape) == 1 and shape:
        size = module.normalized_shape[0]  # over the features on the last axis
        return (size, shape[-1]) if shape[-1] != size else None
    if isinstance(module, nn.Linear) and shape:
        return (module.in_features, shape[-1]) if shape[-1] != module.in_features else None
    return None


def _refused_shape(running: RunningCall) -> tuple[int, ...] | None:
    """The shape of what the failing layer got."""
    shape = first_shape(running.record.input_shape) if hasattr(running.record, "input_shape") else None
    return shape or first_shape(running.record.input_shapes)


def _width_refused(running: RunningCall) -> tuple[int, int] | None:
    """(the width the failing layer takes, the width it got), when that is why it failed."""
    shape = _refused_shape(running)
    return _wanted_width(running.module, shape) if shape is not None else None


def _producer_side(ctx: FailureContext, running: RunningCall) -> list[Candidate]:
    """The layer that made what the failing one got, giving it the width it expects."""
    wanted = _width_refused(running)
    flow = ctx.flow
    if wanted is None or flow is None:
        return []
    want, got = wanted
    sources = flow.lineage.sources.get(running.index, ())
    shape = _refused_shape(running) or ()
    tokens = isinstance(running.module, nn.LayerNorm) and not channels_first_layer_norm(running.module, shape)
    what = "features" if isinstance(running.module, nn.Linear) or tokens else "channels"
    return _made_to_give(
        ctx, sources[0] if sources else None, want, got, f"{running.record.name} expects {want} {what}"
    )


def _odd_contributor(ctx: FailureContext, running: RunningCall) -> list[Candidate]:
    """Of the layers whose outputs were joined into what the failing layer got, the one whose
    width is the odd one out by exactly what the failing layer got too many or too few:
    moved back. Odd among its siblings (a DenseNet's concatenation of every earlier layer's
    features: the same layer of the other blocks), or among the parts of its own join (a
    mixed conv's equal splits, concatenated in a block's forward).

    One producer alone is ``_producer_side``'s; here no single layer made the width, so only
    a consensus that accounts for the whole difference names one.
    """
    wanted = _width_refused(running)
    flow = ctx.flow
    if wanted is None or flow is None:
        return []
    want, got = wanted
    siblings = Siblings(ctx.view)
    out: list[Candidate] = []
    for join in _joins(ctx, running):
        parts = _joined_layers(ctx, join)
        for name, module in parts:
            others = [_setting(m, "out_channels") for n, m in parts if n != name]
            for setting in ("out_channels", "out_features"):
                now = _setting(module, setting)
                if not isinstance(now, int):
                    continue
                agreed, why, own = now + want - got, "", 0
                if siblings.consensus(name, setting) == agreed:
                    why = f"as the same layer of the other {_owner(ctx, name)} blocks has"
                elif setting == "out_channels" and others and all(w == agreed for w in others):
                    many = len(others) > 1
                    why = f"as the other {f'{len(others)} parts' if many else 'part'} of its {join.name} "
                    why += "have" if many else "has"
                    own = 1  # a consensus the siblings do not hold: counted as theirs (``prior``)
                else:
                    continue
                out.append(
                    Candidate(
                        ReplaceLayer(name, LayerEdit(module, {setting: agreed})),
                        note=f"{setting}={agreed}, {why}; joined with the others' outputs it makes "
                        f"{got} where {running.record.name} ({running.record.type}) expects {want}",
                        rank=1,
                        agreed_by=own,
                    )
                )
    return out[:2]


def _joins(ctx: FailureContext, running: RunningCall) -> list[Origin]:
    """The joins (a cat, a sum) of layers' outputs that the failing call got: made in forward
    code, or returned by a block (a mixed conv concatenating its splits)."""
    assert ctx.flow is not None
    lineage = ctx.flow.lineage
    found = []
    for source in lineage.sources.get(running.index, ()):
        origin = source
        if origin is not None and origin.kind == LAYER and not ctx.records[origin.index].is_leaf:
            returned = lineage.returned.get(origin.index, ())
            origin = returned[0] if len(returned) == 1 else None
        if origin is not None and origin.kind != LAYER:
            found.append(origin)
    return found


def _joined_layers(ctx: FailureContext, join: Origin) -> list[tuple[str, nn.Module]]:
    """The leaf layers whose outputs a join took (a block's: the layer inside that made it)."""
    parts = []
    for index in dict.fromkeys(join.layers()):
        record = ctx.records[index]
        if not record.is_leaf:
            inner = _inside_maker(ctx, Origin(LAYER, index))
            if inner is None:
                continue
            record = ctx.records[inner.index]
        module = ctx.view.module(record.name)
        if module is not None:
            parts.append((record.name, module))
    return parts


def _made_to_give(
    ctx: FailureContext, origin: Any, want: int, got: int, why: str, *, keep_even: bool = False
) -> list[Candidate]:
    """The layer ``origin`` leads to, made to give ``want`` where it gave ``got``.

    Followed back through the layers that only pass a width on (norms, activations,
    pooling); those sized for the wrong width are resized with it. A map flattened for a
    Linear counts per position: the producer's channels are ``in_features`` over them.
    ``keep_even``: leave a producer built to give what it takes (a 32 -> 32 conv): its width
    is meant, not a slip (a widening residual block lacks its projection instead).
    """
    flow = ctx.flow
    if flow is None:
        return []
    passed: list[tuple[str, nn.Module]] = []
    records = ctx.records
    while origin is not None and origin.kind == LAYER and 0 <= origin.index < len(records):
        record = records[origin.index]
        module = ctx.view.module(record.name)
        if module is None:
            return []
        out = first_shape(record.output_shape)
        inner = _inside_maker(ctx, origin) if not record.is_leaf else None
        if inner is not None:  # a block (timm's Mlp, a patch embedding): the layer inside
            origin = inner
            continue
        if _moves_axes(module, record):  # a Permute module (torchvision's ConvNeXt block)
            sources = flow.lineage.sources.get(origin.index, ())
            origin = sources[0].then("permute") if sources and sources[0] is not None else None
            continue
        if _passes_width(module, record) and not origin.reshaped:
            passed.append((record.name, module))
            sources = flow.lineage.sources.get(origin.index, ())
            origin = sources[0] if sources else None
            continue
        made = f"makes the {got}"
        cut = _chunked(origin.ops, module, got)
        if cut is not None:  # torch.chunk of its channels: each piece is what the consumer got
            pieces, sizes = cut
            made = f"makes {sum(sizes)}, which torch.chunk cuts into {pieces}: {_listed(sizes)}"
            why = f"{why}: {want * pieces} = {want} * {pieces}"
            got, want = sum(sizes), want * pieces
        width = _made_width(module, out, got, want, origin.reshaped)
        if width is None or (keep_even and _even(module)):
            return []
        setting, value = width
        edits = [ReplaceLayer(record.name, LayerEdit(module, {setting: value}))]
        for name, between in passed:
            resized = _passing_resize(between, value)
            if resized is not None:
                edits.append(ReplaceLayer(name, LayerEdit(between, resized)))
        return [
            Candidate(
                joined(*edits),
                note=f"{record.name} ({type(module).__name__}) {made}; {why}",
                rank=2,
                cost=len(edits),
            )
        ]
    return []  # the input's own width: the rules' input fixes say it


def _inside_maker(ctx: FailureContext, origin: Origin) -> Origin | None:
    """Where the output of the block call ``origin`` was made inside it: the layer whose output
    it returned (with the ops after it), or the last leaf giving the block's output shape."""
    assert ctx.flow is not None
    returned = ctx.flow.lineage.returned.get(origin.index, ())
    made_by = returned[0] if len(returned) == 1 else None
    if made_by is not None and made_by.kind == LAYER and made_by.index > origin.index:
        return Origin(LAYER, made_by.index, ops=(*made_by.ops, *origin.ops))
    records = ctx.records
    inner_leaf = _last_leaf_making(records, origin.index, first_shape(records[origin.index].output_shape))
    return Origin(LAYER, inner_leaf, ops=origin.ops) if inner_leaf is not None else None


def _parameter_free_leaf(module: nn.Module) -> bool:
    """A layer with no children and no parameters of its own: what it does to a width its
    shapes say."""
    return not module._modules and not any(True for _ in module.parameters(recurse=False))


def _passes_width(module: nn.Module, record: LayerRecord) -> bool:
    """A layer that gives the next the width it got: torch's norms, activations and pooling, or
    any layer without parameters whose output has its input's shape (a library's own
    activation class: timm's ``Sigmoid``)."""
    if isinstance(module, _PASSING):
        return True
    if not _parameter_free_leaf(module):
        return False
    given = first_shape(record.input_shapes)
    return given is not None and given == first_shape(record.output_shape)


def _moves_axes(module: nn.Module, record: LayerRecord) -> bool:
    """A layer without parameters that only re-orders its input's axes (a ``Permute``)."""
    if not _parameter_free_leaf(module):
        return False
    given, made = first_shape(record.input_shapes), first_shape(record.output_shape)
    return given is not None and made is not None and given != made and sorted(given) == sorted(made)


def _last_leaf_making(records: list[LayerRecord], index: int, out: Any) -> int | None:
    """The last leaf call inside the block call ``index`` whose output is the block's (``out``):
    what made the block's output, where a block returns its last layer's."""
    block = records[index]
    found = None
    for i in range(index + 1, len(records)):
        record = records[i]
        if not record.name.startswith(f"{block.name}.") or record.depth <= block.depth:
            break
        if record.is_leaf and first_shape(record.output_shape) == out:
            found = i
    return found


def _operand_producers(ctx: FailureContext, axis: int) -> list[Candidate]:
    """Two operands of a sum or a product whose widths differ (a residual whose branch has
    another number of channels than its shortcut): the layer that made each one giving the
    other's width."""
    from .source import Resolver, failing_node, given_operands, operands_of, user_traceback, with_op_shapes

    flow = ctx.flow
    tb = user_traceback(flow.context) if flow is not None else None
    node = failing_node(tb) if tb is not None else None
    if flow is None or tb is None or node is None:
        return []
    found = with_op_shapes(flow.context, operands_of(node, Resolver(flow.context, tb)))
    operands = [o for o in found if o.shape is not None] or given_operands(flow.context, node)
    if len(operands) != 2:
        return []
    a, b = operands
    assert a.shape is not None and b.shape is not None
    rank = max(len(a.shape), len(b.shape))  # broadcast: shapes aligned on their last axes
    padded = {id(o): (1,) * (rank - len(o.shape)) + tuple(o.shape) for o in (a, b) if o.shape is not None}
    if not 0 < axis < rank:
        return []
    # channels on axis 1; features on the last axis of a vector or of tokens (B, N, C)
    width = axis == 1 if rank > 2 else axis == rank - 1
    width = width or (rank == 3 and axis == 2)
    sizes = (padded[id(a)][axis], padded[id(b)][axis])
    if not width or sizes[0] == sizes[1] or 1 in sizes:
        return []
    out = []
    for mine, other in ((a, b), (b, a)):
        had, has = padded[id(mine)][axis], padded[id(other)][axis]
        out += _made_to_give(
            ctx, flow.lineage.origin(mine.value), has, had, f"{other.text} has {has}", keep_even=True
        )
    return out


def _chunked(ops: tuple[str, ...], module: nn.Module, got: int) -> tuple[int, list[int]] | None:
    """``torch.chunk`` of the layer's channels into pieces of which one has ``got``: how many
    pieces, and their sizes (18 into 4: 5, 5, 5, 3)."""
    if "chunk" not in ops:
        return None
    made = module.out_channels if isinstance(module, _CONV) else getattr(module, "out_features", None)
    if not isinstance(made, int) or made <= got:
        return None
    pieces = -(-made // got)
    if -(-made // pieces) != got:
        return None
    sizes = [min(got, made - i * got) for i in range(pieces) if made - i * got > 0]
    return pieces, sizes


def _listed(values: list[int]) -> str:
    return ", ".join(map(str, values))


def _even(module: nn.Module) -> bool:
    """A layer that gives as many channels (features) as it takes."""
    if isinstance(module, _CONV):
        return bool(module.in_channels == module.out_channels)
    return isinstance(module, nn.Linear) and module.in_features == module.out_features


def _made_width(
    module: nn.Module, out: tuple[int, ...] | None, got: int, want: int, reshaped: bool
) -> tuple[str, int] | None:
    """The setting of ``module`` that makes the width ``want`` where it made ``got``."""
    if isinstance(module, _CONV):
        if not reshaped and module.out_channels == got:
            if module.groups > 1 and want % module.groups:
                return None
            return "out_channels", want
        if reshaped and out is not None and len(out) >= 3 and out[1] == module.out_channels:
            positions = got // module.out_channels if module.out_channels else 0
            if positions and got == module.out_channels * positions and want % positions == 0:
                return "out_channels", want // positions
        return None
    if isinstance(module, nn.Linear) and module.out_features == got and not reshaped:
        return "out_features", want
    return None


def _passing_resize(module: nn.Module, width: int) -> dict[str, int] | None:
    """The size a width-passing layer needs for ``width`` channels, when it has one."""
    if isinstance(module, nn.modules.batchnorm._NormBase) and module.num_features != width:
        return {"num_features": width}
    if isinstance(module, nn.GroupNorm) and module.num_channels != width:
        return {"num_channels": width} if width % module.num_groups == 0 else None
    return None


def _inside(ctx: FailureContext, running: RunningCall) -> Iterator[LayerRecord]:
    """The finished leaf calls made inside the failing call (the block whose code failed)."""
    depth = running.record.depth
    for record in ctx.records[running.index + 1 :]:
        if record.depth <= depth:
            break
        if record.is_leaf and record.finished:
            yield record


def _block_settings(ctx: FailureContext, running: RunningCall) -> list[Candidate]:
    """Inside a block whose branches no longer meet (a residual add, a cat): a strided layer
    made unstrided, an unpadded conv padded to keep its map's size."""
    words = ("must match", "Sizes of tensors", "broadcast", "equal size")
    if not any(word in ctx.message for word in words):
        return []
    out: list[Candidate] = []
    for record in (*_inside(ctx, running), *_operand_makers(ctx, running)):
        module = ctx.view.module(record.name)
        if not isinstance(module, (_CONV, *_POOLS)) or isinstance(module, nn.modules.conv._ConvTransposeNd):
            continue
        stride = _tuple(getattr(module, "stride", 1) or getattr(module, "kernel_size", 1))
        if any(s > 1 for s in stride):
            out.append(
                Candidate(
                    ReplaceLayer(record.name, LayerEdit(module, {"stride": 1})),
                    note=f"{record.name} downsamples the branch its sibling does not",
                    rank=1,
                )
            )
        if isinstance(module, _CONV) and not isinstance(module.padding, str):
            kernel, dilation = _tuple(module.kernel_size), _tuple(module.dilation)
            keeping = tuple(d * (k - 1) // 2 for k, d in zip(kernel, dilation, strict=False))
            if keeping != _tuple(module.padding) and all(
                (d * (k - 1)) % 2 == 0 for k, d in zip(kernel, dilation, strict=False)
            ):
                out.append(
                    Candidate(
                        ReplaceLayer(record.name, LayerEdit(module, {"padding": keeping})),
                        note=f"{record.name} shrinks its map where its sibling branch keeps the size",
                        rank=1,
                    )
                )
    return out[:12]


def _operand_makers(ctx: FailureContext, running: RunningCall) -> Iterator[LayerRecord]:
    """The leaf calls that made the failing op's operands, followed back a few layers (a
    residual's projection made outside the block and passed in)."""
    from .source import Resolver, failing_node, operands_of, user_traceback

    flow = ctx.flow
    if flow is None:
        return
    tb = user_traceback(flow.context)
    node = failing_node(tb) if tb is not None else None
    if tb is None or node is None:
        return
    seen: set[int] = set()
    stack = [
        flow.lineage.origin(o.value)
        for o in operands_of(node, Resolver(flow.context, tb))
        if o.value is not None
    ]
    records = flow.context.records
    while stack and len(seen) < 12:
        origin = stack.pop()
        if origin is None:
            continue
        for index in origin.layers():
            if index in seen or not 0 <= index < len(records):
                continue
            seen.add(index)
            record = records[index]
            if record.is_leaf:
                yield record
            else:  # a container's call: the leaves it ran
                for inner in records[index + 1 :]:
                    if inner.depth <= record.depth:
                        break
                    if inner.is_leaf and inner.finished:
                        yield inner
            stack.extend(flow.lineage.sources.get(index, ()))


def _tuple(value: Any) -> tuple[int, ...]:
    return tuple(value) if isinstance(value, (tuple, list)) else (int(value),)


_SETTINGS = ("out_channels", "in_channels", "stride", "padding", "num_features", "in_features", "groups")


def _odd_ones_out(ctx: FailureContext, running: RunningCall) -> list[Candidate]:
    """The layers near the failure (the failing one, and those of the block it belongs to)
    whose setting differs from what all their siblings have: moved back to it."""
    siblings = Siblings(ctx.view)
    names = [running.record.name, *(r.name for r in _inside(ctx, running))]
    parent = running.record.name.rpartition(".")[0]
    if ctx.in_torch_layer and parent:
        names += [r.name for r in ctx.records if r.is_leaf and r.name.startswith(parent + ".")]
    out: list[Candidate] = []
    for name in dict.fromkeys(names):
        module = ctx.view.module(name)
        if module is None or module._modules:
            continue
        for setting in _SETTINGS:
            agreed = siblings.consensus(name, setting)
            now = _setting(module, setting)
            if agreed is None or now is None or _same_setting(now, agreed):
                continue
            out.append(
                Candidate(
                    ReplaceLayer(name, LayerEdit(module, {setting: agreed})),
                    note=f"{setting}={_shown(agreed)}, as the same layer of the other "
                    f"{_owner(ctx, name)} blocks has",
                    rank=1,
                )
            )
    return out[:6]


def _shown(value: Any) -> str:
    from .edits import literal

    return literal(value)


def _owner(ctx: FailureContext, name: str) -> str:
    owner = ctx.view.module(name.rpartition(".")[0])
    return type(owner).__name__ if owner is not None else "block"


# -- sizes a view or a layer asks for -----------------------------------------------------------

#: torch's refusal of a view: the sizes asked and the elements there are.
_INVALID_VIEW = re.compile(r"shape '\[([-\d, ]*)\]' is invalid for input of size (\d+)")


def _asked_view(ctx: FailureContext) -> tuple[list[int], int] | None:
    found = _INVALID_VIEW.search(ctx.message)
    if found is None:
        return None
    return [int(v) for v in found.group(1).split(",") if v.strip()], int(found.group(2))


def _viewed_tensor(ctx: FailureContext, fixed_sizes: bool = False) -> Any:
    """The tensor the failing ``view``/``reshape`` of forward code was called on (in the run
    the data flow describes, so that its origin is known). ``fixed_sizes``: only when the
    sizes asked are not divisions (``c // groups``: worked out from the tensor's own, they
    move with its width)."""
    from .source import Resolver, call_name, failing_node, user_traceback

    flow = ctx.flow
    if flow is not None:
        ctx = flow.context
    tb = user_traceback(ctx)
    node = failing_node(tb) if tb is not None else None
    if tb is None or not isinstance(node, ast.Call) or call_name(node) not in ("view", "reshape"):
        return None
    divided = any(
        isinstance(n, ast.BinOp) and isinstance(n.op, ast.FloorDiv | ast.Div) for n in ast.walk(node)
    )
    if fixed_sizes and divided:
        return None
    resolver = Resolver(ctx, tb)
    func = node.func
    target = func.value if isinstance(func, ast.Attribute) else None
    if target is None or not hasattr(value := resolver.value(target), "shape"):
        target = node.args[0] if node.args else None  # torch.reshape(x, ...)
        value = resolver.value(target) if target is not None else None
    return value if hasattr(value, "shape") and hasattr(value, "dtype") else None


def _view_producer(ctx: FailureContext) -> list[Candidate]:
    """A view asking for another number of elements than the tensor has (a YOLO head's
    ``view(b, anchors, 5 + classes, h, w)`` given 255 channels for one class): the layer
    that made the tensor giving the width the view's sizes add up to."""
    asked = _asked_view(ctx)
    flow = ctx.flow
    if asked is None or flow is None or ctx.in_torch_layer:
        return []
    sizes, numel = asked
    tensor = _viewed_tensor(ctx, fixed_sizes=True)
    if tensor is None or -1 in sizes or tensor.dim() < 2 or tensor.numel() != numel:
        return []
    shape = tuple(tensor.shape)
    got = shape[1] if len(shape) > 2 else shape[-1]  # a map's channels, a Linear's features
    per = numel // got if got else 0
    total = math.prod(sizes)
    if not per or total % per or total // per == got:
        return []
    want = total // per
    return _made_to_give(
        ctx,
        flow.lineage.origin(tensor),
        want,
        got,
        f"the view's sizes {sizes} need {total} = {want} * {per} elements",
    )


def _split_factors(shape: tuple[int, ...], asked: list[int]) -> dict[int, int] | None:
    """Which axes of ``shape`` a view splits into ``(n // f, f)`` (a window or a space-to-depth
    block) where ``n`` is not a multiple of ``f``: axis -> f. None when the sizes do not line up
    that way."""
    out: dict[int, int] = {}
    j = 0
    for axis, n in enumerate(shape):
        if j < len(asked) and asked[j] == n:
            j += 1
            continue
        if j + 1 >= len(asked):
            return None
        a, b = asked[j], asked[j + 1]
        if a * b == n:  # split evenly
            pass
        elif b > 1 and n % b and a == n // b:
            out[axis] = b
        elif a > 1 and n % a and b == n // a:
            out[axis] = a
        else:
            return None
        j += 2
    return out if j == len(asked) else None


#: torch's own check of a side a layer splits (pixel_unshuffle on real tensors).
_NOT_DIVISIBLE = re.compile(r"input\.size\((-?\d+)\)=(\d+) is not divisible by (\d+)")


def _splits(ctx: FailureContext, running: RunningCall) -> tuple[tuple[int, ...], dict[int, int], str] | None:
    """The tensor a split refused, its axes -> the multiple each must be, and what was asked."""
    if ctx.in_torch_layer:
        shape = first_shape(running.record.input_shapes)
    else:
        tensor = _viewed_tensor(ctx)
        shape = tuple(tensor.shape) if tensor is not None else None
    if shape is None:
        return None
    asked = _asked_view(ctx)
    found = _NOT_DIVISIBLE.search(ctx.message)
    factors: dict[int, int] | None = None
    if asked is not None:
        factors = _split_factors(shape, asked[0])
    elif found is not None and ctx.in_torch_layer:
        axis, size, factor = (int(g) for g in found.groups())
        factors = {axis % len(shape): factor} if shape[axis % len(shape)] == size else None
    if not factors:
        return None
    who = f"{running.record.name} ({running.record.type})" if ctx.in_torch_layer else "the view"
    cuts = ", ".join(f"axis {axis} ({shape[axis]}) into blocks of {f}" for axis, f in factors.items())
    return shape, factors, f"{who} cuts {cuts}"


def _split_input(ctx: FailureContext, running: RunningCall) -> list[Candidate]:
    """An input whose sides a split further on cannot take (a PixelUnshuffle or space-to-depth
    stem, Swin's windows): the sides rounded to the multiple the split needs, scaled by what
    the layers before it divide them by."""
    from .patches import TransformInput

    given = ctx.model_input_shape()
    split = _splits(ctx, running) if given is not None and len(given) >= 3 else None
    if split is None or given is None:
        return []
    shape, factors, what = split
    spatial = list(range(2, len(given)))
    multiples: dict[int, int] = {}
    for axis, factor in sorted(factors.items()):
        if not spatial:
            return []
        fits = [k for k in spatial if given[k] >= shape[axis]]  # a side the layers shrank, not channels
        if not fits:
            return []
        k = min(fits, key=lambda k: abs(given[k] / shape[axis] - max(1, round(given[k] / shape[axis]))))
        spatial = [s for s in spatial if s > k]
        multiples[k] = max(1, round(given[k] / shape[axis])) * factor
    out: list[Candidate] = []
    for rank, rounding in enumerate((math.ceil, math.floor)):
        sides = list(given)
        for k, m in multiples.items():
            sides[k] = max(m, rounding(given[k] / m) * m)
        wanted = tuple(sides)
        if wanted == tuple(given) or any(
            out_c.patch.text.endswith("x".join(map(str, wanted))) for out_c in out
        ):
            continue
        said = ", ".join(f"{given[k]} -> {wanted[k]}" for k in multiples)
        out.append(
            Candidate(
                TransformInput(shape=wanted, said=f"an input of {'x'.join(map(str, wanted))}"),
                note=f"sides that are multiples of {', '.join(map(str, dict.fromkeys(multiples.values())))} "
                f"({said}): {what}",
                rank=1 + rank,
            )
        )
    return out


def _fold_size(ctx: FailureContext, running: RunningCall) -> list[Candidate]:
    """An ``nn.Fold`` built for another map than its blocks tile: the ``output_size`` of the
    Unfold that made them, or of their square grid; or the input the Fold was built for."""
    from .common import output_of
    from .patches import TransformInput

    module = running.module
    shape = first_shape(running.record.input_shapes)
    if not isinstance(module, nn.Fold) or shape is None or not ctx.in_torch_layer:
        return []
    blocks = shape[-1]
    settings = ("kernel_size", "dilation", "padding", "stride")
    dims = len(_tuple(module.output_size))

    def pairs(m: nn.Module) -> tuple[tuple[int, ...], ...]:
        return tuple(
            _tuple(getattr(m, s)) * (dims if len(_tuple(getattr(m, s))) == 1 else 1) for s in settings
        )

    mine = pairs(module)
    found: list[tuple[int, ...]] = []
    given = ctx.model_input_shape()
    inputs: list[Candidate] = []
    for record in ctx.records:
        unfold = ctx.view.module(record.name)
        made, took = output_of(record), first_shape(record.input_shapes)
        if not isinstance(unfold, nn.Unfold) or made is None or took is None or pairs(unfold) != mine:
            continue
        if made[-1] == blocks:
            found.append(tuple(took[-dims:]))
        if given is not None and took == tuple(given):
            wanted = (*given[:-dims], *_tuple(module.output_size))
            inputs.append(
                Candidate(
                    TransformInput(shape=wanted, said=f"an input of {'x'.join(map(str, wanted))}"),
                    note=f"{ctx.view.name_of(module)} is built for {_shown(module.output_size)}",
                    rank=2,
                )
            )
    side = math.isqrt(blocks)
    if dims == 2 and side * side == blocks:
        kernel, dilation, padding, stride = mine
        found.append(
            tuple(
                (side - 1) * s - 2 * p + d * (k - 1) + 1
                for k, d, p, s in zip(kernel, dilation, padding, stride, strict=False)
            )
        )
    kernel, dilation, padding, stride = mine
    sides_now = _tuple(module.output_size) * (dims if len(_tuple(module.output_size)) == 1 else 1)
    tiles = math.prod(
        (n + 2 * p - d * (k - 1) - 1) // s + 1
        for n, k, d, p, s in zip(
            sides_now,
            kernel,
            dilation,
            padding,
            stride,
            strict=False,
        )
    )
    headline = (
        f"{running.record.name} (Fold) cannot take its input: {blocks} blocks do not tile its "
        f"{'x'.join(map(str, sides_now))} output ({tiles} do)"
    )
    out = [
        Candidate(
            ReplaceLayer(running.record.name, LayerEdit(module, {"output_size": sides})),
            note=f"{blocks} blocks of {_shown(module.kernel_size)} tile a {'x'.join(map(str, sides))} map",
            rank=1,
            kind="fold_output_size",
            headline=headline,
        )
        for sides in dict.fromkeys(found)
        if sides != _tuple(module.output_size)
    ]
    for candidate in inputs:
        candidate.kind, candidate.headline = "fold_output_size", headline
    return out + inputs[:1]
