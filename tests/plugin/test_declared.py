"""Declared models in [tool.cnnshape.models]: collected, selected, run, explained."""

from __future__ import annotations

import pytest

from tests.plugin.helpers import write_models

PYPROJECT = """
[tool.pytest.ini_options]
testpaths = ["tests"]

[tool.cnnshape.models.lenet]
factory = "mymodels.nets:LeNet"
input = "2x1x28x28"
output = "B x 10"
max_params = 100_000

[tool.cnnshape.models.lenet5]
factory = "mymodels/nets.py:LeNet"
kwargs = { classes = 5 }
input = "N x 1 x 28 x 28"
dims = { N = 4 }
output = "N x 5"
device = "meta"

[tool.cnnshape.models.encoder]
factory = "mymodels.nets:Encoder"
input = "1x3x64x64"
output = "B x 64 x H//8 x W//8"
"""


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    write_models(pytester)
    pytester.makepyprojecttoml(PYPROJECT)
    tests = pytester.mkdir("tests")
    (tests / "test_plain.py").write_text("def test_plain():\n    pass\n")
    return pytester


def test_declared_models_are_collected_in_name_order(project: pytest.Pytester) -> None:
    result = project.runpytest("--collect-only", "-q")
    result.stdout.fnmatch_lines(
        [
            "tests/test_plain.py::test_plain",
            "pyproject.toml::encoder",
            "pyproject.toml::lenet",
            "pyproject.toml::lenet5",
        ]
    )


def test_declared_models_run_and_report(project: pytest.Pytester) -> None:
    result = project.runpytest("--cnn-shapes", "-v")
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(
        [
            "*Model*Input*Output*",
            "encoder*1x3x64x64*1x64x8x8*passed",
            "lenet*2x1x28x28*2x10*34,622*",
            "lenet5*4x1x28x28*4x5*meta*passed",
        ]
    )


def test_select_with_k_and_marker(project: pytest.Pytester) -> None:
    result = project.runpytest("-k", "lenet5")
    result.assert_outcomes(passed=1)
    result = project.runpytest("-m", "cnn_declared", "-q")
    result.assert_outcomes(passed=3, deselected=1)


def test_explicit_paths_leave_declared_models_out(project: pytest.Pytester) -> None:
    result = project.runpytest("tests")
    result.assert_outcomes(passed=1)
    result = project.runpytest("pyproject.toml")
    result.assert_outcomes(passed=3)


def test_declared_failures_show_the_diagnostic_or_difference(project: pytest.Pytester) -> None:
    project.makepyprojecttoml(
        PYPROJECT
        + """
[tool.cnnshape.models.broken]
factory = "mymodels.nets:Broken"
input = "1x1x28x28"

[tool.cnnshape.models.wrong]
factory = "mymodels.nets:LeNet"
input = "1x1x28x28"
output = "B x 3"

[tool.cnnshape.models.exploding]
factory = "mymodels.nets:explode"
input = "1x1x28x28"
"""
    )
    result = project.runpytest("pyproject.toml")
    result.assert_outcomes(passed=3, failed=3)
    result.stdout.fnmatch_lines(
        [
            "*cnnshape model broken*",
            "ShapeMismatchError: 3 (Linear)*",
            "*cnnshape model exploding*",
            "*raised RuntimeError: factory exploded*",
            "*cnnshape model wrong*",
            "output shape [1, 10] does not match the expected [1, 3]",
        ]
    )
    assert "Traceback" not in result.stdout.str()


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (
            'factory = "mymodels.nets:LeNet"\ninptu = "1x1x28x28"',
            "*[[]tool.cnnshape.models.bad[]] has an unknown key 'inptu' (did you mean 'input'?*",
        ),
        ('input = "1x1x28x28"', "*[[]tool.cnnshape.models.bad[]] needs a factory*"),
        ('factory = "LeNet"\ninput = "1x1x28x28"', "*no ':Name' part*"),
        ('factory = "mymodels.nets:LeNet"\ninput = "1x1xfoox28"', "*names foo but no value is given*"),
        (
            'factory = "mymodels.nets:LeNet"\ninput = "1x1x28x28"\nmax_params = "big"',
            "*max_params = 'big' must be a positive whole number*",
        ),
        ('factory = "mymodels.nets:LeNet"\ninput = "1x1x28x28"\noutput = "B x 2.5"', "*non-integer*"),
    ],
)
def test_bad_declarations_are_usage_errors(project: pytest.Pytester, table: str, message: str) -> None:
    project.makepyprojecttoml(f"[tool.cnnshape.models.bad]\n{table}\n")
    result = project.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])
    assert "Traceback" not in result.stderr.str()
