"""The cnnshape command: tables, diagnostics and exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pytest_cnnshape.cli import main

MODELS = textwrap.dedent(
    """
    import torch.nn as nn

    class Net(nn.Module):
        def __init__(self, width=8):
            super().__init__()
            self.body = nn.Sequential(nn.Conv2d(3, width, 3), nn.ReLU(), nn.Flatten())
            self.fc = nn.Linear(width * 30 * 30, 10)

        def forward(self, x):
            return self.fc(self.body(x))

    def broken():
        return nn.Sequential(nn.Conv2d(3, 8, 3), nn.Flatten(), nn.Linear(512, 10))

    def raises():
        raise RuntimeError("no weights here")
    """
)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "models.py").write_text(MODELS)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_summary_prints_the_table(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "summary", "models.py:Net", "--input", "1x3x32x32")
    assert code == 0
    assert "body.0" in out and "[1, 8, 30, 30]" in out and "Total params: 72,234" in out


def test_summary_with_kwargs_depth_and_json(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "summary", "models.py:Net(width=4)", "-i", "2x3x32x32", "--depth", "1")
    assert code == 0 and "body.0" not in out and "[2, 4, 30, 30]" not in out
    code, out, _ = run(capsys, "summary", "models:Net", "-i", "2x3x32x32", "--json")
    data = json.loads(out)
    assert code == 0 and data["ok"] and data["trace"]["output_shape"] == [2, 10]


def test_shape_failure_exits_1_with_the_diagnostic(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("summary", "check"):
        code, out, _ = run(capsys, command, "models.py:broken", "--input", "1x3x32x32")
        assert code == 1
        assert "ShapeMismatchError" in out and "2 (Linear)" in out
    code, out, _ = run(capsys, "check", "models.py:Net", "--input", "1x3x32x32")
    assert code == 0 and out.startswith("ok")


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["summary", "models.py:Nope", "-i", "1x3x32x32"], "has no 'Nope'; it defines Net"),
        (["summary", "models.py", "-i", "1x3x32x32"], "no ':Name' part"),
        (["summary", "missing.py:Net", "-i", "1x3x32x32"], "no file"),
        (["summary", "nosuchpkg.mod:Net", "-i", "1x3x32x32"], "cannot import 'nosuchpkg.mod'"),
        (["summary", "models.py:Net", "-i", "1x3xfoo"], "foo is not a size"),
        (["summary", "models.py:Net"], "--input is required"),
        (["summary", "models.py:Net(width=)", "-i", "1x3x8x8"], "cannot read the arguments"),
        (["summary", "models.py:Net", "-i", "1x3x8x8", "--device", "tpu"], "invalid choice"),
    ],
)
def test_usage_errors_exit_2_in_one_line(
    project: Path, capsys: pytest.CaptureFixture[str], argv: list[str], words: str
) -> None:
    with pytest.raises(SystemExit) if "--device" in argv else _nothing() as info:
        code, _, err = run(capsys, *argv)
    if info is not None and isinstance(info, pytest.ExceptionInfo):
        assert info.value.code == 2
        err = capsys.readouterr().err
    else:
        assert code == 2
    assert words in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_a_factory_that_raises_is_the_models_failure_exit_1(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "summary", "models.py:raises", "-i", "1x3x8x8")
    assert code == 1
    assert "FactoryError: model factory 'models.py:raises' raised RuntimeError: no weights here" in err
    assert err.count("\n") == 1 and "Traceback" not in err


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> bool:
        return False


def test_console_script_runs(project: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "pytest_cnnshape.cli", "summary", "models.py:Net", "-i", "1x3x32x32"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert "Total params" in out.stdout


def test_torchinfo_view(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "summary", "models.py:Net", "-i", "1x3x32x32", "--torchinfo")
    assert code == 0 and "Layer (type:depth-idx)" in out
