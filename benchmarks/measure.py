"""What one real training step takes on the CPU: the reference the memory estimate is checked against.

Independent of pytest-cnnshape's own code on purpose: saved tensors are counted by
a plain ``saved_tensors_hooks`` pair keyed by real data pointers, the peak by the
allocations torch's profiler records. Used by ``tests/inspection/test_memory.py``
and ``benchmarks/memory_accuracy.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn


def _tensors(value: Any) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in _tensors(v)]
    if isinstance(value, dict):
        return [t for v in value.values() for t in _tensors(v)]
    return []


def _loss(output: Any) -> torch.Tensor:
    return sum((t.float().sum() for t in _tensors(output) if t.requires_grad), torch.zeros(()))


@dataclass
class SavedTensors:
    """Unique storages autograd saved in one real training forward (weights excluded)."""

    bytes: int
    count: int
    #: Bytes of the model's gradients after the backward.
    grad_bytes: int


def saved_tensors(model: nn.Module, *inputs: torch.Tensor, train: bool = True) -> SavedTensors:
    """Run forward and backward on the CPU, counting what autograd saves for backward.

    The model's mode is set to ``train`` and its gradients are left as the backward
    wrote them (call ``model.zero_grad()`` to drop them).
    """
    model.train(train)
    weights = {t.untyped_storage().data_ptr() for t in (*model.parameters(), *model.buffers())}
    found: dict[int, int] = {}
    keep: list[torch.Tensor] = []

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        ptr = storage.data_ptr()
        if storage.nbytes() and ptr not in weights and ptr not in found:
            found[ptr] = storage.nbytes()
            keep.append(t)  # alive until counted: no pointer is reused for another storage
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        output = model(*inputs)
    _loss(output).backward()
    grads = sum(p.grad.numel() * p.grad.element_size() for p in model.parameters() if p.grad is not None)
    return SavedTensors(sum(found.values()), len(found), grads)


def inference_peak(model: nn.Module, *inputs: torch.Tensor) -> int:
    """The most bytes of tensors alive at once in an eval forward under ``no_grad`` on the CPU.

    Every tensor a torch function returns (and the inputs, held throughout) is
    followed by a weak reference; a storage counts while any of its tensors is alive,
    keyed by its data pointer; the model's weights are left out.
    """
    import weakref

    from torch.overrides import TorchFunctionMode

    model.eval()
    weights = {t.untyped_storage().data_ptr() for t in (*model.parameters(), *model.buffers())}
    live: dict[int, list[int]] = {}
    refs: dict[int, Any] = {}
    totals = {"current": 0, "peak": 0}

    def freed(ptr: int, tid: int) -> None:
        refs.pop(tid, None)
        entry = live[ptr]
        entry[1] -= 1
        if not entry[1]:
            totals["current"] -= entry[0]
            del live[ptr]

    def follow(t: torch.Tensor) -> None:
        storage = t.untyped_storage()
        ptr = storage.data_ptr()
        if id(t) in refs or ptr in weights or not storage.nbytes():
            return
        if ptr in live:
            live[ptr][1] += 1
        else:
            live[ptr] = [storage.nbytes(), 1]
            totals["current"] += storage.nbytes()
            totals["peak"] = max(totals["peak"], totals["current"])
        tid = id(t)
        refs[tid] = weakref.ref(t, lambda _, ptr=ptr, tid=tid: freed(ptr, tid))

    class Follow(TorchFunctionMode):
        def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
            out = func(*args, **(kwargs or {}))
            with torch._C.DisableTorchFunction():
                for t in _tensors(out):
                    follow(t)
            return out

    for x in inputs:
        follow(x)
    with torch.no_grad(), Follow():
        model(*inputs)
    refs.clear()
    return totals["peak"]


def state_bytes(optimizer: torch.optim.Optimizer) -> int:
    """Bytes of every tensor in an optimizer's state."""
    total = 0
    for state in optimizer.state.values():
        for value in state.values():
            for t in _tensors(value):
                total += t.numel() * t.element_size()
    return total


def peak_of_step(step: Callable[[], object]) -> int:
    """The most bytes the CPU allocator held at once during ``step()``, above what was
    held before it (from the allocation events of ``torch.profiler``)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        step()
    events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]  # type: ignore[union-attr]
    events.sort(key=lambda e: e.start_ns())
    current = peak = 0
    for event in events:
        current += event.nbytes()
        peak = max(peak, current)
    return peak


def training_step_peak(
    model: nn.Module, inputs: tuple[torch.Tensor, ...], optimizer: torch.optim.Optimizer
) -> int:
    """Peak bytes of one training step on the CPU: what is held before it (parameters,
    buffers, optimizer state, inputs) plus the most the step allocates on top.

    A first step runs unmeasured, so the optimizer's state exists, as in training.
    """
    model.train()

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        _loss(model(*inputs)).backward()
        optimizer.step()

    step()
    optimizer.zero_grad(set_to_none=True)
    held = sum(t.numel() * t.element_size() for t in (*model.parameters(), *model.buffers(), *inputs))
    return held + state_bytes(optimizer) + peak_of_step(step)
