"""Under pytest-xdist only the controller writes baselines: the same bytes as a serial run."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.plugin.helpers import DECLARED_LENET, MODELS, make_project

pytest.importorskip("xdist")

PYPROJECT = (
    """
[tool.pytest.ini_options]
testpaths = ["tests"]

[tool.cnnshape]
baselines = true
"""
    + DECLARED_LENET
    + """
[tool.cnnshape.models.encoder]
factory = "mymodels.nets:Encoder"
input = "1x3x64x64"
baseline_output_only = true
"""
)

TESTS_A = """
import pytest
from mymodels.nets import LeNet, Encoder

@pytest.mark.parametrize("batch", [1, 2, 3, 4])
def test_lenet(cnn_shapes, batch):
    cnn_shapes.assert_baseline(LeNet(), (batch, 1, 28, 28))

@pytest.mark.cnn_model(Encoder, input="2x3x32x32")
def test_marker(cnn_trace):
    pass
"""

TESTS_B = """
from mymodels.nets import Encoder

def test_same_model_in_two_tests(cnn_shapes):
    cnn_shapes.assert_baseline(Encoder(), "1x3x32x32", name="enc")

def test_same_model_again(cnn_shapes):
    cnn_shapes.assert_baseline(Encoder(), "1x3x32x32", name="enc")
"""


def baselines(root: Path) -> dict[str, bytes]:
    """Every baseline file under ``root``, by relative path."""
    return {
        p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("__cnnshapes__/**/*.json"))
    }


@pytest.fixture
def project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")
    return make_project(
        pytester, monkeypatch, PYPROJECT, {"tests/test_a.py": TESTS_A, "tests/sub/test_b.py": TESTS_B}
    )


def test_serial_and_parallel_updates_write_the_same_bytes(project: pytest.Pytester) -> None:
    args = ("-p", "no:cacheprovider", "--cnn-shapes-update")
    serial = project.runpytest_subprocess(*args)
    serial.assert_outcomes(passed=9)
    serial.stdout.fnmatch_lines(["cnnshape: shape baselines: 8 written, 0 updated, 0 unchanged"])
    written = baselines(project.path)
    assert sorted(written) == [
        "__cnnshapes__/encoder.json",
        "__cnnshapes__/lenet.json",
        "tests/__cnnshapes__/test_a/Encoder-2x3x32x32.json",
        "tests/__cnnshapes__/test_a/LeNet-1x1x28x28.json",
        "tests/__cnnshapes__/test_a/LeNet-2x1x28x28.json",
        "tests/__cnnshapes__/test_a/LeNet-3x1x28x28.json",
        "tests/__cnnshapes__/test_a/LeNet-4x1x28x28.json",
        "tests/sub/__cnnshapes__/test_b/enc-1x3x32x32.json",
    ]
    for folder in ("__cnnshapes__", "tests/__cnnshapes__", "tests/sub/__cnnshapes__"):
        shutil.rmtree(project.path / folder)
    parallel = project.runpytest_subprocess(*args, "-n", "2")
    parallel.assert_outcomes(passed=9)
    parallel.stdout.fnmatch_lines(["cnnshape: shape baselines: 8 written, 0 updated, 0 unchanged"])
    assert baselines(project.path) == written
    assert not list(project.path.rglob("*.tmp"))
    again = project.runpytest_subprocess(*args, "-n", "2")
    again.stdout.fnmatch_lines(["cnnshape: shape baselines: 0 written, 0 updated, 8 unchanged"])


def test_changes_and_broken_files_fail_a_parallel_run(project: pytest.Pytester) -> None:
    project.runpytest_subprocess("--cnn-shapes-update", "-n", "2").assert_outcomes(passed=9)
    written = baselines(project.path)
    (project.path / "mymodels" / "nets.py").write_text(
        MODELS.replace("nn.Linear(256, 120)", "nn.Linear(256, 100)").replace(
            "nn.Linear(120, classes)", "nn.Linear(100, classes)"
        )
    )
    broken = project.path / "tests/sub/__cnnshapes__/test_b/enc-1x3x32x32.json"
    broken.write_text('{"schema": "pytest-cnnshape/baseline", "version": 1,')
    result = project.runpytest_subprocess("-n", "2", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, failed=7)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "*shape baseline changed for lenet (2x1x28x28): 4 layers changed; params -5,340",
        ]
    )
    result.stdout.fnmatch_lines(["*enc-1x3x32x32.json is not valid JSON*"])
    result.stdout.fnmatch_lines(["cnnshape: shape baselines failed (5 changed, 2 unreadable)*"])
    assert baselines(project.path) == {
        **written,
        broken.relative_to(project.path).as_posix(): broken.read_bytes(),
    }
