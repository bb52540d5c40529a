"""The picture's data: the data flow of real models as references, facts, marks; and the file."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import torch
from hypothesis import given, settings
from torch import nn

from pytest_cnnshape import ShapeMismatchError, trace
from pytest_cnnshape.arith import receptive_field_of
from pytest_cnnshape.inspection.settings import module_settings
from pytest_cnnshape.picture.document import render
from pytest_cnnshape.picture.flow import ModelPicture, picture_data
from pytest_cnnshape.strategies import cnn_stacks
from pytest_cnnshape.tracing.records import ShapeTrace
from tests.corpus.broken_zoo import FlattenThenFc
from tests.corpus.zoo import InPlace, Reused, TinyUNet, small_resnet
from tests.helpers import examples


def data_of(
    model: nn.Module, inputs: Any, *, flow: bool = True, depth: int = 2, **extra: Any
) -> dict[str, Any]:
    traced = trace(model, inputs, flow=flow)
    return picture_data(ModelPicture(type(model).__name__, traced.to_dict(), **extra), depth)


def index_of(data: dict[str, Any], name: str, call: int = 0) -> int:
    return next(i for i, c in enumerate(data["calls"]) if c["n"] == name and c["c"] == call)


def test_a_unet_skip_is_a_cat_junction_of_the_decoder_and_the_encoder() -> None:
    data = data_of(TinyUNet(), (1, 1, 16, 16))
    fuse = data["calls"][index_of(data, "fuse")]
    (source,) = fuse["src"]
    junction = data["junctions"][source["j"]]
    assert junction["op"] == "cat"
    assert [p["c"] for p in junction["src"]] == [index_of(data, "up"), index_of(data, "down1")]
    assert junction["src"][1]["ops"] == ["relu"]  # F.relu between down1 and the skip


def test_a_residual_add_joins_the_branch_and_the_shortcut_and_containers_say_what_they_return() -> None:
    data = data_of(small_resnet(), (1, 3, 32, 32))
    block = index_of(data, "4")  # the stride-2 Bottleneck with a projection shortcut
    relu = next(
        i for i, c in enumerate(data["calls"]) if c["p"] == block and c["t"] == "ReLU" and c["c"] == 2
    )
    (source,) = data["calls"][relu]["src"]
    add = data["junctions"][source["j"]]
    assert add["op"] == "add"
    assert sorted(data["calls"][p["c"]]["n"] for p in add["src"]) == ["4.bn3", "4.downsample"]
    # the block returns its last ReLU's output; the next call is fed by the block
    assert data["calls"][block]["ret"] == {"c": relu}
    assert data["calls"][index_of(data, "5")]["src"] == [{"c": block}]


def test_an_in_place_add_on_the_input_and_a_reused_module() -> None:
    data = data_of(InPlace(), (1, 4, 8, 8))
    act = data["calls"][index_of(data, "act", 1)]
    add = data["junctions"][act["src"][0]["j"]]
    assert {"i": 0} in add["src"]
    reused = data_of(Reused(), (1, 4, 8, 8))
    conv = [c for c in reused["calls"] if c["n"] == "conv"]
    assert [c["c"] for c in conv] == [0, 1, 2] and all(c["k"] == 3 for c in conv)
    assert conv[1]["src"] == [{"c": index_of(reused, "act", 0)}]


def test_without_the_data_flow_the_picture_says_so_and_the_json_keeps_its_keys() -> None:
    traced = trace(small_resnet(), (1, 3, 32, 32))
    assert not any("sources" in r or "returns" in r for r in traced.to_dict()["layers"])
    data = picture_data(ModelPicture("net", traced.to_dict()), 2)
    assert data["flow"] is False and "src" not in data["calls"][1]
    assert "did not record the data flow" in traced.to_html()
    assert "Edges follow the tensors" in trace(small_resnet(), (1, 3, 32, 32), flow=True).to_html()


def test_the_data_flow_survives_to_dict_and_from_dict() -> None:
    traced = trace(TinyUNet(), (1, 1, 16, 16), flow=True)
    again = ShapeTrace.from_dict(json.loads(json.dumps(traced.to_dict())))
    assert again.to_dict() == traced.to_dict()
    assert [r.sources for r in again] == [r.sources for r in traced]


@pytest.mark.parametrize("device", ["meta", "cpu"])
def test_a_failed_trace_marks_the_innermost_failing_call(device: str) -> None:
    model = FlattenThenFc()
    with pytest.raises(ShapeMismatchError) as info:
        trace(model, (1, 1, 28, 28), device=device, flow=True)
    data = picture_data(ModelPicture("broken", info.value.trace.to_dict(), failure="fc failed"), 2)
    failing = data["calls"][data["fail"]]
    assert failing["ok"] is False and failing["leaf"]
    assert failing["n"] == info.value.layer
    assert data["complete"] is False and failing["src"]  # it still knows what it received


@settings(max_examples=examples(25))
@given(cnn_stacks(head=False))
def test_receptive_fields_along_the_flow_equal_arith_on_the_chain(stack: Any) -> None:
    model = stack.model
    data = picture_data(
        ModelPicture(
            "stack", trace(model, stack.input_shape, flow=True).to_dict(), modules=module_settings(model)
        ),
        2,
    )
    expected = receptive_field_of(list(model))
    last = data["calls"][-1]
    facts = dict(last.get("x", []))
    if expected.size > 1:
        assert facts["Receptive field"] == f"{expected.size} px (outputs {expected.jump} px apart)"
    else:
        assert "Receptive field" not in facts


def test_facts_from_inspection_and_more_facts_per_layer_are_listed() -> None:
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.Dropout2d(0.25), nn.ReLU())
    inspection = {
        "flops": {"layers": [{"name": "0", "macs": 1234, "calls": 1}]},
        "regularization": {
            "dropouts": [{"name": "2", "p": 0.25, "active": False, "training": False}],
            "norms": [{"name": "1", "statistics": "running", "settings": {"eps": 1e-5}}],
        },
        "lint": {"findings": [{"rule": "bias-before-batchnorm", "layer": "0", "message": "m.", "fix": "f"}]},
    }
    data = data_of(
        model,
        (1, 3, 8, 8),
        modules=module_settings(model),
        inspection=inspection,
        facts={"3": [("Memory", "2.0 KiB")]},
    )
    facts = {c["n"]: dict(c.get("x", [])) for c in data["calls"]}
    assert facts["0"]["Settings"].startswith("3, 8, kernel_size=(3, 3)")
    assert facts["0"]["MACs"] == "1,234" and "bias-before-batchnorm" in facts["0"]["Lint"]
    assert facts["1"]["Normalization"] == "running statistics; eps=1e-05"
    assert facts["2"]["Dropout"] == "p=0.25, inactive (eval)"
    assert facts["3"] == {"Receptive field": "3 px (outputs 1 px apart)", "Memory": "2.0 KiB"}


def test_baseline_marks_map_changed_added_and_removed_rows_to_calls() -> None:
    data = data_of(
        nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten()),
        (1, 1, 8, 8),
        baseline={
            "file": "b.json",
            "headline": "changed",
            "changes": [
                {
                    "mark": "~",
                    "old": {"name": "0", "type": "Conv2d", "call": 0, "output": [1, 2, 6, 6], "params": 20},
                    "new": {"name": "0", "type": "Conv2d", "call": 0, "output": [1, 4, 6, 6], "params": 40},
                },
                {
                    "mark": "+",
                    "old": None,
                    "new": {"name": "2", "type": "Flatten", "call": 0, "output": [1, 144], "params": 0},
                },
                {
                    "mark": "-",
                    "old": {"name": "3", "type": "Linear", "call": 0, "output": [1, 10], "params": 730},
                    "new": None,
                    "after": ["2", 0],
                },
            ],
        },
    )
    assert data["marks"] == {"1": "changed", "3": "added"}
    assert data["old"]["1"]["out"] == [1, 2, 6, 6]
    assert data["removed"] == {"3": ["3 (Linear, 1x10)"]}


def test_the_document_is_self_contained_and_deterministic() -> None:
    traced = trace(small_resnet(), (1, 3, 32, 32), flow=True)
    page = traced.to_html()
    assert page == traced.to_html()
    assert "Content-Security-Policy" in page and "default-src 'none'" in page
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)  # nothing to fetch
    assert "http://" not in page.replace("http://www.w3.org/2000/svg", "")
    assert "https://" not in page
    # the data cannot close its script element early, whatever the names hold
    named = render([ModelPicture("</script><b>x", traced.to_dict())], depth=2)
    assert named.count("</script>") == 2 and "&lt;/script&gt;&lt;b&gt;x" in named


def test_save_html_and_the_notebook_frame(tmp_path: Any) -> None:
    traced = trace(TinyUNet(), (1, 1, 16, 16), flow=True)
    path = traced.save_html(tmp_path / "unet.html", depth=1)
    assert path.read_text() == traced.to_html(depth=1)
    frame = traced._repr_html_()
    assert frame.startswith("<iframe srcdoc=") and "sandbox=" in frame and "<script" not in frame


def test_a_model_with_two_inputs_and_a_tensor_made_in_forward() -> None:
    class Mixed(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = nn.Conv2d(3, 4, 1), nn.Conv2d(1, 4, 1)

        def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            return self.a(x) * self.b(y) + self.a(torch.ones_like(x))

    data = data_of(Mixed(), [(1, 3, 4, 4), (1, 1, 4, 4)])
    assert len(data["inputs"]) == 2
    assert data["calls"][index_of(data, "b")]["src"] == [{"i": 1}]
    # ones_like(x) is made from x, so its origin is the input through that op
    assert data["calls"][index_of(data, "a", 1)]["src"] == [{"i": 0, "ops": ["ones_like"]}]
