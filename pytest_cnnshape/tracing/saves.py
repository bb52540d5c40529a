"""What autograd saves for the ops the meta shortcuts answer, so a shortcut can build the graph.

A training-memory pass runs the forward on meta with autograd on, and counts the
tensors autograd saves for backward. The shortcuts of ``metamode`` answer
normalisation layers and activations without torch's slow meta kernels (a
BatchNorm costs milliseconds there), but an answer made of ``torch.empty_like``
has no autograd history: the pass would see nothing saved and lose
``requires_grad`` downstream. So when a shortcut's inputs need a graph, its answer
is wrapped in ``Shortcut``, an autograd Function that saves what torch's own meta
kernel saves for that call: the same inputs (by identity, so storages are shared
the same way), the output, or fresh tensors of the same shapes and dtypes.
``tests/tracing/test_saves.py`` compares every rule with torch's kernels.

An op missing here, or a call a rule does not know, runs torch's own kernel.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from .metarules import empty_like, tensor_arguments

#: ``rule(out, *args, **kwargs)`` -> the tensors autograd saves (None entries allowed),
#: or None when the rule does not know the call.
SaveRule = Callable[..., tuple[Any, ...] | None]

_LOW_PRECISION = (torch.float16, torch.bfloat16)


def _opmath(dtype: torch.dtype) -> torch.dtype:
    """The dtype statistics are kept in: float32 for half and bfloat16 inputs."""
    return torch.float32 if dtype in _LOW_PRECISION else dtype


def _fresh(shape: tuple[int, ...], dtype: torch.dtype, like: torch.Tensor) -> torch.Tensor:
    return torch.empty(shape, dtype=dtype, device=like.device)


def _batch_norm(  # noqa: PLR0917  (mirrors F.batch_norm)
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
        _fresh(stats, kind, input),
        _fresh(stats, kind, input),
    )


def _group_norm(  # noqa: PLR0917  (mirrors F.group_norm)
    out: Any, input: Any, num_groups: int, weight: Any = None, bias: Any = None, eps: float = 1e-5
) -> tuple[Any, ...]:
    stats = (input.shape[0], num_groups)
    return (input, weight, _fresh(stats, input.dtype, input), _fresh(stats, input.dtype, input))


def _layer_norm(  # noqa: PLR0917  (mirrors F.layer_norm)
    out: Any, input: Any, normalized_shape: Any, weight: Any = None, bias: Any = None, eps: float = 1e-5
) -> tuple[Any, ...]:
    axes = 1 if isinstance(normalized_shape, int) else len(tuple(normalized_shape))
    stats = (*input.shape[: input.dim() - axes], *(1,) * axes)
    kind = _opmath(input.dtype)
    return (input, weight, bias, _fresh(stats, kind, input), _fresh(stats, kind, input))


#: What an activation saves: its output, its input, or a copy of its input.
OUT, INPUT, COPY = "out", "input", "copy"


def _activation(plain: str, inplace: str) -> SaveRule:
    """An activation that saves ``plain`` out of place and ``inplace`` when it runs in place."""

    def rule(out: Any, input: Any, *args: Any, **kwargs: Any) -> tuple[Any, ...]:
        what = inplace if out is input else plain
        if what == OUT:
            return (out,)
        if what == INPUT:
            return (input,)
        return (empty_like(input),)

    return rule


def _dropout(rank: int | None) -> SaveRule:
    """Dropout keeps its noise: the input's shape, or (N, C, 1, ...) for feature dropout."""

    def rule(out: Any, input: Any, p: float = 0.5, training: bool = True, inplace: bool = False) -> Any:
        if not 0.0 < p < 1.0:
            return None  # p = 0 returns the input itself, p = 1 multiplies by a scalar
        shape = tuple(input.shape) if rank is None else (*input.shape[:2], *(1,) * (input.dim() - 2))
        return (_fresh(shape, input.dtype, input),)

    return rule


SAVES: dict[Any, SaveRule] = {
    F.batch_norm: _batch_norm,
    F.group_norm: _group_norm,
    F.layer_norm: _layer_norm,
    F.relu: _activation(OUT, OUT),
    torch.relu: _activation(OUT, OUT),
    torch.sigmoid: _activation(OUT, OUT),
    torch.tanh: _activation(OUT, OUT),
    F.relu6: _activation(INPUT, COPY),
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
        saved = rule(out, *args, **kwargs)
    except TypeError:  # a call shape the rule does not know
        return None
    if saved is None:
        return None
    return Shortcut.apply(_Answer(out, saved), *tensor_arguments(args, kwargs))  # type: ignore[no-untyped-call]
