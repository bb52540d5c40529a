"""Fixes that generalize: each cause the search was built for, on a model re-created from a
public report (``tests/corpus/generalize_zoo.py``): the exact fix shown, and the model with
that fix applied run by plain torch to the output the diagnosis promised."""

from __future__ import annotations

import functools
import inspect
from typing import Any

import pytest
import torch
from torch import nn

from pytest_cnnshape import ShapeMismatchError, TraceError, trace
from pytest_cnnshape.diagnostics.patches import Patch, ReplaceLayer, apply
from pytest_cnnshape.shapes.tree import format_shape
from pytest_cnnshape.tracing.inputs import materialize
from tests.corpus import generalize_zoo as zoo
from tests.corpus.broken_zoo import Broken
from tests.corpus.field_zoo import FIELD
from tests.corpus.generalize_zoo import GENERALIZE
from tests.truth import shape_of

CASES: dict[str, Broken] = {**GENERALIZE, "pytorch_580_unpool_chain": FIELD["pytorch_580_unpool_chain"]}

#: The fix line each case shows, word for word (what the user copies).
EXACT = {
    # 1. the producer gives what the consumer expects (not the norm resized, failing further on)
    "dcgan_conv_gives_the_norm_too_many": (
        "main.2: nn.Conv2d(in_channels=64, out_channels=128, kernel_size=4, stride=2, padding=1)"
    ),
    # 2. several sites: said once at the class; a chunk's root cause, both sites of it
    # ... and of the layers whose outputs were concatenated, the one the siblings say is odd
    "dense_layer_given_the_filter_count": (
        "layers.2.conv2: nn.Conv2d(in_channels=32, out_channels=8, kernel_size=3, padding=1, bias=False)"
    ),
    # ... the producer inside a block of an operand the line does not name (the op's tensors)
    "tokens_wider_than_the_class_token": (
        "patch.proj: nn.Conv2d(in_channels=3, out_channels=32, kernel_size=4, stride=4)"
    ),
    "depthwise_position_conv_with_a_multiplier": (
        "proj: nn.Conv2d(in_channels=16, out_channels=16, kernel_size=3, padding=1, groups=16)"
    ),
    "mixed_conv_split_given_the_whole_width": (
        "0.convs.1: nn.Conv2d(in_channels=8, out_channels=16, kernel_size=5, padding=2)"
    ),
    "library_token_norm_built_for_another_width": (
        "0.proj: nn.Conv2d(in_channels=3, out_channels=40, kernel_size=8, stride=8)"
    ),
    "convnext_depthwise_doubled_before_its_norm": (
        "0: nn.Conv2d(in_channels=16, out_channels=16, kernel_size=7, padding=3, groups=16)"
    ),
    "convnext_mlp_in_features_on_channels_last": "nn.Linear(in_features=16, out_features=64)",
    "se_fc2_in_every_block": (
        "fc2 of every SqueezeExcite (3): nn.Conv2d(in_channels=8, out_channels=32, kernel_size=1)"
    ),
    "res2net_18_channels_in_4_scales": (
        "conv1: nn.Conv2d(in_channels=18, out_channels=16, kernel_size=1), and "
        "conv3: nn.Conv2d(in_channels=16, out_channels=18, kernel_size=1)"
    ),
    # 3. a library's residual block read like the user's
    "library_block_stride_changed_by_hand": (
        "layer2.0.downsample.0: nn.Conv2d(in_channels=8, out_channels=16, kernel_size=1, stride=1, "
        "bias=False)"
    ),
    # ... and the producer of what a library's channels-first LayerNorm refuses
    "convnext_stem_wider_than_its_norm": (
        "0: nn.Conv2d(in_channels=3, out_channels=96, kernel_size=4, stride=4)"
    ),
    # ... and the layer inside a block that made an operand (an MLP block before a layer scale)
    "layer_scale_after_an_mlp_block": "mlp.2: nn.Conv2d(in_channels=128, out_channels=32, kernel_size=1)",
    # 4. a library's own layer class rebuilt from its settings
    "library_conv_class_four_channels": (
        "Conv2dSame(in_channels=4, out_channels=16, kernel_size=3, stride=2, bias=False)"
    ),
    # 5. a depthwise conv keeps one group per channel and its multiplier (4)
    "depthwise_multiplier_for_other_channels": (
        "0: nn.Conv2d(in_channels=3, out_channels=12, kernel_size=3, padding=1, groups=3), and "
        "2: nn.Conv2d(in_channels=12, out_channels=16, kernel_size=1)"
    ),
    # 6. a library's assertion diagnosed like torch's own error
    "library_assertion_no_batch_axis": "x = x.unsqueeze(0)",
    "library_assertion_image_size": "an input of 1x3x32x32",
    "library_assertion_channels_last_batch": "x = x.permute(0, 3, 1, 2)",
    # 7. shapes in forward code
    "yolo_head_255_filters_for_12_classes": "conv: nn.Conv2d(in_channels=16, out_channels=51, kernel_size=1)",
    "cbam_max_without_keepdim": "mx, _ = torch.max(x, dim=1, keepdim=True)",
    "view_after_transpose": "return self.fc(t.reshape(t.size(0), -1))",
    "non_local_value_not_transposed": "y = torch.bmm(attn, v.transpose(-2, -1))",
    "pixel_unshuffle_odd_side": "an input of 1x3x64x64",
    "swin_windows_of_7_over_12": "an input of 1x3x56x56",
    "fold_built_for_another_size": "nn.Fold(output_size=64, kernel_size=4, stride=4)",
    "pytorch_580_unpool_chain": (
        "out, indices2 = self.pool(indices2_input := out), and "
        "out, indices3 = self.pool(indices3_input := out), and "
        "out = self.unpool(out, indices3, output_size=indices3_input.shape), and "
        "out = self.unpool(out, indices2, output_size=indices2_input.shape)"
    ),
    # 8. verified on the fx GraphModule itself
    "fx_graph_module_linear": "nn.Linear(in_features=2048, out_features=10)",
    # a feature extractor (an fx GraphModule returning a dict of stages), as torchvision builds one
    "fx_feature_extractor_grayscale": (
        "nn.Conv2d(in_channels=1, out_channels=16, kernel_size=3, stride=2, padding=1)"
    ),
    "fx_feature_extractor_planted_width": (
        "nn.Conv2d(in_channels=16, out_channels=32, kernel_size=3, stride=2, padding=1)"
    ),
    # 9. the norm moved to where it normalises (the GroupNorm comes as another norm, see below)
    "as_mlp_layer_norm_on_channels_first": (
        "y = self.norm(self.dw(x).permute(0, 2, 3, 1)).permute(0, 3, 1, 2)"
    ),
}


@functools.cache
def diagnosed(name: str) -> ShapeMismatchError:
    case = CASES[name]
    with pytest.raises(ShapeMismatchError) as info:
        trace(case.factory(), case.inputs, device="meta")
    return info.value


def _plain_forward(case: Broken, patch: Patch) -> Any:
    """The shapes of the fixed model's output, run by torch alone on real tensors (no hooks,
    no meta)."""
    model = case.factory()
    patched, spec = apply(model, case.inputs, patch, "cpu")
    args, kwargs = materialize(spec, torch.device("cpu"), torch.float32)
    with torch.no_grad():
        out = patched(*args, **kwargs)
    return shape_of(out)


def test_every_cause_has_cases_from_public_reports() -> None:
    assert set(EXACT) <= set(CASES)
    assert all(case.origin.startswith("https://") for case in CASES.values())
    assert len(GENERALIZE) >= 18


@pytest.mark.parametrize("name", sorted(EXACT))
def test_the_fix_reads_exactly(name: str) -> None:
    err = diagnosed(name)
    assert err.fix == EXACT[name]
    assert err.diagnosis.verified is not None
    assert err.diagnosis.verified.startswith("verified: the model then runs to ")


@pytest.mark.parametrize("name", sorted(EXACT))
def test_the_fix_applied_runs_in_plain_torch(name: str) -> None:
    case = CASES[name]
    err = diagnosed(name)
    shown = err.diagnosis.shown
    assert shown is not None
    shapes = _plain_forward(case, shown.patch)
    assert shown.verified == f"verified: the model then runs to {format_shape(shapes)}"
    with pytest.raises((RuntimeError, ValueError, AssertionError)):  # unfixed, plain torch refuses it
        case.factory()(torch.randn(case.inputs))


def test_the_producer_is_named_with_the_width_it_makes() -> None:
    err = diagnosed("dcgan_conv_gives_the_norm_too_many")
    assert "main.2 (Conv2d) makes the 256; main.3 expects 128 channels" in str(err)


def test_a_chunks_root_cause_is_named() -> None:
    text = str(diagnosed("res2net_18_channels_in_4_scales"))
    assert "conv1 (Conv2d) makes 18, which torch.chunk cuts into 4: 5, 5, 5, 3" in text
    assert "convs.0 expects 4 channels: 16 = 4 * 4" in text


def test_the_same_change_in_every_block_is_made_once_at_the_class() -> None:
    err = diagnosed("se_fc2_in_every_block")
    parts = list(err.diagnosis.shown.patch.parts())  # type: ignore[union-attr]
    assert [p.name for p in parts if isinstance(p, ReplaceLayer)] == ["1.se.fc2", "2.se.fc2", "3.se.fc2"]
    assert err.diagnosis.shown.patch.places() == {"SqueezeExcite.__init__"}  # type: ignore[union-attr]


def test_a_library_block_is_read_like_the_users_own() -> None:
    text = str(diagnosed("library_block_stride_changed_by_hand"))
    assert "operand  out  [1, 16, 32, 32]    from layer2.0.bn2 (BatchNorm2d)" in text
    assert "operand  identity  [1, 16, 16, 16]    from layer2.0.downsample (Sequential)" in text
    assert "in       minilib/blocks.py:37: out += identity" in text


def test_a_library_class_is_rebuilt_from_its_settings_not_from_text() -> None:
    err = diagnosed("library_conv_class_four_channels")
    patch = err.diagnosis.shown.patch  # type: ignore[union-attr]
    assert isinstance(patch, ReplaceLayer)
    built = patch.recipe.build(torch.device("cpu"))  # type: ignore[union-attr]
    assert type(built) is zoo.blocks.Conv2dSame
    assert (built.in_channels, built.out_channels, built.stride) == (4, 16, (2, 2))
    source = inspect.getsource(__import__("pytest_cnnshape.diagnostics.edits", fromlist=["x"]))
    assert "eval(" not in source


def test_a_depthwise_conv_keeps_its_multiplier() -> None:
    err = diagnosed("depthwise_multiplier_for_other_channels")
    first = next(p for p in err.diagnosis.shown.patch.parts() if p.name == "0")  # type: ignore[union-attr, attr-defined]
    conv = first.recipe.build(torch.device("cpu"))
    assert conv.groups == conv.in_channels == 3 and conv.out_channels == 4 * conv.in_channels


@pytest.mark.parametrize(
    ("name", "line"),
    [
        (
            "library_assertion_no_batch_axis",
            "in        minilib/blocks.py:84: "
            '_assert(x.ndim == 4, f"expected 4D input (got {x.ndim}D input)")',
        ),
        ("library_assertion_image_size", "in        minilib/blocks.py:142: _assert(h == self.img_size[0]"),
    ],
)
def test_an_assertion_in_a_librarys_forward_is_diagnosed(name: str, line: str) -> None:
    err = diagnosed(name)
    assert line in str(err)
    assert err.kind == CASES[name].kind


def test_a_model_that_falls_back_to_the_cpu_is_verified_there() -> None:
    with pytest.raises(ShapeMismatchError) as info:
        trace(zoo.ScaledInput(), (1, 3, 32, 32), device="auto")
    err = info.value
    assert err.fix == "nn.Linear(in_features=2048, out_features=10)"
    assert err.diagnosis.verified == "verified: the model then runs to [1, 10]"
    with pytest.raises(TraceError, match="meta cannot"):  # so its twins cannot run there either
        trace(zoo.ScaledInput(), (1, 3, 32, 32), device="meta")


def test_the_norm_moved_to_the_channels_computes_what_a_channels_last_layer_norm_does() -> None:
    err = diagnosed("as_mlp_layer_norm_on_channels_first")
    alternative = err.diagnosis.alternative
    assert alternative is not None and alternative.text == "nn.GroupNorm(1, 16)"
    assert "as LayerNorm does" not in str(err)  # the GroupNorm is not claimed to be one
    model = zoo.AsMlpBlock().eval()
    patched, _ = apply(model, (2, 16, 8, 8), err.diagnosis.shown.patch, "cpu")  # type: ignore[union-attr]
    x = torch.randn(2, 16, 8, 8)
    with torch.no_grad():
        by_hand = model.pw2(nn.functional.gelu(model.pw1(_channels_last_norm(model, model.dw(x))))) + x
        assert torch.allclose(patched(x), by_hand, atol=1e-6)


def _channels_last_norm(model: zoo.AsMlpBlock, y: torch.Tensor) -> torch.Tensor:
    return nn.functional.layer_norm(
        y.permute(0, 2, 3, 1), (16,), model.norm.weight, model.norm.bias, model.norm.eps
    ).permute(0, 3, 1, 2)


def test_facts_not_filler_when_nothing_verifies() -> None:
    err = diagnosed("channel_shuffle_116_in_3_groups")
    text = str(err)
    assert err.fix is None
    assert (
        "because  c // groups is 116 // 3 = 38: 116 is not divisible by 3, and 3 * 38 = 114 leaves 2 out"
        in text
    )
    assert "compare the received shape" not in text and "come from the layers above" not in text
