"""Shape baselines, the whole cycle: missing -> update -> pass -> change -> diff -> update -> pass."""

from __future__ import annotations

import json

import pytest

from tests.plugin.helpers import DECLARED_LENET, MODELS, make_project, set_models, write_models

PYPROJECT = (
    """
[tool.pytest.ini_options]
testpaths = ["tests"]
"""
    + DECLARED_LENET
    + "baseline = true\n"
)

TESTS = """
import pytest
from mymodels.nets import LeNet

@pytest.mark.cnn_model(LeNet, input="1x1x28x28", output="B x 10", baseline=True)
def test_marker(cnn_trace):
    pass

def test_fixture(cnn_shapes):
    tr = cnn_shapes.assert_baseline(LeNet(), "3x1x28x28")
    assert tr.output_shape == (3, 10)

def test_no_baseline(cnn_shapes):
    cnn_shapes.assert_output(LeNet(), "1x1x28x28", "B x 10")
"""

FILES = (
    "__cnnshapes__/lenet.json",
    "tests/__cnnshapes__/test_models/LeNet-1x1x28x28.json",
    "tests/__cnnshapes__/test_models/LeNet-3x1x28x28.json",
)

#: The second conv gets 32 channels instead of 16, the first Linear follows.
WIDER = MODELS.replace("nn.Conv2d(6, 16, 5)", "nn.Conv2d(6, 32, 5)").replace(
    "nn.Linear(256, 120)", "nn.Linear(512, 120)"
)


@pytest.fixture
def project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    return make_project(pytester, monkeypatch, PYPROJECT, {"tests/test_models.py": TESTS})


def test_the_whole_cycle(project: pytest.Pytester) -> None:
    # 1. no baselines yet: every opted-in model fails with the file and the command
    result = project.runpytest()
    result.assert_outcomes(passed=1, failed=3)
    result.stdout.fnmatch_lines(
        [
            "*no shape baseline for LeNet (1x1x28x28) yet",
            "expected at: tests/__cnnshapes__/test_models/LeNet-1x1x28x28.json",
            "record the current shapes with: pytest --cnn-shapes-update tests/test_models.py::test_marker",
        ]
    )
    result.stdout.fnmatch_lines(
        ["*no shape baseline for lenet (2x1x28x28) yet", "expected at: __cnnshapes__/lenet.json"]
    )
    assert not any((project.path / f).exists() for f in FILES)

    # 2. --cnn-shapes-update writes them and passes
    result = project.runpytest("--cnn-shapes-update")
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(["cnnshape: shape baselines: 3 written, 0 updated, 0 unchanged"])
    stored = {f: (project.path / f).read_bytes() for f in FILES}
    data = json.loads(stored[FILES[1]])
    assert data["layers"][1] == {
        "call": 0,
        "name": "0",
        "output": [1, 6, 24, 24],
        "params": 156,
        "type": "Conv2d",
    }
    assert (data["output"], data["total_params"], data["compare"]) == ([1, 10], 34622, "layers")

    # 3. a plain run passes and touches nothing
    result = project.runpytest()
    result.assert_outcomes(passed=4)
    assert "cnnshape:" not in result.stdout.str()

    # 4. a changed layer fails every model that uses it, with the diff
    set_models(project, WIDER)
    result = project.runpytest()
    result.assert_outcomes(passed=1, failed=3)
    result.stdout.fnmatch_lines(
        [
            "*shape baseline changed for LeNet (3x1x28x28): 6 layers changed; params +33,136",
            "baseline: tests/__cnnshapes__/test_models/LeNet-3x1x28x28.json",
            "",
            "*Layer*Type*Output (baseline)*Output (now)*Params (baseline)*Params (now)",
            "*",
            "~*(root)*LeNet*3x10*3x10*34,622*67,758",
            "*2*MaxPool2d*3x6x12x12*3x6x12x12*0*0",
            "~*3*Conv2d*3x16x8x8*3x32x8x8*2,416*4,832",
            "~*4*ReLU*3x16x8x8*3x32x8x8*0*0",
            "~*5*MaxPool2d*3x16x4x4*3x32x4x4*0*0",
            "~*6*Flatten*3x256*3x512*0*0",
            "~*7*Linear*3x120*3x120*30,840*61,560",
            "*8*ReLU*3x120*3x120*0*0",
            "",
            "output: 3x10 (unchanged)",
            "params: 34,622 -> 67,758 (+33,136)    trainable: 34,622 -> 67,758 (+33,136)",
            "if the change is intended, accept it with: "
            "pytest --cnn-shapes-update tests/test_models.py::test_fixture",
        ]
    )
    result.stdout.fnmatch_lines(
        ["*shape baseline changed for lenet (2x1x28x28)*", "baseline: __cnnshapes__/lenet.json"]
    )
    result.stdout.fnmatch_lines(
        [
            "cnnshape: shape baselines failed (3 changed); review them above, then write or accept "
            "them with: pytest --cnn-shapes-update",
        ]
    )
    assert "Traceback" not in result.stdout.str()
    assert {f: (project.path / f).read_bytes() for f in FILES} == stored  # nothing written

    # 5. --cnn-shapes-update accepts the change
    result = project.runpytest("--cnn-shapes-update")
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(["cnnshape: shape baselines: 0 written, 3 updated, 0 unchanged"])
    assert json.loads((project.path / FILES[1]).read_text())["total_params"] == 67758

    # 6. and the next run passes; updating again changes nothing
    project.runpytest().assert_outcomes(passed=4)
    result = project.runpytest("--cnn-shapes-update")
    result.stdout.fnmatch_lines(["cnnshape: shape baselines: 0 written, 0 updated, 3 unchanged"])


def test_update_missing_writes_only_missing_baselines(project: pytest.Pytester) -> None:
    project.makepyprojecttoml(PYPROJECT + "\n[tool.cnnshape]\nupdate_missing = true\n")
    result = project.runpytest()
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(["cnnshape: shape baselines: 3 written, 0 updated, 0 unchanged"])
    set_models(project, WIDER)
    result = project.runpytest()
    result.assert_outcomes(passed=1, failed=3)  # a change is never accepted without the option
    result.stdout.fnmatch_lines(["*shape baseline changed for LeNet (1x1x28x28)*"])
    assert json.loads((project.path / FILES[0]).read_text())["total_params"] == 34622


def test_output_only_compares_the_output_and_totals(pytester: pytest.Pytester) -> None:
    write_models(pytester)
    pytester.makepyfile(
        test_it="""
        import pytest
        from mymodels.nets import LeNet

        @pytest.mark.cnn_model(LeNet, input="1x1x28x28", baseline_output_only=True)
        def test_marker(cnn_trace):
            pass

        def test_fixture(cnn_shapes):
            cnn_shapes.assert_baseline(LeNet(), "1x1x28x28", name="full")
    """
    )
    pytester.runpytest("--cnn-shapes-update").assert_outcomes(passed=2)
    data = json.loads((pytester.path / "__cnnshapes__/test_it/LeNet-1x1x28x28.json").read_text())
    assert data["compare"] == "output" and "layers" not in data
    assert (data["output"], data["total_params"]) == ([1, 10], 34622)

    # a new activation: same shapes and totals, other layers -> only the full baseline fails
    set_models(pytester, MODELS.replace("nn.Conv2d(1, 6, 5), nn.ReLU()", "nn.Conv2d(1, 6, 5), nn.GELU()"))
    result = pytester.runpytest()
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*shape baseline changed for full (1x1x28x28): 1 layer changed",
            "*",
            "*",
            "*",
            "~*1*ReLU -> GELU*1x6x24x24*1x6x24x24*0*0",
        ]
    )

    # more parameters fail the output-only baseline too, with the totals' delta
    set_models(pytester, MODELS.replace("nn.Linear(120, classes)", "nn.Linear(120, classes, bias=False)"))
    result = pytester.runpytest("-k", "marker")
    result.assert_outcomes(failed=1, deselected=1)
    result.stdout.fnmatch_lines(
        [
            "*shape baseline changed for LeNet (1x1x28x28): params -10",
            "baseline: __cnnshapes__/test_it/LeNet-1x1x28x28.json",
            "output: 1x10 (unchanged)",
            "params: 34,622 -> 34,612 (-10)    trainable: 34,622 -> 34,612 (-10)",
        ]
    )


def test_project_wide_baselines_and_opting_out(pytester: pytest.Pytester) -> None:
    write_models(pytester)
    pytester.makepyprojecttoml("[tool.cnnshape]\nbaselines = true\n")
    pytester.makepyfile(
        test_it="""
        import pytest
        from mymodels.nets import LeNet, Encoder

        @pytest.mark.cnn_model(LeNet, input="1x1x28x28")
        def test_on_by_default(cnn_trace):
            pass

        @pytest.mark.cnn_model(Encoder, input="1x3x32x32", baseline=False)
        def test_opted_out(cnn_trace):
            pass

        def test_contracts_alone_never_need_a_file(cnn_shapes):
            cnn_shapes.assert_output(LeNet(), "1x1x28x28", "B x 10")
            cnn_shapes.trace(Encoder(), "1x3x32x32")
    """
    )
    result = pytester.runpytest()
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["FAILED test_it.py::test_on_by_default - no shape baseline for LeNet*"])
    pytester.runpytest("--cnn-shapes-update").assert_outcomes(passed=3)
    assert sorted(p.name for p in (pytester.path / "__cnnshapes__/test_it").iterdir()) == [
        "LeNet-1x1x28x28.json"
    ]


def test_update_without_any_baseline_says_how_to_turn_them_on(pytester: pytest.Pytester) -> None:
    write_models(pytester)
    pytester.makepyfile(
        test_it="""
        from mymodels.nets import LeNet
        def test_it(cnn_shapes):
            cnn_shapes.assert_output(LeNet(), "1x1x28x28", "B x 10")
    """
    )
    result = pytester.runpytest("--cnn-shapes-update")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        ["cnnshape: --cnn-shapes-update: no test compared a model with a shape baseline (turn them on with*"]
    )


def test_wrong_baseline_options_name_the_setting(pytester: pytest.Pytester) -> None:
    write_models(pytester)
    pytester.makepyfile(
        test_it="""
        import pytest
        @pytest.mark.cnn_model("mymodels.nets:LeNet", input="1x1x28x28", baseline="yes")
        def test_it(cnn_trace):
            pass
    """
    )
    result = pytester.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*@pytest.mark.cnn_model: baseline='yes' must be True or False"])
    pytester.makepyprojecttoml('[tool.cnnshape]\nbaseline_dir = "tests/baselines"\n')
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*baseline_dir = 'tests/baselines' must be a folder name, not a path*"])
