"""The cnnshape command: tables, diagnostics and exit codes."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

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


def _net(**kwargs: object) -> torch.nn.Module:
    """``models.py``'s Net, built here from the same source."""
    namespace: dict[str, object] = {}
    exec(MODELS, namespace)
    return namespace["Net"](**kwargs)  # type: ignore[operator]


def _rows(out: str) -> list[list[str]]:
    """The table's rows (name, type, input, output, params), split on runs of 2+ spaces."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("-------")) + 1
    end = next(i for i, line in enumerate(lines) if line.startswith("Total params"))
    return [re.split(r"\s{2,}", line.strip()) for line in lines[start:end]]


def test_summary_with_kwargs_depth_and_json(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Against plain torch: width=4 reaches the model, --depth 1 keeps exactly the modules one
    level down, each with the output its forward hook sees and its own parameter count."""
    code, out, _ = run(capsys, "summary", "models.py:Net(width=4)", "-i", "2x3x32x32", "--depth", "1")
    assert code == 0
    model = _net(width=4)
    seen: dict[str, list[str]] = {}
    for name, module in model.named_children():
        module.register_forward_hook(
            lambda m, a, o, name=name: seen.__setitem__(name, [str(list(a[0].shape)), str(list(o.shape))])
        )
    final = list(model(torch.randn(2, 3, 32, 32)).shape)
    expected = [
        ["(root)", "Net", "[2, 3, 32, 32]", str(final), f"{sum(p.numel() for p in model.parameters()):,}"]
    ]
    for name, module in model.named_children():
        params = sum(p.numel() for p in module.parameters())
        expected.append([name, type(module).__name__, *seen[name], f"{params:,}"])
    assert _rows(out) == expected
    code, out, _ = run(capsys, "summary", "models:Net", "-i", "2x3x32x32", "--json")
    data = json.loads(out)
    plain = _net()
    assert (
        code == 0
        and data["ok"]
        and data["trace"]["output_shape"] == list(plain(torch.randn(2, 3, 32, 32)).shape)
    )
    assert data["trace"]["total_params"] == sum(p.numel() for p in plain.parameters())


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
    model = _net()
    params = sum(p.numel() for p in model.parameters())
    assert f"Total params: {params:,}" in out.stdout
    assert f"-> output {list(model(torch.randn(1, 3, 32, 32)).shape)}" in out.stdout
    assert [row[0] for row in _rows(out.stdout)] == [name or "(root)" for name, _ in model.named_modules()]


def test_torchinfo_view(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The table torchinfo itself prints for the same model and input."""
    import torchinfo

    code, out, _ = run(capsys, "summary", "models.py:Net", "-i", "1x3x32x32", "--torchinfo")
    assert code == 0
    theirs = torchinfo.summary(_net().eval(), input_data=[torch.randn(1, 3, 32, 32)], depth=3, verbose=0)
    assert out.strip() == str(theirs).strip()
