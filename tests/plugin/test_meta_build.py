"""Declared models and markers are built on meta when they will be traced there.

A factory called under ``torch.device("meta")`` makes its weights without memory or
initialisation (``kaiming_uniform_`` on CPU weights was over half of a model-zoo
session). It falls back to a normal build, with a note in the report, when the
factory or the forward needs real tensors; a small model, traced on the CPU, is built
there as before; a test that takes the model itself (``cnn_model``) gets real weights.
"""

from __future__ import annotations

import json

import pytest

MODELS = """
import torch
import torch.nn as nn

def _note(name, model):
    # where each factory call put its weights: one line per call, across pytest runs
    with open("built.txt", "a") as handle:
        handle.write(f"{name} {next(model.parameters()).device.type}\\n")
    return model


def wide():
    # 64x3x64x64 through these convs is far above the MACs a CPU forward is cheaper for
    return _note("wide", nn.Sequential(nn.Conv2d(3, 64, 3), nn.ReLU(), nn.Conv2d(64, 64, 3)))


def tiny():
    return _note("tiny", nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(2 * 6 * 6, 3)))


def reads_values():
    model = nn.Sequential(nn.Conv2d(3, 64, 3), nn.Conv2d(64, 64, 3))
    assert model[0].weight.abs().sum().item() > 0  # a factory that looks at its weights
    return _note("reads_values", model)


class Scaled(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 64, 3)
        self.conv2 = nn.Conv2d(64, 64, 3)

    def forward(self, x):
        scale = float(self.conv.weight.abs().max().item())  # data-dependent: meta cannot
        return self.conv2(self.conv(x) * scale)


def scaled():
    return _note("scaled", Scaled())
"""

PYPROJECT = """
[tool.cnnshape.models.wide]
factory = "models.py:wide"
input = "64x3x64x64"
output = "B x 64 x 60 x 60"

[tool.cnnshape.models.tiny]
factory = "models.py:tiny"
input = "1x1x8x8"
output = "B x 3"

[tool.cnnshape.models.reads_values]
factory = "models.py:reads_values"
input = "64x3x64x64"

[tool.cnnshape.models.scaled]
factory = "models.py:scaled"
input = "64x3x64x64"
"""


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyfile(models=MODELS)
    pytester.makepyprojecttoml(PYPROJECT)
    return pytester


def _built(pytester: pytest.Pytester) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in (pytester.path / "built.txt").read_text().splitlines():
        name, device = line.split()
        out.setdefault(name, []).append(device)
    return out


def test_factories_build_on_meta_unless_they_need_real_tensors(project: pytest.Pytester) -> None:
    result = project.runpytest("-p", "no:cacheprovider", "--cnn-shapes", "--cnn-shapes-report=out.json")
    result.assert_outcomes(passed=4)
    assert _built(project) == {
        "wide": ["meta"],  # traced on meta: built there
        "tiny": ["meta", "cpu"],  # a CPU forward is its cheaper trace: built there too, as before
        "reads_values": ["cpu"],  # the factory itself fails on meta: a normal build
        "scaled": ["meta", "cpu"],  # its forward reads values: built again, traced for real
    }
    report = {m["name"]: m for m in json.loads((project.path / "out.json").read_text())["models"]}
    assert report["wide"]["device"] == "meta"
    assert report["tiny"]["device"] == "cpu"
    assert "note" not in report["wide"]["trace"]
    assert report["reads_values"]["trace"]["note"].startswith(
        "built on the CPU: its factory fails under torch.device('meta') (model factory 'models.py:"
        "reads_values' raised"
    )
    assert report["scaled"]["trace"]["note"].startswith(
        "built on the CPU: its forward needs real weights (Tensor.item() cannot be called on meta tensors)"
    )
    assert report["scaled"]["device"] == "cpu"
    result.stdout.fnmatch_lines(["*Note: built on the CPU: its forward needs real weights*"])


def test_a_declared_model_built_on_meta_reports_what_a_cpu_build_does(project: pytest.Pytester) -> None:
    """Shapes, parameter counts, MACs and the memory estimate do not depend on where the
    weights were made."""
    project.runpytest("-p", "no:cacheprovider", "-k", "wide", "--cnn-shapes", "--cnn-shapes-report=meta.json")
    project.makepyfile(
        cpu_models="import torch\nimport models\n\n\ndef wide():\n    with torch.device('cpu'):\n"
        "        return models.wide()\n"
    )
    toml = (project.path / "pyproject.toml").read_text().replace('"models.py:wide"', '"cpu_models.py:wide"')
    (project.path / "pyproject.toml").write_text(toml)
    project.runpytest("-p", "no:cacheprovider", "-k", "wide", "--cnn-shapes", "--cnn-shapes-report=cpu.json")
    assert _built(project)["wide"] == ["meta", "cpu"]
    on_meta, on_cpu = (
        json.loads((project.path / f).read_text())["models"][0] for f in ("meta.json", "cpu.json")
    )
    for model in (on_meta, on_cpu):
        model.pop("nodeids")
        model["extras"].pop("picture", None)
    assert on_meta == on_cpu


def test_a_test_that_takes_the_model_gets_real_weights(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(models=MODELS)
    pytester.makepyfile(
        test_models="""
        import pytest
        import torch
        from models import wide

        @pytest.mark.cnn_model(wide, input="64x3x64x64", output="B x 64 x 60 x 60")
        def test_weights(cnn_model):
            weight = cnn_model[0].weight
            assert weight.device.type == "cpu" and bool(torch.isfinite(weight).all())
            assert cnn_model(torch.zeros(1, 3, 8, 8)).shape == (1, 64, 4, 4)

        @pytest.mark.cnn_model(wide, input="64x3x64x64", output="B x 64 x 60 x 60")
        def test_trace_only(cnn_trace):
            assert cnn_trace.device == "meta"
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
    assert _built(pytester)["wide"] == ["cpu", "meta"]
