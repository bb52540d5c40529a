"""``cnnshape`` on the models people have: scripted, compiled, lazy, token ids, plain-value arguments.

Exit 0 with the table and its note, 1 for the model's own failures (one line), 2
only for bad input; never a traceback. The wrapped and lazy models run as the
console script runs (a subprocess, as a user's shell would); the rest through
``main`` in this process (each subprocess pays seconds of torch import).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.test_cli import run  # the command through ``main`` in this process

MODELS = textwrap.dedent(
    """
    import torch
    import torch.nn as nn

    def lenet():
        return nn.Sequential(nn.Conv2d(1, 6, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(864, 10))

    def scripted():
        return torch.jit.script(lenet())

    def traced():
        return torch.jit.trace(lenet(), torch.zeros(1, 1, 28, 28))

    def compiled():
        return torch.compile(lenet())

    def lazy():
        return nn.Sequential(
            nn.LazyConv2d(6, 5), nn.LazyBatchNorm2d(), nn.ReLU(), nn.Flatten(), nn.LazyLinear(10)
        )

    def scripted_broken():
        return torch.jit.script(nn.Sequential(nn.Conv2d(1, 6, 5), nn.Flatten(), nn.Linear(100, 10)))

    class Tagger(nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = nn.Embedding(100, 8)
            self.heads = nn.ModuleDict({"cls": nn.Linear(8, 2), "tags": nn.Linear(8, 5)})

        def forward(self, tokens, task="cls", scale=1.0):
            return self.heads[task](self.embedding(tokens).mean(1) * scale)

    class Picky(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 2, 3)

        def forward(self, x):
            if x.shape[-1] % 2:
                raise ValueError("this model wants even widths")
            return self.conv(x)
    """
)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "models.py").write_text(MODELS)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def cnnshape(project: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    """The command in a subprocess, without the test suite's CNNSHAPE_DEBUG: as a user runs it."""
    done = subprocess.run(
        [sys.executable, "-m", "pytest_cnnshape.cli", *argv],
        capture_output=True,
        text=True,
        check=False,
        cwd=project,
        env={k: v for k, v in os.environ.items() if k != "CNNSHAPE_DEBUG"},
    )
    assert "Traceback" not in done.stdout + done.stderr, done.stderr
    return done


@pytest.mark.parametrize(
    ("factory", "words"),
    [
        ("scripted", "Note: TorchScript (torch.jit.script): forward hooks do not fire inside TorchScript"),
        ("traced", "Note: TorchScript (torch.jit.trace)"),
        ("compiled", "Note: torch.compile: traced the eager Sequential it wraps (_orig_mod)"),
        ("lazy", "Note: (lazy) marks lazy layers the model has not initialised"),
    ],
)
def test_wrapped_and_lazy_models_print_their_table_and_note(
    project: Path, capsys: pytest.CaptureFixture[str], factory: str, words: str
) -> None:
    argv = ("summary", f"models.py:{factory}", "--input", "2x1x28x28", "--flops", "--lint")
    if factory == "traced":  # in this process: one subprocess per kind of wrapper is enough
        code, out, _ = run(capsys, *argv)
    else:
        done = cnnshape(project, *argv)
        code, out = done.returncode, done.stdout
    # 1: lint findings (LeNet's fixed-size Linear, the lazy conv's bias before BatchNorm); a
    # TorchScript module hides its layers from lint, which says so
    assert code == (0 if factory in ("scripted", "traced") else 1)
    assert words in out
    assert "Input [2, 1, 28, 28] -> output [2, 10]" in out
    assert "MACs" in out
    code, out, _ = run(capsys, "summary", f"models.py:{factory}", "--input", "2x1x28x28")
    assert code == 0 and words in out
    if factory == "lazy":
        assert "LazyLinear" in out and "(lazy)" in out
    code, out, _ = run(capsys, "summary", f"models.py:{factory}", "-i", "2x1x28x28", "--json")
    data = json.loads(out)
    assert code == 0 and data["ok"] and data["trace"]["output_shape"] == [2, 10]


def test_token_ids_and_forward_keywords(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ("summary", "models.py:Tagger", "-i", "4x12:long", "--forward-kwarg", "task=tags")
    code, out, _ = run(capsys, *argv, "--forward-kwarg", "scale=0.5")
    assert code == 0
    assert "heads.tags" in out and "[4, 5]" in out
    code, out, _ = run(capsys, "check", "models.py:Tagger", "-i", "4x12")
    assert code == 1
    assert "embedding (Embedding) takes integer indices but got a float32 input" in out
    assert "cnnshape --input 4x12:long" in out
    code, out, _ = run(capsys, "summary", "models.py:Tagger", "-i", "4x12", "--dtype", "long", "--flops")
    assert code == 0 and "MACs" in out and "[4, 2]" in out


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["check", "models.py:Picky", "-i", "1x1x8x9"], "TraceError: cannot trace Picky: the forward() of "),
        (["summary", "models.py:scripted", "-i", "1x1x28x28", "--device", "meta"], "on the meta device"),
        (["summary", "models.py:scripted", "-i", "1x1x28x28", "--torchinfo"], "torchinfo cannot look inside"),
        (["check", "models.py:Tagger", "-i", "4x12:long", "--forward-kwarg", "task=nope"], "raised KeyError"),
    ],
)
def test_the_models_own_failures_exit_1_in_one_line(
    project: Path, capsys: pytest.CaptureFixture[str], argv: list[str], words: str
) -> None:
    code, _, err = run(capsys, *argv)
    assert code == 1
    assert words in err and err.count("\n") == 1


def test_a_scripted_forward_that_fails_prints_its_diagnosis(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "check", "models.py:scripted_broken", "-i", "1x1x28x28")
    assert code == 1
    assert "mat1 and mat2 shapes cannot be multiplied" in out
    assert out.startswith("ShapeMismatchError: 2 (Linear) cannot take its input")  # the submodule
    assert "in_features=3456" in out and "the eager model the scripted one was compiled from" in out


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["check", "models.py:Tagger", "-i", "4x12:lnog"], "unknown dtype 'lnog' (did you mean 'long'?)"),
        (["check", "models.py:Tagger", "-i", "4x12", "--forward-kwarg", "task"], "write NAME=VALUE"),
        (
            ["check", "models.py:Tagger", *("-i", "4x12:long", "-i", "1", "-i", "1", "-i", "1")],
            "do not fit Tagger",
        ),
    ],
)
def test_bad_input_exits_2_in_one_line(
    project: Path, capsys: pytest.CaptureFixture[str], argv: list[str], words: str
) -> None:
    code, _, err = run(capsys, *argv)
    assert code == 2
    assert words in err and err.count("\n") == 1
