"""The mechanism behind every fix shown: patches applied to a twin that leaves the model as it
was, verification by tracing the twin, ranking, and debug mode refusing unverified fixes."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pytest_cnnshape import ShapeMismatchError, trace
from pytest_cnnshape.diagnostics import report
from pytest_cnnshape.diagnostics.edits import LayerEdit, NewLayer, method
from pytest_cnnshape.diagnostics.patches import (
    EditSource,
    FeedLayer,
    ReplaceLayer,
    TransformInput,
    Unpatchable,
    apply,
    joined,
)
from pytest_cnnshape.errors import UnverifiedFixError
from tests.corpus.broken_zoo import CORPUS, ViewWrongSize
from tests.corpus.field_zoo import CifarBlock, TextCNN
from tests.helpers import assert_same, snapshot


def raised(model: nn.Module, inputs: object, device: str = "meta") -> ShapeMismatchError:
    with pytest.raises(ShapeMismatchError) as info:
        trace(model, inputs, device=device)
    return info.value


@pytest.mark.parametrize("device", ["meta", "cpu"])
def test_a_twin_leaves_the_model_exactly_as_it_was(device: str) -> None:
    model = CifarBlock()
    before = snapshot(model)
    err = raised(model, (2, 16, 16, 16))
    patch = err.diagnosis.patch
    assert isinstance(patch, EditSource) and patch.add[0][0] == "downsample"
    patched, inputs = apply(model, (2, 16, 16, 16), patch, device)
    assert trace(patched, inputs, device=device).output_shape == (2, 32, 8, 8)
    assert_same(before, model)
    assert "forward" not in vars(model) and not hasattr(model, "downsample")
    assert patched.conv1 is model.conv1  # untouched layers are shared, not copied
    assert patched.conv1.weight is model.conv1.weight
    with pytest.raises(ShapeMismatchError):  # the user's model is still broken
        trace(model, (2, 16, 16, 16), device=device)


def test_layers_are_replaced_on_every_path_to_them_and_inputs_transformed() -> None:
    shared = nn.Conv2d(3, 8, 3)
    model = nn.Sequential(nn.Sequential(shared), nn.Sequential(shared))
    patch = ReplaceLayer("0.0", LayerEdit(shared, {"out_channels": 3, "kernel_size": 1}))
    assert patch.text == "nn.Conv2d(in_channels=3, out_channels=3, kernel_size=1)"
    patched, _ = apply(model, (1, 3, 8, 8), patch, "meta")
    assert patched[0][0] is patched[1][0] and patched[0][0] is not shared
    assert model[0][0] is shared and model[1][0] is shared
    permute = TransformInput(transform=method("permute", 0, 3, 1, 2))
    assert permute.text == "x = x.permute(0, 3, 1, 2)"
    _, inputs = apply(model, (1, 8, 8, 3), permute)
    assert inputs.first_shape() == (1, 3, 8, 8)
    tensor = torch.randn(1, 8, 8, 3, dtype=torch.float64)
    _, inputs = apply(model, tensor, TransformInput(transform=method("float")), "cpu")
    moved = inputs.tensors()[0]
    assert moved.dtype == torch.float32 and torch.equal(moved, tensor.float())  # the real values
    with pytest.raises(Unpatchable, match="does not build"):
        apply(model, (1, 3, 8, 8), ReplaceLayer("0.0", LayerEdit(shared, {"groups": 5})))


def test_a_feed_takes_what_another_layer_returned() -> None:
    err = raised(CORPUS["view_folds_batch_into_linear"].factory(), (2, 1, 16, 16))
    patch = err.diagnosis.patch
    assert isinstance(patch, FeedLayer) and patch.source == "pool" and patch.name == "fc"
    model = CORPUS["view_folds_batch_into_linear"].factory()
    patched, _ = apply(model, (2, 1, 16, 16), patch, "cpu")
    x = torch.randn(2, 1, 16, 16)
    with torch.no_grad():
        expected = model.fc(torch.flatten(model.pool(model.conv(x)), 1))
        assert torch.allclose(patched(x), expected)  # the same numbers, not only the shape


def test_an_edit_of_forward_code_is_the_line_shown() -> None:
    err = raised(ViewWrongSize(), (1, 3, 32, 32))
    assert err.fix == "x = torch.flatten(x, 1), and fc: nn.Linear(in_features=400, out_features=10)"
    edit = next(p for p in err.diagnosis.patch.parts() if isinstance(p, EditSource))  # type: ignore[union-attr]
    assert edit.text == "x = torch.flatten(x, 1)" and edit.code == "torch.flatten(x, 1)"
    assert edit.owner == "" and edit.function == "forward"
    err = raised(TextCNN(), torch.zeros(2, 12, dtype=torch.long))
    assert err.fix == "out = F.relu(self.conv(embeds.transpose(1, 2)))"  # the user's own names


def test_a_method_with_super_and_closures_is_recompiled_with_its_cells() -> None:
    scale = 2.0

    class Base(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x

    class Child(Base):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)
            self.fc = nn.Linear(999, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = super().forward(self.conv(x)) * scale
            return self.fc(x.view(-1, 999))

    err = raised(Child(), (2, 3, 8, 8))
    assert err.diagnosis.verified == "verified: the model then runs to [2, 2]", str(err)
    patched, inputs = apply(Child(), (2, 3, 8, 8), err.diagnosis.patch, "cpu")  # type: ignore[arg-type]
    assert trace(patched, inputs, device="cpu").output_shape == (2, 2)


def test_the_alternative_is_another_kind_of_change() -> None:
    err = raised(CORPUS["grayscale_into_rgb"].factory(), (4, 1, 32, 32))
    assert err.diagnosis.shown is not None and err.diagnosis.alternative is not None
    assert (err.diagnosis.shown.kind, err.diagnosis.alternative.kind) == ("layer", "input")
    lines = str(err).splitlines()
    fix = next(i for i, line in enumerate(lines) if line.startswith("  fix "))
    assert lines[fix + 1].strip() == "verified: the model then runs to [4, 10]"
    assert lines[fix + 2].startswith("  or        x = x.expand(-1, 3, -1, -1)")
    assert err.diagnosis.to_dict()["alternative"] == {
        "fix": "x = x.expand(-1, 3, -1, -1)",
        "note": "a grayscale batch into a model built for RGB: repeat the gray channel",
        "verified": "verified: the model then runs to [4, 10]",
        "kind": "input",
        "complete": True,
    }
    data = err.diagnosis.to_dict()
    assert data["fix_kind"] == "layer" and data["verified"] == "verified: the model then runs to [4, 10]"


def test_a_layout_is_never_blamed_on_a_map_a_conv_made() -> None:
    """A 32x32 map of 16 channels into Conv2d(32, ...): its last axis is 32, but a conv made it."""

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.c1 = nn.Conv2d(3, 16, 3, padding=1)
            self.c2 = nn.Conv2d(32, 32, 3, padding=1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.c2(F.relu(self.c1(x)))

    err = raised(Net(), (1, 3, 32, 32))
    assert err.kind == "conv_in_channels" and "permute" not in str(err)
    assert err.fix == "nn.Conv2d(in_channels=16, out_channels=32, kernel_size=3, padding=1)"


def test_a_fix_that_does_not_run_is_not_shown_and_the_facts_stay() -> None:
    class TwoMistakes(nn.Module):  # in_channels fixed, the Linear after it still wrong
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3)
            self.fc = nn.Linear(7, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(torch.flatten(self.conv(x), 1))

    err = raised(TwoMistakes(), (2, 1, 6, 6))
    assert err.fix == "nn.Conv2d(in_channels=1, out_channels=8, kernel_size=3)"
    assert err.diagnosis.verified == (
        "partly verified: the model then gets past conv (Conv2d) and fails later: fc (Linear) cannot "
        "take its input (a second problem)"
    )
    assert err.diagnosis.facts["verified"] is False


def test_debug_mode_refuses_a_fix_a_rule_did_not_verify(monkeypatch: pytest.MonkeyPatch) -> None:
    from pytest_cnnshape.diagnostics.rules import linear

    def sloppy(ctx: object) -> report.Diagnosis:
        return report.Diagnosis(
            "linear_in_features", "fc", "Linear", (), "fc (Linear) is wrong", fix="nn.Linear(1, 2)"
        )

    monkeypatch.setattr(linear, "diagnose", sloppy)
    with pytest.raises(UnverifiedFixError, match=r"set the fix 'nn.Linear\(1, 2\)'"):
        trace(CORPUS["linear_after_torch_flatten"].factory(), (1, 1, 28, 28), device="meta")
    monkeypatch.delenv("CNNSHAPE_DEBUG")
    err = raised(CORPUS["linear_after_torch_flatten"].factory(), (1, 1, 28, 28))
    assert err.fix is None  # for users: never shown


def test_joined_patches_read_as_one_fix() -> None:
    a = ReplaceLayer("2", NewLayer(nn.Flatten, kwargs={"start_dim": 1}))
    b = ReplaceLayer("3", NewLayer(nn.Linear, (4, 2)))
    both = joined(a, b)
    assert both.text == "nn.Flatten(start_dim=1), and nn.Linear(4, 2)" and list(both.parts()) == [a, b]
    assert joined(a) is a
    assert both.sites() == ("2", "3")
