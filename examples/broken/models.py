"""Classic CNN shape mistakes, one model each; every one fails on its forward.

torch's own messages for these name no layer ("mat1 and mat2 shapes cannot be
multiplied (1x800 and 1152x10)"); ``test_broken.py`` shows what pytest-cnnshape
says instead, and each docstring says what the right code is.
"""

from __future__ import annotations

import torch
from torch import nn


class FlattenMismatch(nn.Module):
    """in_features computed for 32x32 inputs, fed 28x28 ones: 32 * 6 * 6 != 32 * 5 * 5.

    Right: ``nn.Linear(32 * 5 * 5, 10)``, or ``nn.LazyLinear(10)``, which counts for you.
    """

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.fc = nn.Linear(32 * 6 * 6, 10)  # right for 32x32 inputs only

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        x = torch.flatten(x, 1)
        return self.fc(x)


def rgb_classifier() -> nn.Sequential:
    """Built for RGB (3 channels); the tests feed it grayscale digits (1 channel)."""
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10)
    )


def batchnorm2d_in_the_head() -> nn.Sequential:
    """BatchNorm2d after a Linear: the head's (N, 64) features need BatchNorm1d(64)."""
    return nn.Sequential(
        nn.Conv2d(3, 8, 3),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 64),
        nn.BatchNorm2d(64),
        nn.ReLU(),
        nn.Linear(64, 10),
    )


def deep_pooling() -> nn.Sequential:
    """Five 2x2 poolings need inputs of at least 32x32; the tests give it 20x20."""
    layers: list[nn.Module] = []
    for cin, cout in ((3, 16), (16, 32), (32, 64), (64, 64), (64, 64)):
        layers += [nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
    return nn.Sequential(*layers, nn.Flatten(), nn.LazyLinear(10))


class ResidualWithoutDownsample(nn.Module):
    """The branch halves the map (stride 2) but the shortcut ``x`` does not.

    Right: a 1x1 conv with stride 2 on the shortcut, as ResNet's ``downsample``.
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(16, 32, 3, stride=2, padding=1)
        self.conv2 = nn.Conv2d(32, 32, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv2(torch.relu(self.conv1(x)))
        return torch.relu(out + x)


class UNetSkip(nn.Module):
    """One pooling deep: an odd input side comes back one pixel short at the skip."""

    def __init__(self) -> None:
        super().__init__()
        self.enc = nn.Conv2d(1, 8, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.mid = nn.Conv2d(8, 16, 3, padding=1)
        self.up = nn.ConvTranspose2d(16, 8, 2, stride=2)
        self.dec = nn.Conv2d(16, 1, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = self.enc(x)
        y = self.up(self.mid(self.pool(skip)))
        return self.dec(torch.cat([y, skip], dim=1))


class ViewFoldsTheBatch(nn.Module):
    """``x.view(-1, 16 * 5 * 5)`` written for 32x32 inputs; at 36x36 it cannot divide.

    Right: ``torch.flatten(x, 1)``, which keeps the batch axis for any input size.
    """

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 16, 5), nn.MaxPool2d(2), nn.Conv2d(16, 16, 5), nn.MaxPool2d(2)
        )
        self.fc = nn.Linear(16 * 5 * 5, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        x = x.view(-1, 16 * 5 * 5)
        return self.fc(x)
