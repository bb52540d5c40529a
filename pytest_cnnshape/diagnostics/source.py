"""The expression in the user's forward() that raised, and what its operands hold.

Python 3.11+ records, for every instruction, the exact span of source it came
from; the traceback's last instruction thus points at ``torch.cat([u, s1], 1)``
or ``out + identity`` inside a longer line. The operands are then read from the
frame's local variables, without running any of the user's code: names,
attributes, constant subscripts, and ``self.layer(...)`` calls resolved to what
that layer last returned in the trace.
"""

from __future__ import annotations

import ast
import dataclasses
import linecache
import operator
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import types

    from ..tracing.failure import FailureContext
    from ..tracing.recorder import RunningCall
    from ..tracing.records import LayerRecord
    from .edits import NewLayer, Transform
    from .patches import EditSource


@dataclass(frozen=True)
class Operand:
    """One operand of the failing expression: its source text and what it is."""

    text: str
    #: The tensor itself when the frame holds it; None when only its shape is known.
    value: Any
    shape: tuple[int, ...] | None
    #: The layer call that produced it, when known.
    producer: LayerRecord | None
    #: Its expression in the failing line (None for an item of a list built elsewhere).
    node: ast.AST | None = None


@lru_cache(maxsize=64)
def _parse(filename: str, size: int) -> ast.Module | None:
    source = "".join(linecache.getlines(filename))
    try:
        return ast.parse(source)
    except SyntaxError:
        return None


def failing_node(tb: types.TracebackType) -> ast.AST | None:
    """The AST node of the instruction that raised in this traceback entry."""
    code = tb.tb_frame.f_code
    filename = code.co_filename
    lines = linecache.getlines(filename)
    tree = _parse(filename, len(lines)) if lines else None
    if tree is None:
        return None
    positions = getattr(code, "co_positions", None)
    if positions is not None:
        try:
            start, end, col, end_col = list(positions())[tb.tb_lasti // 2]
        except (IndexError, ValueError):
            start = end = col = end_col = None
        if start is not None:
            for node in ast.walk(tree):
                if (
                    getattr(node, "lineno", None),
                    getattr(node, "col_offset", None),
                    getattr(node, "end_lineno", None),
                    getattr(node, "end_col_offset", None),
                ) == (start, col, end, end_col):
                    return node
    # Python 3.10: the first call or operation on the line
    for node in ast.walk(tree):
        if (
            isinstance(node, (ast.Call, ast.BinOp, ast.AugAssign))
            and getattr(node, "lineno", None) == tb.tb_lineno
        ):
            return node
    return None


def user_traceback(ctx: FailureContext) -> types.TracebackType | None:
    """The innermost traceback entry of forward code: the user's, or a library's (a
    torchvision or timm block reads like the user's own), never torch's own layers."""
    from ..tracing.failure import is_torch_file, is_user_file

    tb = ctx.exc.__traceback__
    found = None
    while tb is not None:
        code = tb.tb_frame.f_code
        if is_user_file(code.co_filename):
            found = tb
        elif not is_torch_file(code.co_filename):
            owner = frame_owner(tb.tb_frame)
            if owner is not None and id(owner) in ctx.view.names:
                found = tb
        tb = tb.tb_next
    return found


def frame_owner(frame: types.FrameType) -> Any:
    """The object a method runs on: its first argument (``self``, whatever its name)."""
    code = frame.f_code
    if code.co_argcount < 1:
        return None
    return frame.f_locals.get(code.co_varnames[0])


def library_line(tb: types.TracebackType) -> str | None:
    """``torchvision/models/resnet.py:150: out += identity`` when the frame is an installed
    package's (the path from the package on), None for the user's own code."""
    from ..tracing.failure import is_user_file, package_path

    filename = tb.tb_frame.f_code.co_filename
    code = linecache.getline(filename, tb.tb_lineno).strip()
    if filename.startswith("<eval_with_key>"):  # torch.fx's generated code
        return f"the generated forward of an fx GraphModule: {code}" if code else None
    if is_user_file(filename) or filename.startswith("<"):
        return None
    return f"{package_path(filename)}:{tb.tb_lineno}: {code}"


_MISSING = object()
#: Integer arithmetic people write in shapes: ``16 * 5 * 5``, ``c // 2``.
_INT_OPS: dict[type, Any] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.FloorDiv: operator.floordiv,
}


class Resolver:
    """Reads operand expressions against a frame, never calling the user's code."""

    def __init__(self, ctx: FailureContext, tb: types.TracebackType) -> None:
        self.ctx = ctx
        self.locals = tb.tb_frame.f_locals
        self.globals = tb.tb_frame.f_globals

    def value(self, node: ast.AST) -> Any:  # noqa: C901  (one branch per expression kind read without running it)
        """The object an expression names, or ``_MISSING``."""
        if isinstance(node, ast.Name):
            if node.id in self.locals:
                return self.locals[node.id]
            return self.globals.get(node.id, _MISSING)
        if isinstance(node, ast.Attribute):
            base = self.value(node.value)
            if base is _MISSING:
                return _MISSING
            try:
                return getattr(base, node.attr)
            except Exception:  # a property of the user's that raises: not ours to report
                return _MISSING
        if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant | ast.UnaryOp):
            base = self.value(node.value)
            index = self.constant(node.slice)
            if base is _MISSING or not isinstance(index, int) or not isinstance(base, list | tuple):
                return _MISSING
            try:
                return base[index]
            except IndexError:
                return _MISSING
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            inner = self.value(node.operand)
            return -inner if isinstance(inner, int) else _MISSING
        if isinstance(node, ast.BinOp) and type(node.op) in _INT_OPS:
            left, right = self.constant(node.left), self.constant(node.right)
            if left is _MISSING or right is _MISSING or (right == 0 and type(node.op) is ast.FloorDiv):
                return _MISSING
            return _INT_OPS[type(node.op)](left, right)
        return _MISSING

    def constant(self, node: ast.AST) -> Any:
        """An int written in the code (``1``, ``-1``), or ``_MISSING``."""
        value = self.value(node)
        return value if isinstance(value, int) and not isinstance(value, bool) else _MISSING

    def operand(self, node: ast.AST) -> Operand:
        """Text, tensor, shape and producer of one operand expression."""
        text = ast.unparse(node)
        value = self.value(node)
        if value is not _MISSING and hasattr(value, "shape") and hasattr(value, "dtype"):
            shape = tuple(value.shape)
            return Operand(text, value, shape, self.ctx.producer(value), node)
        called = self._layer_call(node)
        if called is not None:
            from .common import output_of

            return Operand(text, None, output_of(called), called, node)
        return Operand(text, None, None, None, node)

    def _layer_call(self, node: ast.AST) -> LayerRecord | None:
        """``self.up(b)``: the last finished call of that layer in this forward."""
        if not isinstance(node, ast.Call):
            return None
        module = self.value(node.func)
        if module is _MISSING or not hasattr(module, "_modules"):
            return None
        name = self.ctx.view.name_of(module)
        calls = [r for r in self.ctx.records if r.name == name and r.finished]
        return calls[-1] if calls else None


def with_op_shapes(ctx: FailureContext, operands: list[Operand]) -> list[Operand]:
    """Operands whose shape the frame does not hold (``self._shortcut(x)``) get the shapes and
    the tensors the failing op was given (the failed run's data flow), when they line up one
    to one."""
    if all(o.shape is not None and o.value is not None for o in operands) or not operands:
        return operands
    flow = ctx.flow
    given = flow.functional.failed_tensors if flow is not None else ()
    if len(given) != len(operands) or any(
        o.shape not in (None, tuple(t.shape)) for o, t in zip(operands, given, strict=True)
    ):
        return operands
    return [
        o if o.value is not None else dataclasses.replace(o, value=t, shape=tuple(t.shape))
        for o, t in zip(operands, given, strict=True)
    ]


def given_operands(ctx: FailureContext, node: ast.AST | None) -> list[Operand]:
    """The tensors the failing op was given, where its line does not say them one by one (a
    list built by an expression: ``torch.cat(to_cat + [x])``), named by their place in it."""
    flow = ctx.flow
    if flow is None:
        return []
    ops = flow.functional
    if isinstance(node, ast.Call) and node.args:
        listed = node.args[0]
        text = ast.unparse(listed)
        base = text if isinstance(listed, ast.Name | ast.Attribute) else f"({text})"
        names = [f"{base}[{i}]" for i in range(len(ops.failed_tensors))]
    else:
        op = ops.failed_name.strip("_") or "op"
        names = [f"tensor {i} of torch.{op}" for i in range(len(ops.failed_tensors))]
    return [
        Operand(name, t, tuple(t.shape), ctx.producer(t))
        for name, t in zip(names, ops.failed_tensors, strict=True)
    ]


def operands_of(node: ast.AST, resolver: Resolver) -> list[Operand]:
    """The tensors an expression combines: cat/stack list items, or the two sides of an op."""
    if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.List | ast.Tuple):
        return [resolver.operand(e) for e in node.args[0].elts]
    if isinstance(node, ast.Call) and node.args:
        items = resolver.value(node.args[0])
        if isinstance(items, list | tuple):
            return [
                Operand(f"{ast.unparse(node.args[0])}[{i}]", t, tuple(t.shape), resolver.ctx.producer(t))
                for i, t in enumerate(items)
                if hasattr(t, "shape")
            ]
    if isinstance(node, ast.BinOp):
        return [resolver.operand(node.left), resolver.operand(node.right)]
    if isinstance(node, ast.AugAssign):
        return [resolver.operand(node.target), resolver.operand(node.value)]
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.args
        and node.func.attr in ("add", "add_", "sub", "sub_", "mul", "mul_")
    ):
        if isinstance(node.func.value, ast.Name) and node.func.value.id == "torch":
            return [resolver.operand(a) for a in node.args[:2]]  # torch.add(x, y)
        return [resolver.operand(node.func.value), resolver.operand(node.args[0])]  # x.add(y)
    return []


def call_name(node: ast.AST) -> str | None:
    """``cat`` for ``torch.cat(...)``, ``view`` for ``x.view(...)``."""
    if isinstance(node, ast.Call):
        func = node.func
        if isinstance(func, ast.Attribute):
            return func.attr
        if isinstance(func, ast.Name):
            return func.id
    return None


# -- fixes written into the user's forward line ----------------------------------------------


def _span(node: ast.AST) -> tuple[int, int, int, int] | None:
    where = (
        getattr(node, "lineno", None),
        getattr(node, "col_offset", None),
        getattr(node, "end_lineno", None),
        getattr(node, "end_col_offset", None),
    )
    return None if None in where else where  # type: ignore[return-value]


def edit_at(
    ctx: FailureContext,
    tb: types.TracebackType,
    node: ast.AST,
    code: str,
    add: tuple[tuple[str, NewLayer], ...] = (),
) -> EditSource | None:
    """The patch that replaces ``node`` of the frame ``tb`` by ``code`` (an expression: the
    method's syntax tree is edited, never the text run), with ``add`` new submodules of
    the frame's owner (None when the frame is not a plain method of one of the model's
    modules, whose source we can recompile)."""
    from torch import nn

    from .patches import EditSource, function_of

    frame = tb.tb_frame
    owner = frame_owner(frame)
    span = _span(node)
    if not isinstance(owner, nn.Module) or span is None:
        return None
    name = ctx.view.names.get(id(owner))
    function = function_of(owner, frame.f_code)
    if name is None or function is None:
        return None
    method = type(owner).__dict__.get(function)
    shared = any(
        m is not owner and getattr(type(m), function, None) is getattr(type(owner), function, method)
        for m in ctx.view.modules
    )
    return EditSource(
        owner=name,
        function=function,
        filename=frame.f_code.co_filename,
        span=span,
        code=code,
        add=add,
        shared=shared,
    )


def operand_text(node: ast.AST) -> str:
    """Source of an operand, parenthesised where a method call on it would need it."""
    text = ast.unparse(node)
    simple = isinstance(node, ast.Name | ast.Attribute | ast.Call | ast.Subscript)
    return text if simple else f"({text})"


def as_written(tb: types.TracebackType, node: ast.AST) -> str:
    """An operand as the user wrote it (their quotes, their spacing) where it sits on one line
    of the frame's file; ``operand_text`` otherwise."""
    shown = operand_text(node)
    span = _span(node)
    if span is None or span[0] != span[2]:
        return shown
    line = linecache.getline(tb.tb_frame.f_code.co_filename, span[0]).encode()
    text = line[span[1] : span[3]].decode(errors="replace")
    try:
        same = operand_text(ast.parse(text, mode="eval").body) == shown
    except SyntaxError:  # the file changed since the frame ran
        return shown
    return (text if shown == ast.unparse(node) else f"({text})") if same else shown


def call_site(ctx: FailureContext, running: RunningCall) -> tuple[types.TracebackType, ast.Call] | None:
    """The call of the failing layer in the user's forward (``self.conv(x)``), if it is there."""
    tb = user_traceback(ctx)
    node = failing_node(tb) if tb is not None else None
    if tb is None or not isinstance(node, ast.Call) or not node.args:
        return None
    if Resolver(ctx, tb).value(node.func) is not running.module:
        return None
    return tb, node


def edit_call_argument(ctx: FailureContext, running: RunningCall, transform: Transform) -> EditSource | None:
    """``self.conv(x)`` -> ``self.conv(x.permute(0, 3, 1, 2))``: ``transform`` of the failing
    layer's first argument, at the line of the user's forward that calls it."""
    site = call_site(ctx, running)
    if site is None:
        return None
    tb, node = site
    argument = node.args[0]
    return edit_at(ctx, tb, argument, transform.expression(as_written(tb, argument)))


# -- the method around the failing line ---------------------------------------------------------


def function_node(tb: types.TracebackType) -> ast.FunctionDef | None:
    """The ``def`` of the frame's code in its file's syntax tree (the method that failed)."""
    code = tb.tb_frame.f_code
    lines = linecache.getlines(code.co_filename)
    tree = _parse(code.co_filename, len(lines)) if lines else None
    if tree is None:
        return None
    found = None
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            and node.name == code.co_name
            and node.lineno <= tb.tb_lineno <= (node.end_lineno or node.lineno)
        ):
            found = node  # the innermost wins: walk goes outside-in
    return found  # type: ignore[return-value]


def _stored(target: ast.AST) -> Iterator[str]:
    for node in ast.walk(target):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            yield node.id


def assigned_value(function: ast.AST, name: str, before: int) -> ast.expr | None:
    """The expression last assigned to ``name`` above line ``before`` (``mx, _ = torch.max(x, 1)``
    gives ``torch.max(x, 1)``), None when it was not assigned in a plain statement."""
    found: ast.expr | None = None
    line = 0
    for node in ast.walk(function):
        if not isinstance(node, ast.Assign | ast.AnnAssign) or node.lineno >= before or node.value is None:
            continue
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        if any(name in _stored(t) for t in targets) and node.lineno >= line:
            found, line = node.value, node.lineno
    return found


def stores_between(function: ast.AST, name: str, start: int, end: int) -> bool:
    """Whether ``name`` is assigned on lines ``start`` to ``end`` (both included)."""
    return any(
        isinstance(node, ast.Name)
        and isinstance(node.ctx, ast.Store)
        and node.id == name
        and start <= node.lineno <= end
        for node in ast.walk(function)
    )
