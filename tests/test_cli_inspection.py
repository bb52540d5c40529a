"""cnnshape summary --params --flops --lint: text, JSON and exit codes."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from tests.test_cli import run

MODELS = textwrap.dedent(
    """
    import torch.nn as nn

    def bad():
        return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                             nn.Dropout(0.3), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                             nn.Linear(8, 10))

    def good():
        return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8),
                             nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10))
    """
)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "models.py").write_text(MODELS)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_params_prints_every_tensor_and_the_regularization(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "summary", "models.py:bad", "-i", "1x3x16x16", "--params")
    assert code == 0
    assert "Tensor" in out and "1.running_mean" in out and "6.weight" in out
    assert "Params 330 (trainable 330, frozen 0) · weights 1.3 KiB · buffers 17 (72 B)" in out
    assert "Regularization: Dropout p=0.3 (active, train mode) · BatchNorm2d (batch stats)" in out


def test_flops_prints_macs_per_layer(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "summary", "models.py:good", "-i", "1x3x16x16", "--flops")
    assert code == 0
    assert "MACs 55.4 K (55,376) · FLOPs 110.8 K" in out  # 8*3*9*16*16 + 8*10


def test_lint_exits_1_on_findings_and_0_when_clean(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "summary", "models.py:bad", "-i", "1x3x16x16", "--lint")
    assert code == 1
    assert "Lint: 2 findings" in out and "[bias-before-batchnorm] 0:" in out
    assert "[dropout-after-conv] 3:" in out and "why:" in out
    code, out, _ = run(capsys, "summary", "models.py:good", "-i", "1x3x16x16", "--lint")
    assert code == 0 and "no lint findings" in out


def test_lint_ignore_from_the_command_line_and_pyproject(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(
        capsys,
        "summary",
        "models.py:bad",
        "-i",
        "1x3x16x16",
        "--lint",
        "--lint-ignore",
        "bias-before-batchnorm",
    )
    assert code == 1 and "Lint: 1 finding" in out and "bias-before-batchnorm]" not in out
    (project / "pyproject.toml").write_text('[tool.cnnshape]\nlint = { ignore = ["dropout-after-conv"] }\n')
    code, out, _ = run(
        capsys,
        "summary",
        "models.py:bad",
        "-i",
        "1x3x16x16",
        "--lint",
        "--lint-ignore",
        "bias-before-batchnorm",
    )
    assert code == 0 and "no lint findings" in out


def test_json_carries_the_inspection(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys, "summary", "models.py:bad", "-i", "1x3x16x16", "--json", "--params", "--flops", "--lint"
    )
    data = json.loads(out)
    assert code == 1 and data["ok"] is True
    assert set(data["inspection"]) == {"parameters", "regularization", "flops", "lint"}
    assert data["inspection"]["parameters"]["totals"]["total"] == 330
    assert [f["rule"] for f in data["inspection"]["lint"]["findings"]] == [
        "bias-before-batchnorm",
        "dropout-after-conv",
    ]
    code, out, _ = run(capsys, "summary", "models.py:good", "-i", "1x3x16x16", "--json")
    assert "inspection" not in json.loads(out)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--lint-ignore", "bias-before-bn"],
            "--lint-ignore names an unknown lint rule 'bias-before-bn' (did you mean "
            "'bias-before-batchnorm'?)",
        ),
    ],
)
def test_usage_errors_are_one_line(
    project: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, _, err = run(capsys, "summary", "models.py:bad", "-i", "1x3x16x16", "--lint", *argv)
    assert code == 2 and message in err and "Traceback" not in err


def test_a_broken_pyproject_is_named(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "pyproject.toml").write_text('[tool.cnnshape]\nlint = { ignore = ["nope"] }\n')
    code, _, err = run(capsys, "summary", "models.py:bad", "-i", "1x3x16x16", "--lint")
    assert code == 2 and "[tool.cnnshape] lint.ignore names an unknown lint rule 'nope'" in err


def test_memory_prints_the_estimate_per_layer(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from pytest_cnnshape import estimate_memory
    from pytest_cnnshape.inspection.render import human_bytes
    from pytest_cnnshape.tracing.factory import build_model

    code, out, _ = run(
        capsys,
        "summary",
        "models.py:good",
        "-i",
        "64x3x16x16",
        "--memory",
        "--optimizer",
        "SGD(momentum=0.9)",
    )
    expected = estimate_memory(build_model("models.py:good"), (64, 3, 16, 16), "SGD(momentum=0.9)")
    assert code == 0
    assert "Saved for backward" in out and "Largest consumers (saved for backward):" in out
    assert f"Peak training {human_bytes(expected.peak_training_bytes)}" in out
    assert "optimizer state 1.3 KiB (SGD: 5 state tensors for 5 parameters)" in out
    code, out, _ = run(capsys, "summary", "models.py:good", "-i", "64x3x16x16", "--memory", "--json")
    memory = json.loads(out)["inspection"]["memory"]
    assert memory["saved_activation_bytes"] == expected.saved_activation_bytes
    assert memory["optimizer"]["how"] == "not counted"
    assert [layer["name"] for layer in memory["layers"]] == ["", "0", "1", "2", "3", "4", "5"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--optimizer", "Adam"], "--optimizer counts in the memory estimate: add --memory"),
        (["--memory", "--optimizer", "Adamm"], "optimizer='Adamm' is not a torch.optim optimizer; one of"),
        (["--memory", "--optimizer", "SGD(momentumm=1)"], "optimizer SGD has no setting 'momentumm'"),
    ],
)
def test_memory_usage_errors_are_one_line(
    project: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, _, err = run(capsys, "summary", "models.py:good", "-i", "1x3x16x16", *argv)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
