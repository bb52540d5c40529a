"""The size-lock pre-check never skips a Linear that double the size would break.

For every model of the corpora: when the observed trace says no Linear can be
locked to the input size, a trace at double the spatial size must not fail at a
Linear (the proof the rule would otherwise run). And the common heads are
classified as they are: behind an adaptive pooling, free; behind a flatten of a
map, or a map upsampled back to the input's size, possibly locked.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from benchmarks.models import resnet50
from pytest_cnnshape import ShapeMismatchError, trace
from pytest_cnnshape.inspection.observe import observed_trace
from pytest_cnnshape.inspection.rules.model import _doubled
from pytest_cnnshape.tracing.inputs import parse_inputs
from pytest_cnnshape.tracing.request import TraceRequest
from tests.corpus.inspection_zoo import fixed_size_classifier, softmax_classifier
from tests.corpus.training_zoo import TRAINING_ZOO
from tests.corpus.zoo import ZOO

MODELS: dict[str, tuple[Any, Any]] = {**ZOO, **{f"training {k}": v for k, v in TRAINING_ZOO.items()}}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_a_model_called_free_runs_its_linears_at_double_the_size(name: str) -> None:
    factory, inputs = MODELS[name]
    observation = observed_trace(TraceRequest.of(factory(), inputs))
    doubled = _doubled(parse_inputs(inputs))
    if observation.linear_may_be_locked or doubled is None:
        return
    failed_at = None
    try:
        trace(factory(), doubled)
    except ShapeMismatchError as err:
        failed_at = (err.layer, err.module_type)
    assert failed_at is None or failed_at[1] != "Linear", f"{name}: called free, but {failed_at} is locked"


class PyramidHead(nn.Module):
    """A pooled branch upsampled back to the map's own size, then flattened into a Linear."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.pool = nn.AdaptiveAvgPool2d(2)
        self.fc = nn.Linear(4 * 16 * 16, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        up = F.interpolate(self.pool(y), size=y.shape[2:], mode="nearest")
        return self.fc(torch.flatten(up, 1))


class MeanHead(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv, self.fc = nn.Conv2d(3, 8, 3), nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv(x).mean((2, 3)))


@pytest.mark.parametrize(
    ("factory", "inputs", "locked"),
    [
        (resnet50, (1, 3, 64, 64), False),
        (softmax_classifier, (2, 3, 16, 16), False),
        (fixed_size_classifier, (2, 1, 28, 28), True),
        (PyramidHead, (1, 3, 16, 16), True),
        (MeanHead, (1, 3, 16, 16), True),  # not proven free: the second trace decides
    ],
)
def test_common_heads(factory: Any, inputs: tuple[int, ...], locked: bool) -> None:
    assert observed_trace(TraceRequest.of(factory(), inputs)).linear_may_be_locked is locked
