"""Killing ``pytest --cnn-shapes-update``: every baseline is its old or its new file, whole."""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.plugin.helpers import make_project

#: Many small models, each its own baseline file: the writing phase lasts long enough to hit.
TESTS = """
import pytest
import torch.nn as nn

WIDTH = {width}

@pytest.mark.parametrize("i", range({count}))
def test_model(cnn_shapes, i):
    model = nn.Sequential(nn.Conv2d(3, WIDTH, 3), nn.ReLU(), nn.Flatten())
    cnn_shapes.assert_baseline(model, (1, 3, 4 + i % 7, 4 + i // 7), name=f"m{{i}}")
"""
COUNT = 40
SEED = 17
KILLS = 8
#: Seconds each baseline's write is held in ``os.fsync`` (between its temporary file and the
#: rename) by the project's conftest below, in the runs that are killed: the writes then
#: last COUNT * PAUSE = 2 s, and a kill sent within WINDOW of the first lands among them.
PAUSE = 0.05
WINDOW = 1.0
#: Written into the project: when CNNSHAPE_TEST_PAUSE is set, every fsync first marks
#: that the writes began (a file, not output: pytest captures that) and pauses.
SLOW_WRITES = """
import os, time

if os.environ.get("CNNSHAPE_TEST_PAUSE"):
    _fsync, _pause = os.fsync, float(os.environ["CNNSHAPE_TEST_PAUSE"])

    def _slow_fsync(fd):
        open("writes-began", "a").close()
        time.sleep(_pause)
        _fsync(fd)

    os.fsync = _slow_fsync
"""


def _files(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("__cnnshapes__/**/*.json"))
    }


def _temps(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("__cnnshapes__/**/.*.tmp"))


def _update(root: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:xdist",
            "-p",
            "no:hypothesispytest",
            "--cnn-shapes-update",
        ],
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "CNNSHAPE_TEST_PAUSE": str(PAUSE)},
    )


def test_a_ctrl_c_while_writing_says_how_far_it_got(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_project(pytester, monkeypatch, "", {"test_models.py": TESTS.format(width=4, count=5)})
    # Ctrl-C lands during the third file's write (its fsync), as a user's would
    pytester.makeconftest(
        """
        import os

        real, calls = os.fsync, []

        def fsync(fd):
            calls.append(fd)
            if len(calls) == 3:
                raise KeyboardInterrupt
            real(fd)

        def pytest_sessionstart(session):
            os.fsync = fsync
        """
    )
    result = pytester.runpytest_subprocess("--cnn-shapes-update")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(
        [
            "cnnshape: interrupted while writing shape baselines: 2 written, 0 updated, 0 unchanged, 3 of 5 "
            "not reached; each file is its old or its new version, whole; run pytest --cnn-shapes-update "
            "again to finish"
        ]
    )
    text = result.stdout.str() + result.stderr.str()
    assert "Traceback" not in text and "INTERNALERROR" not in text
    assert len(_files(pytester.path)) == 2 and _temps(pytester.path) == []


#: Ctrl-C as the session's end imports the baseline gate, or as the gate renders the files.
BEFORE_THE_WRITES = {
    "import": """
        import sys

        class Interrupt:
            def find_spec(self, name, path=None, target=None):
                if name == "pytest_cnnshape.plugin.baseline_gate":
                    raise KeyboardInterrupt

        def pytest_sessionstart(session):
            sys.modules.pop("pytest_cnnshape.plugin.baseline_gate", None)
            sys.meta_path.insert(0, Interrupt())
        """,
    "render": """
        def pytest_sessionstart(session):
            from pytest_cnnshape.plugin.baseline_gate import BaselineGate

            def interrupted(self):
                raise KeyboardInterrupt

            BaselineGate._texts = interrupted
        """,
}


@pytest.mark.parametrize("where", sorted(BEFORE_THE_WRITES))
def test_a_ctrl_c_before_the_first_write_leaves_every_baseline_as_it_was(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    make_project(pytester, monkeypatch, "", {"test_models.py": TESTS.format(width=4, count=3)})
    pytester.runpytest_subprocess("--cnn-shapes-update").assert_outcomes(passed=3)
    old = _files(pytester.path)
    (pytester.path / "test_models.py").write_text(TESTS.format(width=5, count=3))
    pytester.makeconftest(BEFORE_THE_WRITES[where])
    result = pytester.runpytest_subprocess("--cnn-shapes-update")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(
        ["cnnshape: interrupted before the shape baselines were written: each is as it was"]
    )
    text = result.stdout.str() + result.stderr.str()
    assert "Traceback" not in text and "INTERNALERROR" not in text
    assert _files(pytester.path) == old and _temps(pytester.path) == []


def test_killed_updates_leave_every_baseline_old_or_new(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGKILL and SIGINT at seeded random moments after collection, many times.

    The moments come from ``random.Random(SEED)``: the same delays every run (where
    they land still depends on the machine's speed, so the outcomes are printed). Half
    the kills aim at the writes, which the project's conftest slows down, and most of
    those must land there: killed after the writes began, before the last file.
    """
    project = make_project(pytester, monkeypatch, "", {"test_models.py": TESTS.format(width=4, count=COUNT)})
    pytester.makeconftest(SLOW_WRITES)
    root = project.path
    began = root / "writes-began"
    pytester.runpytest("--cnn-shapes-update").assert_outcomes(passed=COUNT)
    old = _files(root)
    (root / "test_models.py").write_text(TESTS.format(width=5, count=COUNT))
    started = time.monotonic()
    pytester.runpytest("--cnn-shapes-update").assert_outcomes(passed=COUNT)
    rest = time.monotonic() - started  # what follows collection: the tests, then the writes
    new = _files(root)
    assert new.keys() == old.keys() and all(new[k] != old[k] for k in old)

    rng = random.Random(SEED)
    outcomes = []
    aimed = landed = 0
    for attempt in range(KILLS):
        for name, data in old.items():
            (root / name).write_bytes(data)
        began.unlink(missing_ok=True)
        kill = signal.SIGKILL if attempt % 2 == 0 else signal.SIGINT
        leftovers = set(_temps(root))  # what earlier SIGKILLs left
        process = _update(root)
        assert process.stdout is not None
        # half the kills land anywhere in the tests and writes (after collection), half in
        # the writes: once the first file is being written, within WINDOW
        seen = ""
        while "collected" not in seen[-len("collected") :] and (char := process.stdout.read(1)):
            seen += char
        at_writes = attempt // 2 % 2 == 1
        if at_writes:
            aimed += 1
            while not began.exists() and process.poll() is None:
                time.sleep(0.005)
        time.sleep(rng.uniform(0.0, WINDOW if at_writes else rest * 1.5))
        writing = began.exists()  # (a Ctrl-C in the tests writes the baselines of those that ran)
        process.send_signal(kill)
        output = seen + process.stdout.read()
        code = process.wait(timeout=120)
        files = _files(root)
        assert files.keys() == old.keys()
        mixed = [k for k, data in files.items() if data not in (old[k], new[k])]
        assert mixed == [], f"attempt {attempt}: partial files {mixed}"
        rewritten = sum(files[k] == new[k] for k in files)
        during_writes = writing and rewritten < COUNT
        landed += at_writes and during_writes
        outcomes.append((kill.name, code, rewritten, "during the writes" if during_writes else ""))
        if kill == signal.SIGINT:
            # pytest names the line a Ctrl-C stopped (ours, too, when it lands in a trace), and one
            # in pytest's own end of session may show pytest's traceback: never one through our
            # code, never an INTERNALERROR
            assert not re.search(r'File ".*pytest_cnnshape', output) and "INTERNALERROR" not in output, output
            assert set(_temps(root)) <= leftovers  # an interrupted write removes its temporary file
            if 0 < rewritten < COUNT:  # stopped in the tests (their files written) or in the writes
                assert (
                    f"cnnshape: shape baselines: 0 written, {rewritten} updated" in output
                    or f"cnnshape: interrupted while writing shape baselines: 0 written, {rewritten} updated"
                    in output
                ), output
    print("kills (signal, exit code, files rewritten, when):", outcomes)
    # the kills aimed at the writes did hit them (a slow machine may delay one past the end)
    assert landed >= aimed // 2 and landed >= 1, outcomes
    # a later update finishes the job and clears what the SIGKILLs left
    pytester.runpytest("--cnn-shapes-update").assert_outcomes(passed=COUNT)
    assert _files(root) == new and _temps(root) == []


def test_a_ctrl_c_during_the_tests_writes_the_baselines_of_those_that_ran(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = TESTS.format(width=4, count=5) + (
        "\n\ndef test_zz_stop():\n    raise KeyboardInterrupt  # a Ctrl-C after the five models\n"
        "\n\ndef test_zz_never(cnn_shapes):\n"
        "    cnn_shapes.assert_baseline(nn.ReLU(), (1, 3), name='never')\n"
    )
    make_project(pytester, monkeypatch, "", {"test_models.py": source})
    result = pytester.runpytest_subprocess("--cnn-shapes-update")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(
        [
            "cnnshape: shape baselines: 5 written, 0 updated, 0 unchanged (the run was interrupted: tests "
            "that did not run wrote nothing)"
        ]
    )
    assert len(_files(pytester.path)) == 5
    assert not re.search(r'File ".*pytest_cnnshape', result.stdout.str())
