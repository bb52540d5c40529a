"""Helpers the tests share: an independent observer of a forward, and model state snapshots.

``observe`` runs a plain CPU forward watched by hooks registered by hand: the
tracer's records are compared with what it sees, and it shares no code with the
tracer. ``snapshot``/``assert_same`` check that a model is exactly as it was.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn


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


def make_inputs(spec: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    def make(v: Any) -> Any:
        if isinstance(v, tuple) and all(isinstance(d, int) for d in v):
            return torch.randn(v)
        if isinstance(v, list):
            return [make(x) for x in v]
        return v

    if isinstance(spec, dict):
        return (), {k: make(v) for k, v in spec.items()}
    if isinstance(spec, tuple):
        return (make(spec),), {}
    return tuple(make(v) for v in spec), {}


def observe(model: nn.Module, spec: Any) -> tuple[list[tuple[Any, ...]], Any]:
    """(name, type, depth, call, input shapes, output shape) per call, and the output."""
    model = copy.deepcopy(model).eval()
    names = {id(m): n for n, m in model.named_modules()}
    rows: list[list[Any]] = []
    stack: list[int] = []
    counts: dict[int, int] = {}
    handles = []

    def pre(m: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        n = counts.get(id(m), 0)
        counts[id(m)] = n + 1
        rows.append([names[id(m)], type(m).__name__, len(stack), n, tuple(shapes(a) for a in args), None])
        stack.append(len(rows) - 1)

    def post(m: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> None:
        rows[stack.pop()][5] = shapes(out)

    for m in model.modules():
        handles.append(m.register_forward_pre_hook(pre, with_kwargs=True))
        handles.append(m.register_forward_hook(post, with_kwargs=True))
    args, kwargs = make_inputs(spec)
    with torch.no_grad():
        out = model(*args, **kwargs)
    for h in handles:
        h.remove()
    return [tuple(r) for r in rows], shapes(out)


def snapshot(model: nn.Module) -> dict[str, object]:
    return {
        "state": {k: v.clone() for k, v in model.state_dict(keep_vars=True).items()},
        "identity": {k: id(v) for k, v in model.state_dict(keep_vars=True).items()},
        "training": [(n, m.training) for n, m in model.named_modules()],
        "requires_grad": [(n, p.requires_grad) for n, p in model.named_parameters()],
        "grads": [(n, p.grad) for n, p in model.named_parameters()],
        "hooks": [(n, len(m._forward_hooks), len(m._forward_pre_hooks)) for n, m in model.named_modules()],
        "devices": {t.device for t in model.state_dict().values()},
    }


def assert_same(before: dict[str, object], model: nn.Module) -> None:
    after = snapshot(model)
    assert after["identity"] == before["identity"]
    for key, value in before["state"].items():  # type: ignore[union-attr]
        now = after["state"][key]  # type: ignore[index]
        assert torch.equal(now, value), key
    for key in ("training", "requires_grad", "grads", "hooks", "devices"):
        assert after[key] == before[key], key
