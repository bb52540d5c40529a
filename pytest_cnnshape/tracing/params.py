"""Parameter counts over unique tensors, per module subtree, in one pass.

Shared modules and tied weights are counted once: a count always equals
``sum(p.numel() for p in module.parameters())`` (which de-duplicates), and, on
models without sharing, torchinfo's totals. Without sharing, a subtree's count is
its own tensors plus its children's counts (one bottom-up pass, linear in the
number of modules at any nesting depth); with sharing, sets of unique tensors are
used instead.
"""

from __future__ import annotations

from torch import nn
from torch.nn.parameter import is_lazy

from .modelview import ModelView

Counts = tuple[int, int]  # (total, trainable)


def _numel(p: nn.Parameter) -> int:
    return 0 if is_lazy(p) else p.numel()


def subtree_counts(view: ModelView) -> dict[int, Counts]:
    """``id(module) -> (params, trainable params)`` of each module and its children."""
    if view.shared:
        out = {}
        for m in view.modules:
            unique = list(m.parameters())
            out[id(m)] = (
                sum(_numel(p) for p in unique),
                sum(_numel(p) for p in unique if p.requires_grad),
            )
        return out
    counts: dict[int, Counts] = {}
    for m in reversed(view.modules):  # pre-order reversed: children before parents
        total = trainable = 0
        for p in m._parameters.values():
            if p is not None:
                n = _numel(p)
                total += n
                trainable += n if p.requires_grad else 0
        for c in m._modules.values():
            if c is not None:
                ct, cr = counts[id(c)]
                total += ct
                trainable += cr
        counts[id(m)] = (total, trainable)
    return counts


def model_counts(view: ModelView) -> Counts:
    """Total and trainable parameters of the whole model, unique tensors once."""
    params = view.parameters
    return sum(_numel(p) for p in params), sum(_numel(p) for p in params if p.requires_grad)
