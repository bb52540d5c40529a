"""view/reshape in forward(): the hand-computed flatten that stopped fitting.

``x.view(-1, 16 * 5 * 5)`` is written for one input size. With another it either
fails ("shape '[-1, 400]' is invalid for input of size 800") or, worse, succeeds
by folding features into the batch axis. The fix that survives every input size
keeps the batch axis and lets torch count the rest: ``torch.flatten(x, 1)`` or
``x.view(x.size(0), -1)`` — with the Linear after it told the real number (or
made an ``nn.LazyLinear``).
"""

from __future__ import annotations

import ast
import math
import re
from typing import TYPE_CHECKING, Any

from torch import nn

from ...shapes.tree import format_shape
from ...tracing.failure import FailureContext
from ..common import describe
from ..fixes import layer_fix, product
from ..patches import Patch, joined
from ..report import Candidate, Diagnosis
from ..source import Operand, Resolver, call_name, edit_at, failing_node, operand_text, user_traceback

if TYPE_CHECKING:
    import types

_RESHAPES = ("view", "reshape", "flatten", "unflatten", "view_as", "reshape_as")
_MESSAGES = re.compile(
    r"is invalid for input of size|view size is not compatible|cannot reshape", re.IGNORECASE
)


def diagnose(ctx: FailureContext) -> Diagnosis | None:
    """A view or reshape in the user's forward() that the tensor cannot take."""
    if ctx.in_torch_layer or not _MESSAGES.search(ctx.message):
        return None
    tb = user_traceback(ctx)
    node = failing_node(tb) if tb is not None else None
    if tb is None or not isinstance(node, ast.Call) or call_name(node) not in _RESHAPES:
        return None
    resolver = Resolver(ctx, tb)
    func = node.func
    target = (
        func.value
        if isinstance(func, ast.Attribute)
        and not (isinstance(func.value, ast.Name) and func.value.id == "torch")
        else (node.args[0] if node.args else None)
    )
    if target is None:
        return None
    operand = resolver.operand(target)
    running = ctx.innermost
    record = running.record if running is not None else None
    where = f"the forward() of {describe(record)}" if record is not None else "forward()"
    call = ast.unparse(node)
    if "not compatible" in ctx.message:
        return _not_contiguous(ctx, tb, node, operand, where)
    if operand.shape is None:
        return None
    shape = operand.shape
    numel = math.prod(shape)
    made = f"    from {describe(operand.producer)}" if operand.producer is not None else ""
    base: dict[str, Any] = {
        "layer": record.name if record is not None else "",
        "module_type": record.type if record is not None else type(ctx.model).__name__,
        "received_shapes": (shape,),
    }
    batch = shape[0] if len(shape) >= 2 else 1
    per_sample = numel // batch if batch else numel
    linear = _expecting_linear(ctx, node, resolver)
    note = f"keeps the batch axis: [{batch}, {per_sample}], {per_sample} = {product(shape[1:])}"
    candidates = []
    edit = edit_at(ctx, tb, node, f"torch.flatten({operand_text(target)}, 1)")
    if edit is not None:
        patch: Patch = edit
        if linear is not None and linear.in_features != per_sample:
            patch = joined(edit, layer_fix(ctx.view.name_of(linear), linear, in_features=per_sample))
        candidates.append(Candidate(patch, note=note))
    return Diagnosis(
        kind="view_size",
        **base,
        headline=f"{where} failed: {call} does not fit a tensor of {numel} elements",
        details=[
            ("tensor", f"{operand.text}  {format_shape(shape)}{made}"),
            ("asks", f"{call}: {_asks(node, resolver, numel)}"),
            *_remainders(node, resolver),
        ],
        candidates=candidates,
        hint=f"nn.LazyLinear({linear.out_features}) after torch.flatten(x, 1) infers the size for any input"
        if linear is not None
        else None,
        facts={"numel": numel, "per_sample": per_sample},
    )


def _not_contiguous(
    ctx: FailureContext, tb: types.TracebackType, node: ast.Call, operand: Operand, where: str
) -> Diagnosis:
    """A ``view`` of a tensor a transpose or permute left out of memory order: that very call
    made a ``reshape`` (in a chain, the one that failed, not the first ``view`` of the line)."""
    running = ctx.innermost
    record = running.record if running is not None else None
    func = node.func
    edit = None
    if isinstance(func, ast.Attribute) and func.attr == "view":
        reshaped = ast.Call(ast.Attribute(func.value, "reshape", ast.Load()), node.args, node.keywords)
        edit = edit_at(ctx, tb, node, ast.unparse(reshaped))
    received = (operand.shape,) if operand.shape is not None else (record.input_shapes if record else ())
    details = [("tensor", f"{operand.text}  {format_shape(operand.shape)}")] if operand.shape else []
    return Diagnosis(
        kind="view_not_contiguous",
        layer=record.name if record is not None else "",
        module_type=record.type if record is not None else type(ctx.model).__name__,
        received_shapes=received,
        headline=f"{where} failed: {ast.unparse(node)} needs a contiguous tensor",
        details=details,
        candidates=[
            Candidate(
                edit,
                note="after permute/transpose the elements are not in memory order; reshape "
                "copies when it must (or call .contiguous() before .view)",
            )
        ]
        if edit is not None
        else [],
    )


def _asks(node: ast.Call, resolver: Resolver, numel: int) -> str:
    """What the requested shape means for this many elements."""
    sizes = [resolver.constant(a) for a in node.args if not isinstance(a, ast.Starred)]
    if sizes and all(isinstance(s, int) for s in sizes):
        known = math.prod(s for s in sizes if s != -1)
        if -1 in sizes:
            return f"rows of {known}, but {numel} is not a multiple of {known}"
        return f"{known} elements, but the tensor has {numel}"
    return f"a shape that {numel} elements do not fill"


def _remainders(node: ast.Call, resolver: Resolver) -> list[tuple[str, str]]:
    """The floor divisions among the sizes asked that leave a remainder: ``c // groups`` with
    116 channels in 3 groups is 38, and 3 * 38 = 114 leaves 2 channels out."""
    out = []
    for arg in node.args:
        for part in ast.walk(arg):
            if not (isinstance(part, ast.BinOp) and isinstance(part.op, ast.FloorDiv)):
                continue
            left, right = resolver.constant(part.left), resolver.constant(part.right)
            if not (isinstance(left, int) and isinstance(right, int)) or right <= 0 or left % right == 0:
                continue
            out.append(
                (
                    "because",
                    f"{ast.unparse(part)} is {left} // {right} = {left // right}: {left} is not divisible by "
                    f"{right}, and {right} * {left // right} = {right * (left // right)} leaves "
                    f"{left % right} out",
                )
            )
    return out


def _expecting_linear(ctx: FailureContext, node: ast.Call, resolver: Resolver) -> nn.Linear | None:
    """The Linear the view was written for: one whose in_features is the asked row size (a
    view that flattens: a batch and one row)."""
    if len(node.args) != 2:
        return None
    sizes = [resolver.constant(a) for a in node.args]
    row = next((s for s in reversed(sizes) if isinstance(s, int) and s > 0), None)
    for module in ctx.view.modules:
        if isinstance(module, nn.Linear) and module.in_features == row:
            return module
    return None
