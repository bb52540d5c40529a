"""count_flops(): torch's FlopCounterMode on a meta trace, per layer; the published
ResNet-50 figure; the model untouched."""

from __future__ import annotations

import json

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from benchmarks.models import resnet50
from pytest_cnnshape import FlopReport, ShapeMismatchError, count_flops
from pytest_cnnshape.strategies import cnn_stacks
from tests.corpus.inspection_zoo import fixed_size_classifier
from tests.corpus.zoo import ZOO, lenet
from tests.helpers import assert_same, examples, make_inputs, snapshot


def real_forward_flops(model: nn.Module, inputs: object) -> int:
    """FlopCounterMode around a plain CPU forward: the independent reference."""
    args, kwargs = make_inputs(inputs)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model.eval()(*args, **kwargs)
    return int(counter.get_total_flops())


def test_resnet50_at_224_has_the_published_4_1_gmacs() -> None:
    report = count_flops(resnet50(), (1, 3, 224, 224))
    assert report.device == "meta"
    assert report.total_macs == report.total_flops // 2
    assert abs(report.total_macs / 1e9 - 4.1) < 0.05  # 4,089,184,256 MACs
    stages = ("conv1", "layer1", "layer2", "layer3", "layer4", "fc")
    assert sum(report.by_layer[name].flops for name in stages) == report.total_flops
    assert report.by_layer["fc"].macs == 2048 * 1000
    assert report.by_layer["layer1.0.conv2"].macs == 64 * 64 * 9 * 56 * 56


@pytest.mark.parametrize("name", sorted(ZOO))
@pytest.mark.parametrize("device", ["meta", "cpu"])
def test_totals_equal_flop_counter_mode_on_a_real_forward(name: str, device: str) -> None:
    factory, inputs = ZOO[name]
    expected = real_forward_flops(factory(), inputs)
    assert count_flops(factory(), inputs, device=device).total_flops == expected


def test_per_layer_counts_follow_the_call_tree() -> None:
    report = count_flops(lenet(), (2, 1, 28, 28))
    leaves = [layer for layer in report.by_layer.values() if layer.is_leaf]
    assert sum(layer.flops for layer in leaves) == report.total_flops
    conv = report.by_layer["0"]
    assert conv.macs == 2 * 6 * 1 * 5 * 5 * 24 * 24 and conv.calls == 1
    assert report.by_layer[""].flops == report.total_flops and report.input == "2x1x28x28"


def test_a_module_called_three_times_adds_up() -> None:
    factory, inputs = ZOO["reused_modules"]
    report = count_flops(factory(), inputs)
    conv = report.by_layer["conv"]
    assert conv.calls == 3 and conv.flops == report.total_flops


def test_table_and_json() -> None:
    report: FlopReport = count_flops(lenet(), (1, 1, 28, 28))
    text = report.table()
    assert "MACs 271.9 K (271,920) · FLOPs 543.8 K" in text and "  0      Conv2d" in text
    data = report.to_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["total_macs"] == 271_920 and all(layer["flops"] for layer in data["layers"])


@pytest.mark.parametrize("train", [False, True])
def test_counting_leaves_the_model_as_it_was(train: bool) -> None:
    model = ZOO["regularized"][0]().train(train)
    before, rng = snapshot(model), torch.get_rng_state()
    count_flops(model, (2, 3, 30, 30), device="cpu")
    count_flops(model, (2, 3, 30, 30), device="meta")
    assert_same(before, model)
    assert torch.equal(rng, torch.get_rng_state())


def test_a_broken_model_is_diagnosed() -> None:
    with pytest.raises(ShapeMismatchError) as info:
        count_flops(fixed_size_classifier(), (1, 1, 32, 32))
    assert info.value.layer == "4"


@settings(max_examples=examples(20))
@given(
    stack=cnn_stacks(2, groups=True, transposed=True, branches=True), device=st.sampled_from(["meta", "cpu"])
)
def test_random_stacks_match_flop_counter_mode(stack: object, device: str) -> None:
    model = stack.model  # type: ignore[attr-defined]
    shape = stack.input_shape  # type: ignore[attr-defined]
    assert count_flops(model, shape, device=device).total_flops == real_forward_flops(model, shape)
