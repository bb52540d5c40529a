"""The cnn_model marker and the cnn_model / cnn_trace / cnn_shapes fixtures."""

from __future__ import annotations

import hashlib
import re
from typing import Any

import pytest
import torch

from tests.plugin.helpers import MODELS, write_models


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    write_models(pytester)
    return pytester


def test_marker_contract_passes_and_fixtures_give_model_and_trace(project: pytest.Pytester) -> None:
    project.makepyfile(
        """
        import pytest, torch
        from mymodels.nets import LeNet

        @pytest.mark.cnn_model(LeNet, input="N x 1 x 28 x 28", dims={"N": 3}, output="N x 10",
                               max_params=50_000)
        def test_callable(cnn_model, cnn_trace):
            assert isinstance(cnn_model, LeNet)
            assert cnn_trace.output_shape == (3, 10)
            assert cnn_trace.total_params == 34622

        @pytest.mark.cnn_model("mymodels.nets:LeNet(classes=5)", input=(2, 1, 28, 28), output=(2, 5))
        def test_spec_string(cnn_trace):
            assert cnn_trace.output_shape == (2, 5)
        """
    )
    result = project.runpytest("--strict-markers")
    result.assert_outcomes(passed=2)


def test_marker_models_are_built_with_the_same_weights_every_run(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two pytest processes whose global torch seeds differ build the very same weights, and
    they are not what that global seed would have given a plain build."""
    project.makeconftest(
        """
        import os, torch

        def pytest_configure(config):
            torch.manual_seed(int(os.environ["GLOBAL_SEED"]))
        """
    )
    project.makepyfile(
        """
        import hashlib, pytest

        @pytest.mark.cnn_model("mymodels.nets:LeNet", input="1x1x28x28")
        def test_weights(cnn_model):
            data = b"".join(p.detach().numpy().tobytes() for p in cnn_model.parameters())
            print("WEIGHTS=" + hashlib.sha256(data).hexdigest())
        """
    )
    digests = []
    for seed in ("1", "2"):
        monkeypatch.setenv("GLOBAL_SEED", seed)
        result = project.runpytest_subprocess("-s", "-p", "no:cacheprovider")
        result.assert_outcomes(passed=1)
        found = re.search(r"WEIGHTS=([0-9a-f]{64})", result.stdout.str())
        assert found is not None, result.stdout.str()
        digests.append(found.group(1))
    assert digests[0] == digests[1]
    namespace: dict[str, Any] = {}
    exec(MODELS, namespace)  # the same source the project imports
    torch.manual_seed(1)
    plain = b"".join(p.detach().numpy().tobytes() for p in namespace["LeNet"]().parameters())
    assert hashlib.sha256(plain).hexdigest() != digests[0]  # the marker's own seed, not the global one


def test_marker_contract_failures_fail_the_test_with_the_diagnostic(project: pytest.Pytester) -> None:
    project.makepyfile(
        """
        import pytest
        from mymodels.nets import LeNet, Broken

        @pytest.mark.cnn_model(LeNet, input="1x1x28x28", output="B x 11")
        def test_wrong_output(cnn_trace):
            raise AssertionError("the body must not run")

        @pytest.mark.cnn_model(LeNet, input="1x1x28x28", max_params=1000)
        def test_too_big():
            pass

        @pytest.mark.cnn_model(Broken, input="1x1x28x28")
        def test_broken(cnn_model):
            pass

        @pytest.mark.cnn_model("mymodels.nets:explode", input="1x1x28x28")
        def test_factory_raises():
            pass
        """
    )
    result = project.runpytest()
    result.assert_outcomes(failed=4)
    text = result.stdout.str()
    assert "the body must not run" not in text
    result.stdout.fnmatch_lines(
        [
            "*the @pytest.mark.cnn_model contract of test_wrong_output",
            "output shape [1, 10] does not match the expected [1, 11]",
            "*dim 1: expected 11, got 10",
        ]
    )
    assert "LeNet has 34,622 parameters, more than max_params=1,000 (+33,622" in text
    assert "ShapeMismatchError: 3 (Linear)" in text
    assert "explode: model factory 'mymodels.nets:explode' raised RuntimeError: factory exploded" in text


@pytest.mark.parametrize(
    ("marker", "message"),
    [
        ('"mymodels.nets:LeNet", inptu="1x1x28x28"', "*unknown argument 'inptu' (did you mean 'input'?)*"),
        ('"mymodels.nets:LeNet"', "*needs an input, e.g. input=*"),
        ('input="1x1x28x28"', "*needs a factory*"),
        ('42, input="1x1x28x28"', "*factory=42 must be a callable*"),
        ('"mymodels.nets:LeNet", input="1x1x28x28", device="gpu"', "*device='gpu' is not one of*"),
        ('"mymodels.nets:LeNet", input="1x1x28x28", max_params=-5', "*max_params=-5 must be*"),
        (
            '"mymodels.nets:LeNet", input="1x1x28x28", output="B x K"',
            "SpecError: expected output 'B x K' uses K, which nothing defines (defined: B, C, H, N, W);*",
        ),
        ('"mymodels.nets:LeNet", input="N x 1 x 28 x 28"', "*names N but no value is given*"),
        ('"LeNet", input="1x1x28x28"', "*no ':Name' part*"),
    ],
)
def test_wrong_marker_arguments_name_the_argument(
    project: pytest.Pytester, marker: str, message: str
) -> None:
    project.makepyfile(
        f"""
        import pytest

        @pytest.mark.cnn_model({marker})
        def test_it(cnn_model):
            pass
        """
    )
    result = project.runpytest("--strict-markers")
    outcomes = result.parseoutcomes()
    assert outcomes.get("errors", 0) + outcomes.get("failed", 0) == 1
    result.stdout.fnmatch_lines([message])
    assert "Traceback" not in result.stdout.str()


def test_fixtures_without_marker_say_what_they_need(project: pytest.Pytester) -> None:
    project.makepyfile("def test_it(cnn_trace):\n    pass\n")
    result = project.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*cnn_trace fixture needs a contract: decorate the test with*"])


def test_markers_are_registered_for_strict_markers(project: pytest.Pytester) -> None:
    result = project.runpytest("--markers")
    result.stdout.fnmatch_lines(["@pytest.mark.cnn_model(factory, input=*", "@pytest.mark.cnn_declared*"])


def test_the_marker_help_names_every_argument_the_marker_takes() -> None:
    from pytest_cnnshape.plugin.keys import MARKER_HELP
    from pytest_cnnshape.plugin.schema import MARKER_ARGS, names_on

    arguments = MARKER_HELP.partition("(")[2].partition(")")[0].split(", ")
    assert arguments == ["factory", *(f"{name}=..." for name in names_on(MARKER_ARGS) if name != "factory")]


def test_cnn_shapes_fixture_collects_traces_and_raises_on_output_mismatch(project: pytest.Pytester) -> None:
    project.makepyfile(
        """
        import pytest
        from mymodels.nets import Encoder

        def test_it(cnn_shapes):
            tr = cnn_shapes.trace(Encoder(), "2x3x32x32", name="enc")
            assert tr.output_shape == (2, 64, 4, 4)
            assert cnn_shapes.traces == [tr]
            with pytest.raises(AssertionError, match=r"dim 2: expected 8 \\(H//4\\), got 4"):
                cnn_shapes.assert_output(Encoder(), "2x3x32x32", "B x 64 x H//4 x W//4")
        """
    )
    result = project.runpytest("--cnn-shapes")
    result.assert_outcomes(passed=1)
    # the test expects the mismatch (pytest.raises): the report says so
    result.stdout.fnmatch_lines(["enc*2x3x32x32*2x64x4x4*passed", "Encoder*2x3x32x32*xfailed"])
