"""Classic CNN shape mistakes, each a model that fails on its forward.

Every one of these runs ``torch`` into an error that names no layer; the tests
next to this file show what pytest-cnnshape says instead.
"""

from __future__ import annotations

import torch
from torch import nn


class FlattenMismatch(nn.Module):
    """The first Linear's in_features was computed for 32x32 inputs, fed 28x28 ones."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3), nn.ReLU(), nn.MaxPool2d(2),
        )
        self.fc = nn.Linear(32 * 6 * 6, 10)  # right for 32x32 inputs only

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        x = torch.flatten(x, 1)
        return self.fc(x)
