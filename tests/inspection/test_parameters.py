"""parameter_breakdown(): per tensor and per layer, shared tensors once; checked against
the model itself and torchinfo."""

from __future__ import annotations

import pytest
import torch
import torchinfo
from hypothesis import given, settings
from torch import nn

from pytest_cnnshape import ParameterBreakdown, parameter_breakdown, trace
from pytest_cnnshape.strategies import cnn_stacks
from tests.corpus.zoo import ZOO, Shared, Tied, regularized, small_resnet
from tests.helpers import assert_same, examples, snapshot

TIED = {"tied_weights"}
#: torchinfo's input_size takes positional tensors only; these take keywords or a list.
NOT_FOR_TORCHINFO = {"keyword_inputs", "list_input", "lazy_linear"}


def unique_numel(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())  # parameters() de-duplicates


def test_every_tensor_is_described_as_the_model_holds_it() -> None:
    model = regularized()
    model[0].weight.requires_grad_(False)
    model.half()
    breakdown = parameter_breakdown(model)
    assert [t.name for t in breakdown.parameters] == [n for n, _ in model.named_parameters()]
    assert [t.name for t in breakdown.buffers] == [n for n, _ in model.named_buffers()]
    for info, (name, param) in zip(breakdown.parameters, model.named_parameters(), strict=True):
        assert info.name == name and info.shape == tuple(param.shape)
        assert info.numel == param.numel() and info.trainable == param.requires_grad
        assert info.dtype == "float16" and info.bytes == param.numel() * 2
    assert breakdown["1.num_batches_tracked"].dtype == "int64"
    assert breakdown.frozen == model[0].weight.numel()
    assert breakdown.trainable == unique_numel(model) - breakdown.frozen


def test_totals() -> None:
    model = small_resnet()
    b = parameter_breakdown(model)
    assert b.total == unique_numel(model) == trace(model, (1, 3, 32, 32)).total_params
    assert b.buffer_elements == sum(t.numel() for t in model.buffers())
    assert b.parameter_bytes == 4 * b.total
    assert b.totals() == {
        "total": b.total,
        "trainable": b.trainable,
        "frozen": 0,
        "buffers": b.buffer_elements,
        "parameter_bytes": 4 * b.total,
        "buffer_bytes": b.buffer_bytes,
    }


@pytest.mark.parametrize("name", sorted(set(ZOO) - TIED - NOT_FOR_TORCHINFO))
def test_totals_equal_torchinfo_where_no_weight_is_tied(name: str) -> None:
    factory, inputs = ZOO[name]
    model = factory()
    shapes = [inputs] if isinstance(inputs, tuple) else inputs
    info = torchinfo.summary(model, input_size=shapes, verbose=0, device="cpu")
    b = parameter_breakdown(model)
    assert (b.total, b.trainable) == (info.total_params, info.trainable_params)


def test_a_tied_weight_is_counted_once_and_listed_with_both_names() -> None:
    model = Tied()
    b = parameter_breakdown(model)
    assert b.total == unique_numel(model) == 16 * 64 + 64 * 16 + 64
    (shared,) = b.shared
    assert (shared.name, shared.aliases, shared.numel) == ("decoder.weight", ("out.weight",), 1024)
    out_layer = next(layer for layer in b.layers if layer.name == "out")
    assert out_layer.params == 64 and out_layer.shared == ("decoder.weight",)
    assert sum(layer.params for layer in b.layers) == b.total
    # torchinfo 1.8 counts the tied tensor once per module holding it (documented).
    info = torchinfo.summary(model, input_size=(4, 64), verbose=0, device="cpu")
    assert info.total_params == b.total + shared.numel


def test_a_module_under_two_names_is_one_layer() -> None:
    b = parameter_breakdown(Shared())
    assert [layer.name for layer in b.layers] == ["encoder", "head"]
    assert b["again.weight"] is b["encoder.weight"]
    assert b["encoder.bias"].aliases == ("again.bias",)


def test_lazy_and_meta_models_need_no_weights() -> None:
    lazy = ZOO["lazy_linear"][0]()
    b = parameter_breakdown(lazy)
    assert not b["head.weight"].materialized and b["head.weight"].numel == 0
    with torch.device("meta"):
        meta = small_resnet()
    assert parameter_breakdown(meta).totals() == parameter_breakdown(small_resnet()).totals()


def test_table_and_json_form() -> None:
    b = parameter_breakdown(Tied())
    text = b.table()
    assert "decoder.weight" in text and "out.weight" in text and "Params 2,112" in text
    data = b.to_dict()
    assert data["totals"]["total"] == 2112 and data["parameters"][1]["aliases"] == ["out.weight"]
    import json

    assert json.loads(json.dumps(data)) == data


def test_not_a_module() -> None:
    with pytest.raises(TypeError, match=r"model must be a torch\.nn\.Module instance, got int"):
        parameter_breakdown(3)  # type: ignore[arg-type]


@settings(max_examples=examples(30))
@given(stack=cnn_stacks(2, groups=True, transposed=True, branches=True))
def test_layers_add_up_to_the_unique_total_and_nothing_changes(stack: object) -> None:
    model: nn.Module = stack.model  # type: ignore[attr-defined]
    before = snapshot(model)
    b: ParameterBreakdown = parameter_breakdown(model)
    assert_same(before, model)
    assert sum(layer.params for layer in b.layers) == b.total == unique_numel(model)
    assert sum(layer.buffers for layer in b.layers) == b.buffer_elements
    assert sum(layer.bytes for layer in b.layers) == b.parameter_bytes + b.buffer_bytes
