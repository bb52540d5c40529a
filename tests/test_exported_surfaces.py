"""An exported CNN, static and with a dynamic batch, on the surfaces a user meets it on.

The ``cnnshape`` command (in-process and as the installed console script) and pytest
(a marker, the fixture, a declared model, ``--cnn-shapes``) each get a factory that
returns ``torch.export.export(...)`` or its ``.module()``: the table has every layer
and the note, inputs the program was not exported for are one line naming what it
takes, and nothing prints a traceback or "internal error".
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pytest_cnnshape.cli import main

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")

MODELS = textwrap.dedent(
    """
    import torch
    from torch import nn
    from torch.export import Dim, export


    class CNN(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
            self.pool = nn.MaxPool2d(2)
            self.fc = nn.Linear(8 * 16 * 16, 10)

        def forward(self, x):
            return self.fc(torch.flatten(self.pool(self.stem(x)), 1))


    def static():
        return export(CNN().eval(), (torch.randn(2, 3, 32, 32),))


    def dynamic():
        batch = Dim("batch", min=1, max=64)
        return export(CNN().eval(), (torch.randn(2, 3, 32, 32),), dynamic_shapes=({0: batch},))


    def dynamic_module():
        return dynamic().module()
    """
)

TABLE = [
    "(root)      CNN          [{b}, 3, 32, 32]  [{b}, 10]         20,730",
    "  stem      Sequential   [{b}, 3, 32, 32]  [{b}, 8, 32, 32]  240",
    "    stem.0  Conv2d       [{b}, 3, 32, 32]  [{b}, 8, 32, 32]  224",
    "    stem.1  BatchNorm2d  [{b}, 8, 32, 32]  [{b}, 8, 32, 32]  16",
    "    stem.2  ReLU         [{b}, 8, 32, 32]  [{b}, 8, 32, 32]  0",
    "  pool      MaxPool2d    [{b}, 8, 32, 32]  [{b}, 8, 16, 16]  0",
    "  fc        Linear       [{b}, 2048]       [{b}, 10]         20,490",
]


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "models.py").write_text(MODELS)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _clean(*texts: str) -> None:
    for text in texts:
        assert "Traceback" not in text and "internal error" not in text, text


@pytest.mark.parametrize(
    ("factory", "batch", "note"),
    [
        ("static", 2, "torch.export program: traced its graph, a row per module call"),
        ("dynamic", 8, "dynamic: batch = x dim 0 (1..64)"),
        ("dynamic_module", 5, "torch.export module (ExportedProgram.module())"),
    ],
)
def test_the_cli_prints_every_layer_of_an_exported_cnn(
    project: Path, capsys: pytest.CaptureFixture[str], factory: str, batch: int, note: str
) -> None:
    code = main(["summary", f"models.py:{factory}", "--input", f"{batch}x3x32x32"])
    out, err = capsys.readouterr()
    assert code == 0, err
    for row in TABLE:
        assert row.format(b=batch) in out
    assert "Note: torch.export" in out and note in out
    code = main(
        ["summary", f"models.py:{factory}", "-i", f"{batch}x3x32x32", "--params", "--flops", "--memory"]
    )
    out, err = capsys.readouterr()
    assert code == 0 and "MACs" in out and "dropout and normalization not visible" in out, out + err
    code = main(["check", f"models.py:{factory}", "--input", f"{batch}x3x32x32"])
    out, err = capsys.readouterr()
    assert code == 0 and out.startswith(f"ok: models.py:{factory} runs; output [{batch}, 10]")
    _clean(out, err)


def test_the_cli_refuses_inputs_the_program_was_not_exported_for_in_one_line(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for factory, shape, expected in (
        ("static", "4x3x32x32", "It was exported for x [2, 3, 32, 32], every size fixed"),
        ("dynamic", "65x3x32x32", "It was exported for x [batch, 3, 32, 32] with batch = x dim 0 (1..64)"),
        ("dynamic_module", "8x3x16x16", "Expected input at *args[0].shape[2] to be equal to 32, but got 16"),
    ):
        code = main(["check", f"models.py:{factory}", "--input", shape])
        out, err = capsys.readouterr()
        assert code == 1 and out == ""
        assert err.startswith("cnnshape: TraceError: CNN (torch.export") and expected in err
        assert err.count("\n") == 1
        _clean(out, err)


def test_the_installed_command_traces_an_exported_program(project: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pytest_cnnshape.cli", "summary", "models.py:dynamic", "-i", "3x3x32x32"],
        capture_output=True,
        text=True,
        check=False,
        env={**__import__("os").environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
    )
    assert done.returncode == 0, done.stderr
    assert TABLE[-1].format(b=3) in done.stdout and "dynamic: batch = x dim 0 (1..64)" in done.stdout
    _clean(done.stdout, done.stderr)


TESTS = """
import pytest
from models import dynamic, dynamic_module, static

@pytest.mark.cnn_model(static, input="2x3x32x32", output="2x10")
def test_marker_static(cnn_trace):
    assert cnn_trace["stem.0"].output_shape == (2, 8, 32, 32)
    assert "torch.export program" in cnn_trace.wrapper

@pytest.mark.cnn_model(dynamic, input="B x 3 x 32 x 32", dims={"B": 8}, output="B x 10")
def test_marker_dynamic(cnn_trace):
    assert [r.name for r in cnn_trace.layers][:3] == ["", "stem", "stem.0"]

def test_fixture(cnn_shapes):
    tr = cnn_shapes.trace(dynamic_module(), "5x3x32x32")
    assert tr.output_shape == (5, 10) and tr["fc"].input_shapes == ((5, 2048),)

@pytest.mark.cnn_model(static, input="4x3x32x32")
def test_marker_refused(cnn_trace):
    pass
"""

PYPROJECT = """
[tool.cnnshape.models.exported]
factory = "models:dynamic"
input = "8x3x32x32"
output = "8x10"
"""


def test_markers_fixtures_and_declared_models_take_exported_programs(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(models=MODELS, test_exported=TESTS)
    pytester.makepyprojecttoml(PYPROJECT)
    pytester.syspathinsert()
    result = pytester.runpytest("-p", "no:randomly", "-p", "no:cacheprovider", "--cnn-shapes")
    result.assert_outcomes(passed=4, errors=1)  # the marker's trace cannot run: its setup errs
    text = result.stdout.str()
    refused = "static: CNN (torch.export program) cannot take these inputs: Expected input at *args[0]"
    assert refused in text and "It was exported for x [2, 3, 32, 32], every size fixed" in text
    assert "Note: torch.export program: traced its graph" in text  # the --cnn-shapes report
    for row in TABLE:
        assert row.format(b=8) in text
    _clean(text)
