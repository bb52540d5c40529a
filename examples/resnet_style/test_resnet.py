"""The ResNet's shape contract, checked over its whole input domain."""

from __future__ import annotations

import pytest
from resnet import ResNet

from pytest_cnnshape import assert_batch_invariant, assert_shape_contract, min_input_size
from pytest_cnnshape.strategies import image_shapes


def test_any_image_size_gives_one_score_per_class(cnn_shapes):
    # one concrete trace for the report, then hypothesis over the whole domain
    cnn_shapes.assert_output(ResNet(), "2x3x32x32", "B x 10", name="ResNet")
    assert_shape_contract(ResNet(), image_shapes(min_side=1, max_side=256, batch=(1, 8)), "B x 10")


def test_the_smallest_input_is_one_pixel():
    # stride-2 convs with padding 1 never run out of pixels: ceil(1 / 2) = 1
    assert min_input_size(ResNet(), channels=3) == 1


def test_the_batch_axis_is_never_folded():
    assert_batch_invariant(ResNet(), (1, 3, 32, 32), batches=(1, 2, 7))


@pytest.mark.cnn_model(ResNet, input="B x 3 x 64 x 64", dims={"B": 4}, output="B x 10", max_params=200_000)
def test_the_reused_relu_is_one_module_called_many_times(cnn_trace):
    calls = cnn_trace.calls("act")
    assert len(calls) == 1 + 2 * 6  # after the stem, and twice in each of six blocks
    assert [c.call for c in calls[:3]] == [0, 1, 2]
    assert cnn_trace["blocks.2.downsample.0"].output_shape == (4, 32, 32, 32)
