"""Model source shared by the plugin's pytester tests."""

from __future__ import annotations

import shutil

import pytest

MODELS = """
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
"""


def write_models(pytester: pytest.Pytester) -> None:
    """A package ``mymodels`` at the pytester root, importable by the tests."""
    pkg = pytester.mkpydir("mymodels")
    (pkg / "nets.py").write_text(MODELS)
    pytester.syspathinsert()


#: A declared LeNet, for pyproject.toml files that need one.
DECLARED_LENET = """
[tool.cnnshape.models.lenet]
factory = "mymodels.nets:LeNet"
input = "2x1x28x28"
"""


def make_project(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, pyproject: str, tests: dict[str, str]
) -> pytest.Pytester:
    """``mymodels``, a pyproject.toml and test files (paths under the root); off GitHub Actions."""
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    write_models(pytester)
    pytester.makepyprojecttoml(pyproject)
    for name, source in tests.items():
        path = pytester.path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source)
    return pytester


def set_models(pytester: pytest.Pytester, source: str) -> None:
    """Rewrite the models module (and drop its bytecode, which may have the same mtime)."""
    (pytester.path / "mymodels" / "nets.py").write_text(source)
    shutil.rmtree(pytester.path / "mymodels" / "__pycache__", ignore_errors=True)
