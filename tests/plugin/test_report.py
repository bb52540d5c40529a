"""--cnn-shapes, --cnn-shapes-depth, --cnn-shapes-report, --cnn-shapes-device."""

from __future__ import annotations

import json
import re

import pytest

from tests.plugin.helpers import write_models

TESTS = """
import pytest
from mymodels.nets import LeNet, Broken, Encoder

def test_lenet(cnn_shapes):
    cnn_shapes.assert_output(LeNet(), "2x1x28x28", "B x 10")

def test_encoder(cnn_shapes):
    cnn_shapes.assert_output(Encoder(), "B x 3 x H x W", "B x 64 x H//8 x W//8",
                             dims={"B": 2, "H": 64, "W": 48}, name="encoder")

def test_broken(cnn_shapes):
    cnn_shapes.trace(Broken(), (1, 1, 28, 28))

def test_no_model():
    pass
"""


@pytest.fixture
def suite(pytester: pytest.Pytester) -> pytest.Pytester:
    write_models(pytester)
    pytester.makepyfile(test_suite=TESTS)
    return pytester


def test_report_lists_every_model_with_overview_and_tables(suite: pytest.Pytester) -> None:
    result = suite.runpytest("--cnn-shapes")
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*= CNN shapes =*",
            "Model*Input*Output*Params*Trainable*Device*Status",
            "Broken*1x1x28x28*-*FAILED",
            "encoder*2x3x64x48*2x64x8x6*passed",
            "LeNet*2x1x28x28*2x10*34,622*34,622*meta*passed",
            "3 model(s): 2 passed, 1 failed",
            "Broken  ?test_suite.py::test_broken?",
            "FAILED: *",
        ]
    )


def test_depth_option_folds_tables(suite: pytest.Pytester) -> None:
    row = re.compile(r"^\s+stem\.0\s+Conv2d\s+\[", re.MULTILINE)  # a table row, not a lint line
    shallow = suite.runpytest("--cnn-shapes", "--cnn-shapes-depth=1", "-k", "encoder")
    assert not row.search(shallow.stdout.str()) and "  stem " in shallow.stdout.str()
    deep = suite.runpytest("--cnn-shapes", "--cnn-shapes-depth=5", "-k", "encoder")
    assert row.search(deep.stdout.str())


def _sections(result: pytest.RunResult) -> list[str]:
    """The titles of the ``==== title ====`` lines of a run's output (the last without its time)."""
    titles = re.findall(r"^=+ (.+?) =+$", result.stdout.str(), re.MULTILINE)
    return [re.sub(r" in [0-9.]+s.*$", "", title) for title in titles]


def test_no_report_without_the_option(suite: pytest.Pytester) -> None:
    """The same run with and without --cnn-shapes: the option adds the one section, the rest
    (the tests' outcomes, pytest's own sections) is the same, and no file is written."""
    plain = suite.runpytest()
    plain.assert_outcomes(passed=3, failed=1)
    assert _sections(plain) == [
        "test session starts",
        "FAILURES",
        "short test summary info",
        "1 failed, 3 passed",
    ]
    reported = suite.runpytest("--cnn-shapes")
    reported.assert_outcomes(passed=3, failed=1)
    assert _sections(reported) == [*_sections(plain)[:2], "CNN shapes", *_sections(plain)[2:]]
    written = sorted(p.name for p in suite.path.iterdir() if p.name not in (".pytest_cache", "__pycache__"))
    assert written == ["mymodels", "test_suite.py"]


def test_json_report_schema(suite: pytest.Pytester) -> None:
    result = suite.runpytest("--cnn-shapes-report=out/report.json")
    result.stdout.fnmatch_lines(["cnnshape: report written to *report.json"])
    data = json.loads((suite.path / "out" / "report.json").read_text())
    assert data["schema"] == "pytest-cnnshape/report" and data["version"] == 1
    assert data["summary"] == {"models": 3, "passed": 2, "failed": 1, "xfailed": 0}
    names = [m["name"] for m in data["models"]]
    assert names == ["Broken", "encoder", "LeNet"]
    lenet = next(m for m in data["models"] if m["name"] == "LeNet")
    assert lenet["output"] == "2x10" and lenet["total_params"] == 34622
    assert lenet["nodeids"] == ["test_suite.py::test_lenet"]
    assert lenet["trace"]["layers"][0]["type"] == "LeNet"
    broken = next(m for m in data["models"] if m["name"] == "Broken")
    assert broken["status"] == "failed" and broken["error"]["layer"] == "3"
    assert broken["error"]["received_shapes"] == [[1, 864]]


def test_markdown_report(suite: pytest.Pytester) -> None:
    suite.runpytest("--cnn-shapes-report=summary.md")
    text = (suite.path / "summary.md").read_text()
    assert text.startswith("## CNN shapes")
    lines = text.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("| Model"))
    assert lines[header + 2].startswith("| Broken") and "❌ failed" in lines[header + 2]
    assert "<details>" in text and "| Layer | Type | Input | Output | Params |" in text


def test_device_option_and_project_setting(suite: pytest.Pytester) -> None:
    result = suite.runpytest("--cnn-shapes", "--cnn-shapes-device=meta", "-k", "lenet")
    result.stdout.fnmatch_lines(["LeNet*meta*passed"])
    suite.makepyprojecttoml('[tool.cnnshape]\ndevice = "meta"\n')
    result = suite.runpytest("--cnn-shapes", "-k", "lenet")
    result.stdout.fnmatch_lines(["LeNet*meta*passed"])


@pytest.mark.parametrize(
    ("args", "toml", "message"),
    [
        (["--cnn-shapes-depth=-1"], "", "*--cnn-shapes-depth=-1: give 0 or more*"),
        (["--cnn-shapes-report=out.txt"], "", "*must end in .json, .md or .html*"),
        (["--cnn-shapes-device=gpu"], "", "*invalid choice*"),
        ([], '[tool.cnnshape]\ndevcie = "meta"\n', "*unknown key 'devcie' (did you mean 'device'?*"),
        ([], '[tool.cnnshape]\ndepth = "two"\n', "*depth = 'two' has the wrong type; e.g. depth = 2*"),
        ([], '[tool.cnnshape]\ndevice = "tpu"\n', "*device = 'tpu' is not one of auto, meta, cpu*"),
        (["--cnn-shapes-prune"], "", "*--cnn-shapes-prune * only together with --cnn-shapes-update*"),
    ],
)
def test_bad_configuration_is_a_one_line_usage_error(
    suite: pytest.Pytester, args: list[str], toml: str, message: str
) -> None:
    if toml:
        suite.makepyprojecttoml(toml)
    result = suite.runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])
    assert "Traceback" not in result.stderr.str() + result.stdout.str()


def test_plugin_can_be_disabled(suite: pytest.Pytester) -> None:
    result = suite.runpytest("-p", "no:cnnshape", "-k", "no_model")
    result.assert_outcomes(passed=1, deselected=3)
    result = suite.runpytest("-p", "no:cnnshape", "--cnn-shapes")
    assert result.ret == pytest.ExitCode.USAGE_ERROR


def test_failure_text_is_the_diagnostic_not_a_torch_traceback(suite: pytest.Pytester) -> None:
    result = suite.runpytest("-k", "broken")
    text = result.stdout.str()
    assert "ShapeMismatchError: 3 (Linear)" in text
    assert "test_suite.py:12: in test_broken" in text
    assert "torch/nn/modules" not in text
    long = suite.runpytest("-k", "broken", "--tb=long")
    assert "torch/nn/modules" in long.stdout.str()


def test_model_failures_a_test_expects_are_reported_as_xfailed(suite: pytest.Pytester) -> None:
    suite.makepyfile(
        test_expected="""
        import pytest
        from pytest_cnnshape import ShapeMismatchError
        from mymodels.nets import Broken

        def test_documents_the_mistake(cnn_shapes):
            with pytest.raises(ShapeMismatchError, match="cannot take its input"):
                cnn_shapes.trace(Broken(), (1, 1, 28, 28), name="expected")

        @pytest.mark.xfail(raises=ShapeMismatchError, strict=True)
        def test_strict_xfail(cnn_shapes):
            cnn_shapes.trace(Broken(), (2, 1, 28, 28), name="strict")
    """
    )
    result = suite.runpytest("--cnn-shapes", "test_expected.py")
    result.assert_outcomes(passed=1, xfailed=1)
    result.stdout.fnmatch_lines(
        [
            "expected*1x1x28x28*-*xfailed",
            "strict*2x1x28x28*-*xfailed",
            "2 model(s): 0 passed, 0 failed, 2 failed as their tests expected (xfailed)",
            "XFAILED (the test expected it): 3 (Linear) cannot take its input",
        ]
    )
