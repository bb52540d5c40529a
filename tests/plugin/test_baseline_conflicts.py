"""A baseline git could not merge: named as a conflict, resolved by a new trace, never touched otherwise.

Two branches change the same model and each refreshes its baseline; git merges the
JSON by lines and leaves conflict markers. The conflicted file is made here the way
git makes it (``git merge-file`` of the three real baselines), serially and under
pytest-xdist.
"""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from pytest_cnnshape.baseline.serializer import conflict_line
from tests.plugin.helpers import MODELS, make_project, set_models

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")

TESTS = """
import pytest
from mymodels.nets import LeNet

@pytest.mark.cnn_model(LeNet, input="1x1x28x28", baseline=True)
def test_lenet(cnn_trace):
    pass
"""

BASELINE = "__cnnshapes__/test_models/LeNet-1x1x28x28.json"
NODE = "test_models.py::test_lenet"
#: The two branches: each narrows the classifier's hidden layer its own way.
OURS = MODELS.replace("nn.Linear(256, 120)", "nn.Linear(256, 100)").replace(
    "nn.Linear(120, classes)", "nn.Linear(100, classes)"
)
THEIRS = MODELS.replace("nn.Linear(256, 120)", "nn.Linear(256, 84)").replace(
    "nn.Linear(120, classes)", "nn.Linear(84, classes)"
)


def _baseline_of(pytester: pytest.Pytester, source: str) -> str:
    set_models(pytester, source)
    pytester.runpytest("--cnn-shapes-update", "-p", "no:cacheprovider").assert_outcomes(passed=1)
    return (pytester.path / BASELINE).read_text()


@pytest.fixture
def conflicted(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> tuple[pytest.Pytester, bytes]:
    """A project whose LeNet baseline holds git's conflict markers; the merged code is ``OURS``."""
    make_project(pytester, monkeypatch, "", {"test_models.py": TESTS})
    versions = {
        name: _baseline_of(pytester, source)
        for name, source in (("base", MODELS), ("ours", OURS), ("theirs", THEIRS))
    }
    paths = {}
    for name, text in versions.items():
        paths[name] = pytester.path / f"{name}.json.orig"
        paths[name].write_text(text)
    merged = subprocess.run(
        [
            "git",
            "merge-file",
            "-p",
            "-L",
            "ours",
            "-L",
            "base",
            "-L",
            "theirs",
            paths["ours"],
            paths["base"],
            paths["theirs"],
        ],
        capture_output=True,
        check=False,
    )
    assert merged.returncode > 0 and b"<<<<<<< ours" in merged.stdout  # git found conflicts
    for path in paths.values():
        path.unlink()
    (pytester.path / BASELINE).write_bytes(merged.stdout)
    set_models(pytester, OURS)  # the model file's own conflict resolved: the merged code
    return pytester, merged.stdout


def _expect_conflict(result: pytest.RunResult, line: int) -> None:
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            f"*shape baseline of LeNet (1x1x28x28) cannot be used: {BASELINE} has merge-conflict "
            f"markers (line {line})",
            f"*the file was left as it is; resolve by re-running `pytest --cnn-shapes-update {NODE}` on the "
            "merged code*",
        ]
    )
    text = result.stdout.str()
    assert "Traceback" not in text and "internal error" not in text and "not valid JSON" not in text


@pytest.mark.parametrize("workers", [None, "2"], ids=["serial", "xdist"])
def test_a_conflicted_baseline_is_named_and_left_until_updated(
    conflicted: tuple[pytest.Pytester, bytes], workers: str | None
) -> None:
    if workers:
        pytest.importorskip("xdist")
    project, merged = conflicted
    line = conflict_line(merged.decode())
    assert line is not None and merged.decode().splitlines()[line - 1].startswith("<<<<<<< ours")
    args = ("-p", "no:cacheprovider", *(("-n", workers) if workers else ()))
    run = project.runpytest_subprocess if workers else project.runpytest
    path = project.path / BASELINE
    for _ in range(2):  # the file is never touched without --cnn-shapes-update
        _expect_conflict(run(*args), line)
        assert path.read_bytes() == merged
    project.makepyprojecttoml("[tool.cnnshape]\nupdate_missing = true\n")
    _expect_conflict(run(*args), line)
    assert path.read_bytes() == merged  # update_missing never replaces a file that exists
    run(*args, "--cnn-shapes-update", NODE).assert_outcomes(passed=1)
    rows = json.loads(path.read_text())["layers"]
    assert [r["output"] for r in rows if r["name"] == "7"] == [[1, 100]]  # the merged code's LeNet
    run(*args).assert_outcomes(passed=1)


def test_prune_keeps_a_conflicted_baseline_no_test_uses(conflicted: tuple[pytest.Pytester, bytes]) -> None:
    project, merged = conflicted
    stale = project.path / "__cnnshapes__/test_models/LeNet-9x1x28x28.json"
    stale.write_bytes(merged)
    project.runpytest("--cnn-shapes-update", "--cnn-shapes-prune", "-p", "no:cacheprovider")
    assert stale.read_bytes() == merged  # not provably ours: a person resolves it


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("{\n<<<<<<< HEAD\n", 2),
        ('{\n  "a": 1,\n||||||| base\n', 3),
        ('{\n  "a": 1\n}\n=======\n', 4),
        ('{\n  "a": ">>>>>>> not a marker",\n  "b": "=======",\n  "c": "<<<<<<<"\n}\n', None),
        ("<<<<<<<< eight is not git's\n", None),
    ],
)
def test_conflict_markers_are_found_on_their_own_lines(text: str, line: int | None) -> None:
    assert conflict_line(text) == line
