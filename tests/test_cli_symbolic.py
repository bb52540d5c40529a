"""``cnnshape domain`` and ``cnnshape summary --symbolic``: the sizes a model takes, from the shell."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from pytest_cnnshape.cli import main

MODELS = textwrap.dedent(
    """
    import torch
    import torch.nn as nn

    class Skip(nn.Module):
        \"\"\"Two poolings deep, with skips: sides multiples of 4.\"\"\"

        def __init__(self):
            super().__init__()
            self.enc = nn.Conv2d(1, 4, 3, padding=1)
            self.pool = nn.MaxPool2d(2)
            self.up = nn.ConvTranspose2d(4, 4, 2, stride=2)
            self.out = nn.Conv2d(8, 1, 1)

        def forward(self, x):
            s = self.enc(x)
            t = self.pool(s)
            u = torch.cat([self.up(self.pool(t)), t], 1)[:, :4]
            return self.out(torch.cat([self.up(u), s], 1))

    class Task(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)

        def forward(self, x, task="seg"):
            return self.conv(x) if task == "seg" else self.conv(x).mean((2, 3))

    class Picky(nn.Module):
        def forward(self, x):
            return x[x > 0]
    """
)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "models.py").write_text(MODELS)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_domain_prints_the_sizes_in_words(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "domain", "models.py:Skip", "--input", "B x 1 x H x W")
    assert code == 0
    assert out.splitlines() == [
        "models.py:Skip takes B x 1 x H x W for: H and W at least 4 and multiples of 4; any B",
        "smallest: B=1, H=4, W=4",
        "output: B x 1 x H x W",
    ]
    code, out, _ = run(
        capsys, "domain", "models.py:Skip", "--input", "B x 1 x H x W", "--json", "--dim", "H=8"
    )
    data = json.loads(out)
    assert code == 0 and data["ok"] and data["smallest"] == {"B": 1, "H": 4, "W": 4}
    assert data["example"] == {"B": 2, "H": 8, "W": 224} and data["words"].startswith("H and W at least 4")


def test_summary_symbolic_shows_the_formulas_and_a_domain_line(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(
        capsys,
        "summary",
        "models.py:Task",
        "--input",
        "B x 3 x H x W",
        "--symbolic",
        "--forward-kwarg",
        "task=seg",
    )
    assert code == 0
    assert "Output formula" in out and "B x 4 x H - 2 x W - 2" in out
    assert "Domain: H and W at least 3; any B" in out
    code, out, _ = run(
        capsys, "summary", "models.py:Task", "-i", "2x3x32x32", "--symbolic", "--params", "--json"
    )
    data = json.loads(out)
    assert data["trace"]["symbolic"]["inputs"] == ["B x C x H x W"]
    assert data["trace"]["layers"][0]["output_formula"] == "B x 4 x H - 2 x W - 2"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["summary", "models.py:Skip", "-i", "1x1x8x8", "--dim", "H=8"],
            "--dim gives example sizes of named sizes: add --symbolic",
        ),
        (
            ["domain", "models.py:Skip", "-i", "B x 1 x H x W", "--dim", "H8"],
            "--dim 'H8': write NAME=SIZE, e.g. --dim H=128",
        ),
        (["domain", "models.py:Skip", "-i", "B x 1 x H//2 x W"], "'H//2' is not a name or a number"),
        (
            ["domain", "models.py:Skip", "-i", "B x 1 x H x W", "--dim", "K=3"],
            "dims names 'K', which the input does not",
        ),
    ],
)
def test_bad_symbolic_input_is_one_line(
    project: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert err.startswith("cnnshape: error: ") and message in err and err.count("\n") == 1


def test_a_model_the_engine_cannot_follow_is_one_line(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(
        capsys, "domain", "models.py:Picky", "-i", "B x 3 x H x W", "--dim", "H=4", "--dim", "W=4"
    )
    assert code == 1 and out == ""
    assert err.startswith("cnnshape: SymbolicError: (root) (Picky) makes a size that depends on the values")
    assert err.count("\n") == 1
