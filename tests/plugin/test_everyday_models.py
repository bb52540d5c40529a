"""Token ids, plain-value arguments, lazy, compiled and scripted models on every pytest surface."""

from __future__ import annotations

import json

import pytest

from tests.plugin.helpers import make_project

MODELS = """
import torch
import torch.nn as nn


class KimCNN(nn.Module):
    def __init__(self, vocab=500):
        super().__init__()
        self.embedding = nn.Embedding(vocab, 16)
        self.conv = nn.Conv1d(16, 8, 3)
        self.heads = nn.ModuleDict({"cls": nn.Linear(8, 2), "tags": nn.Linear(8, 5)})

    def forward(self, tokens, task="cls"):
        x = self.conv(self.embedding(tokens).transpose(1, 2)).amax(2)
        return self.heads[task](x)


def lazy_lenet():
    return nn.Sequential(
        nn.LazyConv2d(6, 5, padding=2), nn.LazyBatchNorm2d(), nn.Sigmoid(), nn.AvgPool2d(2),
        nn.Flatten(), nn.LazyLinear(10),
    )


def lenet():
    return nn.Sequential(nn.Conv2d(1, 6, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(864, 10))


def compiled():
    return torch.compile(lenet())


def scripted():
    return torch.jit.script(lenet())
"""

PYPROJECT = """
[tool.cnnshape]
baselines = true

[tool.cnnshape.models.kim]
factory = "mymodels.nets:KimCNN"
input = "B x 40:long"
dims = { B = 4 }
output = "B x 5"
forward_kwargs = { task = "tags" }

[tool.cnnshape.models.kim_default_dtype]
factory = "mymodels.nets:KimCNN"
input = "4x40"
dtype = "long"
output = "B x 2"

[tool.cnnshape.models.lazy]
factory = "mymodels.nets:lazy_lenet"
input = "2x1x28x28"
output = "B x 10"

[tool.cnnshape.models.compiled]
factory = "mymodels.nets:compiled"
input = "2x1x28x28"
output = "B x 10"

[tool.cnnshape.models.scripted]
factory = "mymodels.nets:scripted"
input = "2x1x28x28"
output = "B x 10"
baseline = false
"""

TESTS = """
import pytest
import torch
from pytest_cnnshape import Arg
from mymodels.nets import KimCNN, lazy_lenet


@pytest.mark.cnn_model(KimCNN, input="B x 40", dtype="long", dims={"B": 3}, output="B x 5",
                       forward_kwargs={"task": "tags"}, baseline=False)
def test_marker(cnn_trace):
    assert cnn_trace.layers[0].input_kwargs == {"task": None}


def test_fixture(cnn_shapes):
    tr = cnn_shapes.trace(KimCNN(), [torch.zeros(2, 40, dtype=torch.long), Arg("tags")], name="kim batch")
    assert tr.output_shape == (2, 5)
    cnn_shapes.assert_output(KimCNN(), "B x 40", "B x 2", dims={"B": 6}, dtype="long", name="kim fixture")
    model = lazy_lenet()
    cnn_shapes.assert_output(model, (2, 1, 28, 28), "B x 10", name="lazy fixture")
    assert model[0].has_uninitialized_params()
"""


@pytest.fixture
def project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    make_project(pytester, monkeypatch, PYPROJECT, {"tests/test_everyday.py": TESTS})
    (pytester.path / "mymodels" / "nets.py").write_text(MODELS)
    return pytester


def test_every_surface_takes_dtypes_plain_values_and_wrapped_or_lazy_models(project: pytest.Pytester) -> None:
    # in subprocesses: torch.compile's dynamo cannot be imported twice into one process, which
    # pytester's in-process runs would do (they drop the modules a run imported)
    result = project.runpytest_subprocess(
        "--cnn-shapes", "--cnn-shapes-update", "--cnn-shapes-report=report.json"
    )
    result.assert_outcomes(passed=7)
    result.stdout.fnmatch_lines(
        [
            "compiled *2x1x28x28*2x10*cpu*passed",
            "kim *4x40, task=-*4x5*passed",
            "kim_default_dtype *4x40*4x2*passed",
            "lazy *2x1x28x28*2x10*11,938*passed",
            "scripted *2x1x28x28*2x10*cpu*passed",
        ]
    )
    out = result.stdout.str()
    assert "Note: torch.compile: traced the eager Sequential it wraps (_orig_mod)" in out
    assert "Note: TorchScript (torch.jit.script)" in out
    assert "(lazy)" in out
    report = json.loads((project.path / "report.json").read_text())
    lazy = next(m for m in report["models"] if m["name"] == "lazy")
    assert lazy["trace"]["layers"][1] == {**lazy["trace"]["layers"][1], "type": "LazyConv2d", "lazy": True}
    scripted = next(m for m in report["models"] if m["name"] == "scripted")
    assert "per-layer shapes are not shown" in scripted["trace"]["wrapper"]
    # a lazy model's baseline: the counts its layers will have, marked lazy
    baseline = json.loads((project.path / "__cnnshapes__" / "lazy.json").read_text())
    rows = {row["name"]: row for row in baseline["layers"]}
    assert rows["5"] == {
        "call": 0,
        "name": "5",
        "output": [2, 10],
        "params": 6 * 14 * 14 * 10 + 10,
        "type": "LazyLinear",
        "lazy": True,
    }
    assert "lazy" not in rows["2"]  # Sigmoid
    compiled = json.loads((project.path / "__cnnshapes__" / "compiled.json").read_text())
    assert not any("lazy" in row for row in compiled["layers"])
    # the same run again compares equal
    again = project.runpytest_subprocess("--cnn-shapes")
    again.assert_outcomes(passed=7)


@pytest.mark.parametrize(
    ("table", "words"),
    [
        ('dtype = "lnog"', "dtype = 'lnog' is not a dtype; unknown dtype 'lnog' (did you mean 'long'?)"),
        ("forward_kwargs = 3", "forward_kwargs = 3 must be a table"),
        ('input = "4x40:lnog"', "unknown dtype 'lnog' (did you mean 'long'?)"),
    ],
)
def test_bad_dtypes_and_forward_kwargs_are_one_line(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, table: str, words: str
) -> None:
    key = table.split(" ", maxsplit=1)[0]
    lines = [
        f"{k} = {v}" for k, v in (("factory", '"mymodels.nets:KimCNN"'), ("input", '"4x40"')) if k != key
    ]
    pyproject = "[tool.cnnshape.models.kim]\n" + "\n".join([*lines, table]) + "\n"
    make_project(pytester, monkeypatch, pyproject, {})
    (pytester.path / "mymodels" / "nets.py").write_text(MODELS)
    result = pytester.runpytest()
    assert words in result.stdout.str() + result.stderr.str()
    assert "Traceback" not in result.stdout.str() + result.stderr.str()
