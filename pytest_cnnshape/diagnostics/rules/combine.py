"""torch.cat and residual adds of maps that do not line up.

Two branches that should meet at the same size do not: a U-Net's skip is 25x25
where the upsampled map is 24x24 (an input side not divisible by 2^depth), a
residual branch has a stride-2 conv that its shortcut lacks, an odd map size
meets a pooled shortcut. torch names neither tensor nor layer. Here: each
operand with its shape and the layer that made it, the axis that disagrees, and
the fix — the projection shortcut the branch needs, or the input sizes the model
works on (found by tracing it on meta at nearby sizes).
"""

from __future__ import annotations

import ast
import math
import re
import types
from collections.abc import Sequence

from torch import nn

from ... import arith
from ...shapes.tree import Shape, first_shape, format_shape
from ...tracing.failure import FailureContext
from ...tracing.records import LayerRecord, ShapeTrace
from ..common import describe
from ..edits import NewLayer
from ..fixes import layer_fix
from ..patches import TransformInput
from ..report import Candidate, Diagnosis
from ..source import (
    Operand,
    Resolver,
    call_name,
    edit_at,
    failing_node,
    frame_owner,
    given_operands,
    operands_of,
    user_traceback,
    with_op_shapes,
)
from .sizes import multiple_input_fix

_CONCAT = ("cat", "concat", "concatenate", "stack")
_ELEMENTWISE = ("add", "add_", "sub", "sub_", "mul", "mul_")


_CONCAT_WORDS = re.compile(r"Sizes of tensors must match except in dimension|stack expects each tensor")
_BROADCAST_WORDS = re.compile(r"must match the size of tensor b|Attempting to broadcast a dimension")
#: torch's number for the axis that disagrees ("in dimension 2", "non-singleton dimension 3", "at -1")
_CPU_SIZES = re.compile(r"Expected size (\d+) but got size (\d+)")
_AXIS = re.compile(
    r"(?:Expected \d+ in dimension|non-singleton dimension|broadcast a dimension of "
    r"length \d+ at) (-?\d+)"
)


def diagnose(ctx: FailureContext) -> Diagnosis | None:
    """Mismatched operands of a concatenation or an element-wise op in forward()."""
    if ctx.in_torch_layer:
        return None
    tb = user_traceback(ctx)
    node = failing_node(tb) if tb is not None else None
    name = call_name(node) if node is not None else None
    concat = name in _CONCAT or bool(_CONCAT_WORDS.search(ctx.message))
    elementwise = (
        isinstance(node, ast.BinOp | ast.AugAssign)
        or name in _ELEMENTWISE
        or bool(_BROADCAST_WORDS.search(ctx.message))
    )
    if not (concat or elementwise):
        return None
    resolver = Resolver(ctx, tb) if tb is not None else None
    operands = with_op_shapes(
        ctx, operands_of(node, resolver) if node is not None and resolver is not None else []
    ) or (given_operands(ctx, node) if concat else [])
    known = [o for o in operands if o.shape is not None]
    shapes = [o.shape for o in known if o.shape is not None]
    word = name or "cat"
    if concat and len({len(s) for s in shapes}) > 1:
        return _report(ctx, operands, "concat_rank", f"{word} joins tensors of different ranks", [], facts={})
    axis = _mismatched_axis(ctx, node, resolver, shapes=shapes, concat=concat, word=word)
    if axis is None:
        return None
    sizes = [s[axis] for s in shapes if axis < len(s)]
    what = (
        f"{word} of maps that differ on axis {axis}"
        if concat
        else f"{_op_word(node)} of maps that differ on axis {axis}"
    )
    facts: dict[str, object] = {"axis": axis, "sizes": sizes}
    candidates: list[Candidate] = []
    if not concat and tb is not None:
        if _op_word(node) != "product" and name not in ("mul", "mul_"):  # a gate is no residual
            candidates += _shortcut_fix(ctx, tb, known, facts)
        candidates += _token_fix(ctx, known, axis, facts)
    rank = len(shapes[0]) if shapes else len(ctx.model_input_shape() or ())
    if not candidates and rank >= 3 and axis >= 2:
        candidates += multiple_input_fix(ctx, facts)
    return _report(ctx, operands, "combine_mismatch", what, candidates, facts=facts)


def _mismatched_axis(
    ctx: FailureContext,
    node: ast.AST | None,
    resolver: Resolver | None,
    *,
    shapes: list[Shape],
    concat: bool,
    word: str,
) -> int | None:
    """The axis the operands disagree on: from their shapes, else from torch's message."""
    if len(shapes) >= 2:
        if concat:
            cat_axis = (
                _concat_axis(node, resolver, len(shapes[0]))
                if node is not None and resolver is not None
                else 0
            )
            bad = [
                i
                for i in range(len(shapes[0]))
                if (word == "stack" or i != cat_axis) and len({s[i] for s in shapes}) > 1
            ]
        else:
            bad = _broadcast_mismatch(shapes[0], shapes[1])
        return bad[0] if bad else None
    found = _AXIS.search(ctx.message)
    if found is None:
        # CPU words a cat mismatch without the axis: "Expected size 16 but got size 17";
        # the axis is where the one operand we know has the expected size
        sizes = _CPU_SIZES.search(ctx.message)
        if sizes is None or not shapes:
            return None
        cat_axis = (
            _concat_axis(node, resolver, len(shapes[0]))
            if concat and node is not None and resolver is not None
            else -1
        )
        want = int(sizes.group(1))
        return next((i for i, s in enumerate(shapes[0]) if s == want and i != cat_axis), None)
    axis = int(found.group(1))
    if axis < 0:  # meta counts from the end
        rank = len(shapes[0]) if shapes else len(ctx.model_input_shape() or ())
        axis += rank
    return axis if axis >= 0 else None


def _op_word(node: ast.AST | None) -> str:
    op = node.op if isinstance(node, ast.BinOp | ast.AugAssign) else None
    return (
        {ast.Add: "sum", ast.Sub: "difference", ast.Mult: "product"}.get(type(op), "element-wise op")
        if op is not None
        else "element-wise op"
    )


def _concat_axis(node: ast.AST, resolver: Resolver, rank: int) -> int:
    assert isinstance(node, ast.Call)
    axis_node = (
        node.args[1]
        if len(node.args) > 1
        else next((k.value for k in node.keywords if k.arg in ("dim", "axis")), None)
    )
    axis = resolver.constant(axis_node) if axis_node is not None else 0
    axis = axis if isinstance(axis, int) else 0
    return axis + rank if axis < 0 else axis


def _broadcast_mismatch(a: Shape, b: Shape) -> list[int]:
    """Axes (counted in the longer shape) where sizes differ and neither is 1."""
    rank = max(len(a), len(b))
    pa, pb = (1,) * (rank - len(a)) + a, (1,) * (rank - len(b)) + b
    return [i for i in range(rank) if pa[i] != pb[i] and 1 not in (pa[i], pb[i])]


def _report(
    ctx: FailureContext,
    operands: Sequence[Operand],
    kind: str,
    what: str,
    candidates: list[Candidate],
    *,
    facts: dict[str, object],
) -> Diagnosis:
    running = ctx.innermost
    record = running.record if running is not None else None
    where = f"the forward() of {describe(record)}" if record is not None else "forward()"
    details = []
    for o in operands:
        if o.shape is None:
            details.append(("operand", f"{o.text}  (its shape is not known here)"))
            continue
        made = _made_by(ctx, o)
        details.append(("operand", f"{o.text}  {format_shape(o.shape)}" + (f"    {made}" if made else "")))
    return Diagnosis(
        kind=kind,
        layer=record.name if record is not None else "",
        module_type=record.type if record is not None else type(ctx.model).__name__,
        received_shapes=tuple(o.shape for o in operands if o.shape is not None),
        headline=f"{where} failed: {what}",
        details=details,
        fix_note=_operands_note(ctx, operands, facts.get("axis")),
        candidates=candidates,
        facts=facts,
    )


def _made_by(ctx: FailureContext, operand: Operand) -> str:
    """``from features.3 (Conv2d)``, ``model input 1``: what made an operand, when known."""
    if operand.producer is not None:
        return f"from {describe(operand.producer)}"
    position = _model_input(ctx, operand)
    if position is not None:
        return f"model input {position}" if len(ctx.running[0].args) > 1 else "the model input"
    return ""


def _operands_note(ctx: FailureContext, operands: Sequence[Operand], axis: object) -> str:
    """What each operand holds on the axis that disagrees and what made it: the facts, when
    no fix verifies (the batch axis: the inputs' batches)."""
    if not isinstance(axis, int):
        return "the operands' shapes are not both known here"
    parts = []
    for o in operands:
        if o.shape is None or axis >= len(o.shape):
            continue
        made = _made_by(ctx, o)
        parts.append(f"{o.text} has {o.shape[axis]}" + (f" ({made})" if made else ""))
    said = "; ".join(parts)
    if not said:
        return f"the operands that differ on axis {axis} could not be read from the line that raised"
    if axis == 0:
        return f"axis 0 is the batch: {said}; every input of the model needs the same batch"
    return f"on axis {axis}, {said}"


def _model_input(ctx: FailureContext, operand: Operand) -> int | None:
    if not ctx.running or operand.value is None:
        return None
    return next((i for i, t in enumerate(ctx.running[0].args) if operand.value is t), None)


def _inside(ctx: FailureContext, operand: Operand) -> bool:
    """True when the operand was made inside the failing call (a branch, not the shortcut)."""
    running = ctx.innermost
    if running is None or operand.producer is None:
        return False
    start = next((i for i, r in enumerate(ctx.records) if r is running.record), None)
    made = next((i for i, r in enumerate(ctx.records) if r is operand.producer), None)
    return start is not None and made is not None and made > start


def _strided(ctx: FailureContext) -> list[LayerRecord]:
    """Leaf calls inside the failing call that downsample (stride > 1)."""
    running = ctx.innermost
    if running is None:
        return []
    out, seen = [], False
    for r in ctx.records:
        if r is running.record:
            seen = True
            continue
        module = ctx.view.module(r.name)
        stride = getattr(module, "stride", 1)
        if seen and r.is_leaf and any(s > 1 for s in (stride if isinstance(stride, tuple) else (stride,))):
            out.append(r)
    return out


def _factor(small: Shape, large: Shape) -> int | None:
    """The stride that takes sides ``large`` to ``small`` (``ceil(n / s)`` per side)."""
    fits = [st for st in range(2, 9) if all(-(-si // st) == bi for bi, si in zip(small, large, strict=True))]
    return fits[0] if fits else None


def _free_name(module: object, name: str) -> str:
    while hasattr(module, name):
        name += "_"
    return name


def _shortcut_fix(
    ctx: FailureContext, tb: types.TracebackType, operands: Sequence[Operand], facts: dict[str, object]
) -> list[Candidate]:
    """A residual sum whose branch changed channels or size and whose shortcut did not (a
    projection to add), or whose branch downsampled more than its projection (a stride to drop)."""
    inside = [o for o in operands if _inside(ctx, o)]
    outside = [o for o in operands if not _inside(ctx, o)]
    if len(operands) != 2 or not inside:
        return []
    if outside:
        branch, shortcut = inside[0], outside[0]
    else:  # both made in the block: the branch is the one more strided layers lead to
        branch, shortcut = sorted(operands, key=lambda o: o.shape[2:] if o.shape else ())
    if branch.shape is None or shortcut.shape is None:
        return []
    b, s = branch.shape, shortcut.shape
    if len(b) != len(s) or len(b) < 3:
        return []
    if outside:
        return _projection(ctx, tb, branch, shortcut, facts)
    return _double_downsample(ctx, branch, shortcut, facts)


def _projection(
    ctx: FailureContext, tb: types.TracebackType, branch: Operand, shortcut: Operand, facts: dict[str, object]
) -> list[Candidate]:
    assert branch.shape is not None and shortcut.shape is not None
    b, s = branch.shape, shortcut.shape
    dims = len(b) - 2
    stride = 1
    if b[2:] != s[2:]:
        found = _factor(b[2:], s[2:])
        if found is None:
            return []
        stride = found
    conv, norm = getattr(nn, f"Conv{dims}d"), getattr(nn, f"BatchNorm{dims}d")
    with_stride = {"stride": stride} if stride > 1 else {}
    projection = NewLayer(
        nn.Sequential,
        (
            NewLayer(
                conv,
                (s[1], b[1]),
                {"kernel_size": 1, **with_stride, "bias": False},
            ),
            NewLayer(norm, (b[1],)),
        ),
    )
    strided = [describe(r) for r in _strided(ctx)]
    why = []
    if stride > 1:
        why.append(
            f"the branch is downsampled by {stride} ({', '.join(strided) or 'a strided layer'})"
            f" and the shortcut {shortcut.text} is not"
        )
    if b[1] != s[1]:
        why.append(f"the branch has {b[1]} channels and the shortcut {s[1]}")
    facts.update(stride=stride, channels=[s[1], b[1]])
    owner = frame_owner(tb.tb_frame)
    attr = _free_name(owner, "downsample")
    edit = (
        edit_at(ctx, tb, shortcut.node, f"self.{attr}({shortcut.text})", add=((attr, projection),))
        if shortcut.node is not None
        else None
    )
    if edit is None:
        return []
    return [
        Candidate(edit, note="; ".join(why) + ": project the shortcut to match (a ResNet downsample)", cost=2)
    ]


def _double_downsample(
    ctx: FailureContext, branch: Operand, shortcut: Operand, facts: dict[str, object]
) -> list[Candidate]:
    """The main path downsamples twice (a stride on both convs), its projection once."""
    assert branch.shape is not None and shortcut.shape is not None
    factor = _factor(branch.shape[2:], shortcut.shape[2:])
    if factor is None:
        return []
    on_shortcut = shortcut.producer.name if shortcut.producer is not None else None
    strided = [
        r
        for r in _strided(ctx)
        if on_shortcut is None or not (r.name == on_shortcut or r.name.startswith(on_shortcut + "."))
    ]
    convs = [r for r in strided if isinstance(ctx.view.module(r.name), nn.modules.conv._ConvNd)]
    if len(convs) < 2:
        return []
    facts.update(stride=factor, strided=[r.name for r in convs])
    names = ", ".join(describe(r) for r in convs)
    out = []
    for order, r in enumerate(reversed(convs[1:])):  # keep the first stride, as ResNets do
        module = ctx.view.module(r.name)
        assert module is not None
        dims = len(branch.shape) - 2
        out.append(
            Candidate(
                layer_fix(r.name, module, stride=1),
                note=f"the main path downsamples {len(convs)} times ({names}) and its shortcut "
                f"{shortcut.text} once: one stride is enough",
                rank=order,
                kind="residual_double_downsample",
                facts={"stride_dims": dims},
            )
        )
    return out


def _token_fix(
    ctx: FailureContext, operands: Sequence[Operand], axis: int, facts: dict[str, object]
) -> list[Candidate]:
    """A learned table (a ViT's position embedding) added to tokens made from the input: the
    input size whose token count matches the table's.

    The tokens are the positions of a layer's map (the patch embedding) plus any fixed extra
    ones (a class token); the count is read from that layer's output in traces at other sizes
    (not from whether the model runs: a table broadcasts over a single token).
    """
    table = next((o for o in operands if isinstance(o.value, nn.Parameter) and o.shape), None)
    tokens = next((o for o in operands if o is not table and o.shape), None)
    running = ctx.innermost
    shape = ctx.model_input_shape()
    if (
        table is None
        or tokens is None
        or running is None
        or shape is None
        or len(shape) < 3
        or ctx.probe is None
    ):
        return []
    assert table.shape is not None and tokens.shape is not None
    if axis >= len(table.shape) or axis >= len(tokens.shape) or table.shape[axis] == 1:
        return []
    want, now = table.shape[axis], tokens.shape[axis]
    source = _token_source(ctx, tokens, now)
    if source is None:
        return []
    name, extra = source
    dims = len(shape) - 2
    probe = ctx.probe

    def count(side: int) -> int:
        result = probe(ctx.inputs.with_first_shape((*shape[:2], *(side,) * dims)))
        records = result.layers if isinstance(result, ShapeTrace) else result.records
        made = next((r for r in records if r.name == name and r.finished), None)
        out = first_shape(made.output_shape) if made is not None else None
        return math.prod(out[2:]) + extra if out is not None and len(out) > 2 else 0

    side = arith.smallest_input(count, want, limit=4096)
    if side is None or count(side) != want:
        return []
    fitted = (*shape[:2], *(side,) * dims)
    facts.update(tokens=want, input_side=side)
    return [
        Candidate(
            TransformInput(shape=fitted, said=f"an input of {'x'.join(map(str, fitted))}"),
            note=f"{table.text} holds {want} positions on axis {axis}; {tokens.text} has {now} "
            f"at {'x'.join(map(str, shape[2:]))} and {want} at {'x'.join(map(str, fitted[2:]))}",
            kind="position_table_size",
        )
    ]


def _token_source(ctx: FailureContext, tokens: Operand, now: int) -> tuple[str, int] | None:
    """The layer whose map positions the tokens are, and how many fixed tokens come on top."""
    for r in reversed(ctx.leaves_before()):  # the failure is in forward code: all of them ran
        out = first_shape(r.output_shape)
        if out is not None and len(out) >= 3 and tokens.shape is not None and out[0] == tokens.shape[0]:
            positions = math.prod(out[2:])
            if 0 <= now - positions <= 8:
                return r.name, now - positions
    return None
