"""Lint rules about the optimizer's weight decay, read from the regularization report."""

from __future__ import annotations

import inspect
from collections.abc import Iterator

import torch

from ..context import LintContext
from ..findings import Finding
from ..regularization import L2, NO_DECAY

_ADAM_FAMILY = ("Adam", "NAdam", "RAdam", "Adamax")


def _listed(names: list[str], most: int = 4) -> str:
    shown = ", ".join(names[:most])
    return shown + (f" and {len(names) - most} more" if len(names) > most else "")


def weight_decay_on_norm_or_bias(ctx: LintContext) -> Iterator[Finding]:
    report = ctx.regularization
    norm_layers = {layer.name for layer in report.norms}
    for group in report.groups:
        if group.decay == NO_DECAY:
            continue
        hit = [
            n for n in group.params if n.rpartition(".")[2] == "bias" or n.rpartition(".")[0] in norm_layers
        ]
        if not hit:
            continue
        yield ctx.finding(
            "weight-decay-on-norm-or-bias",
            f"optimizer.param_groups[{group.index}]",
            f"param group {group.index} ({report.optimizer}, weight_decay={group.weight_decay}) "
            f"decays {len(hit)} bias or normalization parameter(s): {_listed(hit)}",
            "give them a group without decay: decay = [p for p in model.parameters() if p.ndim > 1]; "
            "no_decay = [p for p in model.parameters() if p.ndim <= 1]; "
            f"torch.optim.{report.optimizer}([{{'params': decay, 'weight_decay': "
            f"{group.weight_decay}}}, {{'params': no_decay, 'weight_decay': 0.0}}], lr=...)",
        )


def adam_weight_decay(ctx: LintContext) -> Iterator[Finding]:
    optimizer = ctx.optimizer
    family = tuple(getattr(torch.optim, name) for name in _ADAM_FAMILY if hasattr(torch.optim, name))
    if optimizer is None or not isinstance(optimizer, family):
        return
    coupled = [g for g in ctx.regularization.groups if g.decay == L2]
    if not coupled:
        return
    name = type(optimizer).__name__
    decay = coupled[0].weight_decay
    indices = ", ".join(str(g.index) for g in coupled)
    flag = "decoupled_weight_decay" in inspect.signature(type(optimizer).__init__).parameters
    if isinstance(optimizer, torch.optim.Adam):
        fix = f"use torch.optim.AdamW(params, lr=..., weight_decay={decay})"
        fix += " (or pass decoupled_weight_decay=True to Adam)" if flag else ""
    elif flag:
        fix = f"pass decoupled_weight_decay=True to torch.optim.{name}"
    else:
        fix = f"use torch.optim.AdamW(params, lr=..., weight_decay={decay}) instead of {name}"
    yield ctx.finding(
        "adam-weight-decay",
        "optimizer",
        f"{name} adds weight_decay={decay} to the gradient (param group(s) {indices}), "
        "where Adam rescales it per parameter",
        fix,
    )
