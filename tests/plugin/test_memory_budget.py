"""``max_memory`` budgets in markers, declared models and fixtures; memory in every report."""

from __future__ import annotations

import json
import re

import pytest
import torch
from torch import nn

from pytest_cnnshape import estimate_memory
from pytest_cnnshape.inspection.render import human_bytes
from tests.plugin.helpers import make_project, write_models


def lenet() -> nn.Module:
    """The LeNet of ``tests/plugin/helpers.py``, built here to compute the expected figures."""
    return nn.Sequential(
        nn.Conv2d(1, 6, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(256, 120), nn.ReLU(), nn.Linear(120, 10),
    )  # fmt: skip


MARKED = """
import pytest
from mymodels.nets import LeNet

@pytest.mark.cnn_model(LeNet, input="B x 1 x 28 x 28", dims={"B": 2}, max_memory="8 MiB", batch=512,
                       optimizer="Adam")
def test_big_batch(cnn_trace):
    pass

@pytest.mark.cnn_model(LeNet, input="B x 1 x 28 x 28", dims={"B": 2}, max_memory="1 GiB", batch=512)
def test_fits(cnn_trace):
    assert cnn_trace.output_shape == (2, 10)  # the shapes are checked at the traced input
"""


def test_a_marker_over_its_budget_fails_with_the_largest_consumers(pytester: pytest.Pytester) -> None:
    write_models(pytester)
    pytester.makepyfile(test_budget=MARKED)
    result = pytester.runpytest("--cnn-shapes")
    result.assert_outcomes(passed=1, failed=1)
    expected = estimate_memory(lenet(), (512, 1, 28, 28), "Adam")
    peak = human_bytes(expected.peak_training_bytes)
    result.stdout.fnmatch_lines(
        [
            f"LeNet needs an estimated {peak} to train at 512x1x28x28, more than max_memory=8.0 MiB "
            "(*x the budget)",
            "Params * grads * optimizer state * (Adam: *",
            "Saved for backward * in * tensors * backward transient *",
            "largest consumers (saved for backward by the call itself):",
            "  Layer*Type*Saved*Share*Output",
            "  *",
            "  1 *ReLU*",
            "hint: about batch=* fits (activations grow with the batch; weights do not)",
        ]
    )
    largest = expected.largest(1)[0]
    assert f"  {largest.name}" in result.stdout.str()
    # the overview shows the estimate against the budget; the fitting model passes
    result.stdout.fnmatch_lines([f"LeNet *{peak} / 8.0 MiB*FAILED", "LeNet *1.0 GiB*passed"])
    assert "Traceback" not in result.stdout.str()


def test_the_hinted_batch_fits(pytester: pytest.Pytester) -> None:
    write_models(pytester)
    pytester.makepyfile(test_budget=MARKED)
    text = pytester.runpytest().stdout.str()
    batch = int(re.search(r"about batch=(\d+) fits", text).group(1))  # type: ignore[union-attr]
    assert 0 < batch < 512
    assert estimate_memory(lenet(), (batch, 1, 28, 28), "Adam").peak_training_bytes <= 8 * 2**20
    assert estimate_memory(lenet(), (2 * batch, 1, 28, 28), "Adam").peak_training_bytes > 8 * 2**20


DECLARED = """
[tool.cnnshape.models.lenet_big]
factory = "mymodels.nets:LeNet"
input = "1x1x28x28"
batch = 4096
max_memory = "64 MB"
optimizer = "SGD(momentum=0.9)"

[tool.cnnshape.models.lenet_small]
factory = "mymodels.nets:LeNet"
input = "1x1x28x28"
max_memory = 10_000_000
"""


def test_declared_models_take_a_budget(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    make_project(pytester, monkeypatch, DECLARED, {})
    result = pytester.runpytest("pyproject.toml", "--cnn-shapes-report=report.json")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        ["*lenet_big needs an estimated * to train at 4096x1x28x28, more than max_memory=61.0 MiB*"]
    )
    models = {m["name"]: m for m in json.loads((pytester.path / "report.json").read_text())["models"]}
    memory = models["lenet_big"]["extras"]["memory"]
    assert (memory["budget"], memory["batch"], memory["input"]) == (64_000_000, 4096, "4096x1x28x28")
    assert memory["optimizer"]["name"] == "SGD"
    expected = estimate_memory(
        lenet(), (4096, 1, 28, 28), torch.optim.SGD(lenet().parameters(), lr=0.1, momentum=0.9)
    )
    assert memory["peak_training_bytes"] == expected.peak_training_bytes
    assert [layer["saved_bytes"] for layer in memory["layers"]] == [
        layer.saved_bytes for layer in expected.layers
    ]
    assert models["lenet_small"]["extras"]["memory"]["input"] == "1x1x28x28"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('max_memory = "6G"', "max_memory = '6G': 'G' is not a unit of bytes (write '6 GiB' *"),
        ("max_memory = -5", "max_memory = -5 must be a positive number of bytes*"),
        ("batch = 0", "batch = 0 must be a positive whole number*"),
        ('optimizer = "Adam("', "optimizer = 'Adam(' is not an optimizer name*"),
        ("optimizer = 3", "optimizer = 3 must be a torch.optim name*"),
    ],
)
def test_a_wrong_budget_is_a_one_line_error(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, line: str, message: str
) -> None:
    make_project(
        pytester,
        monkeypatch,
        f'[tool.cnnshape.models.lenet]\nfactory = "mymodels.nets:LeNet"\ninput = "1x1x28x28"\n{line}\n',
        {},
    )
    result = pytester.runpytest("pyproject.toml")
    result.stderr.fnmatch_lines([f"*[[]tool.cnnshape.models.lenet[]] {message}"])
    assert "Traceback" not in result.stderr.str() + result.stdout.str()


def test_a_wrong_marker_budget_fails_its_test(pytester: pytest.Pytester) -> None:
    write_models(pytester)
    pytester.makepyfile(
        """
        import pytest
        from mymodels.nets import LeNet

        @pytest.mark.cnn_model(LeNet, input="1x1x28x28", max_memory="lots")
        def test_it(cnn_trace):
            pass
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*@pytest.mark.cnn_model: max_memory='lots' is not a size; e.g. '6 GiB'*"])


def test_the_fixture_takes_a_budget_and_every_report_shows_memory(pytester: pytest.Pytester) -> None:
    write_models(pytester)
    pytester.makepyfile(
        """
        import pytest
        from mymodels.nets import LeNet

        def test_budget(cnn_shapes):
            cnn_shapes.assert_output(LeNet(), "1x1x28x28", "B x 10", max_memory="1 KiB", batch=64)

        def test_traced(cnn_shapes):
            cnn_shapes.trace(LeNet(), "8x1x28x28", name="plain")
        """
    )
    result = pytester.runpytest("--cnn-shapes", "--cnn-shapes-report=report.md")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        ["*LeNet needs an estimated * to train at 64x1x28x28, more than max_memory=1.0 KiB*"]
    )
    plain = human_bytes(estimate_memory(lenet(), (8, 1, 28, 28)).peak_training_bytes)
    result.stdout.fnmatch_lines(
        [f"plain *8x1x28x28*{plain} *passed", f"Memory at 8x1x28x28: training peak {plain} *"]
    )
    markdown = (pytester.path / "report.md").read_text()
    assert "| Memory |" in markdown
    assert "Largest consumers of training memory (saved for backward):" in markdown
    assert "over max_memory 1.0 KiB" in markdown
