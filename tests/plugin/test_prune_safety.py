"""Prune deletes only our own baselines, inside the project, of tests that were collected and ran."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.plugin.helpers import make_project
from tests.plugin.test_baseline_files import ENCODER, LENET, TESTS

FOLDER = "__cnnshapes__/test_models"
PRUNE = ("--cnn-shapes-update", "--cnn-shapes-prune")


@pytest.fixture
def project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    make_project(pytester, monkeypatch, "", {"test_models.py": TESTS})
    pytester.runpytest("--cnn-shapes-update").assert_outcomes(passed=2)
    return pytester


def _stale(project: pytest.Pytester, name: str = "LeNet-9x1x28x28.json") -> Path:
    """A baseline of ours that no test uses any more."""
    stale = project.path / FOLDER / name
    stale.write_bytes((project.path / LENET).read_bytes())
    return stale


def test_prune_leaves_files_that_are_not_our_baselines(project: pytest.Pytester) -> None:
    stale = _stale(project)
    ours = json.loads((project.path / LENET).read_text())
    foreign = {
        "notes.json": b'{"written": "by hand"}\n',
        "other-tool.json": b'{"schema": "other-tool/snapshot", "version": 1}\n',
        "future.json": json.dumps({**ours, "version": 2}).encode(),
        "list.json": b"[1, 2, 3]\n",
        "broken.json": b'{"schema": "pytest-cnnshape/baseline", ',
    }
    for name, data in foreign.items():
        (project.path / FOLDER / name).write_bytes(data)
    result = project.runpytest(*PRUNE)
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        [
            "cnnshape: deleted 1 unused shape baseline(s):",
            f"  {FOLDER}/LeNet-9x1x28x28.json",
            "cnnshape: 5 file(s) in shape baseline folders that no test used and that --cnn-shapes-prune "
            "leaves alone (delete them by hand if unwanted):",
            f'  {FOLDER}/broken.json: not a pytest-cnnshape baseline (no "schema": '
            '"pytest-cnnshape/baseline", "version": 1)',
            f"  {FOLDER}/future.json: not a pytest-cnnshape baseline*",
            f"  {FOLDER}/list.json: not a pytest-cnnshape baseline*",
            f"  {FOLDER}/notes.json: not a pytest-cnnshape baseline*",
            f"  {FOLDER}/other-tool.json: not a pytest-cnnshape baseline*",
        ]
    )
    assert not stale.exists()
    for name, data in foreign.items():
        assert (project.path / FOLDER / name).read_bytes() == data
    # without prune, our unused files and the foreign ones are listed apart
    _stale(project)
    result = project.runpytest()
    result.stdout.fnmatch_lines(
        [
            "cnnshape: 1 shape baseline(s) no test used (delete them with *):",
            f"  {FOLDER}/LeNet-9x1x28x28.json",
            "cnnshape: 5 file(s) in shape baseline folders that no test used and that *",
        ]
    )


def test_prune_never_follows_a_symlink_out_of_the_project(
    project: pytest.Pytester, tmp_path_factory: pytest.TempPathFactory
) -> None:
    outside = tmp_path_factory.mktemp("elsewhere")
    (outside / "test_models").mkdir()
    kept = outside / "test_models" / "LeNet-9x1x28x28.json"
    kept.write_bytes((project.path / LENET).read_bytes())
    for name in ("LeNet-1x1x28x28.json", "encoder-1x3x32x32.json"):
        (outside / "test_models" / name).write_bytes((project.path / FOLDER / name).read_bytes())
    link = project.path / "__cnnshapes__"
    for path in sorted(link.rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()
    link.rmdir()
    link.symlink_to(outside, target_is_directory=True)
    # and one file symlinked out from a real folder
    other = project.path / "sub" / "__cnnshapes__" / "test_gone"
    other.mkdir(parents=True)
    single = tmp_path_factory.mktemp("another") / "single.json"
    single.write_bytes(kept.read_bytes())
    (other / "Net-1x3x8x8.json").symlink_to(single)
    (project.path / "sub" / "test_other.py").write_text("def test_nothing():\n    pass\n")
    result = project.runpytest(*PRUNE)
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(
        [
            "cnnshape: 2 file(s) in shape baseline folders that no test used and that --cnn-shapes-prune*",
            f"  {FOLDER}/LeNet-9x1x28x28.json: a symlink leads it out of the project (to {kept})",
            f"  sub/__cnnshapes__/test_gone/Net-1x3x8x8.json: a symlink leads it out of the project "
            f"(to {single})",
        ]
    )
    assert "deleted" not in result.stdout.str()
    assert kept.exists() and single.exists() and (other / "Net-1x3x8x8.json").is_symlink()


def test_prune_judges_nothing_when_a_conftest_filters_tests_out(project: pytest.Pytester) -> None:
    stale = _stale(project)
    project.makeconftest(
        """
        def pytest_collection_modifyitems(config, items):
            items[:] = [item for item in items if "lenet" in item.name]
        """
    )
    result = project.runpytest(*PRUNE)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "cnnshape: --cnn-shapes-prune deleted nothing: this run was narrowed by tests a "
            "pytest_collection_modifyitems hook left out; unused baselines are judged only when the "
            "whole suite runs"
        ]
    )
    assert stale.exists() and (project.path / ENCODER).exists()
    # a conftest that deselects through the hook is noticed as well
    project.makeconftest(
        """
        def pytest_collection_modifyitems(config, items):
            out = [item for item in items if "encoder" in item.name]
            items[:] = [item for item in items if item not in out]
            config.hook.pytest_deselected(items=out)
        """
    )
    result = project.runpytest(*PRUNE)
    result.stdout.fnmatch_lines(["*deleted nothing: this run was narrowed by deselected tests;*"])
    assert stale.exists() and (project.path / ENCODER).exists()


def test_prune_under_xdist_hears_of_tests_a_worker_left_out(project: pytest.Pytester) -> None:
    pytest.importorskip("xdist")
    stale = _stale(project)
    project.makeconftest(
        """
        def pytest_collection_modifyitems(config, items):
            items[:] = [item for item in items if "lenet" in item.name]
        """
    )
    result = project.runpytest("-n", "1", *PRUNE)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*deleted nothing: this run was narrowed by tests a pytest_collection*"])
    assert stale.exists() and (project.path / ENCODER).exists()


def test_leftover_temporary_files_are_listed_then_removed_by_an_update(project: pytest.Pytester) -> None:
    folder = project.path / FOLDER
    ours = [
        folder / ".encoder-1x3x32x32.json.a1b2c3d4.tmp",  # killed halfway through the text
        folder / ".LeNet-9x1x28x28.json.zz_9yx8w.tmp",  # killed before the first byte
    ]
    ours[0].write_text((folder / "encoder-1x3x32x32.json").read_text()[:40])
    ours[1].write_bytes(b"")
    theirs = folder / ".notes.json.abcdefgh.tmp"
    theirs.write_text("my own scratch file")
    result = project.runpytest()
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        [
            "cnnshape: 2 temporary file(s) an interrupted baseline write left (removed by pytest "
            "--cnn-shapes-update):",
            f"  {FOLDER}/.LeNet-9x1x28x28.json.zz_9yx8w.tmp",
            f"  {FOLDER}/.encoder-1x3x32x32.json.a1b2c3d4.tmp",
        ]
    )
    assert "no test used" not in result.stdout.str()
    result = project.runpytest("--cnn-shapes-update")
    result.stdout.fnmatch_lines(["cnnshape: removed 2 temporary file(s) an interrupted write left:"])
    assert not any(p.exists() for p in ours) and theirs.read_text() == "my own scratch file"
