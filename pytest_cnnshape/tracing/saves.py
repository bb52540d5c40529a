"""What autograd saves for backward, op by op: for counting a training step's memory.

Two users. A training-memory pass that runs with autograd on counts what autograd
saves; the shortcuts of ``metamode`` answer normalisation layers and activations
without torch's slow meta kernels, but an answer made of ``torch.empty_like`` has no
autograd history, so when a shortcut's inputs need a graph its answer is wrapped in
``Shortcut``, an autograd Function that saves what torch's own kernel saves for that
call (``with_graph``). And a pass with autograd off (a meta trace's own forward: no
graph, every size rule answering, no ``torch._dynamo``) asks ``saved_by`` what
autograd *would* save: the same inputs (by identity, so storages are shared the same
way), the output, or fresh tensors of the same shapes and dtypes, given which
tensors would require grad. Conditions are torch's (CPU kernels, torch 2.13/2.14): a
Linear saves its input only when its weight needs a gradient, a product saves each
operand only when the other one needs one, a max-pool its indices, a mean nothing.
``tests/tracing/test_saves.py`` compares every rule with torch's autograd.

An op missing here, or a call a rule does not know, is for the caller to handle:
the shortcut runs torch's kernel, the counting pass falls back to autograd.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F

from .metarules import tensor_arguments

#: Whether a tensor needs a gradient (``t.requires_grad`` under autograd, the counting
#: pass's own bookkeeping without it).
Grad = Callable[[torch.Tensor], bool]

#: ``rule(grad, out, *args, **kwargs)`` -> the tensors autograd saves (None entries allowed),
#: or None when the rule does not know the call.

SaveRule = Callable[..., tuple[Any, ...] | None]

_LOW_PRECISION = (torch.float16, torch.bfloat16)


def _opmath(dtype: torch.dtype) -> torch.dtype:
    """The dtype statistics are kept in: float32 for half and bfloat16 inputs."""
    return torch.float32 if dtype in _LOW_PRECISION else dtype


class Fresh(NamedTuple):
    """A tensor autograd would make and keep (statistics, indices, a noise mask, a copy):
    its own storage of this shape and dtype. The pass without autograd counts its bytes;
    a graph node saves a meta tensor made of it (``made``)."""

    shape: tuple[int, ...]
    dtype: torch.dtype

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize

    def made(self) -> torch.Tensor:
        return torch.empty(self.shape, dtype=self.dtype, device="meta")


def _fresh(shape: tuple[int, ...], dtype: torch.dtype) -> Fresh:
    return Fresh(tuple(shape), dtype)


def _batch_norm(  # noqa: PLR0917  (mirrors F.batch_norm)
    grad: Grad,
    out: Any,
    input: Any,
    running_mean: Any = None,
    running_var: Any = None,
    weight: Any = None,
    bias: Any = None,
    training: bool = False,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> tuple[Any, ...]:
    stats = (input.shape[1],)
    kind = _opmath(input.dtype)
    return (
        input,
        running_mean,
        running_var,
        weight,
        _fresh(stats, kind),
        _fresh(stats, kind),
    )


def _group_norm(  # noqa: PLR0917  (mirrors F.group_norm)
    grad: Grad, out: Any, input: Any, num_groups: int, weight: Any = None, bias: Any = None, eps: float = 1e-5
) -> tuple[Any, ...]:
    stats = (input.shape[0], num_groups)
    return (input, weight, _fresh(stats, input.dtype), _fresh(stats, input.dtype))


def _layer_norm(  # noqa: PLR0917  (mirrors F.layer_norm)
    grad: Grad,
    out: Any,
    input: Any,
    normalized_shape: Any,
    weight: Any = None,
    bias: Any = None,
    eps: float = 1e-5,
) -> tuple[Any, ...]:
    axes = 1 if isinstance(normalized_shape, int) else len(tuple(normalized_shape))
    stats = (*input.shape[: input.dim() - axes], *(1,) * axes)
    kind = _opmath(input.dtype)
    return (input, weight, bias, _fresh(stats, kind), _fresh(stats, kind))


#: What an activation saves: its output, its input, or a copy of its input.
OUT, INPUT, COPY = "out", "input", "copy"


def _activation(plain: str, inplace: str) -> SaveRule:
    """An activation that saves ``plain`` out of place and ``inplace`` when it runs in place."""

    def rule(grad: Grad, out: Any, input: Any, *args: Any, **kwargs: Any) -> tuple[Any, ...]:
        what = inplace if out is input else plain
        if what == OUT:
            return (out,)
        if what == INPUT:
            return (input,)
        return (_fresh(tuple(input.shape), input.dtype),)

    return rule


def _dropout(rank: int | None) -> SaveRule:
    """Dropout keeps its noise: the input's shape, or (N, C, 1, ...) for feature dropout.

    Counted as in training whatever ``training`` says: a training step's forward drops.
    """

    def rule(  # noqa: PLR0917  (mirrors F.dropout)
        grad: Grad, out: Any, input: Any, p: float = 0.5, training: bool = True, inplace: bool = False
    ) -> Any:
        if not 0.0 < p < 1.0:
            return None  # p = 0 returns the input itself, p = 1 multiplies by a scalar
        shape = tuple(input.shape) if rank is None else (*input.shape[:2], *(1,) * (input.dim() - 2))
        return (_fresh(shape, input.dtype),)

    return rule


# -- the size rules' ops, for the pass without autograd ------------------------------------


def _window(grad: Grad, out: Any, input: Any, weight: Any = None, *args: Any, **kwargs: Any) -> Any:
    """Convolutions save their input and weight, whichever needs the gradient."""
    return (input, weight)


def _linear(grad: Grad, out: Any, input: Any, weight: Any, bias: Any = None) -> Any:
    """``addmm``/``mm``: the input only for the weight's gradient, the weight only for the input's."""
    return (input if grad(weight) else None, weight if grad(input) else None)


def _operands(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, Any]:
    """The two operands of a binary op, passed by position or by torch's names."""
    a = args[0] if args else kwargs.get("input", kwargs.get("self"))
    b = args[1] if len(args) > 1 else kwargs.get("other", kwargs.get("mat2"))
    return a, b


def _product(grad: Grad, out: Any, *args: Any, **kwargs: Any) -> Any:
    """``a * b``, ``a @ b``: each operand is saved for the other's gradient."""
    a, b = _operands(args, kwargs)
    if not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)):
        return ()  # a product with a number keeps the number
    return (b if grad(a) else None, a if grad(b) else None)


def _quotient(grad: Grad, out: Any, *args: Any, **kwargs: Any) -> Any:
    """``a / b``: the divisor for either gradient, the dividend for the divisor's."""
    a, b = _operands(args, kwargs)
    if kwargs.get("rounding_mode") is not None:
        return None  # floor and trunc division have no gradient worth the name: not counted
    if not isinstance(b, torch.Tensor):
        return ()
    if not isinstance(a, torch.Tensor):
        return None  # a number over a tensor: not a call this knows
    return (b, a if grad(b) else None)


def _indices(out: Any, input: Any) -> torch.Tensor | Fresh:
    """A pooling's argmax: the one it returned, or the one it made and kept."""
    if isinstance(out, tuple):
        return out[1]  # type: ignore[no-any-return]
    return _fresh(tuple(out.shape), torch.int64)


def _max_pool(grad: Grad, out: Any, input: Any, *args: Any, **kwargs: Any) -> Any:
    return (input, _indices(out, input))


def _avg_pool(grad: Grad, out: Any, input: Any, *args: Any, **kwargs: Any) -> Any:
    return (input,)


def _adaptive_avg(grad: Grad, out: Any, input: Any, *args: Any, **kwargs: Any) -> Any:
    """A global average is a mean (keeps nothing); any other size keeps its input."""
    return () if all(s == 1 for s in out.shape[2:]) else (input,)


def _output(grad: Grad, out: Any, *args: Any, **kwargs: Any) -> Any:
    return (out,)


def _first_input(grad: Grad, out: Any, input: Any, *args: Any, **kwargs: Any) -> Any:
    return (input,)


def _pad(  # noqa: PLR0917  (mirrors F.pad)
    grad: Grad, out: Any, input: Any, pad: Any, mode: str = "constant", value: Any = None
) -> Any:
    return () if mode == "constant" else (input,)


def _embedding(grad: Grad, out: Any, input: Any, weight: Any, *args: Any, **kwargs: Any) -> Any:
    return (input if grad(weight) else None,)


def _amax(grad: Grad, out: Any, input: Any, *args: Any, **kwargs: Any) -> Any:
    return (input, out)


def _nothing(grad: Grad, out: Any, *args: Any, **kwargs: Any) -> Any:
    return ()


SAVES: dict[Any, SaveRule] = {
    F.batch_norm: _batch_norm,
    F.group_norm: _group_norm,
    F.layer_norm: _layer_norm,
    F.relu: _activation(OUT, OUT),
    torch.relu: _activation(OUT, OUT),
    torch.sigmoid: _activation(OUT, OUT),
    torch.tanh: _activation(OUT, OUT),
    F.relu6: _activation(INPUT, COPY),
    F.hardtanh: _activation(INPUT, COPY),
    F.silu: _activation(INPUT, COPY),
    F.hardswish: _activation(INPUT, COPY),
    F.mish: _activation(INPUT, COPY),
    F.leaky_relu: _activation(INPUT, INPUT),
    F.elu: _activation(INPUT, INPUT),
    F.gelu: _activation(INPUT, INPUT),
    F.dropout: _dropout(None),
    F.dropout1d: _dropout(3),
    F.dropout2d: _dropout(4),
    F.dropout3d: _dropout(5),
}

_T = torch.Tensor

#: Ops the size rules answer, and their neighbours in a CNN, for the pass without
#: autograd (``saved_by``); the shortcuts' rules above count there too.
COUNTED: dict[Any, SaveRule] = {
    **SAVES,
    **dict.fromkeys((torch.conv1d, torch.conv2d, torch.conv3d), _window),
    **dict.fromkeys((torch.conv_transpose1d, torch.conv_transpose2d, torch.conv_transpose3d), _window),
    F.linear: _linear,
    **dict.fromkeys((torch.matmul, _T.matmul, torch.mm, _T.mm, torch.bmm, _T.bmm), _product),
    **dict.fromkeys((torch.mul, _T.mul, _T.__rmul__), _product),
    **dict.fromkeys((torch.div, _T.div, _T.__truediv__), _quotient),
    **dict.fromkeys(
        (
            F.max_pool1d,
            F.max_pool2d,
            F.max_pool3d,
            F.max_pool1d_with_indices,
            F.max_pool2d_with_indices,
            F.max_pool3d_with_indices,
            F.adaptive_max_pool1d,
            F.adaptive_max_pool2d,
            F.adaptive_max_pool3d,
            F.adaptive_max_pool1d_with_indices,
            F.adaptive_max_pool2d_with_indices,
            F.adaptive_max_pool3d_with_indices,
        ),
        _max_pool,
    ),
    **dict.fromkeys((F.avg_pool1d, F.avg_pool2d, F.avg_pool3d), _avg_pool),
    **dict.fromkeys((F.adaptive_avg_pool1d, F.adaptive_avg_pool2d, F.adaptive_avg_pool3d), _adaptive_avg),
    **dict.fromkeys((F.softmax, F.log_softmax, _T.softmax, _T.log_softmax, _T.sigmoid, _T.tanh), _output),
    **dict.fromkeys((_T.relu, _T.relu_, torch.relu_), _activation(OUT, OUT)),
    **dict.fromkeys((F.hardsigmoid, F.softplus, F.selu, F.celu, F.logsigmoid), _first_input),
    F.pad: _pad,
    F.embedding: _embedding,
    **dict.fromkeys((torch.amax, _T.amax), _amax),
}

#: Ops whose backward needs no tensor (sizes, dims and scalars only): sums, means,
#: concatenation, padding with a constant, upsampling, and every view or copy of a layout.
NOTHING_SAVED = frozenset(
    {
        torch.add, _T.add, _T.add_, _T.__iadd__, _T.__radd__,
        torch.sub, _T.sub, _T.sub_, _T.__isub__, _T.__rsub__,
        torch.neg, _T.neg, _T.__neg__,
        torch.cat, torch.concat, torch.stack,
        torch.mean, _T.mean, torch.sum, _T.sum,
        torch.flatten, _T.flatten, _T.view, _T.view_as, torch.reshape, _T.reshape, _T.reshape_as,
        torch.permute, _T.permute, torch.transpose, _T.transpose, _T.t, torch.t, _T.contiguous,
        torch.squeeze, _T.squeeze, torch.unsqueeze, _T.unsqueeze, _T.expand, _T.expand_as,
        torch.chunk, _T.chunk, torch.split, _T.split, torch.narrow, _T.narrow, _T.__getitem__,
        _T.unflatten, torch.unflatten, _T.movedim, torch.movedim, _T.repeat, torch.clone, _T.clone,
        F.interpolate, F.pixel_shuffle, F.pixel_unshuffle, F.upsample, F.upsample_nearest,
        F.upsample_bilinear, _T.float, _T.to, _T.type_as,
    }
)  # fmt: skip

#: Ops whose result never needs a gradient, whatever went in.
NO_GRADIENT = frozenset({_T.detach, torch.detach, _T.detach_, _T.argmax, torch.argmax, _T.argmin})


def saved_by(func: Any, grad: Grad, out: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """What autograd would save for ``func(*args, **kwargs)`` returning ``out``, given which
    tensors need a gradient (``grad``): a tuple of tensors and Nones, or None when this op
    (or this call of it) is not known here."""
    if func in NOTHING_SAVED:
        return ()
    rule = COUNTED.get(func)
    if rule is None:
        return None
    try:
        return rule(grad, out, *args, **kwargs)
    except (TypeError, AttributeError, IndexError):  # a call shape the rule does not know
        return None


class _Answer:
    """A shortcut's answer and what to save, handed to ``Shortcut`` as one non-tensor
    argument: a fresh answer passed as a tensor would count as an input returned as
    it is (a view), which a later in-place op may not modify."""

    __slots__ = ("out", "saved")

    def __init__(self, out: torch.Tensor, saved: tuple[Any, ...]) -> None:
        self.out, self.saved = out, saved


class Shortcut(torch.autograd.Function):
    """A shortcut's answer as a node of the autograd graph, saving what torch would.

    Only for counting: the graph of a meta pass is never run backward.
    """

    @staticmethod
    def forward(ctx: Any, answer: _Answer, *inputs: Any) -> torch.Tensor:
        ctx.save_for_backward(*answer.saved)
        out = answer.out
        if inputs and out is inputs[0]:
            ctx.mark_dirty(out)  # an in-place activation: the input itself is the answer
        return out

    @staticmethod
    def backward(ctx: Any, *grads: Any) -> Any:  # pragma: no cover - never run
        raise RuntimeError("pytest-cnnshape's meta shortcuts cannot run backward; trace without them")


def _requires_grad(t: torch.Tensor) -> bool:
    return t.requires_grad


def needs_graph(args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    """Autograd would record this call: grad mode is on and a tensor argument requires grad."""
    return torch.is_grad_enabled() and any(t.requires_grad for t in tensor_arguments(args, kwargs))


def with_graph(func: Any, out: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """``out`` (a shortcut's answer) wrapped in the graph node torch would make, or None
    when the op's saves are not known here (then the caller runs torch's kernel)."""
    rule = SAVES.get(func)
    if rule is None or not isinstance(out, torch.Tensor):
        return None
    if out.is_leaf and out.requires_grad:
        return None  # in place on a leaf that requires grad: torch's own error
    try:
        saved = rule(_requires_grad, out, *args, **kwargs)
    except TypeError:  # a call shape the rule does not know
        return None
    if saved is None:
        return None
    saved = tuple(t.made() if isinstance(t, Fresh) else t for t in saved)
    return Shortcut.apply(_Answer(out, saved), *tensor_arguments(args, kwargs))  # type: ignore[no-untyped-call]
