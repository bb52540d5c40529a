"""Failed baselines on GitHub Actions: ::error annotations and the Markdown report."""

from __future__ import annotations

import pytest

from pytest_cnnshape.baseline import github
from tests.plugin.helpers import DECLARED_LENET, MODELS, make_project, set_models

PYPROJECT = (
    """
[tool.pytest.ini_options]
testpaths = ["tests"]

[tool.cnnshape]
baselines = true
"""
    + DECLARED_LENET
)

TESTS = """
import pytest
from mymodels.nets import LeNet, Encoder


def test_encoder(cnn_shapes):
    cnn_shapes.assert_baseline(Encoder(), "1x3x32x32")


@pytest.mark.cnn_model(LeNet, input="1x1x28x28")
def test_lenet(cnn_trace):
    pass
"""


@pytest.fixture
def changed(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """A project whose LeNet gained a channel since its baselines were written."""
    make_project(pytester, monkeypatch, PYPROJECT, {"tests/test_models.py": TESTS})
    pytester.runpytest("--cnn-shapes-update").assert_outcomes(passed=3)
    stem = "nn.Conv2d(1, {0}, 5), nn.ReLU(), nn.MaxPool2d(2),\n            nn.Conv2d({0}, 16, 5)"
    set_models(pytester, MODELS.replace(stem.format(6), stem.format(7)))
    return pytester


def test_annotations_point_at_the_test_and_the_declaration(
    changed: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    result = changed.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=2)
    lines = [line for line in result.stdout.lines if line.startswith("::error ")]
    assert [line.split("::")[1] for line in lines] == [
        "error file=pyproject.toml,line=7,title=cnnshape%3A shape baseline changed",
        "error file=tests/test_models.py,line=10,title=cnnshape%3A shape baseline changed",
    ]
    assert (
        lines[0]
        .split("::", 2)[2]
        .startswith(
            "shape baseline changed for lenet (2x1x28x28): 5 layers changed; params +426%0A"
            "baseline: __cnnshapes__/lenet.json%0A"
        )
    )
    changed.makepyprojecttoml(
        PYPROJECT.replace("baselines = true", "baselines = true\ngithub_annotations = false")
    )
    result = changed.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=2)
    assert "::error" not in result.stdout.str()


def test_no_annotations_off_github(changed: pytest.Pytester) -> None:
    result = changed.runpytest()
    result.assert_outcomes(passed=1, failed=2)
    assert "::error" not in result.stdout.str()


def test_markdown_report_lists_failed_baselines_first(changed: pytest.Pytester) -> None:
    changed.runpytest("--cnn-shapes-report=report.md").assert_outcomes(passed=1, failed=2)
    text = (changed.path / "report.md").read_text()
    section = text.index("### Shape baselines that fail")
    assert section < text.index("| Model")
    assert (
        "- **LeNet** (changed) `tests/__cnnshapes__/test_models/LeNet-1x1x28x28.json` — shape "
        "baseline changed for LeNet (1x1x28x28): 5 layers changed; params +426" in text
    )
    assert "- **lenet** (changed) `__cnnshapes__/lenet.json`" in text
    assert "  ~   3        Conv2d     1x16x8x8             1x16x8x8        2,416                2,816" in text
    assert "Accept intended changes with `pytest --cnn-shapes-update`." in text


def test_annotation_values_are_escaped() -> None:
    line = github.error("a,b:c.py", 3, "t: x", "50% done\nnext, line")
    assert line == "::error file=a%2Cb%3Ac.py,line=3,title=t%3A x::50%25 done%0Anext, line"
