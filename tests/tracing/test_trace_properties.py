"""Property: any valid Conv/Pool/BatchNorm/Dropout/Linear stack traces to exactly the
shapes a plain forward gives, on meta and on CPU, and to the output the size
arithmetic predicts."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_cnnshape import ShapeTrace, trace
from pytest_cnnshape.strategies import cnn_stacks
from tests.helpers import examples, observe


def rows(tr: ShapeTrace) -> list[tuple[object, ...]]:
    return [(r.name, r.type, r.depth, r.call, r.input_shapes, r.output_shape) for r in tr.layers]


@pytest.mark.parametrize("device", ["meta", "cpu"])
@pytest.mark.parametrize("ndim", [1, 2, 3])
@settings(max_examples=examples(20))
@given(data=st.data())
def test_random_stacks_trace_like_a_plain_forward(device: str, ndim: int, data: st.DataObject) -> None:
    stack = data.draw(
        cnn_stacks(ndim, max_side=24 if ndim == 3 else 48, groups=True, transposed=True, branches=True)
    )
    expected_rows, expected_out = observe(stack.model, stack.input_shape)
    tr = trace(stack.model, stack.input_shape, device=device)
    assert tr.device == device
    assert rows(tr) == expected_rows
    assert tr.output_shape == expected_out == stack.output_shape
    assert tr.total_params == sum(p.numel() for p in stack.model.parameters())
