"""Exported programs (``torch.export``) traced for what they hold, checked against the eager model.

Each model of the tracer's zoo is exported (with a static batch, and with a dynamic
one traced at another batch size) and the program, and its ``.module()``, are traced
on every device: every row (name, class, depth, call, input and output shapes) must
be the eager model's as hooks registered by hand see it (``tests.helpers.observe``),
every module's parameter count the eager module's, the FLOPs torch's own count of the
eager model; the program and its tensors are left exactly as they were.
"""

from __future__ import annotations

import functools
import re
import warnings
from typing import Any

import pytest
import torch
from torch import nn
from torch.export import Dim, export

from pytest_cnnshape import (
    TraceError,
    count_flops,
    estimate_memory,
    lint,
    parameter_breakdown,
    regularization,
    trace,
)
from pytest_cnnshape.tracing.exported import is_exported_module, is_exported_program, unflattened
from tests.corpus.zoo import ZOO
from tests.helpers import assert_same, make_inputs, observe, snapshot
from tests.tracing.test_everyday_models import reference_flops, rows

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")

#: Zoo models whose export keeps every module call as the eager forward makes it.
EXACT = [
    "lenet_sequential",
    "functional_ops",
    "reused_modules",
    "tied_weights",
    "module_list",
    "module_dict_dict_output",
    "namedtuple_and_nontensor_output",
    "two_positional_inputs",
    "in_place_ops",
    "parameter_free",
    "resnet_bottlenecks",
    "unet_skip_concat",
    "conv1d",
    "conv3d",
    "regularized",
]


def _batched(spec: Any, batch: int) -> Any:
    """``spec`` with every input's first size set to ``batch``."""
    if isinstance(spec, tuple) and all(isinstance(d, int) for d in spec):
        return (batch, *spec[1:])
    if isinstance(spec, dict):
        return {k: _batched(v, batch) for k, v in spec.items()}
    return type(spec)(_batched(v, batch) for v in spec)


def _batch_dims(spec: Any, batch: Any) -> Any:
    """``dynamic_shapes`` making the first size of every input ``batch``."""
    if isinstance(spec, tuple) and all(isinstance(d, int) for d in spec):
        return {0: batch}
    if isinstance(spec, dict):
        return {k: _batch_dims(v, batch) for k, v in spec.items()}
    return type(spec)(_batch_dims(v, batch) for v in spec)


@functools.cache
def exported(name: str, dynamic: bool) -> tuple[nn.Module, Any, Any]:
    """The eager zoo model (eval mode), its program, and the inputs to trace it with: a
    dynamic batch is exported at 2 (torch specialises 1) and traced at 5. Made once per
    module (exporting takes a while); every test checks the program is left as it was."""
    factory, spec = ZOO[name]
    torch.manual_seed(0)
    model = factory().eval()
    shapes = None
    if dynamic:
        spec = _batched(spec, 2)
        batch = Dim("batch", min=1, max=64)
        shapes = _batch_dims(spec, batch)
        shapes = (shapes,) if isinstance(spec, tuple) else shapes
    args, kwargs = make_inputs(spec)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = export(model, args, kwargs, dynamic_shapes=shapes)
    return model, program, _batched(spec, 5) if dynamic else spec


def program_state(program: Any) -> dict[str, Any]:
    """What a trace must leave of an ExportedProgram: its tensors, graph and metadata."""
    return {
        "tensors": {k: (id(v), v.clone()) for k, v in {**program.state_dict, **program.constants}.items()},
        "graph": str(program.graph),
        "meta": sorted(program.graph_module.meta),
        "modules": [n for n, _ in program.graph_module.named_modules()],
    }


def assert_program_same(before: dict[str, Any], program: Any) -> None:
    after = program_state(program)
    assert after["graph"] == before["graph"] and after["meta"] == before["meta"]
    assert after["modules"] == before["modules"]
    assert after["tensors"].keys() == before["tensors"].keys()
    for key, (identity, value) in before["tensors"].items():
        assert after["tensors"][key][0] == identity and torch.equal(after["tensors"][key][1], value), key


@pytest.mark.parametrize("device", ["auto", "meta", "cpu"])
@pytest.mark.parametrize("dynamic", [False, True], ids=["static", "dynamic"])
@pytest.mark.parametrize("name", EXACT)
def test_an_exported_program_traces_as_the_eager_model(name: str, dynamic: bool, device: str) -> None:
    model, program, spec = exported(name, dynamic)
    expected_rows, expected_out = observe(model, spec)
    counts = {n: sum(p.numel() for p in m.parameters()) for n, m in model.named_modules()}
    before = program_state(program)
    rng = torch.get_rng_state()

    tr = trace(program, spec, device=device)

    assert rows(tr) == expected_rows
    assert tr.output_shape == expected_out
    assert {r.name: r.num_params for r in tr.layers} == {r[0]: counts[r[0]] for r in expected_rows}
    assert tr.total_params == counts[""]
    assert tr.model_type == type(model).__name__
    if device != "auto":
        assert tr.device == device
    assert tr.wrapper is not None and tr.wrapper.startswith("torch.export program: traced its graph")
    assert ("dynamic: batch = " in tr.wrapper) == dynamic
    assert_program_same(before, program)
    assert torch.equal(torch.get_rng_state(), rng)


@pytest.mark.parametrize("dynamic", [False, True], ids=["static", "dynamic"])
@pytest.mark.parametrize("name", ["lenet_sequential", "resnet_bottlenecks", "two_positional_inputs"])
def test_its_module_traces_too_and_is_never_put_in_another_mode(name: str, dynamic: bool) -> None:
    model, program, spec = exported(name, dynamic)
    module = program.module()
    assert is_exported_module(module) and not is_exported_module(model) and is_exported_program(program)
    with pytest.raises(NotImplementedError):
        module.train()  # pytorch#151726: what a mode change on it does
    expected_rows, _ = observe(model, spec)
    before, code = snapshot(module), module.code
    for device in ("meta", "cpu"):
        for train in (False, True):
            tr = trace(module, spec, device=device, train=train)
            assert rows(tr) == expected_rows
            assert tr.wrapper is not None and tr.wrapper.startswith(
                "torch.export module (ExportedProgram.module())"
            )
    assert count_flops(module, spec).total_flops == reference_flops(model, spec)
    assert_same(before, module)
    assert module.code == code


@pytest.mark.parametrize("name", EXACT)
def test_flops_memory_and_params_of_a_program_are_the_eager_models(name: str) -> None:
    model, program, spec = exported(name, dynamic=False)
    before = program_state(program)
    assert count_flops(program, spec).total_flops == reference_flops(model, spec)
    memory = estimate_memory(program, spec, train=False)
    assert memory.model == type(model).__name__
    assert memory.param_bytes == sum(p.numel() * p.element_size() for p in model.parameters())
    eager = parameter_breakdown(model)
    ours = parameter_breakdown(program)
    assert (ours.total, ours.trainable) == (eager.total, eager.trainable)
    assert [(t.name, t.shape) for t in ours.parameters] == [(t.name, t.shape) for t in eager.parameters]
    assert [(t.name, t.shape) for t in ours.buffers] == [(t.name, t.shape) for t in eager.buffers]
    assert [(x.name, x.type) for x in ours.layers] == [(x.name, x.type) for x in eager.layers]
    assert_program_same(before, program)


def test_what_reads_layer_classes_says_it_cannot_on_a_program() -> None:
    model, program, spec = exported("regularized", dynamic=False)
    findings = lint(program, spec)
    assert not findings and {"bias-before-batchnorm", "dropout-probability"} <= set(findings.skipped)
    assert "graph ops" in findings.skipped["bias-before-batchnorm"]
    assert "batch-dimension-changed" not in findings.skipped  # shapes only: it runs
    assert lint(model, spec)  # the eager model has findings the program cannot show
    report = regularization(program)
    assert report.hidden is not None and "not visible" in report.line()
    assert regularization(model).hidden is None


class Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(8, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.bn(self.conv(x))) + x


class CNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.block = Block()
        self.drop = nn.Dropout(0.5)
        self.skip = nn.Identity()
        self.fc = nn.Linear(8 * 16 * 16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.skip(self.block(self.stem(x)))
        x = nn.functional.max_pool2d(self.drop(x), 2)
        return self.fc(torch.flatten(x, 1))


def test_dynamic_dims_are_named_and_inputs_outside_the_program_are_refused_in_one_line() -> None:
    model = CNN().eval()
    x = torch.randn(2, 3, 32, 32)
    named = export(model, (x,), dynamic_shapes=({0: Dim("batch", min=1, max=64)},))
    tr = trace(named, (5, 3, 32, 32))
    assert "dynamic: batch = x dim 0 (1..64)" in tr.wrapper
    assert f"Note: {tr.wrapper}" in tr.table()
    assert "skip" not in {r.name for r in tr.layers}  # no op in the graph: no row, as the note says
    assert "modules that left no op in the graph (nn.Identity)" in tr.wrapper
    unnamed = export(model, (x,), dynamic_shapes=({0: Dim.AUTO},))
    assert re.search(r"dynamic: s\d+ = x dim 0", trace(unnamed, (7, 3, 32, 32)).wrapper)
    static = export(model, (x,))
    assert "exported with static shapes" in trace(static, (2, 3, 32, 32)).wrapper
    with pytest.raises(TraceError) as info:
        trace(static, (4, 3, 32, 32))
    assert str(info.value).startswith("CNN (torch.export program) cannot take these inputs: Expected input")
    assert "It was exported for x [2, 3, 32, 32], every size fixed" in str(info.value)
    with pytest.raises(
        TraceError, match=r"exported for x \[batch, 3, 32, 32\] with batch = x dim 0 \(1\.\.64\)"
    ):
        trace(named, (65, 3, 32, 32))
    with pytest.raises(TraceError, match=r"these inputs have another structure"):
        trace(named, [(2, 3, 32, 32), (2, 3, 32, 32)])


def test_a_program_exported_in_training_mode_runs_as_exported_and_changes_nothing() -> None:
    model = CNN().train()
    program = export(model, (torch.randn(2, 3, 32, 32),))
    before, eager = program_state(program), snapshot(model)
    for device in ("cpu", "meta"):
        tr = trace(program, (2, 3, 32, 32), device=device)  # BatchNorm writes running stats on CPU
        assert tr.output_shape == (2, 10)
    assert_program_same(before, program)
    assert_same(eager, model)  # the program shares the eager model's tensors


class Holder(nn.Module):
    """An eager model that holds an exported module (its train() raises) among its layers."""

    def __init__(self) -> None:
        super().__init__()
        self.pre = nn.Conv2d(3, 3, 1)
        self.exported = export(CNN().eval(), (torch.randn(2, 3, 32, 32),)).module()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.exported(self.pre(x))


def test_a_module_that_refuses_a_mode_change_is_never_asked_for_one() -> None:
    model = Holder()
    before = snapshot(model)
    for train in (False, True):
        tr = trace(model, (2, 3, 32, 32), train=train)
        assert [r.name for r in tr.layers] == ["", "pre", "exported"] and tr.output_shape == (2, 10)
    assert_same(before, model)


def test_the_rebuilt_hierarchy_holds_the_programs_own_tensors_as_they_are_now() -> None:
    program = export(CNN().eval(), (torch.randn(2, 3, 32, 32),))
    module, _ = unflattened(program)
    assert module.get_submodule("fc").weight is program.state_dict["fc.weight"]  # no copy
    assert unflattened(program)[0] is module  # built once per program
    replaced = nn.Parameter(torch.zeros(10, 8 * 16 * 16))
    program.state_dict["fc.weight"] = replaced
    assert unflattened(program)[0].get_submodule("fc").weight is replaced
