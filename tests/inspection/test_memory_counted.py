"""The memory estimate without autograd: counted op by op, in the report's own forward.

A training step's saved tensors are worked out from the ops of a forward that runs
without autograd (``saves.saved_by``), so the estimate needs no second forward with a
graph and never wakes torch's Python kernels. The truth here is autograd itself (the
same model estimated with a recording forward) and a real CPU training step
(``benchmarks/measure.py``); where the count cannot stand for a training step (code
that reads the mode or autograd's state, an op with unknown saves), the estimate falls
back to autograd and stays exact.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from benchmarks import models as zoo
from benchmarks.measure import saved_tensors
from pytest_cnnshape import estimate_memory
from pytest_cnnshape.diagnostics.explain import watched
from pytest_cnnshape.inspection import memory
from pytest_cnnshape.inspection.collect import record_memory, report_trace
from pytest_cnnshape.tracing.request import TraceRequest
from tests.corpus.training_zoo import TRAINING_ZOO

MODELS = {
    **TRAINING_ZOO,
    "resnet18 (zoo)": (zoo.resnet18, (2, 3, 64, 64)),
    "vgg11 (Dropout after a Linear)": (zoo.vgg11, (2, 3, 32, 32)),
    "mobilenet_v2 (ReLU6, depthwise)": (zoo.mobilenet_v2, (2, 3, 64, 64)),
}


def _with_autograd(request: TraceRequest) -> dict[str, object]:
    """The estimate of a forward with autograd recording: the reference for the count."""
    recording = memory._MemoryPass()
    try:
        with torch.autograd.graph.saved_tensors_hooks(recording.pack, memory._unpack):
            result = watched(request, (recording,), grad=True)
    finally:
        recording.close()
    return memory.estimate(request, recording, result).to_dict()


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("train", [True, False])
def test_the_count_equals_autograd_on_every_zoo_model(name: str, train: bool) -> None:
    factory, shape = MODELS[name]
    request = TraceRequest.of(factory(), shape, device="meta", train=train)
    assert memory.counts_without_autograd(request.view)
    counting = memory.counting_pass()
    result = watched(request, (counting,))
    counting.close()
    assert counting.unknown is None
    assert memory.estimate(request, counting, result).to_dict() == _with_autograd(request)


@pytest.mark.parametrize("name", MODELS)
def test_the_reports_evaluation_forward_stands_for_a_training_step(name: str) -> None:
    """The report traces in evaluation mode; the estimate it records from that same forward
    is the one a training-mode estimate of its own gives (dropout noise, batch statistics)."""
    factory, shape = MODELS[name]
    model = factory().eval()
    request = TraceRequest.of(model, shape, device="meta")
    _, observation = report_trace(request, memory=True)
    assert not isinstance(observation, dict)
    assert observation.memory is not None and memory.counted(observation.memory)
    from_the_report = record_memory({}, request, observation=observation)
    on_its_own = record_memory({}, request)
    assert from_the_report == on_its_own
    assert from_the_report["train"] is True
    assert from_the_report == {
        **_with_autograd(request.with_mode(True)),
        **{k: from_the_report[k] for k in ("batch", "rebatched", "budget")},
    }


class ReadsItsMode(nn.Module):
    """A stochastic-depth block: in training, the branch is sometimes skipped."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.branch = nn.Conv2d(8, 8, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.conv(x))
        if self.training:
            return x + self.branch(x) * 0.5
        return x + self.branch(x)


class SwitchesAutogradOff(nn.Module):
    """A frozen stem, run under ``torch.no_grad()`` inside forward: it saves nothing."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3)
        self.head = nn.Conv2d(8, 4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            x = torch.relu(self.stem(x))
        return self.head(x)


class UnknownOp(nn.Module):
    """An op whose saves the count does not know (``cumsum`` over the channels)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cumsum(self.conv(x), dim=1) * torch.sigmoid(self.conv(x))


@pytest.mark.parametrize("factory", [ReadsItsMode, SwitchesAutogradOff, UnknownOp])
def test_what_the_count_cannot_stand_for_is_counted_with_autograd(factory: type[nn.Module]) -> None:
    torch.manual_seed(0)
    model = factory()
    request = TraceRequest.of(model, (2, 3, 12, 12), device="meta", train=True)
    counting = memory.counting_pass()
    watched(request, (counting,))
    counting.close()
    assert not (memory.counts_without_autograd(request.view) and memory.counted(counting))
    estimate = estimate_memory(model, (2, 3, 12, 12), device="meta")
    real = saved_tensors(model, torch.randn(2, 3, 12, 12))
    assert (estimate.saved_activation_bytes, estimate.saved_tensors) == (real.bytes, real.count)
    assert estimate.grad_bytes == real.grad_bytes


def test_the_unknown_op_is_named() -> None:
    counting = memory.counting_pass()
    watched(TraceRequest.of(UnknownOp(), (1, 3, 8, 8), device="meta"), (counting,))
    assert counting.unknown is not None and "cumsum" in counting.unknown
