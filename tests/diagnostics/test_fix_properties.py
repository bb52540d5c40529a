"""Property: a random valid CNN with one planted mistake; every fix the diagnosis shows is
verified, and applying it makes the model run, on meta and on CPU."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from torch import nn

from pytest_cnnshape import ShapeMismatchError, trace
from pytest_cnnshape.diagnostics.patches import apply
from pytest_cnnshape.strategies import CnnStack, cnn_stacks

MISTAKES = ("in_channels", "num_features", "in_features", "too_small", "channels_last", "float64")


def _planted(stack: CnnStack, mistake: str, draw: st.DrawFn) -> tuple[nn.Module, Any] | None:
    """The stack with one mistake (its own layers otherwise), and the input to run."""
    layers = list(stack.model)
    shape = stack.input_shape
    indices = {
        "in_channels": [i for i, m in enumerate(layers) if isinstance(m, nn.modules.conv._ConvNd)],
        "num_features": [i for i, m in enumerate(layers) if isinstance(m, nn.modules.batchnorm._BatchNorm)],
        "in_features": [i for i, m in enumerate(layers) if isinstance(m, nn.Linear)],
    }.get(mistake)
    if indices is not None:
        if not indices:
            return None
        i = draw(st.sampled_from(indices))
        old = layers[i]
        if isinstance(old, nn.modules.conv._ConvNd):
            layers[i] = type(old)(
                old.in_channels + draw(st.integers(1, 3)),
                old.out_channels,
                old.kernel_size,
                stride=old.stride,
                padding=old.padding,  # type: ignore[arg-type]
                dilation=old.dilation,
            )
        elif isinstance(old, nn.modules.batchnorm._BatchNorm):
            layers[i] = type(old)(old.num_features + draw(st.integers(1, 3)))
        else:
            assert isinstance(old, nn.Linear)
            layers[i] = nn.Linear(old.in_features + draw(st.integers(1, 5)), old.out_features)
        return nn.Sequential(*layers), shape
    model = nn.Sequential(*layers)
    if mistake == "too_small":
        return model, (*shape[:2], *(1,) * (len(shape) - 2))
    if mistake == "channels_last":
        if shape[1] == shape[-1]:
            return None
        return model, (shape[0], *shape[2:], shape[1])
    return model, torch.zeros(shape, dtype=torch.float64)


@st.composite
def broken_stacks(draw: st.DrawFn) -> tuple[nn.Module, Any, str]:
    ndim = draw(st.integers(1, 3))
    stack = draw(cnn_stacks(ndim, max_layers=5, max_side=24 if ndim < 3 else 10, min_side=4))
    mistake = draw(st.sampled_from(MISTAKES))
    planted = _planted(stack, mistake, draw)
    assume(planted is not None)
    assert planted is not None
    return (*planted, mistake)


@pytest.mark.parametrize("device", ["meta", "cpu"])
@settings(max_examples=40, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(case=broken_stacks())
def test_every_fix_shown_is_verified_and_makes_the_model_run(
    case: tuple[nn.Module, Any, str], device: str
) -> None:
    model, inputs, mistake = case
    try:
        trace(model, inputs, device=device)
    except ShapeMismatchError as raised:
        err = raised
    else:
        assume(False)  # the mistake happened to fit (a pool that no layer runs out on)
        return
    diagnosis = err.diagnosis
    if diagnosis.fix is None:
        assert diagnosis.shown is None and "none verified" in str(err)
        return
    for shown in filter(None, (diagnosis.shown, diagnosis.alternative)):
        assert shown.verified.startswith(("verified: ", "partly verified: ")), shown.verified
        for where in ("meta", "cpu"):
            patched, fixed = apply(model, inputs, shown.patch, where)
            if shown.complete:
                result = trace(patched, fixed, device=where)
                assert shown.verified.endswith(f"runs to {_text(result.output_shape)}"), (mistake, shown)
            else:
                with pytest.raises(ShapeMismatchError) as later:
                    trace(patched, fixed, device=where)
                assert later.value.layer != err.layer or later.value.kind != err.kind


def _text(tree: Any) -> str:
    from pytest_cnnshape.shapes.tree import format_shape

    return format_shape(tree)
