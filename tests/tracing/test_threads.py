"""Traces under real threads, and traces started from inside a forward."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch import nn

from pytest_cnnshape import ShapeMismatchError, trace
from pytest_cnnshape.tracing.records import ShapeTrace

THREADS = 6
ROUNDS = 15


def _net(width: int = 8) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, width, 3, padding=1),
        nn.BatchNorm2d(width),
        nn.ReLU(),
        nn.Sequential(nn.Conv2d(width, width, 3), nn.ReLU()),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(width, 10),
    )


def _layers(tr: ShapeTrace) -> list[tuple[str, str, int, Any]]:
    return [(r.name, r.type, r.call, r.output_shape) for r in tr.layers]


def _hammer(work: Callable[[int], Any]) -> tuple[list[Any], list[BaseException]]:
    """Run ``work(thread index)`` ROUNDS times in each of THREADS threads released together."""
    start = threading.Barrier(THREADS)
    results: list[Any] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def body(index: int) -> None:
        start.wait()
        for _ in range(ROUNDS):
            try:
                out = work(index)
            except BaseException as exc:
                with lock:
                    errors.append(exc)
            else:
                with lock:
                    results.append((index, out))

    threads = [threading.Thread(target=body, args=(i,)) for i in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads)
    return results, errors


@pytest.mark.parametrize("device", ["meta", "cpu"])
def test_threads_tracing_one_model_get_its_layers_and_leave_its_weights(device: str) -> None:
    torch.manual_seed(0)
    model = _net()
    model.train()
    expected = _layers(trace(model, (2, 3, 16, 16), device=device))
    tensors = {name: (t, t.detach().clone()) for name, t in model.state_dict(keep_vars=True).items()}
    results, errors = _hammer(lambda i: _layers(trace(model, (2, 3, 16, 16), device=device)))
    assert errors == []
    assert len(results) == THREADS * ROUNDS
    assert all(layers == expected for _, layers in results)
    for name, t in model.state_dict(keep_vars=True).items():
        original, values = tensors[name]
        assert t is original and not t.is_meta, name
        assert torch.equal(t, values), name
    assert model.training and all(m.training for m in model.modules())
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())


def test_threads_tracing_different_models_see_only_their_own_calls() -> None:
    models = [_net(4 + i) for i in range(THREADS)]
    expected = [_layers(trace(m, (1, 3, 12, 12), device="cpu")) for m in models]
    results, errors = _hammer(lambda i: _layers(trace(models[i], (1, 3, 12, 12), device="cpu")))
    assert errors == []
    assert len(results) == THREADS * ROUNDS
    assert all(layers == expected[i] for i, layers in results)


def test_threads_tracing_a_model_and_its_part_on_meta_leave_both_intact() -> None:
    model = _net()
    part = model[3]
    whole, piece = _layers(trace(model, (1, 3, 8, 8))), _layers(trace(part, (1, 8, 8, 8)))
    weights = [p for p in model.parameters()]

    def work(i: int) -> Any:
        if i % 2:
            return _layers(trace(part, (1, 8, 8, 8), device="meta"))
        return _layers(trace(model, (1, 3, 8, 8), device="meta"))

    results, errors = _hammer(work)
    assert errors == []
    assert all(layers == (piece if i % 2 else whole) for i, layers in results)
    assert [p for p in model.parameters()] == weights and not any(p.is_meta for p in weights)


class Reentrant(nn.Module):
    """A forward that traces one of its own blocks, as a debugging print would."""

    def __init__(self, report: Callable[[ShapeTrace], None]) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3)
        self.block = nn.Sequential(nn.Conv2d(4, 4, 1), nn.ReLU())
        self.head = nn.Flatten()
        self.report = report
        self.enabled = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        if self.enabled:
            self.report(trace(self.block, tuple(x.shape)))
        return self.head(self.block(x))


@pytest.mark.parametrize("device", ["meta", "cpu"])
def test_a_trace_inside_a_forward_records_into_its_own_trace_only(device: str) -> None:
    traced: list[ShapeTrace] = []
    model = Reentrant(traced.append)
    model.enabled = False
    plain = _layers(trace(model, (1, 3, 8, 8), device=device))
    model.enabled = True
    outer = trace(model, (1, 3, 8, 8), device=device)
    assert _layers(outer) == plain
    assert [r.name for r in outer.layers] == ["", "stem", "block", "block.0", "block.1", "head"]
    (inner,) = traced
    assert [(r.name, r.output_shape) for r in inner.layers] == [
        ("", (1, 4, 6, 6)),
        ("0", (1, 4, 6, 6)),
        ("1", (1, 4, 6, 6)),
    ]
    assert not any(p.is_meta for p in model.parameters())


def test_threads_diagnosing_one_broken_model_all_get_the_same_diagnosis() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(100, 10))
    with pytest.raises(ShapeMismatchError) as first:
        trace(model, (1, 3, 8, 8))
    weights = list(model.parameters())

    def work(i: int) -> Any:
        try:
            trace(model, (1, 3, 8, 8), device="meta" if i % 2 else "cpu")
        except ShapeMismatchError as err:
            return err.layer, err.fix, [r.name for r in err.trace.layers]
        return None

    results, errors = _hammer(work)
    assert errors == []
    expected = (first.value.layer, first.value.fix, [r.name for r in first.value.trace.layers])
    assert expected[0] == "2" and expected[1]
    assert all(out == expected for _, out in results)
    assert list(model.parameters()) == weights and not any(p.is_meta for p in weights)
