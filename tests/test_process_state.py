"""Every public entry point leaves the process as it found it: failing model or passing.

One guard over every surface: each entry point runs on a passing model and on models
whose forward fails where the failure is diagnosed on meta (a wrong ``in_features``)
or on the CPU (``.item()`` in the forward makes ``auto`` fall back; CoordConv
coordinates made with ``torch.linspace`` on the CPU; an fx GraphModule), with dropout
and BatchNorm in the failing path so that a real forward draws random numbers and
writes running statistics. Before and after, the whole process state
(``tests.process_state``) and the model's (``tests.helpers.snapshot``) must be equal.
The CLI runs in-process; the fixtures, markers and declared models through pytester.
"""

from __future__ import annotations

import contextlib
import random
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

import pytest_cnnshape as cs
from pytest_cnnshape import cli
from pytest_cnnshape.errors import CnnShapeError
from tests.helpers import assert_same, snapshot
from tests.process_state import changed, process_state

SOURCE = '''
import torch
import torch.fx
from torch import nn


class Passing(nn.Module):
    def __init__(self, width=64):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(), nn.Dropout(0.5),
            nn.MaxPool2d(2),
        )
        self.fc = nn.Linear(width * 8 * 8, 10)

    def forward(self, x):
        return self.fc(torch.flatten(self.features(x), 1))


class WrongInFeatures(Passing):
    """Diagnosed on meta: the head expects 512 features of a 16x16 input, gets them of 32x32."""


class ItemGate(Passing):
    """``.item()`` makes auto fall back to the CPU: the failure is diagnosed there."""

    def forward(self, x):
        x = self.features(x)
        if x.mean().item() > 1e9:
            x = x * 2
        return self.fc(torch.flatten(x, 1))


class CoordConv(nn.Module):
    """Coordinates made with torch.linspace on the CPU: meta cannot run it (fc fits 16x16 inputs)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(5, 64, 3, padding=1)
        self.drop = nn.Dropout(0.5)
        self.fc = nn.Linear(64 * 16 * 16, 10)

    def forward(self, x):
        b, _, h, w = x.shape
        ys = torch.linspace(-1, 1, h).view(1, 1, h, 1).expand(b, 1, h, w)
        xs = torch.linspace(-1, 1, w).view(1, 1, 1, w).expand(b, 1, h, w)
        x = self.drop(self.conv(torch.cat([x, ys, xs], 1)))
        return self.fc(torch.flatten(x, 1))


def fx_model():
    """Small enough that auto runs it on the CPU, where its failure is diagnosed."""
    return torch.fx.symbolic_trace(WrongInFeatures(width=8))


def scripted_model():
    """Run in the TorchScript interpreter; diagnosed on its eager rebuild."""
    return torch.jit.script(WrongInFeatures(width=8))


def exported_passing():
    """An ExportedProgram's module (its train() raises), with a dynamic batch."""
    from torch.export import Dim, export

    batch = Dim("batch", min=1, max=64)
    model, example = Passing(width=8).eval(), torch.randn(2, 3, 16, 16)
    return export(model, (example,), dynamic_shapes=({0: batch},)).module()
'''

#: The models, compiled from a file of their own (TorchScript reads a class's source).
MODEL_FILE = Path(tempfile.mkdtemp(prefix="cnnshape-guard-")) / "guard_models.py"
MODEL_FILE.write_text(SOURCE)
NAMESPACE: dict[str, Any] = {"__name__": "guard_models"}
exec(compile(SOURCE, str(MODEL_FILE), "exec"), NAMESPACE)

PASSING = ("Passing", "exported_passing")
#: Failing models: factory name -> the device the failure is diagnosed on.
FAILING = {
    "WrongInFeatures": "meta",
    "ItemGate": "cpu",
    "CoordConv": "cpu",
    "fx_model": "cpu",
    "scripted_model": "cpu",
}
#: The input the failing models fail on; the passing one runs on it at 16x16.
FAIL_INPUT, PASS_INPUT = (2, 3, 32, 32), (2, 3, 16, 16)


def build(name: str) -> nn.Module:
    torch.manual_seed(1)
    model: nn.Module = NAMESPACE[name]()
    if name != "exported_passing":  # an exported module refuses train(): its mode is its graph's
        model.train()  # BatchNorm writes running stats and dropout draws in a real training forward
    return model


def _shape(fails: bool) -> tuple[int, ...]:
    return FAIL_INPUT if fails else PASS_INPUT


def _text(shape: tuple[int, ...]) -> str:
    return "x".join(map(str, shape))


#: Every public entry point: (model, does it fail?) -> the call.
ENTRY_POINTS: dict[str, Callable[[nn.Module, bool], Any]] = {
    "trace": lambda m, f: cs.trace(m, _shape(f)),
    "trace_train": lambda m, f: cs.trace(m, _shape(f), train=True),
    "trace_cpu": lambda m, f: cs.trace(m, _shape(f), device="cpu", train=True),
    "trace_flow": lambda m, f: cs.trace(m, _shape(f), flow=True),
    "assert_output_shape": lambda m, f: cs.assert_output_shape(m, _shape(f), (2, 10)),
    "lint": lambda m, f: cs.lint(m, _shape(f)),
    "count_flops": lambda m, f: cs.count_flops(m, _shape(f)),
    "estimate_memory": lambda m, f: cs.estimate_memory(m, _shape(f), "AdamW"),
    "parameter_breakdown": lambda m, f: cs.parameter_breakdown(m),
    "regularization": lambda m, f: cs.regularization(m),
    "assert_shape_contract": lambda m, f: cs.assert_shape_contract(
        m, "B x 3 x H x W", "B x 10", dims={"H": 32 if f else 16, "W": 32 if f else 16}, max_examples=3
    ),
    "min_input_size": lambda m, f: cs.min_input_size(m, 3),
    "assert_batch_invariant": lambda m, f: cs.assert_batch_invariant(m, _shape(f), batches=(1, 2)),
    "linear_in_features": lambda m, f: cs.linear_in_features(m, _shape(f)),
    "torchinfo_summary": lambda m, f: cs.torchinfo_summary(m, _shape(f)),
    # torch's symbolic shapes: fake tensors, a ShapeEnv and torch's config, all global
    "trace_symbolic": lambda m, f: cs.trace(m, "B x 3 x H x W", symbolic=True, dims=_dims(f)),
    "input_domain": lambda m, f: cs.input_domain(m, "B x 3 x H x W", dims=_dims(f)),
}


def _dims(fails: bool) -> dict[str, int]:
    shape = _shape(fails)
    return {"B": shape[0], "H": shape[2], "W": shape[3]}


#: Entry points whose outcome depends on the engine following the model (a value read, a
#: scripted or exported model: a note and the concrete trace, or a one-line SymbolicError):
#: here only the state they leave is asserted.
EITHER = {"trace_symbolic", "input_domain"}


#: Entry points that run no forward: they pass on a failing model too.
NO_FORWARD = {"parameter_breakdown", "regularization"}


@pytest.mark.parametrize("entry", sorted(ENTRY_POINTS))
@pytest.mark.parametrize("name", [*PASSING, *FAILING])
def test_an_entry_point_leaves_the_process_and_the_model_as_they_were(entry: str, name: str) -> None:
    if entry == "torchinfo_summary":
        pytest.importorskip("torchinfo")
    model = build(name)
    fails = name not in PASSING
    random.seed(5)
    torch.manual_seed(5)
    before, state = process_state(), snapshot(model)
    # min_input_size: a head that fits one input size has no minimum, passing or not
    runs = entry not in NO_FORWARD and (name, entry) != ("scripted_model", "lint")  # it lints no layers
    raises = (fails and runs) or entry == "min_input_size"
    if entry in EITHER:
        with contextlib.suppress(CnnShapeError):  # ours only, either way
            ENTRY_POINTS[entry](model, fails)
    else:
        with pytest.raises((CnnShapeError, AssertionError)) if raises else contextlib.nullcontext():
            ENTRY_POINTS[entry](model, fails)  # ours only (contract failures are AssertionErrors)
    assert changed(before, process_state()) == []
    assert_same(state, model)


def test_the_failing_models_fail_where_the_guard_says() -> None:
    """The guard covers what it claims: each failing model is diagnosed on its device."""
    for name, device in FAILING.items():
        with pytest.raises(cs.ShapeMismatchError) as info:
            cs.trace(build(name), FAIL_INPUT, train=True)
        assert info.value.trace.device == device, name
        assert info.value.layer == "fc", name
    for name in PASSING:
        cs.trace(build(name), PASS_INPUT, train=True)


@pytest.fixture
def model_file(tmp_path: Path) -> Path:
    path = tmp_path / "guard_models.py"
    path.write_text(SOURCE)
    return path


@pytest.mark.parametrize("name", [*PASSING, *FAILING])
@pytest.mark.parametrize(
    "command",
    [["check"], ["summary", "--train"], ["summary", "--params", "--flops", "--lint", "--memory"]],
    ids=["check", "summary-train", "summary-inspection"],
)
def test_the_cli_in_process_leaves_the_process_as_it_was(
    model_file: Path, name: str, command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    shape = _text(_shape(name not in PASSING))
    random.seed(5)
    torch.manual_seed(5)
    cli.main([*command, f"{model_file}:{name}", "--input", shape])  # build and trace: one process
    before = process_state()
    code = cli.main([*command, f"{model_file}:{name}", "--input", shape])
    assert changed(before, process_state()) == []
    out, err = capsys.readouterr()
    assert "internal error" not in err and "Traceback" not in out + err
    if name not in PASSING:
        assert code == 1
    else:  # --lint exits 1 on findings (dropout right after a conv)
        assert code == 0 or "--lint" in command


CONFTEST = """
import json, pytest
from tests.process_state import changed, process_state

FOUND = {}

@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_protocol(item, nextitem):
    before = process_state()
    try:
        return (yield)
    finally:
        FOUND[item.nodeid] = changed(before, process_state())

def pytest_sessionfinish(session):
    with open("state_changes.json", "w") as f:
        json.dump(FOUND, f)
"""

TESTS = """
import pytest
import torch
from guard_models import Passing, WrongInFeatures, ItemGate, CoordConv, fx_model

FAILING = [WrongInFeatures, ItemGate, CoordConv, fx_model]

def built(factory):
    with torch.random.fork_rng():  # the test's own draws (weight initialisation) are not ours
        return factory()

def test_fixture_passing(cnn_shapes):
    cnn_shapes.trace(built(Passing), "2x3x16x16", train=True)
    cnn_shapes.assert_output(built(Passing), "2x3x16x16", "2x10")

@pytest.mark.parametrize("factory", FAILING)
def test_fixture_failing(cnn_shapes, factory):
    with pytest.raises(Exception, match="fc"):
        cnn_shapes.trace(built(factory), "2x3x32x32", train=True)

@pytest.mark.cnn_model(Passing, input="2x3x16x16", output="2x10", train=True)
def test_marker_passing(cnn_trace):
    assert cnn_trace.output_shape == (2, 10)

"""
for _name in ("WrongInFeatures", "ItemGate", "CoordConv", "fx_model"):
    TESTS += f"""
@pytest.mark.cnn_model({_name}, input="2x3x32x32", output="2x10")
def test_marker_failing_{_name}(cnn_trace):
    pass
"""

PYPROJECT = """
[tool.cnnshape.models.passing]
factory = "guard_models:Passing"
input = "2x3x16x16"
output = "2x10"
[tool.cnnshape.models.failing_meta]
factory = "guard_models:WrongInFeatures"
input = "2x3x32x32"
[tool.cnnshape.models.failing_cpu]
factory = "guard_models:ItemGate"
input = "2x3x32x32"
[tool.cnnshape.models.failing_coords]
factory = "guard_models:CoordConv"
input = "2x3x32x32"
[tool.cnnshape.models.failing_fx]
factory = "guard_models:fx_model"
input = "2x3x32x32"
"""


def test_fixtures_markers_and_declared_models_leave_the_process_as_it_was(pytester: pytest.Pytester) -> None:
    import json

    pytester.makepyfile(guard_models=SOURCE)
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_guard=TESTS)
    pytester.makepyprojecttoml(PYPROJECT)
    pytester.syspathinsert()
    result = pytester.runpytest("-p", "no:randomly", "-p", "no:cacheprovider", "--cnn-shapes")
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed", 0) >= 2 + 5 and outcomes.get("failed", 0) >= 4 + 4, outcomes
    assert "internal error" not in result.stdout.str()
    found = json.loads((pytester.path / "state_changes.json").read_text())
    assert len(found) >= 14 and {nodeid: what for nodeid, what in found.items() if what} == {}
