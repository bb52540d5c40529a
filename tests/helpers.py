"""Helpers the tests share: an independent observer of a forward, and model state snapshots.

``observe`` runs a plain CPU forward watched by hooks registered by hand: the
tracer's records are compared with what it sees, and it shares no code with the
tracer. ``snapshot``/``assert_same`` check that a model is exactly as it was.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn
from torch.nn.parameter import is_lazy


def shapes(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return tuple(value.shape)
    if isinstance(value, tuple) and hasattr(value, "_fields"):
        return type(value)(*[shapes(v) for v in value])
    if isinstance(value, tuple):
        return tuple(shapes(v) for v in value)
    if isinstance(value, list):
        return [shapes(v) for v in value]
    if isinstance(value, Mapping):
        return {k: shapes(v) for k, v in value.items()}
    return None


def make_inputs(spec: Any, device: str = "cpu") -> tuple[tuple[Any, ...], dict[str, Any]]:
    def make(v: Any) -> Any:
        if isinstance(v, tuple) and all(isinstance(d, int) for d in v):
            return torch.randn(v, device=device)
        if isinstance(v, list):
            return [make(x) for x in v]
        return v

    if isinstance(spec, dict):
        return (), {k: make(v) for k, v in spec.items()}
    if isinstance(spec, tuple):
        return (make(spec),), {}
    return tuple(make(v) for v in spec), {}


def fresh_copy(model: nn.Module) -> nn.Module:
    """``copy.deepcopy``, also of uninitialised lazy buffers (torch 2.13 cannot copy those)."""
    from torch.nn.parameter import UninitializedBuffer

    memo: dict[int, Any] = {
        id(b): UninitializedBuffer(device=b.device, dtype=b.dtype)
        for b in model.buffers()
        if isinstance(b, UninitializedBuffer)
    }
    return copy.deepcopy(model, memo)


def observe(model: nn.Module, spec: Any, device: str = "cpu") -> tuple[list[tuple[Any, ...]], Any]:
    """(name, type, depth, call, input shapes, output shape) per call, and the output; on
    ``device`` (``"meta"``: a plain forward on a meta copy, no compute)."""
    model = fresh_copy(model).eval().to(device)
    names = {id(m): n for n, m in model.named_modules()}
    # the class each module has before the forward: a lazy layer becomes its cls_to_become
    # (LazyLinear -> Linear) in its own pre-hook, before ours runs
    classes = {id(m): type(m).__name__ for m in model.modules()}
    rows: list[list[Any]] = []
    stack: list[int] = []
    counts: dict[int, int] = {}
    handles = []

    def pre(m: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        n = counts.get(id(m), 0)
        counts[id(m)] = n + 1
        rows.append([names[id(m)], classes[id(m)], len(stack), n, tuple(shapes(a) for a in args), None])
        stack.append(len(rows) - 1)

    def post(m: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> None:
        rows[stack.pop()][5] = shapes(out)

    for m in model.modules():
        handles.append(m.register_forward_pre_hook(pre, with_kwargs=True))
        handles.append(m.register_forward_hook(post, with_kwargs=True))
    args, kwargs = make_inputs(spec, device)
    with torch.no_grad():
        out = model(*args, **kwargs)
    for h in handles:
        h.remove()
    return [tuple(r) for r in rows], shapes(out)


def _state_value(v: torch.Tensor) -> Any:
    """A copy of a tensor's value; for an uninitialised lazy tensor, the fact that it is one."""
    if is_lazy(v):
        return ("uninitialised", type(v).__name__)
    return v.clone()


def snapshot(model: nn.Module) -> dict[str, object]:
    """Everything a trace must leave as it was; lazy layers included (and still lazy)."""
    state = model.state_dict(keep_vars=True)
    return {
        "state": {k: _state_value(v) for k, v in state.items()},
        "identity": {k: id(v) for k, v in state.items()},
        "classes": [(n, type(m).__name__) for n, m in model.named_modules()],
        "attributes": [(n, sorted(vars(m))) for n, m in model.named_modules()],
        "training": [(n, m.training) for n, m in model.named_modules()],
        "requires_grad": [(n, p.requires_grad) for n, p in model.named_parameters()],
        "grads": [(n, p.grad) for n, p in model.named_parameters()],
        "hooks": [(n, len(m._forward_hooks), len(m._forward_pre_hooks)) for n, m in model.named_modules()],
        "devices": {t.device for t in state.values() if not is_lazy(t)},
    }


def assert_same(before: dict[str, object], model: nn.Module) -> None:
    after = snapshot(model)
    assert after["identity"] == before["identity"]
    for key, value in before["state"].items():  # type: ignore[union-attr]
        now = after["state"][key]  # type: ignore[index]
        if isinstance(value, tuple):
            assert now == value, key
        else:
            assert isinstance(now, torch.Tensor) and torch.equal(now, value), key
    for key in ("classes", "attributes", "training", "requires_grad", "grads", "hooks", "devices"):
        assert after[key] == before[key], key


def materialized_counts(model: nn.Module, spec: Any) -> dict[str, int]:
    """Parameters per module (children's included) after a real forward of a copy.

    For a lazy model, what its layers hold once initialised; for any other, its counts.
    """
    model = fresh_copy(model).eval()
    args, kwargs = make_inputs(spec)
    with torch.no_grad():
        model(*args, **kwargs)
    return {n: sum(p.numel() for p in m.parameters()) for n, m in model.named_modules()}


#: How many times its usual budget each property test runs: 1 in ``make test``, more under
#: ``make test-explore`` (``tests/explore.py`` sets it), which also draws from a random seed.
EXPLORE_SCALE = int(os.environ.get("CNNSHAPE_EXPLORE_SCALE", "1"))


def examples(n: int) -> int:
    """A property test's ``max_examples``: ``n`` in the deterministic run, scaled when exploring."""
    return n * EXPLORE_SCALE


def spec_tensors(spec: Any, dtype: torch.dtype) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """The tensors an ``InputSpec`` (what ``patches.apply`` returns) stands for, made with plain
    torch on the CPU: shapes become ``random_tensor``s of their dtype (else ``dtype``)."""
    from pytest_cnnshape.tracing.inputs import Arg, ShapeLeaf
    from tests.truth import random_tensor

    def make(value: Any) -> Any:
        if isinstance(value, ShapeLeaf):
            return random_tensor(value.shape, value.dtype or dtype)
        if isinstance(value, Arg):
            return value.value
        if isinstance(value, (tuple, list)):
            return type(value)(make(v) for v in value)
        if isinstance(value, dict):
            return {k: make(v) for k, v in value.items()}
        return value

    return tuple(make(a) for a in spec.args), {k: make(v) for k, v in spec.kwargs.items()}
