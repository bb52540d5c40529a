"""A forward that decides its own path from the input size (PyTorch's dynamic graph).

``DynamicNet`` halves the map with the same stride-2 block until it is at most 8
pixels wide, then adds a detail branch only for inputs of 64 pixels or more. A
static summary cannot show this model; a trace shows the path one input took,
and traces at several sizes show all of them:

* 16x16: block once (16 -> 8), no detail branch;
* 64x64: block three times (64 -> 32 -> 16 -> 8), detail branch;
* 200x120: block five times on the wider side... until the map is 8 or less.
"""

from __future__ import annotations

import torch
from torch import nn


class DynamicNet(nn.Module):
    def __init__(self, channels: int = 16, classes: int = 5) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, channels, 3, padding=1)
        self.down = nn.Sequential(
            nn.Conv2d(channels, channels, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(),
        )
        self.detail = nn.Conv2d(3, channels, 7, stride=8, padding=3)
        self.head = nn.Sequential(nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Linear(channels, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.stem(x)
        while max(y.shape[-2:]) > 8:  # the same module, as often as the size asks
            y = self.down(y)
        if min(x.shape[-2:]) >= 64:  # a branch only large inputs take
            y = y + nn.functional.adaptive_avg_pool2d(self.detail(x), y.shape[-2:])
        return self.head(y)
