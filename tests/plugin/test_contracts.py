"""Shape contracts in pytest: declared in pyproject.toml or on the cnn_model marker."""

from __future__ import annotations

import pytest

MODELS = '''
import torch
import torch.nn as nn


class Pooled(nn.Module):
    """Works for any input of at least 1x1: adaptive pooling before the head."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU())
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10))

    def forward(self, x):
        return self.head(self.body(x))


class Skip(nn.Module):
    """One pooling deep with a skip: odd sides fail at the concatenation."""

    def __init__(self):
        super().__init__()
        self.enc = nn.Conv2d(1, 4, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.up = nn.ConvTranspose2d(4, 4, 2, stride=2)
        self.out = nn.Conv2d(8, 1, 1)

    def forward(self, x):
        s = self.enc(x)
        return self.out(torch.cat([self.up(self.pool(s)), s], 1))


class ValueGated(Pooled):
    """Reads a tensor's value (.item()): no symbolic shapes follow that, so hypothesis checks it."""

    def forward(self, x):
        if x.abs().sum().item() >= 0:
            x = self.body(x)
        return self.head(x)
'''

PYPROJECT = """
[tool.cnnshape]
hypothesis = { max_examples = 25 }

[tool.cnnshape.models.pooled]
factory = "nets.py:Pooled"
input = "2x3x32x32"
contract = { input = "B x 3 x H x W", output = "B x 10", min_side = 1, max_side = 128 }

[tool.cnnshape.models.skip]
factory = "nets.py:Skip"
contract = { input = "B x 1 x H x W", output = "B x 1 x H x W", min_side = 8, max_side = 64, square = true }

[tool.cnnshape.models.gated]
factory = "nets.py:ValueGated"
contract = { input = "B x 3 x H x W", output = "B x 10", min_side = 1, max_side = 16 }
"""


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyfile(nets=MODELS)
    pytester.makepyprojecttoml(PYPROJECT)
    return pytester


def test_declared_contracts_pass_or_show_the_smallest_failing_input(project: pytest.Pytester) -> None:
    result = project.runpytest("--cnn-shapes", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, failed=1)
    # proven at every input of the domain: 57 square sides from 8 to 64, batches 1 to 4
    result.stdout.fnmatch_lines(
        [
            "*cnnshape model skip*",
            "skip: Skip breaks its shape contract 'B x 1 x H x W' for input [[]1, 1, 9, 9[]] "
            "(B=1, C=1, H=W=9), the smallest of 112 failing inputs among all 228 of its domain "
            "(proven with torch's symbolic shapes)",
            "*input sides that are multiples of 2, e.g. 1x1x10x10*",
            "*the contract fails for: H = W not a multiple of 2*",
            "*the model runs for: H and W at least 2 and multiples of 2*",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "Contract: B x 3 x H x W -> B x 10 proven at all 65,536 inputs of its domain "
            "(symbolic shapes): passed"
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "Contract: B x 1 x H x W -> B x 1 x H x W proven at every input of its domain (symbolic shapes): "
            "failed (smallest failing input 1x1x9x9; fails for H = W not a multiple of 2)",
        ]
    )
    # where the engine cannot follow the model, hypothesis samples the domain, and the report says why
    result.stdout.fnmatch_lines(
        [
            "Contract: B x 3 x H x W -> B x 10 over 25 hypothesis examples (not proven symbolically: "
            "*depends on the values of a tensor*): passed",
        ]
    )
    # with no input of its own, the declared model is traced at the domain's smallest input
    result.stdout.fnmatch_lines(["skip*1x1x8x8*1x1x8x8*FAILED*"])


def test_marker_contracts(project: pytest.Pytester) -> None:
    project.makepyfile(
        test_marked="""
        import pytest
        from nets import Pooled, Skip

        @pytest.mark.cnn_model(Pooled, contract={"input": "N x 3 x H x W", "output": "N x 10",
                                                 "batch": [1, 3], "max_examples": 10})
        def test_pooled(cnn_trace):
            assert cnn_trace.output_shape == (1, 10)

        @pytest.mark.cnn_model(Skip, input="1x1x16x16",
                               contract={"input": "B x 1 x H x W", "output": "B x 1 x H x W",
                                         "multiple_of": 2, "max_side": 64})
        def test_even_sides():
            pass

        @pytest.mark.cnn_model(Skip, input="1x1x16x16",
                               contract={"input": "B x 1 x H x W", "output": "B x 1 x H x W"})
        def test_any_side():
            raise AssertionError("the body must not run")
    """
    )
    result = project.runpytest("test_marked.py", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(
        ["*Skip breaks its shape contract 'B x 1 x H x W' for input [[]1, 1, 1, 1[]]*"]
    )
    assert "the body must not run" not in result.stdout.str()


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        (
            '[tool.cnnshape.models.m]\nfactory = "nets.py:Pooled"\n'
            'contract = { inptu = "B x 3 x H x W", output = "B x 10" }',
            "*contract has an unknown key 'inptu' (did you mean 'input'?*",
        ),
        (
            '[tool.cnnshape.models.m]\nfactory = "nets.py:Pooled"\ncontract = { input = "B x K x H x W", '
            'output = "B x 10" }',
            "*nothing gives K its sizes*",
        ),
        (
            '[tool.cnnshape.models.m]\nfactory = "nets.py:Pooled"\ncontract = { input = "B x 3 x H x W", '
            'output = "B x 10", min_side = 0 }',
            "*min_side = 0 must be a whole number >= 1*",
        ),
        (
            "[tool.cnnshape]\nhypothesis = { max_exmaples = 5 }",
            "*hypothesis has an unknown key 'max_exmaples' (did you mean 'max_examples'?*",
        ),
        ("[tool.cnnshape]\nhypothesis = { seed = 3 }", "*seed = 3 only matters with derandomize = false*"),
    ],
)
def test_bad_contracts_are_usage_errors(pytester: pytest.Pytester, toml: str, message: str) -> None:
    pytester.makepyfile(nets=MODELS)
    pytester.makepyprojecttoml(toml)
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])
    assert "Traceback" not in result.stderr.str()


def test_a_wrong_marker_contract_names_the_key(project: pytest.Pytester) -> None:
    project.makepyfile(
        test_bad="""
        import pytest
        from nets import Pooled

        @pytest.mark.cnn_model(Pooled, contract={"input": "B x 3 x H x W", "ouput": "B x 10"})
        def test_it():
            pass
    """
    )
    result = project.runpytest("test_bad.py")
    result.stdout.fnmatch_lines(["*contract= has an unknown key 'ouput' (did you mean 'output'?*"])
