"""Fixes in forward code, searched from the expression that failed.

A failing line says what it did (a matrix product, a cat, an unpooling) and its frame
holds the operands. The edits tried here are what such a line most often lacks: an
operand transposed for a product, the ``keepdim=True`` without which a reduction
dropped the axis the other operand still has (or that axis put back), the
``output_size=`` a ``MaxUnpool`` needs to undo an odd-sized pooling. Each is only a
candidate: the search tries it on a twin like every other, and a line the user did
not write (a library's) is believed last. (The unpooling's edit is the MaxUnpool
rule's, ``rules.upsample``.)
"""

from __future__ import annotations

import ast
import inspect
from typing import TYPE_CHECKING

from torch import nn

from .report import Candidate
from .source import (
    Resolver,
    assigned_value,
    call_name,
    call_site,
    edit_at,
    failing_node,
    function_node,
    operand_text,
    operands_of,
    stores_between,
    user_traceback,
)

if TYPE_CHECKING:
    import types

    from ..tracing.failure import FailureContext
    from .patches import EditSource

_MATMULS = ("bmm", "matmul", "mm")
#: Reductions that drop the axis they reduce unless told ``keepdim=True``.
_REDUCTIONS = (
    "max",
    "min",
    "mean",
    "sum",
    "amax",
    "amin",
    "std",
    "var",
    "median",
    "prod",
    "logsumexp",
    "norm",
    "nanmean",
    "nansum",
    "any",
    "all",
)
_COMBINES = ("cat", "concat", "concatenate", "stack", "add", "sub", "mul", "div", "where")
#: Axes tried for an operand that lost one, at most.
_AXES_TRIED = 2


def code_candidates(ctx: FailureContext) -> list[Candidate]:
    """Edits of the failing expression (or of the one that made its operand)."""
    tb = user_traceback(ctx)
    node = failing_node(tb) if tb is not None else None
    if tb is None or node is None:
        return []
    return [*_transposed_operand(ctx, tb, node), *_dropped_axis(ctx, tb, node)]


def _is_module(resolver: Resolver, node: ast.AST) -> bool:
    return inspect.ismodule(resolver.value(node))


def _product_operands(resolver: Resolver, node: ast.AST) -> list[ast.expr]:
    """The two sides of ``a @ b``, ``torch.bmm(a, b)`` or ``a.bmm(b)``."""
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.MatMult):
        return [node.left, node.right]
    if not isinstance(node, ast.Call) or call_name(node) not in _MATMULS:
        return []
    func = node.func
    if isinstance(func, ast.Attribute) and not _is_module(resolver, func.value):
        return [func.value, *node.args[:1]]
    return list(node.args[:2])


def _transposed_operand(ctx: FailureContext, tb: types.TracebackType, node: ast.AST) -> list[Candidate]:
    """A matrix product whose inner sizes differ, but would meet with one side transposed."""
    resolver = Resolver(ctx, tb)
    sides = _product_operands(resolver, node)
    found = [resolver.operand(side).shape for side in sides]
    shapes = [s for s in found if s is not None]
    if len(sides) != 2 or len(shapes) != 2:
        return []
    a, b = shapes
    if len(a) < 2 or len(b) < 2 or a[-1] == b[-2]:
        return []
    out = []
    for i, side in enumerate(sides):
        shape = shapes[i]
        flipped = (*shape[:-2], shape[-1], shape[-2])
        if (flipped[-1] != b[-2]) if i == 0 else (a[-1] != flipped[-2]):
            continue
        edit = edit_at(ctx, tb, side, f"{operand_text(side)}.transpose(-2, -1)")
        if edit is not None:
            out.append(
                Candidate(
                    edit,
                    note=f"the product needs {a[-1]} (the last axis of {ast.unparse(sides[0])}) to equal "
                    f"{b[-2]} (the second last of {ast.unparse(sides[1])}); {ast.unparse(side)} "
                    f"transposed is {list(flipped)}",
                    rank=1,
                    kind="matmul_shapes",
                )
            )
    return out


def _made_by(function: ast.AST | None, node: ast.AST, line: int) -> ast.Call | None:
    """The call that made an operand: its own expression, or what its name was assigned
    (``mx, _ = torch.max(x, 1)``, ``m = x.max(1)[0]``, ``m = x.max(dim=1).values``)."""
    value: ast.AST | None = node
    if isinstance(node, ast.Name):
        value = assigned_value(function, node.id, line) if function is not None else None
    while isinstance(value, ast.Subscript | ast.Attribute) and not isinstance(value, ast.Call):
        value = value.value
    return value if isinstance(value, ast.Call) else None


def _with_keyword(call: ast.Call, name: str, value: bool) -> str:
    edited = ast.Call(call.func, list(call.args), [*call.keywords, ast.keyword(name, ast.Constant(value))])
    return ast.unparse(edited)


def _dropped_axis(ctx: FailureContext, tb: types.TracebackType, node: ast.AST) -> list[Candidate]:
    """Operands of a cat or an elementwise op, one with an axis fewer than the others: the
    reduction that made it told ``keepdim=True``, or the axis put back where it went."""
    if not isinstance(node, ast.BinOp) and call_name(node) not in _COMBINES:
        return []
    resolver = Resolver(ctx, tb)
    operands = operands_of(node, resolver)
    shapes = [o.shape for o in operands]
    if len(operands) < 2 or any(s is None for s in shapes):
        return []
    rank = max(len(s) for s in shapes if s is not None)
    full = next(s for s in shapes if s is not None and len(s) == rank)
    function = function_node(tb)
    out: list[Candidate] = []
    for operand in operands:
        shape = operand.shape
        if shape is None or len(shape) != rank - 1 or operand.node is None:
            continue
        made = _made_by(function, operand.node, tb.tb_lineno)
        if (
            made is not None
            and call_name(made) in _REDUCTIONS
            and not any(k.arg == "keepdim" for k in made.keywords)
            and (made.args or made.keywords)
        ):
            edit = edit_at(ctx, tb, made, _with_keyword(made, "keepdim", True))
            if edit is not None:
                out.append(
                    Candidate(
                        edit,
                        note=f"{ast.unparse(made)} drops the axis it reduces: {operand.text} is "
                        f"{list(shape)} next to {list(full)}; keepdim=True keeps that axis as 1",
                        rank=0,
                    )
                )
        axes = [d for d in range(rank) if (*full[:d], *full[d + 1 :]) == tuple(shape)]
        for axis in axes[:_AXES_TRIED]:
            edit = edit_at(ctx, tb, operand.node, f"{operand_text(operand.node)}.unsqueeze({axis})")
            if edit is not None:
                out.append(
                    Candidate(
                        edit,
                        note=f"{operand.text} is {list(shape)}, one axis fewer than {list(full)}: "
                        f"put it back at {axis}",
                        rank=1,
                    )
                )
    return out


# -- MaxUnpool: the size before the pooling ------------------------------------------------------


def unpool_output_size(ctx: FailureContext) -> list[Candidate]:
    """``self.unpool(y, idx)`` -> ``self.unpool(y, idx, output_size=x.shape)``, ``x`` being what
    the pooling that made ``idx`` was given (kept under a name when the pooling's own line
    reassigns it, or when it is an expression). Tried for the failing unpooling alone and for
    every unpooling of its method up to it: an odd side lost by an earlier one fails later."""
    running = ctx.innermost
    if running is None or not isinstance(running.module, nn.modules.pooling._MaxUnpoolNd):
        return []
    site = call_site(ctx, running)
    function = function_node(site[0]) if site is not None else None
    if site is None or function is None:
        return []
    tb, failing = site
    resolver = Resolver(ctx, tb)
    unpools = sorted(
        (
            node
            for node in ast.walk(function)
            if isinstance(node, ast.Call)
            and node.lineno <= failing.lineno
            and isinstance(resolver.value(node.func), nn.modules.pooling._MaxUnpoolNd)
        ),
        key=lambda node: (node.lineno, node.col_offset),
    )
    out = []
    for calls in ([failing], unpools) if len(unpools) > 1 else ([failing],):
        edits = _sized(ctx, tb, function, resolver, calls)
        if edits:
            from .patches import joined

            out.append(
                Candidate(
                    joined(*edits),
                    note="without output_size= a MaxUnpool gives the smallest map that pools to what it "
                    "got, a side short of an odd one; output_size= the map the pooling saw",
                    rank=0,
                )
            )
    return out


def _sized(
    ctx: FailureContext, tb: types.TracebackType, function: ast.AST, resolver: Resolver, calls: list[ast.Call]
) -> list[EditSource]:
    """The edits giving each unpooling of ``calls`` the size its indices' pooling saw (none when
    one of them cannot be followed to its pooling)."""
    edits: list[EditSource | None] = []
    for call in calls:
        if len(call.args) > 2 or any(k.arg == "output_size" for k in call.keywords):
            continue
        indices = call.args[1] if len(call.args) == 2 else None
        if not isinstance(indices, ast.Name):
            return []
        pool = _made_by(function, indices, call.lineno)
        if pool is None or not pool.args or not _returns_indices(resolver, pool):
            return []
        given = pool.args[0]
        if isinstance(given, ast.Name) and not stores_between(
            function, given.id, pool.lineno, call.lineno - 1
        ):
            size = f"{given.id}.shape"
        else:
            kept = f"{indices.id}_input"
            size = f"{kept}.shape"
            edits.append(edit_at(ctx, tb, given, f"{kept} := {ast.unparse(given)}"))
        edits.append(edit_at(ctx, tb, call, _with_keyword_text(call, "output_size", size)))
    if not edits or any(e is None for e in edits):
        return []
    return sorted((e for e in edits if e is not None), key=lambda e: e.span)


def _returns_indices(resolver: Resolver, call: ast.Call) -> bool:
    module = resolver.value(call.func)
    return isinstance(module, nn.modules.pooling._MaxPoolNd) and bool(module.return_indices)


def _with_keyword_text(call: ast.Call, name: str, code: str) -> str:
    value = ast.parse(code, mode="eval").body
    return ast.unparse(ast.Call(call.func, list(call.args), [*call.keywords, ast.keyword(name, value)]))
