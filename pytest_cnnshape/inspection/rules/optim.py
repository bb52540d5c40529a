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
    name, flag = _fitting_optimizer(ctx)
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
            f"torch.optim.{name}([{{'params': decay, 'weight_decay': "
            f"{group.weight_decay}}}, {{'params': no_decay, 'weight_decay': 0.0}}], lr=...{flag})",
        )


def _coupled_adam(ctx: LintContext) -> tuple[str, bool] | None:
    """For an Adam-family optimizer whose decay is added to the gradient: its class name and
    whether it takes ``decoupled_weight_decay``; None otherwise."""
    optimizer = ctx.optimizer
    family = tuple(getattr(torch.optim, name) for name in _ADAM_FAMILY if hasattr(torch.optim, name))
    if optimizer is None or not isinstance(optimizer, family):
        return None
    if not any(g.decay == L2 for g in ctx.regularization.groups):
        return None
    flag = "decoupled_weight_decay" in inspect.signature(type(optimizer).__init__).parameters
    return type(optimizer).__name__, flag


def _fitting_optimizer(ctx: LintContext) -> tuple[str | None, str]:
    """The optimizer a param-group fix builds, as ``adam_weight_decay`` would have it (AdamW, or
    the flag), so that the two fixes apply together; the model's own otherwise."""
    coupled = _coupled_adam(ctx)
    if coupled is None:
        return ctx.regularization.optimizer, ""
    name, flag = coupled
    if name == "Adam" or not flag:
        return "AdamW", ""
    return name, ", decoupled_weight_decay=True"


def adam_weight_decay(ctx: LintContext) -> Iterator[Finding]:
    found = _coupled_adam(ctx)
    if found is None:
        return
    name, flag = found
    coupled = [g for g in ctx.regularization.groups if g.decay == L2]
    decay = coupled[0].weight_decay
    indices = ", ".join(str(g.index) for g in coupled)
    if name == "Adam":
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
