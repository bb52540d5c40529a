"""Models with one planted lint problem each, and a clean model that has none.

``PLANTED`` maps every lint rule id to a case: a model, what to lint it with, and
the layer the finding must name. The models use custom ``forward()`` code where
call order matters, so "directly followed" is tested on more than nn.Sequential.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


class ConvBiasBN(nn.Module):
    """conv (with bias) -> bn, in a custom forward; bn is created first."""

    def __init__(self) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(8)
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.head = nn.Conv2d(8, 2, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(F.relu(self.bn(self.conv(x))))


class ConvReluBN(nn.Module):
    """conv -> F.relu -> bn: the bias is not cancelled (the ReLU sees it)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(F.relu(self.conv(x)))


class LinearBiasBN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(12, 6)
        self.bn = nn.BatchNorm1d(6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.fc(x))


class ElementDropout(nn.Module):
    """conv -> F.relu -> nn.Dropout on the feature map (Dropout2d is meant)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.drop = nn.Dropout(0.25)
        self.pool = nn.AdaptiveAvgPool2d(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.drop(F.relu(self.conv(x)))).flatten(1)


class DropoutThenBN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.drop = nn.Dropout2d(0.2)
        self.bn = nn.BatchNorm2d(8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.drop(self.conv(x)))


class FoldsBatch(nn.Module):
    """``view(-1, 8 * 4 * 4)`` on 8x8 maps: four positions become four rows each."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.fc = nn.Linear(8 * 4 * 4, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv(x).view(-1, 8 * 4 * 4))


class DeadHead(nn.Module):
    """``aux`` is built but never called; ``proj`` is used only through its weights."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1, bias=False)
        self.aux = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))
        self.proj = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.conv(x).mean((2, 3))
        return F.linear(features, self.proj.weight, self.proj.bias)


def fixed_size_classifier() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 6, 5, bias=False),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(6 * 12 * 12, 10),
    )


def softmax_classifier() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, bias=False),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4, 5),
        nn.Softmax(dim=1),
    )


class HoldsCriterion(nn.Module):
    """A LightningModule-style model: the criterion is an attribute, log-softmax the output."""

    def __init__(self) -> None:
        super().__init__()
        self.body = softmax_classifier()[:-1]
        self.out = nn.LogSoftmax(dim=1)
        self.criterion = nn.CrossEntropyLoss()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.body(x))


class Clean(nn.Module):
    """Everything the rules ask for: no bias before BN, spatial dropout, adaptive pooling."""

    def __init__(self, classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1, bias=False),
            nn.BatchNorm2d(16),
            nn.ReLU(),
            nn.Dropout2d(0.1),
            nn.Conv2d(16, 32, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(32),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
        )
        self.drop = nn.Dropout(0.5)
        self.fc = nn.Linear(32, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.drop(torch.flatten(self.features(x), 1)))


def split_decay(
    model: nn.Module, optimizer: type[torch.optim.Optimizer] = torch.optim.AdamW, decay: float = 0.05
) -> torch.optim.Optimizer:
    """The recommended optimizer: weight decay on weights only, none on biases and norms."""
    params = list(model.parameters())
    return optimizer(
        [
            {"params": [p for p in params if p.ndim > 1], "weight_decay": decay},
            {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0},
        ],
        lr=1e-3,
    )


@dataclass
class Case:
    """A planted problem: the model, how to lint it, the layer the finding names."""

    build: Callable[[], nn.Module]
    layer: str
    inputs: Any = None
    optimizer: Callable[[nn.Module], torch.optim.Optimizer] | None = None
    loss: Any = None

    def lint_arguments(self) -> tuple[nn.Module, dict[str, Any]]:
        model = self.build()
        optimizer = self.optimizer(model) if self.optimizer is not None else None
        return model, {"inputs": self.inputs, "optimizer": optimizer, "loss": self.loss}


def _with_p(p: float) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        model = Clean()
        model.drop.p = p
        return model

    return build


PLANTED: dict[str, list[Case]] = {
    "bias-before-batchnorm": [Case(ConvBiasBN, "conv", (2, 3, 8, 8)), Case(LinearBiasBN, "fc", (4, 12))],
    "weight-decay-on-norm-or-bias": [
        Case(
            Clean,
            "optimizer.param_groups[0]",
            optimizer=lambda m: torch.optim.SGD(m.parameters(), lr=0.1, weight_decay=1e-4),
        ),
    ],
    "adam-weight-decay": [
        Case(Clean, "optimizer", optimizer=lambda m: split_decay(m, torch.optim.Adam)),
    ],
    "dropout-probability": [
        Case(_with_p(0.0), "drop"),
        Case(_with_p(1.0), "drop"),
        Case(_with_p(1.5), "drop"),
    ],
    "dropout-after-conv": [Case(ElementDropout, "drop", (2, 3, 8, 8))],
    "softmax-before-cross-entropy": [
        Case(softmax_classifier, "4", (2, 3, 8, 8), loss=nn.CrossEntropyLoss()),
        Case(softmax_classifier, "4", (2, 3, 8, 8), loss="nll"),
        Case(HoldsCriterion, "out", (2, 3, 8, 8)),
    ],
    "batchnorm-after-dropout": [Case(DropoutThenBN, "bn", (2, 3, 8, 8))],
    "batch-dimension-changed": [Case(FoldsBatch, "fc", (2, 3, 8, 8))],
    "unused-parameters": [Case(DeadHead, "aux", (2, 3, 8, 8))],
    "linear-fixed-input-size": [Case(fixed_size_classifier, "4", (2, 1, 28, 28))],
}
