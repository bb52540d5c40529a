"""The command line on hostile inputs: one clear line each, never a traceback."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

MODELS = textwrap.dedent(
    """
    import torch.nn as nn

    class Net(nn.Sequential):
        def __init__(self, name="x"):
            super().__init__(nn.Conv2d(3, 4, 3), nn.ReLU())
            self.label = name

    class NeedsArgs(nn.Module):
        def __init__(self, width):
            super().__init__()
            self.fc = nn.Linear(width, 2)

        def forward(self, x):
            return self.fc(x)

    class Item(nn.Module):
        '''Meta cannot run it (.item()): only a real forward can.'''

        def forward(self, x):
            return x * x.sum().item()

    def deep(levels):
        model = nn.ReLU()
        for _ in range(levels):
            model = nn.Sequential(model)
        return model
    """
)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "net.py").write_text(MODELS)
    (tmp_path / "exits.py").write_text("import sys\nsys.exit()\n")
    return tmp_path


def cnnshape(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest_cnnshape.cli", *args],
        cwd=project,
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _one_line(result: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_a_shape_too_big_for_any_tensor(project: Path) -> None:
    result = cnnshape(project, "check", "net.py:Net", "--input", "99999999999x99999999999")
    assert result.returncode == 2
    assert _one_line(result) == (
        "cnnshape: error: inputs '99999999999x99999999999' has 1e+22 elements, more than a tensor can "
        "hold (at most 2**63 - 1); use a smaller input"
    )
    result = cnnshape(project, "check", "net.py:Net", "--input", "3037000499x3037000499")
    assert result.returncode == 2
    assert _one_line(result) == (
        "cnnshape: error: input 3037000499x3037000499 of float32 needs 3.69e+19 bytes, more than a "
        "tensor can address (2**63 - 1); use a smaller input"
    )


def test_a_real_forward_that_cannot_fit_in_memory_is_refused_before_allocating(project: Path) -> None:
    result = cnnshape(project, "check", "net.py:Item", "--input", "100000x3x4096x4096")
    assert result.returncode == 1
    line = _one_line(result)
    assert line.startswith(
        "cnnshape: TraceError: a real forward on cpu needs 20,132,659,200,000 bytes (18,750.0 GiB) for "
        "the input alone, more than the "
    )
    assert line.endswith(
        "GiB this machine has free; trace on device='meta' (no memory; a model meta cannot run needs "
        "a smaller input)"
    )


def test_a_colon_inside_factory_arguments(project: Path) -> None:
    result = cnnshape(project, "check", 'net.py:Net(name="a:b")', "--input", "1x3x8x8")
    assert result.returncode == 0, result.stderr
    assert "-> output [1, 4, 6, 6]" in result.stdout


def test_two_argument_lists_are_refused_rather_than_one_dropped(project: Path) -> None:
    result = cnnshape(project, "check", "net.py:NeedsArgs(width=4)(x=1)", "--input", "1x4")
    assert result.returncode == 2
    assert _one_line(result) == (
        "cnnshape: error: model factory 'net.py:NeedsArgs(width=4)(x=1)' has more than one argument "
        "list; put every argument in one, e.g. 'net.py:Net(width=4, depth=2)'"
    )


def test_a_factory_module_that_exits_when_imported(project: Path) -> None:
    result = cnnshape(project, "check", "exits.py:Net", "--input", "1x3")
    assert result.returncode == 1
    assert _one_line(result) == (
        "cnnshape: FactoryError: model factory 'exits.py:Net': importing 'exits.py' called "
        "sys.exit(None); a module that defines models must not exit when imported (put script code "
        "under if __name__ == '__main__':)"
    )


def test_a_model_as_deep_as_torch_runs_traces_and_a_deeper_one_is_explained(project: Path) -> None:
    result = cnnshape(project, "check", "net.py:deep(222)", "--input", "1x3")
    assert result.returncode == 0, result.stderr
    assert "Input [1, 3] -> output [1, 3]" in result.stdout
    result = cnnshape(project, "check", "net.py:deep(1000)", "--input", "1x3")
    assert result.returncode == 1
    assert _one_line(result) == (
        "cnnshape: TraceError: cannot trace Sequential: its modules nest 1001 deep, and torch's own "
        "forward costs 4 Python frames per level, past Python's recursion limit (1000); torch cannot "
        "run it either. Flatten the nesting, or raise the limit first (sys.setrecursionlimit(13000))"
    )
