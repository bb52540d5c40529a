"""What every lint rule reads: the model, its observed trace, its regularization, the loss.

Built once per lint run and shared by the rules, so a model is walked once, traced
once (plus the one extra trace ``linear-fixed-input-size`` needs) and its
optimizer read once. "Directly followed" comes from the trace's call order: the
leaf calls in the order they ran, each knowing whether it consumed the very
tensor the previous one returned, so custom ``forward()`` code counts as much as
``nn.Sequential``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from itertools import pairwise
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ..errors import ArgumentError, ArgumentTypeError
from ..shapes.tree import Shape, first_shape
from ..tracing.modelview import ModelView
from ..tracing.records import LayerRecord
from .catalog import RULES_BY_ID
from .findings import Finding
from .observe import Observation
from .regularization import RegularizationReport

if TYPE_CHECKING:
    from ..tracing.request import TraceRequest

CROSS_ENTROPY, NLL, OTHER_LOSS = "cross_entropy", "nll", "other"

LOSS_EXAMPLE = (
    "pass loss=nn.CrossEntropyLoss() (or the class, or 'cross_entropy' / 'nll'), "
    "or hold the criterion on the model: self.criterion = nn.CrossEntropyLoss()"
)


@dataclass(frozen=True)
class Leaf:
    """One call of a module without children, in the order the forward ran it."""

    record: LayerRecord
    module: nn.Module
    #: Its first input is the very tensor the previous leaf call returned.
    fed_by_previous: bool

    @property
    def name(self) -> str:
        return self.record.name

    @property
    def type(self) -> str:
        return self.record.type

    @property
    def input_shape(self) -> Shape | None:
        return self.record.input_shape

    @property
    def output_shape(self) -> Shape | None:
        return first_shape(self.record.output_shape)


@dataclass
class LintContext:
    """Everything the rules look at; the forward parts are None without inputs."""

    model: nn.Module
    view: ModelView
    regularization: RegularizationReport
    optimizer: torch.optim.Optimizer | None = None
    #: ``"cross_entropy"``, ``"nll"``, ``"other"``, or None when unknown.
    loss: str | None = None
    observation: Observation | None = None
    #: The trace the observation made (None without inputs): a rule's further traces vary it.
    request: TraceRequest | None = None
    #: The axis of the output that holds the batch (1 for a sequence-first model).
    batch_dim: int = 0

    def finding(self, rule: str, layer: str, message: str, fix: str) -> Finding:
        """A finding of ``rule``; its ``why`` is the rule's rationale."""
        return Finding(rule=rule, layer=layer, message=message, why=RULES_BY_ID[rule].why, fix=fix)

    @cached_property
    def leaves(self) -> list[Leaf]:
        """Finished leaf calls in the order they ran (empty without a forward).

        ``nn.Identity`` calls are left out: they return their input itself, so the
        layers around one are as directly connected as without it.
        """
        if self.observation is None:
            return []
        trace, calls = self.observation.trace, self.observation.calls
        return [
            Leaf(record, call.module, call.fed_by_previous_leaf)
            for record, call in zip(trace.layers, calls, strict=True)
            if record.is_leaf and record.finished and not isinstance(call.module, nn.Identity)
        ]

    def pairs(self) -> Iterator[tuple[Leaf, Leaf]]:
        """Each leaf call with the one right after it."""
        return pairwise(self.leaves)


def held_loss(view: ModelView) -> str | None:
    """The kind of a CrossEntropyLoss/NLLLoss the model holds as a submodule, if any."""
    for module in view.modules:
        if isinstance(module, (nn.CrossEntropyLoss, nn.NLLLoss)):
            return parse_loss(module)
    return None


def parse_loss(loss: Any) -> str | None:
    """Which training loss ``loss=`` names: ``"cross_entropy"``, ``"nll"``, ``"other"``.

    ``loss`` may be a loss module, its class, ``F.cross_entropy`` / ``F.nll_loss``,
    or a name such as ``"cross_entropy"``, ``"CrossEntropyLoss"``, ``"nll"``; None
    stays None (unknown).
    """
    import torch.nn.functional as F

    if loss is None:
        return None
    if isinstance(loss, str):
        key = loss.lower().removeprefix("nn.").replace("_", "").replace("-", "").replace(" ", "")
        key = key.removesuffix("loss")
        if key in ("crossentropy", "ce"):
            return CROSS_ENTROPY
        if key == "nll":
            return NLL
        raise ArgumentError(
            f"loss={loss!r} is not a loss name pytest-cnnshape knows; {LOSS_EXAMPLE}; "
            "any other loss module turns the rule off"
        )
    cls = loss if isinstance(loss, type) else type(loss)
    if loss is F.cross_entropy or issubclass(cls, nn.CrossEntropyLoss):
        return CROSS_ENTROPY
    if loss is F.nll_loss or issubclass(cls, nn.NLLLoss):
        return NLL
    if issubclass(cls, nn.Module) or callable(loss):
        return OTHER_LOSS
    raise ArgumentTypeError(f"loss={loss!r} ({type(loss).__name__}) is not a loss; {LOSS_EXAMPLE}")
