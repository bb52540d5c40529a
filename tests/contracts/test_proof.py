"""Shape contracts proven at every input of their domain, held against plain forwards at each.

The proof compares the output formula (torch's symbolic shapes) with the contract at
every input of the contract's domain at once; here the same inputs are traced one by
one on meta, and the failing ones, the smallest of them and the count must agree.
Where the engine cannot follow the model, hypothesis samples the domain and the result
says so.
"""

from __future__ import annotations

import copy
import itertools
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from pytest_cnnshape import (
    ContractResult,
    ShapeContractError,
    ShapeMismatchError,
    assert_shape_contract,
)
from pytest_cnnshape.strategies import image_shapes
from tests.corpus.broken_zoo import UNet2

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples" / "unet_style"))
from unet import UNet


def fits(model: nn.Module, shape: tuple[int, ...], expected: tuple[int, ...]) -> bool:
    """A plain forward of ``model`` (on meta) returns ``expected``."""
    try:
        with torch.no_grad():
            return tuple(model(torch.zeros(shape, device="meta")).shape) == expected
    except RuntimeError:
        return False


def plain_failing(model: nn.Module, sides: range, channels: int, output: tuple[int, ...] | None) -> list:
    """The (H, W) of ``sides`` squared at which a plain meta forward does not give ``output``
    (the input's own shape where ``output`` is None)."""
    on_meta = copy.deepcopy(model).to("meta")
    return [
        (h, w)
        for h, w in itertools.product(sides, repeat=2)
        if not fits(on_meta, (1, channels, h, w), output or (1, channels, h, w))
    ]


def test_a_contract_that_holds_is_proven_at_every_input() -> None:
    result = assert_shape_contract(
        UNet(), "B x 1 x H x W", "B x 1 x H x W", multiple_of=16, min_side=16, max_side=256
    )
    assert result == ContractResult("symbolic", 4 * 16 * 16)
    assert str(result) == "proven with torch's symbolic shapes at all 1,024 inputs of its domain"


def test_the_failing_inputs_are_those_plain_forwards_fail_at() -> None:
    model = UNet2()  # two poolings deep: sides must be multiples of 4
    with pytest.raises(ShapeContractError) as info:
        assert_shape_contract(model, "B x 1 x H x W", "B x 1 x H x W", batch=1, min_side=3, max_side=24)
    failing = plain_failing(model, range(3, 25), 1, None)
    smallest = min(failing, key=lambda s: (max(s), sum(s), s))
    assert info.value.shape == (1, 1, *smallest) == (1, 1, 3, 3)
    assert info.value.method == "symbolic"
    head = str(info.value).splitlines()[0]
    assert head == (
        "UNet2 breaks its shape contract 'B x 1 x H x W' for input [1, 1, 3, 3] (B=1, C=1, H=W=3), "
        f"the smallest of {len(failing)} failing inputs among all 484 of its domain (proven with torch's "
        "symbolic shapes)"
    )
    assert "the model runs for: H and W at least 4 and multiples of 4" in str(info.value)
    # where it fails, in words that hold exactly the sizes plain torch fails at
    assert "the contract fails for: H or W not a multiple of 4" in str(info.value)
    assert failing == [(h, w) for h, w in itertools.product(range(3, 25), repeat=2) if h % 4 or w % 4]
    assert isinstance(info.value.error, ShapeMismatchError)  # the smallest one, diagnosed


def test_where_a_fixed_head_fails_is_said_as_the_sizes_outside_the_one_it_takes() -> None:
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.MaxPool2d(2),
        nn.Conv2d(8, 8, 3, padding=1),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(8 * 7 * 7, 10),
    )
    with pytest.raises(ShapeContractError) as info:
        assert_shape_contract(model, "B x 3 x H x W", "B x 10", batch=1, min_side=4, max_side=40)
    failing = plain_failing(model, range(4, 41), 3, (1, 10))
    assert failing == [
        (h, w) for h, w in itertools.product(range(4, 41), repeat=2) if not (28 <= h <= 31 and 28 <= w <= 31)
    ]
    assert "the contract fails for: H or W outside 28 to 31" in str(info.value)


def test_a_wrong_formula_in_the_contract_is_caught_at_its_smallest_input() -> None:
    model = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.Conv2d(8, 8, 3, stride=2, padding=1))
    proven = assert_shape_contract(
        model, "B x 3 x H x W", "B x 8 x (H+3)//4 x (W+3)//4", min_side=4, max_side=40
    )
    assert proven.method == "symbolic"
    with pytest.raises(ShapeContractError, match=r"dim 3: expected 1 \(W//4\), got 2") as info:
        assert_shape_contract(model, "B x 3 x H x W", "B x 8 x H//4 x W//4", min_side=4, max_side=40)
    assert info.value.shape == (1, 3, 4, 5) and info.value.error is None


class ValueGated(nn.Module):
    """Reads a value (``.item()``): torch's symbolic shapes cannot follow it."""

    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.abs().sum().item() >= 0:
            x = x * 2
        return self.head(x)


def test_hypothesis_is_the_fallback_and_the_result_says_why() -> None:
    result = assert_shape_contract(ValueGated(), "B x 3 x H x W", "B x 10", max_side=16, max_examples=10)
    assert result.method == "hypothesis" and result.checked == 10
    assert result.why is not None and "depends on the values of a tensor" in result.why
    assert str(result).startswith("tested on 10 hypothesis examples (not proven symbolically: ")
    drawn = assert_shape_contract(
        UNet2(),
        image_shapes(channels=1, min_side=4, max_side=64, multiple_of=4),
        "B x 1 x H x W",
        max_examples=5,
    )
    assert drawn == ContractResult("hypothesis", 5, "the input shapes come from a hypothesis strategy")
    asked = assert_shape_contract(
        UNet2(), "B x 1 x H x W", "B x 1 x H x W", multiple_of=4, max_examples=5, symbolic=False
    )
    assert asked == ContractResult("hypothesis", 5, "symbolic=False")
