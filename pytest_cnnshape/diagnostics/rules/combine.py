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
import re
from collections.abc import Sequence

from ...shapes.tree import Shape, format_shape
from ...tracing.failure import FailureContext
from ...tracing.records import ShapeTrace
from ..common import describe
from ..report import Diagnosis
from ..source import Operand, Resolver, call_name, failing_node, operands_of, user_traceback

_CONCAT = ("cat", "concat", "concatenate", "stack")
_ELEMENTWISE = ("add", "add_", "sub", "sub_", "mul", "mul_")
#: Multiples tried when looking for the input-size rule (2^depth of a U-Net).
_MULTIPLES = (2, 4, 8, 16, 32, 64, 128)


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
    operands = operands_of(node, resolver) if node is not None and resolver is not None else []
    known = [o for o in operands if o.shape is not None]
    shapes = [o.shape for o in known if o.shape is not None]
    word = name or "cat"
    if concat and len({len(s) for s in shapes}) > 1:
        return _report(
            ctx, operands, "concat_rank", f"{word} joins tensors of different ranks", fix=None, facts={}
        )
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
    fix = None
    if not concat:
        fix = _shortcut_fix(ctx, known, facts)
    rank = len(shapes[0]) if shapes else len(ctx.model_input_shape() or ())
    if fix is None and rank >= 3 and axis >= 2:
        fix = _input_size_fix(ctx, facts)
    return _report(ctx, operands, "combine_mismatch", what, fix=fix, facts=facts)


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
    *,
    fix: tuple[str, str] | None,
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
        made = (
            f"from {describe(o.producer)}"
            if o.producer is not None
            else ("the model input" if o.value is not None and _is_model_input(ctx, o) else "")
        )
        details.append(("operand", f"{o.text}  {format_shape(o.shape)}" + (f"    {made}" if made else "")))
    return Diagnosis(
        kind=kind,
        layer=record.name if record is not None else "",
        module_type=record.type if record is not None else type(ctx.model).__name__,
        received_shapes=tuple(o.shape for o in operands if o.shape is not None),
        headline=f"{where} failed: {what}",
        details=details,
        fix=fix[0] if fix else None,
        fix_note=fix[1]
        if fix
        else "the operands come from the layers above; make their sizes agree on that axis",
        facts=facts,
    )


def _is_model_input(ctx: FailureContext, operand: Operand) -> bool:
    return any(operand.value is t for t in ctx.running[0].args) if ctx.running else False


def _inside(ctx: FailureContext, operand: Operand) -> bool:
    """True when the operand was made inside the failing call (a branch, not the shortcut)."""
    running = ctx.innermost
    if running is None or operand.producer is None:
        return False
    start = next((i for i, r in enumerate(ctx.records) if r is running.record), None)
    made = next((i for i, r in enumerate(ctx.records) if r is operand.producer), None)
    return start is not None and made is not None and made > start


def _strided(ctx: FailureContext) -> list[str]:
    """Layers inside the failing call that downsample (stride > 1)."""
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
            out.append(describe(r))
    return out


def _shortcut_fix(
    ctx: FailureContext, operands: Sequence[Operand], facts: dict[str, object]
) -> tuple[str, str] | None:
    """A residual sum whose branch changed channels or size and whose shortcut did not."""
    branch = next((o for o in operands if _inside(ctx, o)), None)
    shortcut = next((o for o in operands if not _inside(ctx, o)), None)
    if branch is None or shortcut is None or branch.shape is None or shortcut.shape is None:
        return None
    b, s = branch.shape, shortcut.shape
    if len(b) != len(s) or len(b) < 3:
        return None
    dims = len(b) - 2
    stride = 1
    if b[2:] != s[2:]:
        # the stride of a 1x1 conv that takes the shortcut's sides to the branch's
        fits = [
            st for st in range(2, 9) if all(-(-si // st) == bi for bi, si in zip(b[2:], s[2:], strict=True))
        ]
        if not fits:
            return None
        stride = fits[0]
    conv, norm = f"nn.Conv{dims}d", f"nn.BatchNorm{dims}d"
    projection = (
        f"nn.Sequential({conv}({s[1]}, {b[1]}, kernel_size=1"
        + (f", stride={stride}" if stride > 1 else "")
        + f", bias=False), {norm}({b[1]}))"
    )
    strided = _strided(ctx)
    why = []
    if stride > 1:
        why.append(
            f"the branch is downsampled by {stride} ({', '.join(strided) or 'a strided layer'})"
            f" and the shortcut {shortcut.text} is not"
        )
    if b[1] != s[1]:
        why.append(f"the branch has {b[1]} channels and the shortcut {s[1]}")
    facts.update(stride=stride, channels=[s[1], b[1]])
    return (
        f"{shortcut.text} = self.downsample({shortcut.text}) with self.downsample = {projection}",
        "; ".join(why) + ": project the shortcut to match (a ResNet downsample)",
    )


def _input_size_fix(ctx: FailureContext, facts: dict[str, object]) -> tuple[str, str] | None:
    """Sizes that differ by rounding: find the multiple the input sides must be (2^depth)."""
    shape = ctx.model_input_shape()
    probe = ctx.probe
    if shape is None or probe is None or len(shape) < 3:
        return None
    sides = shape[2:]
    for m in _MULTIPLES:
        if all(s % m == 0 for s in sides):
            continue
        first = tuple(-(-s // m) * m for s in sides)
        second = tuple(f + m for f in first)
        if all(
            isinstance(probe(ctx.inputs.with_first_shape((*shape[:2], *c))), ShapeTrace)
            for c in (first, second)
        ):
            example = "x".join(map(str, (*shape[:2], *first)))
            pad = ", ".join(f"0, {f - s}" for f, s in reversed(list(zip(first, sides, strict=True))))
            facts.update(multiple=m, example=[*shape[:2], *first])
            return (
                f"input sides that are multiples of {m}, e.g. {example}",
                f"the map sizes round down on the way down and double on the way up; pad the "
                f"input to it: F.pad(x, ({pad}))",
            )
    return None
