"""Every classic mistake, and the diagnostic it gets.

Each test traces a broken model through the ``cnn_shapes`` fixture (so it shows up
in the ``--cnn-shapes`` report, marked as an expected failure) and asserts what
the ShapeMismatchError says: the layer, what it received, and the fix.
"""

from __future__ import annotations

import pytest
from models import (
    FlattenMismatch,
    ResidualWithoutDownsample,
    UNetSkip,
    ViewFoldsTheBatch,
    batchnorm2d_in_the_head,
    deep_pooling,
    rgb_classifier,
)

from pytest_cnnshape import ShapeMismatchError


def diagnose(cnn_shapes, model, inputs, name):
    with pytest.raises(ShapeMismatchError) as info:
        cnn_shapes.trace(model, inputs, name=name)
    return info.value


def test_linear_in_features_after_flatten(cnn_shapes):
    err = diagnose(cnn_shapes, FlattenMismatch(), (1, 1, 28, 28), "FlattenMismatch")
    assert err.layer == "fc" and err.received_shapes == ((1, 800),)
    assert err.fix == "nn.Linear(in_features=800, out_features=10)"
    assert "800 = 32 * 5 * 5" in str(err)


def test_grayscale_into_an_rgb_model(cnn_shapes):
    err = diagnose(cnn_shapes, rgb_classifier(), (8, 1, 28, 28), "rgb_classifier")
    assert err.layer == "0" and err.fix.startswith("nn.Conv2d(in_channels=1")
    assert "x = x.expand(-1, 3, -1, -1)" in str(err)


def test_channels_last_images(cnn_shapes):
    err = diagnose(cnn_shapes, rgb_classifier(), (8, 32, 32, 3), "rgb_classifier (NHWC)")
    assert err.fix == "x = x.permute(0, 3, 1, 2)"


def test_batchnorm2d_in_a_linear_head(cnn_shapes):
    err = diagnose(cnn_shapes, batchnorm2d_in_the_head(), (2, 3, 16, 16), "batchnorm2d_in_the_head")
    assert err.layer == "4" and err.fix == "nn.BatchNorm1d(64)"


def test_an_input_too_small_for_the_pooling(cnn_shapes):
    err = diagnose(cnn_shapes, deep_pooling(), (1, 3, 20, 20), "deep_pooling")
    assert err.kind == "input_too_small"
    assert err.fix == "an input of at least 1x3x32x32"


def test_a_residual_branch_that_downsamples_alone(cnn_shapes):
    err = diagnose(cnn_shapes, ResidualWithoutDownsample(), (1, 16, 32, 32), "ResidualWithoutDownsample")
    assert "nn.Conv2d(16, 32, kernel_size=1, stride=2, bias=False)" in err.fix
    assert err.source.endswith("return torch.relu(out + x)")


def test_a_unet_skip_one_pixel_short(cnn_shapes):
    err = diagnose(cnn_shapes, UNetSkip(), (1, 1, 33, 33), "UNetSkip")
    assert err.fix == "input sides that are multiples of 2, e.g. 1x1x34x34"


def test_a_view_written_for_another_input_size(cnn_shapes):
    err = diagnose(cnn_shapes, ViewFoldsTheBatch(), (1, 3, 36, 36), "ViewFoldsTheBatch")
    assert err.kind == "view_size"
    assert "nn.Linear(in_features=576, out_features=10)" in err.fix  # 576 = 16 * 6 * 6
