"""Shape contracts over the whole input domain: caught, shrunk to the smallest failing
input, explained; min_input_size against the arithmetic; batch invariance."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from pytest_cnnshape import (
    ShapeContractError,
    ShapeMismatchError,
    arith,
    assert_batch_invariant,
    assert_shape_contract,
    min_input_size,
    trace,
)
from pytest_cnnshape.contracts.properties import named_sizes
from pytest_cnnshape.strategies import cnn_stacks, image_shapes
from tests.corpus.broken_zoo import UNet2
from tests.corpus.zoo import small_resnet
from tests.helpers import examples


def runs(model: nn.Module, shape: tuple[int, ...]) -> bool:
    try:
        trace(model, shape, device="meta")
    except ShapeMismatchError:
        return False
    return True


def test_a_unet_is_shrunk_to_the_smallest_side_it_fails_on() -> None:
    model = UNet2()
    with pytest.raises(ShapeContractError) as info:
        assert_shape_contract(
            model, image_shapes(channels=1, min_side=16, max_side=64, square=True), "B x 1 x H x W"
        )
    smallest = next(s for s in range(16, 65) if not runs(model, (1, 1, s, s)))
    assert smallest == 17
    assert info.value.shape == (1, 1, 17, 17)
    text = str(info.value)
    assert text.startswith(
        "UNet2 breaks its shape contract 'B x 1 x H x W' for input "
        "[1, 1, 17, 17] (B=1, C=1, H=W=17), the smallest failing input"
    )
    assert "multiples of 4" in text
    assert isinstance(info.value.error, ShapeMismatchError)


def test_too_small_inputs_report_the_minimum_side() -> None:
    model = nn.Sequential(
        *(m for _ in range(5) for m in (nn.Conv2d(3, 3, 3, padding=1), nn.MaxPool2d(2))),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(3, 10),
    )
    with pytest.raises(ShapeContractError) as info:
        assert_shape_contract(model, "B x 3 x H x W", "B x 10", min_side=20, max_side=128)
    assert info.value.shape[0] == 1 and min(info.value.shape[2:]) == 20
    assert "minimum input side: 32" in str(info.value)
    assert "runs out of pixels" in str(info.value)


def test_a_model_that_works_for_every_size_passes() -> None:
    assert_shape_contract(
        small_resnet(), image_shapes(min_side=1, max_side=96, batch=(1, 4)), "B x 10", max_examples=60
    )


def test_outputs_as_callables_and_symbolic_inputs_with_ranges() -> None:
    model = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.Conv2d(8, 8, 3, stride=2, padding=1))
    assert_shape_contract(
        model,
        "N x 3 x H x W",
        lambda s: (s[0], 8, -(-s[2] // 4), -(-s[3] // 4)),
        dims={"N": (1, 3), "H": (4, 40), "W": 17},
        max_examples=40,
    )
    assert_shape_contract(
        model,
        "N x 3 x H x W",
        "N x 8 x (H+3)//4 x (W+3)//4",
        batch=(1, 2),
        min_side=4,
        max_side=40,
        max_examples=40,
    )
    with pytest.raises(ShapeContractError, match=r"dim [23]: expected 1 \([HW]//4\), got 2"):
        assert_shape_contract(model, "B x 3 x H x W", "B x 8 x H//4 x W//4", min_side=4, max_side=40)


def test_contract_runs_are_deterministic_and_leave_no_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    messages = []
    for _ in range(2):
        with pytest.raises(ShapeContractError) as info:
            assert_shape_contract(
                UNet2(), image_shapes(channels=1, min_side=16, max_side=100), "B x 1 x H x W", max_examples=30
            )
        messages.append(str(info.value))
    assert messages[0] == messages[1]
    assert not (tmp_path / ".hypothesis").exists()


def test_bad_contract_inputs_are_clear_errors() -> None:
    from pytest_cnnshape import SpecError

    with pytest.raises(SpecError, match="nothing gives K its sizes"):
        assert_shape_contract(UNet2(), "B x K x H x W", "B x 1 x H x W")
    with pytest.raises(SpecError, match="name the free sizes"):
        assert_shape_contract(UNet2(), "B x * x H x W", "B x 1 x H x W")
    with pytest.raises(ValueError, match="need whole numbers with 1 <= min_side <= max_side"):
        assert_shape_contract(UNet2(), "B x 1 x H x W", "B x 1 x H x W", min_side=10, max_side=5)
    with pytest.raises(ValueError, match=r"no side in \[17, 20\] is a multiple of 16"):
        assert_shape_contract(
            UNet2(), "B x 1 x H x W", "B x 1 x H x W", min_side=17, max_side=20, multiple_of=16
        )


def test_named_sizes() -> None:
    assert named_sizes((1, 3, 27, 27)) == "B=1, C=3, H=W=27"
    assert named_sizes((2, 3, 27, 30)) == "B=2, C=3, H=27, W=30"
    assert named_sizes((2, 1, 100)) == "B=2, C=1, L=100"


@settings(max_examples=examples(30))
@given(stack=cnn_stacks(2, head=False, min_side=1, max_side=24))
def test_min_input_size_agrees_with_the_arithmetic(stack) -> None:  # type: ignore[no-untyped-def]
    layers = list(stack.model)
    expected = arith.min_input_size_of(layers)
    assert min_input_size(stack.model, stack.input_shape[1]) == expected
    assert runs(stack.model, (1, stack.input_shape[1], expected, expected))
    if expected > 1:
        assert not runs(stack.model, (1, stack.input_shape[1], expected - 1, expected - 1))


def test_min_input_size_of_a_fixed_head_model_explains_itself() -> None:
    fixed = nn.Sequential(nn.Conv2d(1, 6, 5), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(6 * 12 * 12, 10))
    with pytest.raises(
        ValueError,
        match=r"from side 6 on no layer runs out of pixels, but at that "
        r"size the model fails: 3 \(Linear\)",
    ):
        min_input_size(fixed, 1)
    assert min_input_size(nn.Sequential(nn.Conv1d(1, 4, 9), nn.MaxPool1d(4)), 1, ndim=1) == 12


def test_min_input_size_sees_functional_pooling() -> None:
    from tests.corpus.field_zoo import FunctionalUNet

    # F.max_pool2d four times in forward(): 16 is the smallest side
    assert min_input_size(FunctionalUNet(), 1) == 16
    assert runs(FunctionalUNet(), (1, 1, 16, 16)) and not runs(FunctionalUNet(), (1, 1, 15, 15))


@settings(max_examples=examples(20))
@given(sides=st.lists(st.integers(1, 4), min_size=1, max_size=4), k=st.integers(1, 3))
def test_min_input_size_of_functional_pooling_agrees_with_the_modules(sides: list[int], k: int) -> None:
    """The same pooling written as F.max_pool2d in forward and as nn.MaxPool2d layers."""

    class Functional(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(1, 2, k)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = self.conv(x)
            for s in sides:
                x = F.max_pool2d(x, s)
            return x

    layers = nn.Sequential(nn.Conv2d(1, 2, k), *(nn.MaxPool2d(s) for s in sides))
    assert (
        min_input_size(Functional(), 1) == min_input_size(layers, 1) == arith.min_input_size_of(list(layers))
    )


def test_batch_invariance() -> None:
    class Folding(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(1, 4, 3)
            self.fc = nn.Linear(18, 5)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(F.relu(self.conv(x)).view(-1, 18))

    traces = assert_batch_invariant(small_resnet(), (1, 3, 32, 32))
    assert [t.output_shape[0] for t in traces] == [1, 2, 3, 8]
    with pytest.raises(AssertionError, match=r"a batch of 1 gives output \[2, 5\], whose batch is not 1"):
        assert_batch_invariant(Folding(), (1, 1, 5, 5))
