"""Every record of a trace equals what a plain forward shows, on meta and on CPU."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from pytest_cnnshape import LayerRecord, ShapeTrace, trace
from tests.corpus.zoo import ZOO
from tests.helpers import fresh_copy, make_inputs, observe


def rows(tr: ShapeTrace) -> list[tuple[object, ...]]:
    return [(r.name, r.type, r.depth, r.call, r.input_shapes, r.output_shape) for r in tr.layers]


@pytest.mark.parametrize("device", ["meta", "cpu"])
@pytest.mark.parametrize("name", sorted(ZOO))
def test_records_match_a_plain_forward(name: str, device: str) -> None:
    factory, inputs = ZOO[name]
    torch.manual_seed(0)
    model = factory()
    expected_rows, expected_out = observe(model, inputs)
    tr = trace(model, inputs, device=device)
    assert tr.device == device
    assert rows(tr) == expected_rows
    assert tr.output_shape == expected_out
    assert all(r.finished for r in tr.layers)
    assert tr.layers[0].name == "" and tr.layers[0].depth == 0


@pytest.mark.parametrize("name", sorted(ZOO))
def test_parameter_counts_are_unique_tensor_sums(name: str) -> None:
    """Against a copy that ran a plain forward: for a lazy model, what its layers then hold."""
    factory, inputs = ZOO[name]
    model = factory()
    tr = trace(model, inputs)
    counted = fresh_copy(model).eval()
    args, kwargs = make_inputs(inputs)
    with torch.no_grad():
        counted(*args, **kwargs)
    unique = list(counted.parameters())  # each tensor once, tied ones too
    assert tr.total_params == sum(p.numel() for p in unique)
    assert unique or name == "parameter_free"
    assert tr.trainable_params == sum(p.numel() for p in unique if p.requires_grad)
    modules = dict(counted.named_modules())
    for record in tr.layers:
        own = list(modules[record.name].parameters())
        assert record.num_params == sum(p.numel() for p in own), record.name


def test_reused_module_gets_call_indices() -> None:
    factory, inputs = ZOO["reused_modules"]
    tr = trace(factory(), inputs)
    assert [r.call for r in tr.calls("conv")] == [0, 1, 2]
    assert [r.call for r in tr.calls("act")] == [0, 1, 2]
    assert tr["act"].call == 0
    assert "(call 2)" in tr.table() and "(reused)" in tr.table()


def test_shared_module_has_one_name_and_its_aliases() -> None:
    factory, inputs = ZOO["shared_module"]
    tr = trace(factory(), inputs)
    encoder_calls = tr.calls("encoder")
    assert len(encoder_calls) == 2
    assert encoder_calls[0].aliases == ("again",)
    assert tr.calls("again") == encoder_calls


def test_tied_weights_counted_once() -> None:
    factory, inputs = ZOO["tied_weights"]
    model = factory()
    tr = trace(model, inputs)
    # encoder 64*16, decoder 16*64 (shared with out), out bias 64
    assert tr.total_params == 64 * 16 + 16 * 64 + 64
    assert tr["out"].num_params == 16 * 64 + 64


def test_lazy_module_is_traced_without_initialising_the_users_model() -> None:
    factory, inputs = ZOO["lazy_linear"]
    model = factory()
    for device in ("meta", "cpu", "auto"):
        tr = trace(model, inputs, device=device)
        assert tr["head"].input_shapes == ((1, 8 * 7 * 7),)
        assert tr["head"].num_params == 8 * 7 * 7 * 10 + 10
        assert tr.total_params == 8 * 3 * 3 * 3 + 8 + 8 * 7 * 7 * 10 + 10
    assert isinstance(model.head.weight, nn.parameter.UninitializedParameter)


def test_keyword_inputs_and_keyword_calls_are_recorded() -> None:
    factory, inputs = ZOO["keyword_inputs"]
    tr = trace(factory(), inputs)
    assert tr.layers[0].input_kwargs == {"x": (1, 3, 8, 8), "mask": (1, 3, 8, 8)}
    assert tr["block"].input_shapes == ((1, 3, 8, 8),)
    assert tr["block"].input_kwargs == {"scale": (1, 3, 8, 8)}
    assert "scale=[1, 3, 8, 8]" in tr.table()


def test_structured_outputs_keep_their_structure() -> None:
    factory, inputs = ZOO["namedtuple_and_nontensor_output"]
    tr = trace(factory(), inputs)
    pair, info, number = tr.output_shape
    assert pair.logits == (2, 3)
    assert pair.features == ((2, 4, 10, 10), None)
    assert info is None and number is None
    as_json = tr.to_dict()["output_shape"]
    assert as_json == [{"logits": [2, 3], "features": [[2, 4, 10, 10], None]}, None, None]


def test_dynamic_forward_takes_the_path_of_the_input_size() -> None:
    factory, _ = ZOO["dynamic_loop"]
    model = factory()
    small = trace(model, (1, 3, 16, 16))
    large = trace(model, (1, 3, 128, 128))
    assert len(small.calls("stage2")) == 0
    assert len(large.calls("stage2")) == 3
    assert large.output_shape == (1, 4, 8, 8)


def test_depth_is_the_call_nesting() -> None:
    factory, inputs = ZOO["deep_nesting"]
    tr = trace(factory(), inputs)
    assert max(r.depth for r in tr.layers) == 6
    folded = tr.table(max_depth=1)
    assert folded.count("\n") < tr.table().count("\n")


def test_record_and_trace_round_trip_through_json() -> None:
    import json

    factory, inputs = ZOO["namedtuple_and_nontensor_output"]
    tr = trace(factory(), inputs)
    data = json.loads(json.dumps(tr.to_dict()))
    again = ShapeTrace.from_dict(data)
    assert again.to_dict() == tr.to_dict()
    assert isinstance(again.layers[0], LayerRecord)


def test_table_shows_totals_device_and_modes() -> None:
    factory, inputs = ZOO["lenet_sequential"]
    tr = trace(factory(), inputs, device="meta")
    text = str(tr)
    assert text == tr.table()
    assert "Total params: 34,622" in text
    assert "traced on meta (float32, eval mode)" in text
    assert "[2, 1, 28, 28]" in text and "[2, 10]" in text
