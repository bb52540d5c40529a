"""How a model is regularized: its dropout and normalization layers, its weight decay.

Read from the module tree and, when given, the optimizer's param groups; nothing
runs. Weight decay comes in two kinds that behave differently with adaptive
optimizers: *decoupled* (AdamW, or ``decoupled_weight_decay=True``) shrinks the
weights directly; *L2* (SGD, Adam, RMSprop, ...) adds ``decay * w`` to the
gradient, which Adam then rescales per parameter. The lint rules on weight decay
read this report rather than looking at the optimizer again.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..errors import ArgumentTypeError
from ..tracing.modelview import ModelView
from .parameters import tensor_names
from .plain import fields_dict

DECOUPLED, L2, NO_DECAY, UNKNOWN = "decoupled", "L2", "none", "unknown"

#: torch optimizers whose weight_decay is added to the gradient (unless a group says
#: ``decoupled_weight_decay=True``).
_L2_OPTIMIZERS = ("SGD", "Adam", "NAdam", "RAdam", "Adamax", "Adagrad", "Adadelta", "RMSprop", "ASGD")

OPTIMIZER_EXAMPLE = "e.g. torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.05)"


@dataclass(frozen=True)
class DropoutLayer:
    """A Dropout, Dropout1d/2d/3d, AlphaDropout or FeatureAlphaDropout module."""

    name: str
    type: str
    #: The drop probability; None when it is not a number at all.
    p: float | None
    inplace: bool
    #: The module's ``training`` flag: dropout acts only in training mode.
    training: bool

    @property
    def active(self) -> bool:
        """True when it drops anything in the model's current mode."""
        return self.training and self.p is not None and self.p > 0


@dataclass(frozen=True)
class NormLayer:
    """A BatchNorm, InstanceNorm, GroupNorm, LayerNorm or RMSNorm module."""

    name: str
    type: str
    training: bool
    #: Which statistics a forward in the current mode normalizes with: ``"batch"``
    #: (BatchNorm in training, updating its running stats; or without running stats),
    #: ``"running"`` (eval), ``"instance"`` or ``"sample"`` (the same in both modes).
    statistics: str
    #: The constructor settings: num_features, eps, momentum, affine, ...
    settings: dict[str, Any]


@dataclass(frozen=True)
class DecayGroup:
    """One param group of the optimizer, as far as weight decay goes."""

    index: int
    weight_decay: float
    #: ``"decoupled"``, ``"L2"`` (added to the gradient), ``"none"`` (no decay) or
    #: ``"unknown"`` (an optimizer pytest-cnnshape does not know).
    decay: str
    lr: float | None
    #: Qualified names of the model's parameters in the group.
    params: tuple[str, ...]
    #: Tensors in the group that are not parameters of this model.
    foreign: int = 0


@dataclass(frozen=True)
class RegularizationReport:
    """Dropout, normalization and weight decay of one model (and optimizer)."""

    model: str
    dropouts: tuple[DropoutLayer, ...]
    norms: tuple[NormLayer, ...]
    #: Class name of the optimizer, None when none was given.
    optimizer: str | None = None
    groups: tuple[DecayGroup, ...] = ()
    #: Trainable parameters no param group covers (they are never updated).
    uncovered: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form with stable keys."""
        return {
            "model": self.model,
            "dropouts": [{**fields_dict(d), "active": d.active} for d in self.dropouts],
            "norms": [fields_dict(n) for n in self.norms],
            "optimizer": self.optimizer,
            "groups": [fields_dict(g, "params") for g in self.groups],
            "uncovered": list(self.uncovered),
        }

    def line(self) -> str:
        """The one-line summary the report prints under a model."""
        from .render import regularization_line

        return regularization_line(self.to_dict())


def _number(value: Any) -> float | None:
    """A float for JSON (lr may be a tensor); None for what is not a number."""
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


_NORM_SETTINGS = (
    "num_features",
    "num_groups",
    "num_channels",
    "normalized_shape",
    "eps",
    "momentum",
    "affine",
    "elementwise_affine",
    "track_running_stats",
)


def _settings(module: nn.Module) -> dict[str, Any]:
    out: dict[str, Any] = {}
    own = module.__dict__  # settings are plain attributes: no Module.__getattr__ misses
    for key in _NORM_SETTINGS:
        if key in own:
            value = own[key]
        elif hasattr(type(module), key):  # a property of a subclass
            value = getattr(module, key)
        else:
            continue
        out[key] = list(value) if isinstance(value, tuple) else value
    if isinstance(module, nn.LayerNorm):
        out["bias"] = module.bias is not None
    return out


def _statistics(module: nn.Module) -> str:
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        uses_running = not module.training and module.track_running_stats
        return "running" if uses_running else "batch"
    if isinstance(module, nn.modules.instancenorm._InstanceNorm):
        uses_running = not module.training and module.track_running_stats
        return "running" if uses_running else "instance"
    return "sample"


def norm_types() -> tuple[type[nn.Module], ...]:
    """The normalization module classes of this torch (RMSNorm from torch 2.4)."""
    found: list[type[nn.Module]] = [
        nn.modules.batchnorm._BatchNorm,
        nn.modules.instancenorm._InstanceNorm,
        nn.GroupNorm,
        nn.LayerNorm,
    ]
    rms = getattr(nn, "RMSNorm", None)
    if rms is not None:
        found.append(rms)
    return tuple(found)


def decay_kind(optimizer: torch.optim.Optimizer, group: dict[str, Any]) -> str:
    """How ``group``'s weight decay is applied: decoupled, L2, none or unknown."""
    decay = _number(group.get("weight_decay")) or 0.0
    if decay == 0:
        return NO_DECAY
    flag = group.get("decoupled_weight_decay")
    if flag is not None:
        return DECOUPLED if flag else L2
    if isinstance(optimizer, torch.optim.AdamW):  # torch < 2.6: no flag in the group
        return DECOUPLED
    known = tuple(getattr(torch.optim, name) for name in _L2_OPTIMIZERS if hasattr(torch.optim, name))
    return L2 if isinstance(optimizer, known) else UNKNOWN


def check_optimizer(optimizer: Any) -> torch.optim.Optimizer:
    """The optimizer argument must be a torch optimizer instance."""
    if isinstance(optimizer, torch.optim.Optimizer):
        return optimizer
    if isinstance(optimizer, type) and issubclass(optimizer, torch.optim.Optimizer):
        raise ArgumentTypeError(
            f"optimizer is the class {optimizer.__name__}, not an instance; {OPTIMIZER_EXAMPLE}"
        )
    raise ArgumentTypeError(
        f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}; {OPTIMIZER_EXAMPLE}"
    )


def _groups(
    view: ModelView, optimizer: torch.optim.Optimizer
) -> tuple[tuple[DecayGroup, ...], tuple[str, ...]]:
    names = tensor_names(view, "_parameters")
    covered: set[int] = set()
    groups: list[DecayGroup] = []
    for index, group in enumerate(optimizer.param_groups):
        params = group.get("params", [])
        covered.update(id(p) for p in params)
        groups.append(
            DecayGroup(
                index=index,
                weight_decay=_number(group.get("weight_decay")) or 0.0,
                decay=decay_kind(optimizer, group),
                lr=_number(group.get("lr")),
                params=tuple(names[id(p)][0] for p in params if id(p) in names),
                foreign=sum(id(p) not in names for p in params),
            )
        )
    uncovered = tuple(names[id(p)][0] for p in view.parameters if p.requires_grad and id(p) not in covered)
    return tuple(groups), uncovered


def regularization(model: nn.Module, optimizer: torch.optim.Optimizer | None = None) -> RegularizationReport:
    """Dropout layers (p, active?), normalization layers (settings, mode) and weight decay.

    With ``optimizer``: per param group its weight decay, whether it is decoupled
    (AdamW) or added to the gradient (L2: SGD, Adam), and the parameters it covers;
    plus the trainable parameters no group covers. The model is only read.
    """
    from ..tracing.request import check_model

    return regularization_of(check_model(model), optimizer)


def regularization_of(
    model: nn.Module, optimizer: torch.optim.Optimizer | None = None
) -> RegularizationReport:
    """``regularization`` of a module already checked and unwrapped."""
    view = ModelView.of(model)
    norms = norm_types()
    dropouts: list[DropoutLayer] = []
    norm_layers: list[NormLayer] = []
    for module in view.modules:
        if isinstance(module, nn.modules.dropout._DropoutNd):
            dropouts.append(
                DropoutLayer(
                    name=view.name_of(module),
                    type=type(module).__name__,
                    p=_number(module.p),
                    inplace=bool(module.inplace),
                    training=module.training,
                )
            )
        elif isinstance(module, norms):
            norm_layers.append(
                NormLayer(
                    name=view.name_of(module),
                    type=type(module).__name__,
                    training=module.training,
                    statistics=_statistics(module),
                    settings=_settings(module),
                )
            )
    groups: tuple[DecayGroup, ...] = ()
    uncovered: tuple[str, ...] = ()
    if optimizer is not None:
        groups, uncovered = _groups(view, check_optimizer(optimizer))
    return RegularizationReport(
        model=type(model).__name__,
        dropouts=tuple(dropouts),
        norms=tuple(norm_layers),
        optimizer=None if optimizer is None else type(optimizer).__name__,
        groups=groups,
        uncovered=uncovered,
    )
