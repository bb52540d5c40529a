"""Size fixes from the model's input domain: exact, verified, and the search by tracing where
torch's symbolic shapes cannot follow the model."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from pytest_cnnshape import ShapeMismatchError, input_domain, min_input_size, trace
from pytest_cnnshape.tracing.failure import FailureContext
from tests.corpus.zoo import small_resnet

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples" / "unet_style"))
from unet import UNet

SYMBOLIC = "(torch's symbolic shapes)"


def pooled(n: int = 5) -> nn.Sequential:
    """``n`` conv and 2x2 pooling stages, then global pooling: any side of at least 2**n."""
    stages = [layer for _ in range(n) for layer in (nn.Conv2d(3, 3, 3, padding=1), nn.MaxPool2d(2))]
    return nn.Sequential(*stages, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 10))


class Gated(nn.Module):
    """``pooled()`` behind a ``.item()``: no symbolic shapes follow a value."""

    def __init__(self) -> None:
        super().__init__()
        self.body = pooled()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.abs().sum().item() >= 0:
            x = x * 1
        return self.body(x)


class Thirds(nn.Module):
    """A skip over a 3x3 pooling and a 3x upsampling: sides that are multiples of 3, which the
    quick search (powers of two) does not try."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)
        self.pool = nn.MaxPool2d(3)
        self.up = nn.Upsample(scale_factor=3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        return x + self.up(self.pool(x))


def diagnosed(model: nn.Module, shape: tuple[int, ...]) -> ShapeMismatchError:
    with pytest.raises(ShapeMismatchError) as info:
        trace(model, shape)
    return info.value


def test_the_multiple_a_unet_needs_comes_from_its_domain() -> None:
    err = diagnosed(UNet(), (1, 1, 40, 40))
    assert err.fix == "input sides that are multiples of 16, e.g. 1x1x48x48"
    assert err.diagnosis.facts["domain"] == str(input_domain(UNet(), "B x 1 x H x W").clauses()[0])
    text = str(err)
    assert f"the model runs for H and W at least 16 and multiples of 16 {SYMBOLIC}" in text
    assert "verified: the model then runs to [1, 1, 48, 48]" in text


def test_the_smallest_input_comes_from_the_domain_and_is_what_a_search_finds() -> None:
    err = diagnosed(pooled(), (1, 3, 16, 16))
    assert err.fix == "an input of at least 1x3x32x32" and min_input_size(pooled(), 3) == 32
    assert f"the model runs for H and W at least 32 {SYMBOLIC}" in str(err)
    assert err.diagnosis.facts["min_side"] == 32


def test_a_side_that_fits_is_kept() -> None:
    err = diagnosed(pooled(), (1, 3, 64, 12))
    assert err.fix == "an input of at least 1x3x64x32"
    note = "keeps axis 2 (64), which fit; grows axis 3 from 12 to 32; the model runs for H and W at least 32"
    assert f"{note} {SYMBOLIC}" in str(err)


def test_a_domain_with_an_upper_bound_says_no_at_least() -> None:
    fixed_head = nn.Sequential(*pooled(2)[:4], nn.Flatten(), nn.Linear(3 * 4 * 4, 10))  # 4x4 maps only
    err = diagnosed(fixed_head, (1, 3, 2, 2))
    assert err.fix == "an input of 1x3x16x16"
    words = "H and W at least 4; (H//4)*(W//4) = 16; with H = W: H and W from 16 to 19"
    assert f"the model runs for {words} {SYMBOLIC}" in str(err)


def test_where_the_engine_cannot_follow_the_search_by_tracing_finds_the_fix() -> None:
    err = diagnosed(Gated(), (1, 3, 16, 16))
    assert err.fix == "an input of at least 1x3x32x32"
    assert SYMBOLIC not in str(err) and "the smallest input on which no layer runs out of pixels" in str(err)


def test_a_multiple_the_quick_search_does_not_try_comes_from_the_domain_as_a_last_resort() -> None:
    err = diagnosed(Thirds(), (1, 3, 20, 20))
    assert err.fix == "input sides that are multiples of 3, e.g. 1x3x21x21"
    text = str(err)
    assert (
        f"F.pad(x, (0, 1, 0, 1)); the model runs for H and W at least 3 and multiples of 3 {SYMBOLIC}" in text
    )
    assert "verified: the model then runs to [1, 3, 21, 21]" in text
    assert Thirds()(torch.nn.functional.pad(torch.randn(1, 3, 20, 20), (0, 1, 0, 1))).shape == (1, 3, 21, 21)


def test_a_fix_elsewhere_spares_the_domain(monkeypatch: pytest.MonkeyPatch) -> None:
    """A bottleneck whose branch downsamples: the stride fix verifies, so no symbolic forward is
    paid for an input size (the dear last resort)."""
    model = small_resnet()
    conv = next(m for m in model[3].modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3))
    conv.stride = (2, 2)
    asked: list[object] = []
    real = FailureContext.domain

    def counted(self: FailureContext, example: object = None) -> object:
        asked.append(example)
        return real(self, example)  # type: ignore[arg-type]

    monkeypatch.setattr(FailureContext, "domain", counted)
    err = diagnosed(model, (2, 3, 32, 32))
    assert err.diagnosis.shown is not None and "stride=1" in (err.fix or "") and asked == []
