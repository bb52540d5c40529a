"""``cnnshape summary/check --html PATH``: the picture from the command line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_cli import MODELS, run


def cnnshape(cwd: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest_cnnshape.cli", *argv],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )


def data_of(page: str) -> dict:
    start = page.index('id="cnnshape-data">') + len('id="cnnshape-data">')
    return json.loads(page[start : page.index("</script>", start)])


def test_summary_writes_the_picture_with_the_data_flow_and_the_facts(tmp_path: Path) -> None:
    (tmp_path / "models.py").write_text(MODELS)
    done = cnnshape(tmp_path, "summary", "models.py:Net", "--input", "1x3x32x32", "--html", "out/net.html")
    assert done.returncode == 0, done.stderr
    assert "Total params: 72,234" in done.stdout  # the table is still printed
    assert "picture written to out/net.html" in done.stderr
    model = data_of((tmp_path / "out" / "net.html").read_text())["models"][0]
    assert model["title"] == "models.py:Net" and model["flow"] is True
    conv = next(c for c in model["calls"] if c["n"] == "body.0")
    facts = dict(conv["x"])
    assert facts["Settings"].startswith("3, 8, kernel_size=(3, 3)")
    assert facts["MACs"] == f"{8 * 3 * 9 * 30 * 30:,}"
    assert facts["Receptive field"] == "3 px (outputs 1 px apart)"


def test_check_of_a_broken_model_writes_the_picture_with_the_diagnostic(tmp_path: Path) -> None:
    (tmp_path / "models.py").write_text(MODELS)
    done = cnnshape(
        tmp_path, "check", "models.py:broken", "--input", "1x3x32x32", "--html", "broken.html", "--json"
    )
    assert done.returncode == 1
    assert json.loads(done.stdout)["ok"] is False  # --json output stays pure JSON
    page = (tmp_path / "broken.html").read_text()
    model = data_of(page)["models"][0]
    assert model["calls"][model["fail"]]["n"] == "2"
    assert '<pre class="diagnostic" role="alert">2 (Linear) cannot take its input' in page


def test_an_unwritable_html_path_is_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "models.py").write_text(MODELS)
    (tmp_path / "taken").write_text("a file, not a folder")
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, "summary", "models.py:Net", "-i", "1x3x32x32", "--html", "taken/x.html")
    assert code == 2
    assert (
        err.startswith("cnnshape: error: --html taken/x.html: cannot write the file") and err.count("\n") == 1
    )
