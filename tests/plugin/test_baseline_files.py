"""Baseline files: unreadable ones, unused ones, conflicts, names, atomic writes."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from pytest_cnnshape.baseline.location import file_name, safe_name
from pytest_cnnshape.fileio import write_atomic
from tests.plugin.helpers import make_project, write_models

TESTS = """
import pytest
from mymodels.nets import LeNet, Encoder

@pytest.mark.cnn_model(LeNet, input="1x1x28x28", baseline=True)
def test_lenet(cnn_trace):
    pass

def test_encoder(cnn_shapes):
    cnn_shapes.assert_baseline(Encoder(), "1x3x32x32", name="encoder")
"""

LENET = "__cnnshapes__/test_models/LeNet-1x1x28x28.json"
ENCODER = "__cnnshapes__/test_models/encoder-1x3x32x32.json"


@pytest.fixture
def project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    make_project(pytester, monkeypatch, "", {"test_models.py": TESTS})
    pytester.runpytest("--cnn-shapes-update").assert_outcomes(passed=2)
    return pytester


def _newer(text: str) -> bytes:
    data = json.loads(text)
    data["version"] = 99
    return json.dumps(data).encode()


def _wrong_type(text: str) -> bytes:
    return text.replace('"total_params": 34622', '"total_params": "many"').encode()


@pytest.mark.parametrize(
    ("damage", "problem", "advice"),
    [
        (
            lambda t: t[: len(t) // 2].encode(),
            "is not valid JSON (*): it is truncated or damaged",
            "restore it from version control",
        ),
        (lambda t: b"", "is empty", "restore it from version control"),
        (
            lambda t: b'{"name": "something else"}',
            "is not a pytest-cnnshape baseline*",
            "restore it from version control",
        ),
        (lambda t: b"\xff\xfe\x00garbage", "is not UTF-8 text*", "restore it from version control"),
        (
            _wrong_type,
            "has 'total_params' = 'many', which is not a int: the file is damaged",
            "restore it from version control",
        ),
        (
            _newer,
            "is in baseline format 99, written by a newer pytest-cnnshape; this one reads format 1",
            "upgrade pytest-cnnshape (pip install -U pytest-cnnshape)*",
        ),
        (
            lambda t: b"[" * 10_000 + b"]" * 10_000,
            "nests 10000 levels deep (a baseline nests at most 100): it is damaged or not a baseline",
            "restore it from version control",
        ),
        (
            lambda t: t.replace("34622", "9" * 5000).encode(),
            "holds an integer of 5000 digits (a baseline's have at most 30): it is damaged or not a baseline",
            "restore it from version control",
        ),
    ],
    ids=["truncated", "empty", "foreign", "binary", "wrong-type", "newer", "deep", "huge-int"],
)
def test_an_unreadable_baseline_is_a_clear_error_and_is_kept(
    project: pytest.Pytester, damage: object, problem: str, advice: str
) -> None:
    path = project.path / LENET
    broken = damage(path.read_text())  # type: ignore[operator]
    path.write_bytes(broken)
    for args in ((), ("-p", "no:cacheprovider")):
        result = project.runpytest(*args)
        result.assert_outcomes(passed=1, failed=1)
        result.stdout.fnmatch_lines(
            [
                f"shape baseline of LeNet (1x1x28x28) cannot be used: {LENET} {problem}",
                f"the file was left as it is; {advice}*",
            ]
        )
        assert "Traceback" not in result.stdout.str()
        assert path.read_bytes() == broken
    project.makepyprojecttoml("[tool.cnnshape]\nupdate_missing = true\n")
    project.runpytest().assert_outcomes(passed=1, failed=1)
    assert path.read_bytes() == broken  # update_missing never replaces a file that exists
    result = project.runpytest("--cnn-shapes-update")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["cnnshape: shape baselines: 0 written, 1 updated, 1 unchanged"])
    assert json.loads(path.read_text())["total_params"] == 34622


def test_a_baseline_edited_by_hand_still_matches_by_value(project: pytest.Pytester) -> None:
    path = project.path / LENET
    path.write_text(json.dumps(json.loads(path.read_text()), indent=4))  # other layout, same data
    project.runpytest().assert_outcomes(passed=2)
    result = project.runpytest("--cnn-shapes-update")
    result.stdout.fnmatch_lines(["cnnshape: shape baselines: 0 written, 0 updated, 2 unchanged"])


def test_unused_baselines_are_listed_and_pruned_on_full_runs_only(project: pytest.Pytester) -> None:
    stale = project.path / "__cnnshapes__/test_models/LeNet-9x1x28x28.json"
    stale.write_bytes((project.path / LENET).read_bytes())
    gone = project.path / "__cnnshapes__/test_deleted/Net-1x3x8x8.json"
    gone.parent.mkdir()
    gone.write_bytes((project.path / LENET).read_bytes())
    leftover = project.path / "__cnnshapes__/test_models/.encoder-1x3x32x32.json.abc123xy.tmp"
    leftover.write_text("{")
    result = project.runpytest()
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        [
            "cnnshape: 2 shape baseline(s) no test used (delete them with pytest --cnn-shapes-update "
            "--cnn-shapes-prune):",
            "  __cnnshapes__/test_deleted/Net-1x3x8x8.json",
            "  __cnnshapes__/test_models/LeNet-9x1x28x28.json",
            "cnnshape: 1 temporary file(s) an interrupted baseline write left (removed by *",
            "  __cnnshapes__/test_models/.encoder-1x3x32x32.json.abc123xy.tmp",
        ]
    )
    # narrowed runs judge nothing: the baselines of tests left out would look unused
    for args in (("-k", "lenet"), ("-m", "not slow"), ("test_models.py::test_lenet",)):
        result = project.runpytest("--cnn-shapes-update", "--cnn-shapes-prune", *args)
        assert "no test used" not in result.stdout.str()
        result.stdout.fnmatch_lines(
            [
                "cnnshape: --cnn-shapes-prune deleted nothing: this run was "
                "narrowed by *; unused baselines are judged only when the whole "
                "suite runs"
            ]
        )
        assert stale.exists() and gone.exists()
    assert not leftover.exists()  # a write of the encoder's file cleared its own leftover
    # a test file with a failing test keeps its folder out of the judgement
    project.makepyfile(test_models=TESTS + "\ndef test_fails():\n    assert False\n")
    result = project.runpytest("--cnn-shapes-update", "--cnn-shapes-prune")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(
        ["cnnshape: deleted 1 unused shape baseline(s):", "  __cnnshapes__/test_deleted/Net-1x3x8x8.json"]
    )
    assert stale.exists() and not gone.parent.exists()
    project.makepyfile(test_models=TESTS)
    result = project.runpytest("--cnn-shapes-update", "--cnn-shapes-prune")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["cnnshape: deleted 1 unused shape baseline(s):"])
    assert sorted(p.name for p in stale.parent.iterdir()) == sorted([Path(ENCODER).name, Path(LENET).name])
    assert "no test used" not in project.runpytest().stdout.str()


def test_prune_needs_update(project: pytest.Pytester) -> None:
    result = project.runpytest("--cnn-shapes-prune")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--cnn-shapes-prune deletes unused baselines only together with*"])


def test_declared_baselines_no_model_declares_are_unused(pytester: pytest.Pytester) -> None:
    write_models(pytester)
    pytester.makepyprojecttoml("""
[tool.cnnshape.models.lenet]
factory = "mymodels.nets:LeNet"
input = "1x1x28x28"
baseline = true
""")
    pytester.runpytest("--cnn-shapes-update").assert_outcomes(passed=1)
    old = pytester.path / "__cnnshapes__/old_model.json"
    old.write_bytes((pytester.path / "__cnnshapes__/lenet.json").read_bytes())
    result = pytester.runpytest()
    result.stdout.fnmatch_lines(
        ["cnnshape: 1 shape baseline(s) no test used*", "  __cnnshapes__/old_model.json"]
    )
    pytester.runpytest("--cnn-shapes-update", "--cnn-shapes-prune").assert_outcomes(passed=1)
    assert not old.exists() and (pytester.path / "__cnnshapes__/lenet.json").exists()


def test_two_models_in_one_file_fail_the_run_and_write_nothing(pytester: pytest.Pytester) -> None:
    write_models(pytester)
    pytester.makepyfile(
        test_clash="""
        from mymodels.nets import LeNet, Encoder

        def test_a(cnn_shapes):
            cnn_shapes.assert_baseline(LeNet(), "1x1x28x28", name="net")

        def test_b(cnn_shapes):
            cnn_shapes.assert_baseline(LeNet(classes=5), "1x1x28x28", name="net")

        def test_c(cnn_shapes):
            cnn_shapes.assert_baseline(Encoder(), "1x3x16x16", name="Enc")

        def test_d(cnn_shapes):
            cnn_shapes.assert_baseline(Encoder(), "1x3x16x16", name="enc")
    """
    )
    result = pytester.runpytest("--cnn-shapes-update")
    result.assert_outcomes(passed=4)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "cnnshape: __cnnshapes__/test_clash/net-1x1x28x28.json: tests record different shapes into "
            "this one baseline (test_clash.py::test_a, test_clash.py::test_b); give the models different "
            "names (name=...) so each has its own file",
            "cnnshape: __cnnshapes__/test_clash/Enc-1x3x16x16.json and "
            "__cnnshapes__/test_clash/enc-1x3x16x16.json differ only in letter case*",
        ]
    )
    assert not (pytester.path / "__cnnshapes__").exists()


def test_file_names_are_stable_and_portable() -> None:
    assert file_name("lenet5", "8x1x28x28") == "lenet5-8x1x28x28.json"
    assert file_name("lenet") == "lenet.json"
    assert file_name("resnet (B=1)", "1x3x224x224, 1x10") == "resnet_B_1_-1x3x224x224_1x10.json"
    assert file_name("con") == "_con.json" and file_name("LPT1") == "_LPT1.json"
    assert file_name("LPT1", "x") == "LPT1-x.json"  # only the bare device names are reserved
    assert safe_name("../../etc/passwd") == "etc_passwd"
    assert safe_name("...") == "_" and safe_name("ü") == "_"
    long = safe_name("m" * 300)
    assert len(long) == 100 and long == safe_name("m" * 300) and long != safe_name("m" * 301)


def test_write_atomic_keeps_the_old_file_when_the_write_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "b" / "x.json"
    write_atomic(target, "old\n")
    os.chmod(target, 0o640)

    def interrupted(src: str, dst: str) -> None:
        raise KeyboardInterrupt  # killed between writing the temporary file and the rename

    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_atomic(target, "new\n")
    monkeypatch.undo()
    assert target.read_text() == "old\n"
    assert sorted(p.name for p in target.parent.iterdir()) == ["x.json"]
    write_atomic(target, "new\n")
    assert target.read_text() == "new\n" and stat.S_IMODE(target.stat().st_mode) == 0o640
    fresh = tmp_path / "b" / "y.json"
    write_atomic(fresh, "{}\n")
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o666 & ~umask
