"""Inspection in the pytest plugin: report columns and lines, JSON and Markdown, declared
models with ``lint = true``, ``[tool.cnnshape] lint.ignore``, ``cnn_shapes.assert_no_lint``."""

from __future__ import annotations

import json
from typing import Any

import pytest
import torch
from torch import nn

from pytest_cnnshape import count_flops, lint, parameter_breakdown
from tests.plugin.helpers import MODELS, write_models

TESTS = """
from mymodels.nets import LeNet, Encoder

def test_lenet(cnn_shapes):
    cnn_shapes.assert_output(LeNet(), "2x1x28x28", "B x 10")

def test_encoder(cnn_shapes):
    cnn_shapes.trace(Encoder(), "1x3x32x32", name="encoder")
"""


def models_namespace() -> dict[str, Any]:
    """The very classes the pytester project imports, built here for expected values."""
    namespace: dict[str, Any] = {}
    exec(MODELS, namespace)  # our own test source
    return namespace


@pytest.fixture
def suite(pytester: pytest.Pytester) -> pytest.Pytester:
    write_models(pytester)
    pytester.makepyfile(test_suite=TESTS)
    return pytester


def test_terminal_report_has_macs_and_lint_columns_and_a_section_per_model(suite: pytest.Pytester) -> None:
    result = suite.runpytest("--cnn-shapes")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        [
            "Model*Input*Output*Params*Trainable*MACs*Lint*Device*Status",
            "encoder*1x3x32x32*1x64x4x4*23,616*23,616*2.8 M*1*passed",
            "LeNet*2x1x28x28*2x10*34,622*34,622*543.8 K*1*passed",
            "encoder  ?test_suite.py::test_encoder?",
            "Params 23,616 (trainable 23,616, frozen 0) · weights 92.2 KiB · buffers 33 (136 B)",
            "MACs 2.8 M (2,801,664) · FLOPs 5.6 M",
            "Regularization: no dropout · BatchNorm2d (batch stats) · optimizer not given",
            "Lint: 1 finding",
            "  ?bias-before-batchnorm? stem.0: stem.0 (Conv2d) has a bias (16 parameters)*",
            "      fix: create stem.0 without it: nn.Conv2d(3, 16, 3, padding=1, bias=False)",
            "",
        ]
    )


def test_json_report_carries_the_inspection_data(suite: pytest.Pytester) -> None:
    suite.runpytest("--cnn-shapes-report=report.json")
    data = json.loads((suite.path / "report.json").read_text())
    assert data["version"] == 1
    models = {m["name"]: m for m in data["models"]}
    nets = models_namespace()
    for name, factory, shape in (
        ("LeNet", nets["LeNet"], (2, 1, 28, 28)),
        ("encoder", nets["Encoder"], (1, 3, 32, 32)),
    ):
        inspection = models[name]["extras"]["inspection"]
        model = factory()
        assert inspection["parameters"] == parameter_breakdown(model).to_dict()
        assert inspection["flops"]["total_macs"] == count_flops(model, shape).total_macs
        assert inspection["lint"]["findings"] == [f.to_dict() for f in lint(model, shape)]
    bn = models["encoder"]["extras"]["inspection"]["regularization"]["norms"][0]
    assert bn == {
        "name": "stem.1",
        "type": "BatchNorm2d",
        "training": True,
        "statistics": "batch",
        "settings": {
            "num_features": 16,
            "eps": 1e-05,
            "momentum": 0.1,
            "affine": True,
            "track_running_stats": True,
        },
    }
    assert [f["rule"] for f in models["LeNet"]["extras"]["inspection"]["lint"]["findings"]] == [
        "linear-fixed-input-size"
    ]


def test_markdown_report_lists_the_findings(suite: pytest.Pytester) -> None:
    suite.runpytest("--cnn-shapes-report=summary.md")
    text = (suite.path / "summary.md").read_text()
    assert "| Model | Input | Output | Params | Trainable | MACs | Memory | Lint | Device | Status |" in text
    assert "- Lint: 1 finding" in text
    assert "  - `bias-before-batchnorm` `stem.0`: stem.0 (Conv2d) has a bias" in text
    assert "- Regularization: no dropout · BatchNorm2d (batch stats) · optimizer not given" in text


COUNTED = """
from torch import nn


class Counted(nn.Linear):
    \"\"\"Counts its forward calls (a class attribute: trace restores instance ones).\"\"\"

    calls = 0
    limit = None

    def forward(self, x):
        Counted.calls += 1
        if Counted.limit is not None and Counted.calls > Counted.limit:
            raise RuntimeError("this layer runs once")
        return super().forward(x)
"""


def test_inspection_costs_nothing_without_a_report(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_calls=COUNTED
        + """
def test_once(cnn_shapes):
    cnn_shapes.trace(Counted(4, 2), "1x4", device="cpu")
    print("forward calls:", Counted.calls)
"""
    )
    pytester.runpytest("-s").stdout.fnmatch_lines(["*forward calls: 1"])
    # with a report: the trace is the inspection's observed pass and the memory estimate's too
    result = pytester.runpytest("-s", "--cnn-shapes")
    result.stdout.fnmatch_lines(["*forward calls: 1", "Memory at 1x4: training peak 104 B*"])


DECLARED = """
[tool.cnnshape.models.encoder]
factory = "mymodels.nets:Encoder"
input = "1x3x32x32"
lint = true

[tool.cnnshape.models.lenet]
factory = "mymodels.nets:LeNet"
input = "1x1x28x28"
"""


def test_a_declared_model_with_lint_true_fails_on_findings(pytester: pytest.Pytester) -> None:
    write_models(pytester)
    pytester.makepyprojecttoml(DECLARED)
    result = pytester.runpytest("pyproject.toml")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "encoder: 1 lint finding (to accept one, switch its rule off: ignore=[[]'rule-id'[]] "
            "or [[]tool.cnnshape[]] lint.ignore)",
            "[[]bias-before-batchnorm[]] stem.0: *",
            "    fix: create stem.0 without it: nn.Conv2d(3, 16, 3, padding=1, bias=False)",
            "    why: BatchNorm subtracts the per-channel mean*",
            "FAILED pyproject.toml::encoder - encoder: 1 lint finding*",
        ]
    )
    assert "Traceback" not in result.stdout.str()


def test_project_lint_ignore_switches_a_rule_off_for_declared_models_and_the_report(
    pytester: pytest.Pytester,
) -> None:
    write_models(pytester)
    pytester.makepyprojecttoml('[tool.cnnshape]\nlint = { ignore = ["bias-before-batchnorm"] }\n' + DECLARED)
    result = pytester.runpytest("pyproject.toml", "--cnn-shapes")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["encoder*1x3x32x32*1x64x4x4*0*passed"])


def test_an_unknown_rule_in_lint_ignore_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyprojecttoml('[tool.cnnshape]\nlint = { ignore = ["bias-before-bn"] }\n')
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "*[[]tool.cnnshape[]] lint.ignore names an unknown lint rule 'bias-before-bn' "
            "(did you mean 'bias-before-batchnorm'?)*"
        ]
    )


def test_the_fixtures_assert_no_lint_applies_the_project_ignore(pytester: pytest.Pytester) -> None:
    write_models(pytester)
    pytester.makepyfile(
        test_lint="""
        import torch
        from mymodels.nets import Encoder, LeNet

        def test_encoder_clean_enough(cnn_shapes):
            findings = cnn_shapes.assert_no_lint(Encoder(), "1x3x32x32")
            assert findings.ignored == ("bias-before-batchnorm",)

        def test_lenet_is_size_bound(cnn_shapes):
            cnn_shapes.assert_no_lint(LeNet(), "1x1x28x28")
    """
    )
    pytester.makepyprojecttoml('[tool.cnnshape]\nlint = { ignore = ["bias-before-batchnorm"] }\n')
    result = pytester.runpytest()
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "test_lint.py:9: in test_lenet_is_size_bound",
            "*LeNet: 1 lint finding*",
            "[[]linear-fixed-input-size[]] 7: 7 (Linear, in_features=256) fits only 1x1x28x28*",
        ]
    )
    assert "pytest_cnnshape/inspection" not in result.stdout.str()


def test_xdist_report_with_inspection_equals_serial(pytester: pytest.Pytester) -> None:
    pytest.importorskip("xdist")
    write_models(pytester)
    pytester.makepyfile(
        test_suite=TESTS
        + """
def test_lenet_again(cnn_shapes):
    cnn_shapes.assert_output(LeNet(), "2x1x28x28", "B x 10")
"""
    )
    args = ("-p", "no:cacheprovider")
    pytester.runpytest_subprocess(*args, "--cnn-shapes-report=serial.json")
    pytester.runpytest_subprocess(*args, "-n", "2", "--cnn-shapes-report=parallel.json")
    serial = (pytester.path / "serial.json").read_bytes()
    assert serial == (pytester.path / "parallel.json").read_bytes()
    assert b'"inspection"' in serial and b'"linear-fixed-input-size"' in serial


def test_models_traced_in_the_plugin_are_left_as_they_were(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_state="""
        import torch
        from torch import nn

        def test_state(cnn_shapes):
            model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Dropout(0.5), nn.Flatten(),
                                  nn.Linear(4 * 6 * 6, 2))
            state = {k: v.clone() for k, v in model.state_dict().items()}
            flags = [m.training for m in model.modules()]
            rng = torch.get_rng_state()
            cnn_shapes.trace(model, "2x3x8x8", device="cpu")
            assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
            assert flags == [m.training for m in model.modules()]
            assert torch.equal(rng, torch.get_rng_state())
            assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())
    """
    )
    pytester.runpytest("--cnn-shapes").assert_outcomes(passed=1)


def test_expected_values_come_from_real_models() -> None:
    """The namespace the tests above compare with builds the project's models."""
    nets = models_namespace()
    assert isinstance(nets["Encoder"](), nn.Module)
    assert torch.is_tensor(next(nets["LeNet"]().parameters()))


def test_a_model_that_cannot_be_estimated_still_shows_its_shapes_and_inspection(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        test_once=COUNTED
        + """
class ReadsItsMode(Counted):
    \"\"\"Its forward reads ``self.training``: the report's evaluation-mode forward cannot stand
    for a training step, so the memory estimate needs a forward of its own.\"\"\"

    def forward(self, x):
        return super().forward(x) if self.training or True else x


def test_it(cnn_shapes):
    Counted.limit = 1
    cnn_shapes.trace(ReadsItsMode(4, 2), "1x4", device="cpu")
"""
    )
    result = pytester.runpytest("--cnn-shapes")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "ReadsItsMode*1x4*1x2*10*10*8*0*cpu*passed",
            "Lint: clean",
            "Memory: not estimated: TraceError: *this layer runs once*",
        ]
    )


UNWATCHABLE = """
import torch
from torch import nn


class Unwatchable(nn.Linear):
    \"\"\"Refuses to run under any TorchFunctionMode (the observers' mode among them).\"\"\"

    def forward(self, x):
        if torch._C._is_torch_function_mode_enabled():
            raise RuntimeError("not under a mode")
        return super().forward(x)
"""


def test_a_model_that_cannot_be_observed_still_shows_its_shapes(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_modes=UNWATCHABLE
        + """
def test_it(cnn_shapes):
    cnn_shapes.trace(Unwatchable(4, 2), "1x4", device="cpu")
"""
    )
    result = pytester.runpytest("--cnn-shapes")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        ["Unwatchable*1x4*1x2*10*10*-*-*cpu*passed", "Inspection failed: TraceError: *not under a mode*"]
    )


SEQUENCE_FIRST = """
import torch.nn as nn


class SequenceFirst(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, bias=False)

    def forward(self, x):
        return self.conv(x).mean((2, 3)).t()  # (C, B): the batch on axis 1, by design
"""

SEQUENCE_MODEL = """
[tool.cnnshape.models.{name}]
factory = "seqnet.py:SequenceFirst"
input = "2x3x8x8"
lint = true
"""


def test_batch_dim_says_a_model_is_sequence_first_per_model_and_per_project(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(seqnet=SEQUENCE_FIRST)
    pytester.makepyprojecttoml(
        SEQUENCE_MODEL.format(name="plain") + SEQUENCE_MODEL.format(name="declared") + "batch_dim = 1\n"
    )
    result = pytester.runpytest("pyproject.toml")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*[[]batch-dimension-changed[]]*", "FAILED pyproject.toml::plain*"])
    pytester.makepyprojecttoml(
        "[tool.cnnshape]\nlint = { batch_dim = 1 }\n" + SEQUENCE_MODEL.format(name="plain")
    )
    pytester.runpytest("pyproject.toml").assert_outcomes(passed=1)


@pytest.mark.parametrize(
    ("pyproject", "message"),
    [
        ("[tool.cnnshape]\nlint = { batchdim = 1 }\n", "*unknown key 'batchdim' (did you mean 'batch_dim'?*"),
        ("[tool.cnnshape]\nlint = { batch_dim = -1 }\n", "*lint.batch_dim = -1 must be 0 or more*"),
        (
            SEQUENCE_MODEL.format(name="m") + "batch_dim = true\n",
            "*[[]tool.cnnshape.models.m[]] batch_dim = True must be a whole number >= 0*",
        ),
    ],
)
def test_a_wrong_batch_dim_is_a_usage_error(pytester: pytest.Pytester, pyproject: str, message: str) -> None:
    pytester.makepyfile(seqnet=SEQUENCE_FIRST)
    pytester.makepyprojecttoml(pyproject)
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])
