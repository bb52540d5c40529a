"""Multiply-accumulates counted from the ops a trace sees, in the trace's own pass.

A trace's mode already sees every torch function a forward calls, with its
arguments and result, whether torch ran it or a meta shape rule answered it
(``tracing.metarules``; those never reach torch's dispatcher, so a
``FlopCounterMode`` would not see them). ``FlopCounter`` is one more watcher of that
mode: it counts what ``torch.utils.flop_counter`` counts, by the same formulas,
for convolutions (grouped, dilated, transposed), linear layers and matrix
products, 2 FLOPs per multiply-accumulate; element-wise work counts nothing.

An exported program's graph calls the same ops as aten overloads
(``aten.conv2d.default``), counted by the same formulas.

Some ops hide matrix products inside one call the mode sees as a whole
(attention, recurrent layers, ``einsum``), and TorchScript runs where no mode
sees; for those ``opaque`` names them and ``observe`` counts that model again
with torch's own ``FlopCounterMode``, so a total is never a guess.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

_Formula = Callable[..., int | None]


def _conv(dims: int) -> _Formula:
    def count(result: Any, input: Any, weight: Any, *args: Any, **kwargs: Any) -> int:
        batch = input.shape[0] if input.dim() == dims + 2 else 1
        out_channels, group_channels, *kernel = weight.shape
        return int(
            2
            * batch
            * math.prod(result.shape[-dims:])
            * math.prod(kernel)
            * int(out_channels * group_channels)
        )

    return count


def _conv_transpose(dims: int) -> _Formula:
    def count(result: Any, input: Any, weight: Any, *args: Any, **kwargs: Any) -> int:
        batch = input.shape[0] if input.dim() == dims + 2 else 1
        in_channels, group_out, *kernel = weight.shape
        return int(
            2 * batch * math.prod(input.shape[-dims:]) * math.prod(kernel) * int(in_channels * group_out)
        )

    return count


def _linear(result: Any, input: Any, weight: Any, *args: Any, **kwargs: Any) -> int:
    return int(2 * math.prod(input.shape[:-1]) * int(weight.shape[1] * weight.shape[0]))


def _product(result: Any, input: Any, other: Any, *args: Any, **kwargs: Any) -> int | None:
    """``matmul``/``mm``/``bmm``: batch x M x N outputs of K multiply-accumulates each.

    None for vector operands: torch runs those as ``dot``/``mv`` (uncounted) or as
    ``mm`` depending on the ranks; ``FlopCounterMode`` then decides.
    """
    if input.dim() < 2 or other.dim() < 2:
        return None
    return int(2 * math.prod(result.shape) * int(input.shape[-1]))


def _addmm(result: Any, bias: Any, mat1: Any, mat2: Any, *args: Any, **kwargs: Any) -> int:
    return int(2 * math.prod(result.shape) * int(mat1.shape[-1]))


T = torch.Tensor

FORMULAS: dict[Any, _Formula] = {
    torch.conv1d: _conv(1),
    torch.conv2d: _conv(2),
    torch.conv3d: _conv(3),
    torch.conv_transpose1d: _conv_transpose(1),
    torch.conv_transpose2d: _conv_transpose(2),
    torch.conv_transpose3d: _conv_transpose(3),
    F.linear: _linear,
    torch.matmul: _product,
    T.matmul: _product,
    torch.mm: _product,
    T.mm: _product,
    torch.bmm: _product,
    T.bmm: _product,
    torch.addmm: _addmm,
    T.addmm: _addmm,
    torch.baddbmm: _addmm,
    T.baddbmm: _addmm,
}

aten = torch.ops.aten
#: The same ops as an exported program's graph calls them (aten overloads, same arguments).
FORMULAS.update(
    {
        aten.conv1d.default: _conv(1),
        aten.conv2d.default: _conv(2),
        aten.conv3d.default: _conv(3),
        aten.conv1d.padding: _conv(1),
        aten.conv2d.padding: _conv(2),
        aten.conv3d.padding: _conv(3),
        aten.conv_transpose1d.default: _conv_transpose(1),
        aten.conv_transpose2d.input: _conv_transpose(2),
        aten.conv_transpose3d.input: _conv_transpose(3),
        aten.linear.default: _linear,
        aten.matmul.default: _product,
        aten.mm.default: _product,
        aten.bmm.default: _product,
        aten.addmm.default: _addmm,
        aten.baddbmm.default: _addmm,
    }
)

#: Ops whose matrix products run inside one call: only torch's counter sees them.
OPAQUE: frozenset[Any] = frozenset(
    {
        F.multi_head_attention_forward,
        F.scaled_dot_product_attention,
        F.bilinear,
        torch.bilinear,
        torch.einsum,
        torch.tensordot,
        torch.chain_matmul,
        torch.linalg.multi_dot,
        torch.linalg.matmul,
        torch.inner,
        torch.addbmm,
        T.addbmm,
        torch.lstm,
        torch.gru,
        torch.rnn_tanh,
        torch.rnn_relu,
        torch.lstm_cell,
        torch.gru_cell,
        torch.rnn_tanh_cell,
        torch.rnn_relu_cell,
        torch.convolution,
        torch._convolution,
        torch.conv_tbc,
        aten.convolution.default,
        aten._convolution.default,
        aten.scaled_dot_product_attention.default,
        aten.einsum.default,
        aten.bilinear.default,
        aten.lstm.input,
        aten.gru.input,
        aten.rnn_tanh.input,
        aten.rnn_relu.input,
    }
)


class FlopCounter:
    """An op watcher of a trace: the FLOPs of the ops it saw (``trace_mode`` watchers)."""

    def __init__(self) -> None:
        self.total = 0
        #: Names of ops seen whose FLOPs only torch's own counter knows.
        self.opaque: list[str] = []

    def reset(self) -> None:
        """A forward begins again (a meta attempt fell back to a real one)."""
        self.total = 0
        self.opaque.clear()

    def op(self, func: Any, args: tuple[Any, ...], kwargs: dict[str, Any], result: Any) -> None:
        """Add the FLOPs of ``func(*args, **kwargs)``."""
        formula = FORMULAS.get(func)
        if formula is not None and isinstance(result, torch.Tensor):
            try:
                flops = formula(result, *args, **kwargs)
            except (TypeError, AttributeError, IndexError):  # a call shape not known here
                flops = None
            if flops is not None:
                self.total += flops
                return
        if formula is not None or func in OPAQUE:
            self.opaque.append(getattr(func, "__name__", repr(func)))
