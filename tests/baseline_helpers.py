"""Projects for the shape-baseline tests (tests/test_baseline_*.py)."""

from __future__ import annotations

import shutil

import pytest

from tests.plugin_helpers import write_models

#: A declared LeNet, for pyproject.toml files that need one.
DECLARED_LENET = """
[tool.cnnshape.models.lenet]
factory = "mymodels.nets:LeNet"
input = "2x1x28x28"
"""


def make_project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, pyproject: str,
                 tests: dict[str, str]) -> pytest.Pytester:
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
