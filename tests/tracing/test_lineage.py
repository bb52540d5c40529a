"""Lineage: where each call's input came from, by tensor identity through forward code."""

from __future__ import annotations

import pytest
import torch

from pytest_cnnshape.diagnostics.explain import watched
from pytest_cnnshape.tracing.lineage import INPUT, LAYER, OP, Lineage, Origin
from pytest_cnnshape.tracing.request import TraceRequest
from tests.corpus.zoo import Functional, InPlace, Reused, TinyUNet, small_resnet


def sources(model: torch.nn.Module, inputs: object, device: str) -> tuple[dict[str, list], Lineage]:
    lineage = Lineage()
    trace = watched(TraceRequest.of(model, inputs, device=device), (lineage,))
    by_call = {r.label: list(lineage.sources[i]) for i, r in enumerate(trace.layers)}
    return by_call, lineage


@pytest.mark.parametrize("device", ["meta", "cpu"])
def test_forward_code_between_layers_keeps_the_origin_and_names_the_ops(device: str) -> None:
    found, _ = sources(Functional(), (2, 3, 32, 32), device)
    assert found["(root)"] == [Origin(INPUT, 0)]
    assert found["conv1"] == [Origin(INPUT, 0)]
    # F.relu and F.max_pool2d sit between conv1 (call 1) and conv2
    assert found["conv2"] == [Origin(LAYER, 1, ops=("relu", "max_pool2d"))]
    fc = found["fc"][0]
    assert fc.kind == LAYER and fc.index == 2 and fc.ops == ("relu", "flatten", "view")
    assert fc.reshaped
    assert not found["conv2"][0].reshaped


@pytest.mark.parametrize("device", ["meta", "cpu"])
def test_a_unet_skip_is_a_cat_of_the_decoder_and_the_encoder(device: str) -> None:
    found, _ = sources(TinyUNet(), (1, 1, 16, 16), device)
    joined = found["fuse"][0]
    assert joined.kind == OP and joined.name == "cat"
    labels = [r for r in joined.layers()]
    assert labels == [4, 1]  # up (call 4), then down1 (call 1) through its relu


@pytest.mark.parametrize("device", ["meta", "cpu"])
def test_an_in_place_residual_add_joins_the_branch_and_the_shortcut(device: str) -> None:
    found, _ = sources(InPlace(), (1, 4, 8, 8), device)
    last = found["act (call 2)"][0]
    assert last.kind == OP and last.name == "add"
    assert sorted(p.kind for p in last.parents) == [INPUT, LAYER]


def test_a_reused_module_is_fed_by_its_own_previous_call() -> None:
    found, _ = sources(Reused(), (1, 4, 8, 8), "meta")
    assert found["conv (call 2)"] == [Origin(LAYER, 2)]  # act's first call
    assert found["act (call 3)"] == [Origin(LAYER, 5)]  # conv's third call


def test_residual_blocks_show_both_paths_and_tensors_are_not_kept_alive() -> None:
    import gc
    import weakref

    model = small_resnet()
    lineage = Lineage()
    trace = watched(TraceRequest.of(model, (1, 3, 16, 16), device="cpu"), (lineage,))
    joins = [o for s in lineage.sources.values() for o in s if o is not None and o.kind == OP]
    assert joins, "the bottleneck's residual add reaches the next block"
    gc.collect()
    alive = [ref for ref, _ in lineage._known.values() if ref() is not None]
    assert alive == []  # weak references only: a real forward frees its activations
    assert trace.output_shape == (1, 10)
    assert isinstance(weakref.ref(torch.empty(1)), weakref.ref)


def test_json_form() -> None:
    origin = Origin(OP, name="cat", parents=(Origin(LAYER, 3), Origin(INPUT, 0, ops=("relu",))))
    assert origin.to_dict() == {
        "kind": "op",
        "name": "cat",
        "parents": [{"kind": "layer", "index": 3}, {"kind": "input", "index": 0, "ops": ["relu"]}],
    }
