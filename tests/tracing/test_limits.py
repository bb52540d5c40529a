"""The Python API at the edges: huge inputs, inputs that cannot fit, models nested very deep."""

from __future__ import annotations

import sys

import pytest
import torch
from torch import nn

from pytest_cnnshape import trace
from pytest_cnnshape.errors import SizeLimitError, SpecError, TraceError


def _deep(levels: int) -> nn.Module:
    model: nn.Module = nn.ReLU()
    for _ in range(levels):
        model = nn.Sequential(model)
    return model


class Item(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * x.sum().item()


def test_a_model_plain_torch_runs_traces_and_the_recursion_limit_is_put_back() -> None:
    limit = sys.getrecursionlimit()
    model = _deep(222)
    model(torch.zeros(1, 3))  # plain torch runs it
    for device in ("meta", "cpu"):
        tr = trace(model, (1, 3), device=device)
        assert len(tr.layers) == 223 and tr.output_shape == (1, 3)
        assert sys.getrecursionlimit() == limit


def test_a_model_too_deep_for_torch_is_a_trace_error_naming_the_depth() -> None:
    limit = sys.getrecursionlimit()
    with pytest.raises(TraceError, match=r"its modules nest 1001 deep, .* torch cannot run it either"):
        trace(_deep(1000), (1, 3))
    assert sys.getrecursionlimit() == limit


def test_shapes_beyond_any_tensor_are_spec_errors_before_torch_sees_them() -> None:
    with pytest.raises(SizeLimitError, match=r"has 1e\+22 elements, more than a tensor can hold"):
        trace(nn.ReLU(), (99999999999, 99999999999))
    with pytest.raises(SpecError, match=r"of float32 needs 3.69e\+19 bytes"):
        trace(nn.ReLU(), "3037000499x3037000499", device="meta")


def test_a_real_forward_bigger_than_memory_is_refused_before_allocating() -> None:
    with pytest.raises(
        TraceError, match=r"a real forward on cpu needs 20,132,659,200,000 bytes \(18,750.0 GiB\)"
    ):
        trace(Item(), (100000, 3, 4096, 4096))
    tr = trace(nn.Conv2d(3, 4, 3), (100000, 3, 4096, 4096))  # meta needs no memory
    assert tr.device == "meta" and tr.output_shape == (100000, 4, 4094, 4094)
