"""Which Linear layers could be locked to the traced input size: is their input's shape free of it?

``linear-fixed-input-size`` proves a Linear is size-locked by tracing the model
again at double the spatial size, a second forward. Most classifiers cannot be:
their head sits behind an adaptive pooling (ResNet's ``avgpool`` then
``flatten``), so its input has the same shape at any size. ``SizeFreedom``
watches the ops of the trace the report already makes and marks tensors whose
shape cannot depend on the input's size: parameters and buffers, the output of
an adaptive pooling with a fixed output size, and whatever ops that preserve or
only rearrange shapes (activations, norms, dropout, flatten, views, cat,
linear...) make from nothing but such tensors. When every Linear call received
one, the second forward is skipped; anything unknown counts as size-dependent,
so the rule never misses a locked layer.
"""

from __future__ import annotations

import weakref
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..tracing import metamode, metarules
from ..tracing.metarules import tensor_arguments

T = torch.Tensor

#: Adaptive poolings: their output's sides are their ``output_size``.
_ADAPTIVE = frozenset(
    {
        F.adaptive_avg_pool1d,
        F.adaptive_avg_pool2d,
        F.adaptive_avg_pool3d,
        F.adaptive_max_pool1d,
        F.adaptive_max_pool2d,
        F.adaptive_max_pool3d,
        F.adaptive_max_pool1d_with_indices,
        F.adaptive_max_pool2d_with_indices,
        F.adaptive_max_pool3d_with_indices,
    }
)

#: Ops whose output shape follows from their tensor inputs' shapes (sizes given as
#: numbers can only rearrange those: a view must keep the element count).
_RESHAPING = frozenset(
    {
        torch.flatten,
        T.flatten,
        T.view,
        T.reshape,
        torch.reshape,
        T.permute,
        torch.permute,
        T.transpose,
        torch.transpose,
        T.squeeze,
        torch.squeeze,
        T.unsqueeze,
        torch.unsqueeze,
        T.contiguous,
        T.float,
        T.double,
        T.half,
        T.relu,
        T.relu_,
        T.sigmoid,
        T.tanh,
        T.add_,
        T.mul_,
        F.linear,
        F.dropout,
        F.alpha_dropout,
        F.relu,
        F.relu6,
        F.gelu,
        F.silu,
        F.hardswish,
        F.leaky_relu,
        F.elu,
        F.mish,
        F.softmax,
        F.log_softmax,
        F.batch_norm,
        F.layer_norm,
        torch.relu,
        torch.sigmoid,
        torch.tanh,
        torch.cat,
        torch.concat,
        torch.stack,
        torch.add,
        T.add,
        torch.sub,
        T.sub,
        torch.mul,
        T.mul,
        torch.div,
        T.div,
        torch.matmul,
        T.matmul,
        T.softmax,
        T.log_softmax,
    }
)


def _fixed_size(output_size: Any) -> bool:
    if isinstance(output_size, (list, tuple)):
        return all(v is not None for v in output_size)
    return output_size is not None


class SizeFreedom:
    """An op watcher and module-call observer: did any Linear get a size-dependent input?"""

    def __init__(self) -> None:
        #: ``id -> weak reference`` of tensors whose shape is free of the input size (held
        #: weakly: a watcher must not keep a forward's tensors alive, the memory estimate
        #: of the same pass follows their lifetimes).
        self._free: dict[int, weakref.ref[torch.Tensor]] = {}
        #: Some Linear call's input may depend on the input size.
        self.linear_may_be_locked = False

    def started(self) -> None:
        self._free.clear()
        self.linear_may_be_locked = False

    def entered(self, index: int, module: nn.Module, args: tuple[Any, ...]) -> None:
        """A module call begins; the root's tensors are all free of the input size."""
        if index == 0:
            for m in module.modules():
                for t in (*m._parameters.values(), *m._buffers.values()):
                    if t is not None:
                        self._free[id(t)] = weakref.ref(t)
        if isinstance(module, nn.Linear) and not (args and self.is_free(args[0])):
            self.linear_may_be_locked = True
            self._free.clear()

    def is_free(self, value: Any) -> bool:
        if not isinstance(value, torch.Tensor):
            return False
        ref = self._free.get(id(value))
        return ref is not None and ref() is value

    def op(self, func: Any, args: tuple[Any, ...], kwargs: dict[str, Any], result: Any) -> None:
        """Mark ``result`` free of the input size when the op cannot carry the size into it."""
        if self.linear_may_be_locked:
            return  # decided: the second trace will run
        if func in _ADAPTIVE:
            given = {"output_size": args[1]} if len(args) > 1 else kwargs
            free = _fixed_size(given.get("output_size"))
        elif func in _PROPAGATING:
            first = args[0] if args else None
            if isinstance(first, torch.Tensor) and not self.is_free(first):
                return  # the common case: an op on the input's own maps
            tensors = tensor_arguments(args, kwargs)
            free = bool(tensors) and all(self.is_free(t) for t in tensors)
        else:
            free = False
        if free:
            for t in tensor_arguments((result,), {}):
                self._free[id(t)] = weakref.ref(t)

    def finished(self) -> None:
        """Let go of the tensors (the flag stays)."""
        self._free.clear()


#: The meta size rules' ops but interpolate, whose ``size=`` often comes from the input's
#: own sides (a pyramid pooling upsampled back to the map).
_SHAPE_PRESERVING = frozenset(f for f in metarules.RULES if f not in _ADAPTIVE and f is not F.interpolate)

#: Every op whose result is free of the input size when all its tensors are.
_PROPAGATING = _RESHAPING | frozenset(metamode.RULES) | _SHAPE_PRESERVING
