"""The U-Net keeps the input's size for sides divisible by 16, and says why otherwise."""

from __future__ import annotations

import pytest
from unet import UNet

from pytest_cnnshape import ShapeContractError, assert_shape_contract
from pytest_cnnshape.strategies import image_shapes


def test_same_size_out_for_sides_divisible_by_16(cnn_shapes):
    cnn_shapes.assert_output(UNet(), "1x1x96x128", "B x 1 x H x W", name="UNet")
    assert_shape_contract(
        UNet(),
        image_shapes(channels=1, min_side=16, max_side=512, multiple_of=16, batch=(1, 2)),
        "B x 1 x H x W",
    )


def test_other_sides_fail_at_the_first_skip_that_does_not_meet():
    with pytest.raises(ShapeContractError) as info:
        assert_shape_contract(
            UNet(), image_shapes(channels=1, min_side=16, max_side=128, square=True), "B x 1 x H x W"
        )
    assert info.value.shape == (1, 1, 17, 17)  # the smallest side that is not a multiple of 16
    assert "input sides that are multiples of 16, e.g. 1x1x32x32" in str(info.value)
