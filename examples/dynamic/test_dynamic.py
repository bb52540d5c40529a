"""Traces at several sizes show each path the dynamic forward takes."""

from __future__ import annotations

import pytest
from dynamic_net import DynamicNet


@pytest.mark.parametrize(("side", "halvings", "detail"), [(16, 1, False), (64, 3, True), (200, 5, True)])
def test_each_size_takes_its_own_path(cnn_shapes, side, halvings, detail):
    tr = cnn_shapes.assert_output(DynamicNet(), (1, 3, side, side), "B x 5", name=f"DynamicNet {side}x{side}")
    assert len(tr.calls("down")) == halvings
    assert bool(tr.calls("detail")) is detail
    # the reused block's calls are numbered, each with its own shapes
    sizes = [c.output_shape[-1] for c in tr.calls("down")]
    assert sizes == sorted(sizes, reverse=True) and sizes[-1] <= 8


def test_a_non_square_input_loops_on_its_longer_side(cnn_shapes):
    tr = cnn_shapes.trace(DynamicNet(), (2, 3, 120, 40), name="DynamicNet 120x40")
    assert [c.output_shape[-2:] for c in tr.calls("down")] == [(60, 20), (30, 10), (15, 5), (8, 3)]
