"""Property: a random valid CNN with one planted mistake is diagnosed as that mistake, at the
planted layer, and every fix shown makes the model run in plain torch, on meta and on CPU.

The strategy draws the kind of mistake first (each as often as the others; ``event()``
shows the mix with ``--hypothesis-show-statistics``), then the stack, then the site.
Where the mistake sits is known from the planting (the layer changed) or, for a wrong
input, from a plain forward watched by hooks (``tests/truth.py``). Over the whole run,
each kind must get a verified fix at least as often as ``MIN_FIX_RATE`` says.
"""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from torch import nn

from pytest_cnnshape import ShapeMismatchError, arith, trace
from pytest_cnnshape.diagnostics.patches import apply
from pytest_cnnshape.shapes.tree import format_shape
from pytest_cnnshape.strategies import CnnStack, cnn_stacks
from tests.helpers import examples, spec_tensors
from tests.truth import model_dtype, plain_inputs, run_on, run_plain, shape_of

#: The kind of failure each planted mistake must be diagnosed as.
KINDS = {
    "in_channels": "conv_in_channels",
    "num_features": "norm_num_features",
    "in_features": "linear_in_features",
    "too_small": "input_too_small",
    "channels_last": "channels_last",
    "float64": "dtype_mismatch",
}

#: The share of each kind's examples that must get a verified fix (shown, complete, and
#: running in plain torch). Set to what the fix search reliably achieves today: over 20
#: random seeds of 300 examples each (HYPOTHESIS_PROFILE=explore, scale 2; 20 to 92
#: examples of a kind per run) every planted mistake of every kind got one, so every
#: minimum is 100%. Issue 21 rebuilds the fix search (and may plant harder mistakes).
MIN_FIX_RATE = {
    "in_channels": 1.0,
    "num_features": 1.0,
    "in_features": 1.0,
    "too_small": 1.0,
    "channels_last": 1.0,
    "float64": 1.0,
}

#: Examples per device in the deterministic run (``make test``); ``make test-explore`` runs more.
EXAMPLES = examples(150)


@dataclass
class Planted:
    model: nn.Module
    inputs: Any
    mistake: str
    #: The qualified name of the layer planted wrong; None for a wrong input (plain torch says).
    layer: str | None

    def __repr__(self) -> str:
        inputs = shape_of(self.inputs) if isinstance(self.inputs, torch.Tensor) else self.inputs
        return f"Planted({self.mistake} at {self.layer!r}, inputs={inputs}, model={self.model})"


def _received(layers: list[nn.Module], index: int, shape: tuple[int, ...]) -> tuple[int, tuple[int, ...]]:
    """The channels and the spatial sides the layer at ``index`` receives."""
    c, sides = shape[1], tuple(shape[2:])
    for layer in layers[:index]:
        c = getattr(layer, "out_channels", c)
        sides = arith.spatial_output_of(layer, sides) or sides
    return c, sides


def _wrong_channels(draw: st.DrawFn, c: int, sides: tuple[int, ...]) -> int:
    """A channel count other than ``c`` that no side equals either: with it equal to the last
    side, "the channels are on the last axis" would be as true a reading as the planted one."""
    return draw(st.sampled_from([n for n in range(c + 1, c + 5) if n not in sides]))


def _body(layers: list[nn.Module]) -> int:
    """How many layers come before the head (``Flatten -> Linear``), if there is one."""
    return next((i for i, m in enumerate(layers) if isinstance(m, nn.Flatten)), len(layers))


def _plant_layer(draw: st.DrawFn, stack: CnnStack, mistake: str) -> Planted:
    layers = list(stack.model)
    shape = stack.input_shape
    if mistake == "in_features":
        i = len(layers) - 1
        old = layers[i]
        assert isinstance(old, nn.Linear)
        layers[i] = nn.Linear(old.in_features + draw(st.integers(1, 5)), old.out_features)
    elif mistake == "num_features":  # a BatchNorm sized for other channels, inserted at a drawn site
        i = draw(st.integers(0, _body(layers)))
        norm = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)[len(shape) - 3]
        layers.insert(i, norm(_wrong_channels(draw, *_received(layers, i, shape))))
    else:  # in_channels: one of the stack's convolutions, or one inserted at a drawn site
        convs = [i for i, m in enumerate(layers) if isinstance(m, nn.modules.conv._ConvNd)]
        if convs:
            i = draw(st.sampled_from(convs))
            old = layers[i]
            assert isinstance(old, nn.modules.conv._ConvNd)
            layers[i] = type(old)(
                _wrong_channels(draw, *_received(layers, i, shape)),
                old.out_channels,
                old.kernel_size,
                stride=old.stride,
                padding=old.padding,  # type: ignore[arg-type]
                dilation=old.dilation,
            )
        else:
            i = draw(st.integers(0, _body(layers)))
            c, sides = _received(layers, i, shape)
            conv = (nn.Conv1d, nn.Conv2d, nn.Conv3d)[len(shape) - 3]
            layers.insert(i, conv(_wrong_channels(draw, c, sides), c, 1))
    return Planted(nn.Sequential(*layers), shape, mistake, str(i))


def _plant_input(draw: st.DrawFn, stack: CnnStack, mistake: str) -> Planted:
    layers = list(stack.model)
    shape = stack.input_shape
    if mistake == "float64":
        return Planted(stack.model, torch.zeros(shape, dtype=torch.float64), mistake, None)
    if mistake == "channels_last":
        if not isinstance(layers[0], nn.modules.conv._ConvNd):  # the input must reach a conv as it is
            conv = (nn.Conv1d, nn.Conv2d, nn.Conv3d)[len(shape) - 3]
            layers.insert(0, conv(shape[1], shape[1], 1))
        return Planted(nn.Sequential(*layers), (shape[0], *shape[2:], shape[1]), mistake, None)
    # too_small: a side (square) below the smallest the layers run on; when none of them can
    # run out of pixels (every one padded), first a pooling that can
    ndim = len(shape) - 2
    if (arith.min_input_size_of(layers, ndim) or 1) == 1:
        layers.insert(0, (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d)[ndim - 1](2))
    smallest = arith.min_input_size_of(layers, ndim)
    assert smallest is not None and smallest > 1
    side = draw(st.integers(1, smallest - 1))
    return Planted(nn.Sequential(*layers), (*shape[:2], *(side,) * ndim), mistake, None)


@st.composite
def broken_stacks(draw: st.DrawFn) -> Planted:
    mistake = draw(st.sampled_from(sorted(KINDS)))
    event(f"mistake: {mistake}")
    ndim = draw(st.integers(1, 3))
    head = {"in_features": True, "float64": True, "too_small": False}.get(mistake)
    stack = draw(
        cnn_stacks(
            ndim,
            max_layers=5,
            max_side=24 if ndim < 3 else 10,
            min_side=4,
            head=head,
            # a channels-last input must not look channels-first: fewer channels than any side
            channels=(1, 3) if mistake == "channels_last" else (1, 4),
        )
    )
    if mistake in ("in_channels", "num_features", "in_features"):
        return _plant_layer(draw, stack, mistake)
    return _plant_input(draw, stack, mistake)


@pytest.fixture
def tally() -> Iterator[Counter[tuple[str, str]]]:
    """Per kind: examples and verified fixes over the whole hypothesis run of one test."""
    counts: Counter[tuple[str, str]] = Counter()
    yield counts
    print("mistakes (examples, fixed):", {k: (counts[k, "seen"], counts[k, "fixed"]) for k in KINDS})
    for mistake, minimum in MIN_FIX_RATE.items():
        seen, fixed = counts[mistake, "seen"], counts[mistake, "fixed"]
        assert seen >= 5, f"{mistake}: only {seen} examples drawn"
        assert fixed >= minimum * seen, f"{mistake}: {fixed} of {seen} fixed, below {minimum:.0%}"


@pytest.mark.parametrize("device", ["meta", "cpu"])
@settings(
    max_examples=EXAMPLES,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(case=broken_stacks())
def test_the_planted_mistake_is_diagnosed_and_the_fix_shown_runs(
    case: Planted, device: str, tally: Counter[tuple[str, str]]
) -> None:
    args, kwargs = plain_inputs(case.inputs, model_dtype(case.model))
    _, truth = run_plain(case.model, args, kwargs)
    assert truth is not None, "the planted mistake must break a plain forward"
    if case.layer is not None:
        assert truth.module == case.layer  # the planting is where plain torch fails
    with pytest.raises(ShapeMismatchError) as info:
        trace(case.model, case.inputs, device=device)
    err = info.value
    assert (err.layer, err.kind) == (truth.module, KINDS[case.mistake]), str(err)
    tally[case.mistake, "seen"] += 1
    diagnosis = err.diagnosis
    if diagnosis.shown is None:
        assert err.fix is None and "none verified" in str(err)
        return
    for shown in filter(None, (diagnosis.shown, diagnosis.alternative)):
        assert shown.verified.startswith(("verified: ", "partly verified: ")), shown.verified
        for where in ("meta", "cpu"):
            # a copy: the patched model shares the user's layers, and run_on moves it to meta
            patched, fixed = apply(copy.deepcopy(case.model), case.inputs, shown.patch, where)
            output, failed = run_on(patched, *spec_tensors(fixed, model_dtype(patched)), device=where)
            if shown.complete:
                assert failed is None, (where, shown.text, failed)
                assert shown.verified.endswith(f"runs to {format_shape(shape_of(output))}"), shown
            else:
                assert failed is not None and failed.module != err.layer, (where, shown.text)
    if diagnosis.shown.complete:
        tally[case.mistake, "fixed"] += 1
