"""A tensor the forward picks out of a dict or list batch, or takes as another argument, is
named as the user wrote it (``batch["image"]``, ``inputs[1]``, ``pixel_values``), in
"received" and in the fix; the fix applied runs in plain torch.

Re-created from the dict batches of dataset pipelines (torchvision/HF-style samples with an
``"image"`` key stored HWC, as PIL and numpy give them)."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

from pytest_cnnshape import ShapeMismatchError, trace
from pytest_cnnshape.diagnostics.patches import apply
from pytest_cnnshape.shapes.tree import format_shape
from pytest_cnnshape.tracing.inputs import materialize

HWC = (2, 32, 40, 3)


class DictBatch(nn.Module):
    """``forward(batch)`` with ``batch["image"]``: a sample dict straight from a dataset."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 2))

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.head(self.conv(batch["image"]))


class ListBatch(nn.Module):
    """``forward(inputs)`` with the image second in a list (a side vector first)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)

    def forward(self, inputs: list[torch.Tensor]) -> torch.Tensor:
        return self.conv(inputs[1])


class KeywordImage(nn.Module):
    """The image as a second argument, ``pixel_values``, as Hugging Face models take it."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)

    def forward(self, x: torch.Tensor, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.conv(pixel_values) + x.mean()


def _dict() -> tuple[nn.Module, Any]:
    return DictBatch(), [{"image": torch.randn(HWC), "label": torch.zeros(2)}]


def _list() -> tuple[nn.Module, Any]:
    return ListBatch(), [[torch.randn(2, 5), torch.randn(HWC)]]


def _keyword() -> tuple[nn.Module, Any]:
    return KeywordImage(), {"x": torch.randn(2, 5), "pixel_values": torch.randn(HWC)}


CASES = {
    "dict": (
        _dict,
        'batch["image"] of the model input',
        'return self.head(self.conv(batch["image"].permute(0, 3, 1, 2)))',
        (2, 2),
    ),
    "list": (_list, "inputs[1] of the model input", "return self.conv(inputs[1].permute(0, 3, 1, 2))", None),
    "keyword": (
        _keyword,
        "the model input pixel_values",
        "return self.conv(pixel_values.permute(0, 3, 1, 2)) + x.mean()",
        None,
    ),
}


def _diagnosed(case: str) -> tuple[nn.Module, Any, ShapeMismatchError]:
    model, inputs = CASES[case][0]()
    with pytest.raises(ShapeMismatchError) as info:
        trace(model, inputs)
    return model, inputs, info.value


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_picked_tensor_is_named_as_written_and_fixed_there(case: str) -> None:
    _, received, fix, _ = CASES[case]
    _, _, err = _diagnosed(case)
    assert f"received  {format_shape(HWC)}    {received}\n" in str(err)
    assert err.fix == fix
    assert "x = x.permute" not in str(err)  # never a name the forward does not have


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_fix_applied_runs_in_plain_torch(case: str) -> None:
    output = CASES[case][3]
    model, inputs, err = _diagnosed(case)
    shown = err.diagnosis.shown
    assert shown is not None
    patched, spec = apply(model, inputs, shown.patch, "cpu")
    args, kwargs = materialize(spec, torch.device("cpu"), torch.float32)
    with torch.no_grad():
        out = patched(*args, **kwargs)
    assert shown.verified == f"verified: the model then runs to {format_shape(tuple(out.shape))}"
    assert output is None or tuple(out.shape) == output
    plain_args, plain_kwargs = (inputs, {}) if isinstance(inputs, list) else ((), inputs)
    with pytest.raises(RuntimeError, match="expected input"):  # unfixed, plain torch refuses it
        model(*plain_args, **plain_kwargs)
