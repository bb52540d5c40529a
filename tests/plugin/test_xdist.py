"""Under pytest-xdist the report is gathered on the controller: same output as serial."""

from __future__ import annotations

import pytest

from tests.plugin.helpers import write_models

pytest.importorskip("xdist")

PYPROJECT = """
[tool.pytest.ini_options]
testpaths = ["tests"]

[tool.cnnshape.models.lenet]
factory = "mymodels.nets:LeNet"
input = "2x1x28x28"
output = "B x 10"

[tool.cnnshape.models.encoder]
factory = "mymodels.nets:Encoder"
input = "1x3x64x64"
"""

TESTS = """
import pytest
from mymodels.nets import LeNet, Broken, Encoder

@pytest.mark.parametrize("batch", [1, 2, 3, 4])
def test_lenet(cnn_shapes, batch):
    cnn_shapes.assert_output(LeNet(), (batch, 1, 28, 28), "B x 10")

def test_same_model_twice(cnn_shapes):
    cnn_shapes.trace(Encoder(), "1x3x32x32", name="enc32")

def test_same_model_again(cnn_shapes):
    cnn_shapes.trace(Encoder(), "1x3x32x32", name="enc32")

@pytest.mark.cnn_model(Encoder, input="2x3x32x32", output="B x 64 x 4 x 4")
def test_marker(cnn_trace):
    pass

def test_broken(cnn_shapes):
    cnn_shapes.trace(Broken(), (1, 1, 28, 28))
"""


def section(text: str) -> str:
    start = text.index("= CNN shapes =")
    end = text.index("cnnshape: report written to")
    return text[start:end]


def test_xdist_report_equals_serial(pytester: pytest.Pytester) -> None:
    write_models(pytester)
    pytester.makepyprojecttoml(PYPROJECT)
    tests = pytester.mkdir("tests")
    (tests / "test_models.py").write_text(TESTS)
    args = ("--cnn-shapes", "-p", "no:cacheprovider", "-rf")
    serial = pytester.runpytest_subprocess(*args, "--cnn-shapes-report=serial.json")
    parallel = pytester.runpytest_subprocess(*args, "-n", "2", "--cnn-shapes-report=parallel.json")
    serial.assert_outcomes(passed=9, failed=1)
    parallel.assert_outcomes(passed=9, failed=1)
    assert (pytester.path / "serial.json").read_bytes() == (pytester.path / "parallel.json").read_bytes()
    assert section(serial.stdout.str()) == section(parallel.stdout.str())
    text = section(parallel.stdout.str())
    assert text.count("\nenc32 ") == 2  # one overview row, one table: identical traces merge
    assert "enc32  [tests/test_models.py::test_same_model_again (+1 more)]" in text
    assert "encoder  [pyproject.toml::encoder]" in text


def test_workers_do_not_write_the_report(pytester: pytest.Pytester) -> None:
    write_models(pytester)
    pytester.makepyfile(
        test_one="""
        from mymodels.nets import LeNet
        def test_it(cnn_shapes):
            cnn_shapes.trace(LeNet(), "1x1x28x28")
    """
    )
    result = pytester.runpytest_subprocess("-n", "2", "--cnn-shapes-report=r.md", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    assert [p.name for p in pytester.path.glob("*.md")] == ["r.md"]
    assert not list(pytester.path.glob(".r.md.*"))
