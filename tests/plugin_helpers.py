"""Model source shared by the plugin's pytester tests."""

from __future__ import annotations

import pytest

MODELS = '''
import torch
import torch.nn as nn


class LeNet(nn.Sequential):
    def __init__(self, classes=10):
        super().__init__(
            nn.Conv2d(1, 6, 5), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(256, 120), nn.ReLU(), nn.Linear(120, classes),
        )


class Broken(nn.Sequential):
    def __init__(self):
        super().__init__(nn.Conv2d(1, 6, 5), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(512, 10))


class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU())
        self.down = nn.Sequential(nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU(),
                                  nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.ReLU(),
                                  nn.MaxPool2d(2))

    def forward(self, x):
        return self.down(self.stem(x))


def explode():
    raise RuntimeError("factory exploded")
'''


def write_models(pytester: pytest.Pytester) -> None:
    """A package ``mymodels`` at the pytester root, importable by the tests."""
    pkg = pytester.mkpydir("mymodels")
    (pkg / "nets.py").write_text(MODELS)
    pytester.syspathinsert()
