"""LeNet-5's shape contract, written three ways."""

from __future__ import annotations

import pytest
from lenet import lenet5


@pytest.mark.cnn_model(lenet5, input="B x 1 x 28 x 28", dims={"B": 8}, output="B x 10", max_params=100_000)
def test_lenet_contract(cnn_trace):
    # the marker's contract was checked before this line; the trace is ours to inspect
    assert cnn_trace["6"].output_shape == (8, 400)  # Flatten: 16 * 5 * 5


def test_lenet_any_batch(cnn_shapes):
    for batch in (1, 32):
        cnn_shapes.assert_output(lenet5(), (batch, 1, 28, 28), "B x 10", name=f"lenet5 (B={batch})")
