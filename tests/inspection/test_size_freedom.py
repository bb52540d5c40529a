"""The size-lock pre-check never skips a Linear that double the size would break.

For every model of the corpora: when the observed trace says no Linear can be
locked to the input size, a trace at double the spatial size must not fail at a
Linear (the proof the rule would otherwise run). And the common heads are
classified as they are: behind an adaptive pooling, free; behind a flatten of a
map, or a map upsampled back to the input's size, possibly locked.
"""

from __future__ import annotations

import functools
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from benchmarks.models import resnet50
from pytest_cnnshape.inspection.observe import observed_trace
from pytest_cnnshape.tracing.request import TraceRequest
from tests.corpus.inspection_zoo import fixed_size_classifier, softmax_classifier
from tests.corpus.training_zoo import TRAINING_ZOO
from tests.corpus.zoo import ZOO
from tests.truth import model_dtype, plain_inputs, run_on

MODELS: dict[str, tuple[Any, Any]] = {**ZOO, **{f"training {k}": v for k, v in TRAINING_ZOO.items()}}


def _doubled(value: Any) -> Any:
    """The inputs with every spatial side doubled (tensors of 3+ dims), made with plain torch."""
    if isinstance(value, torch.Tensor) and value.dim() >= 3:
        return torch.randn(*value.shape[:2], *(2 * side for side in value.shape[2:]))
    if isinstance(value, (list, tuple)):
        return type(value)(_doubled(v) for v in value)
    if isinstance(value, dict):
        return {k: _doubled(v) for k, v in value.items()}
    return value


def _linear_calls(model: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    """How many Linear calls a plain forward makes (hooks registered by hand)."""
    calls: list[nn.Module] = []
    handles = [m.register_forward_pre_hook(lambda m, a: calls.append(m)) for m in model.modules()]
    try:
        _, failed = run_on(model, args, kwargs, device="meta")
    finally:
        for h in handles:
            h.remove()
    assert failed is None, failed
    return sum(isinstance(m, nn.Linear) for m in calls)


@functools.cache
def _facts(name: str) -> tuple[bool, int, str | None]:
    """Whether the model is called possibly locked; with plain torch, how many Linear calls
    its forward makes and which Linear (if any) breaks at double the spatial size."""
    factory, inputs = MODELS[name]
    locked = observed_trace(TraceRequest.of(factory(), inputs)).linear_may_be_locked
    model = factory()
    args, kwargs = plain_inputs(inputs, model_dtype(model))
    linears = _linear_calls(model, args, kwargs)
    model = factory()
    _, failed = run_on(model, _doubled(args), _doubled(kwargs), device="meta")  # plain torch on meta
    breaks = failed is not None and isinstance(model.get_submodule(failed.module), nn.Linear)
    return locked, linears, failed.module if failed is not None and breaks else None


@pytest.mark.parametrize("name", sorted(MODELS))
def test_a_model_called_free_runs_its_linears_at_double_the_size(name: str) -> None:
    """Against plain torch: a model whose Linear breaks at double the spatial size is never
    called free; a model called possibly locked does call a Linear."""
    locked, linears, breaking = _facts(name)
    if breaking is not None:
        assert locked, f"{name}: called free, but {breaking} (Linear) breaks at double the size"
    if locked:
        assert linears > 0, f"{name}: called possibly locked without a single Linear call"


def test_the_corpus_has_models_of_each_kind() -> None:
    """Some models' Linear breaks at double the size, and some free ones do have a Linear."""
    facts = [_facts(name) for name in MODELS]
    breaking = sum(f[2] is not None for f in facts)
    free_with_a_linear = sum(not f[0] and f[1] > 0 for f in facts)
    assert breaking >= 3 and free_with_a_linear >= 3, (breaking, free_with_a_linear)


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
