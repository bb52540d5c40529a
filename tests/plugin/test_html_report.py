"""``--cnn-shapes-report=x.html``: the session's pictures, the same under pytest-xdist."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from pytest_cnnshape import ShapeMismatchError, trace
from tests.helpers import observe
from tests.plugin.helpers import MODELS, write_models
from tests.plugin.test_xdist import PYPROJECT, TESTS


@pytest.fixture
def suite(pytester: pytest.Pytester) -> pytest.Pytester:
    write_models(pytester)
    pytester.makepyprojecttoml(PYPROJECT)
    (pytester.mkdir("tests") / "test_models.py").write_text(TESTS)
    return pytester


def data_of(page: str) -> dict:
    start = page.index('id="cnnshape-data">') + len('id="cnnshape-data">')
    return json.loads(page[start : page.index("</script>", start)])


def test_the_html_report_under_xdist_equals_the_serial_one(suite: pytest.Pytester) -> None:
    pytest.importorskip("xdist")
    args = ("-p", "no:cacheprovider")
    serial = suite.runpytest_subprocess(*args, "--cnn-shapes-report=serial.html")
    parallel = suite.runpytest_subprocess(*args, "-n", "2", "--cnn-shapes-report=parallel.html")
    serial.assert_outcomes(passed=9, failed=1)
    parallel.assert_outcomes(passed=9, failed=1)
    page = (suite.path / "serial.html").read_text()
    assert page == (suite.path / "parallel.html").read_text()
    models = data_of(page)["models"]
    # failed first, then by name; identical entries merged, as in the other reports
    titles = [m["title"] for m in models]
    assert titles[0] == "Broken"  # what failed comes first
    assert sorted(titles) == sorted(["Broken", "encoder", "enc32", "Encoder", "lenet", *["LeNet"] * 4])
    assert all(m["flow"] for m in models)
    assert models[0]["calls"][models[0]["fail"]]["t"] == "Linear"
    assert '<pre class="diagnostic" role="alert">3 (Linear) cannot take its input' in page
    assert page.count('<tr><td><a href="#model-') == len(models)  # the index
    assert '<p class="lead">9 model(s): 8 passed, 1 failed</p>' in page


def test_json_and_markdown_reports_carry_nothing_of_the_picture(suite: pytest.Pytester) -> None:
    """Each model's JSON trace is exactly what ``trace()`` gives without ``flow=`` (no data
    flow), and each Markdown table has one five-column row per layer call of that trace."""
    args = ("-p", "no:cacheprovider", "-k", "lenet or broken")
    suite.runpytest_subprocess(*args, "--cnn-shapes-report=r.json").assert_outcomes(passed=5, failed=1)
    suite.runpytest_subprocess(*args, "--cnn-shapes-report=r.md").assert_outcomes(passed=5, failed=1)
    report = json.loads((suite.path / "r.json").read_text())
    nets: dict[str, Any] = {}
    exec(MODELS, nets)  # the very classes the project imports
    for model in report["models"]:
        factory = nets["LeNet" if model["name"] == "lenet" else model["name"]]
        try:
            expected = trace(factory(), model["input"], device=model["device"]).to_dict()
        except ShapeMismatchError as err:
            expected = err.trace.to_dict()
        assert model["trace"] == expected, model["name"]
        assert "picture" not in model["extras"]
    tables = re.findall(
        r"\| Layer \| Type \| Input \| Output \| Params \|\n\|[^\n]*\n((?:\|[^\n]*\n)+)",
        (suite.path / "r.md").read_text(),
    )
    assert [len(rows.splitlines()) for rows in tables] == [
        len(m["trace"]["layers"]) for m in report["models"]
    ]
    assert all(row.count(" | ") == 4 for rows in tables for row in rows.splitlines())


def test_the_html_report_from_pyproject(suite: pytest.Pytester) -> None:
    suite.makepyprojecttoml(
        PYPROJECT.replace(
            "[tool.cnnshape.models.lenet]",
            '[tool.cnnshape]\nreport = "out/shapes.html"\n\n[tool.cnnshape.models.lenet]',
        )
    )
    result = suite.runpytest_subprocess("-p", "no:cacheprovider", "-k", "lenet")
    result.assert_outcomes(passed=5)
    result.stdout.fnmatch_lines(["cnnshape: report written to *shapes.html"])
    page = (suite.path / "out" / "shapes.html").read_text()
    assert page.startswith("<!DOCTYPE html>")
    # the page's data: the declared lenet and the four LeNet batches, each drawn call for call
    models = data_of(page)["models"]
    nets: dict[str, Any] = {}
    exec(MODELS, nets)
    calls = len(observe(nets["LeNet"](), (2, 1, 28, 28))[0])  # module calls of a plain forward
    assert sorted(m["title"] for m in models) == ["LeNet"] * 4 + ["lenet"]
    assert all(len(m["calls"]) == calls and m["flow"] for m in models)
    assert '<p class="lead">5 model(s): 5 passed, 0 failed</p>' in page


def test_several_reports_in_one_session_and_the_markdown_stays_the_same(suite: pytest.Pytester) -> None:
    args = ("-p", "no:cacheprovider", "-k", "lenet or broken")
    suite.runpytest_subprocess(*args, "--cnn-shapes-report=alone.md")
    both = [f"--cnn-shapes-report=both.{suffix}" for suffix in ("md", "html", "json")]
    result = suite.runpytest_subprocess(*args, *both)
    result.stdout.fnmatch_lines([f"cnnshape: report written to *both.{s}" for s in ("md", "html", "json")])
    assert (suite.path / "alone.md").read_text() == (suite.path / "both.md").read_text()
    report = json.loads((suite.path / "both.json").read_text())
    assert all("picture" not in m["extras"] for m in report["models"])
    assert "sources" in report["models"][0]["trace"]["layers"][0]  # the data flow, documented
