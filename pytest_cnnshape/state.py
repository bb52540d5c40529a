"""Leave the model exactly as it was: the guarantee every trace makes.

A trace flips training flags, may run BatchNorm in train mode, draws random
numbers (dropout, inputs) and, on meta, has forward code see swapped tensors. The
snapshot taken here undoes all of it, also when the forward raises: training flags
of every submodule, the global RNG (CPU and initialised CUDA devices), buffers
of a real forward (running stats, ``num_batches_tracked``: copied, they are small) and plain tensor
attributes a forward replaced. Parameters are never copied (that would cost the
model's size on every trace); one changed in place by a real forward is reported.

On meta, ``meta_weights`` swaps every parameter and buffer for a meta twin in the
modules' own registries and puts the very same objects back afterwards. (It does
not use ``torch.func.functional_call``: with a module reachable under two names,
torch 2.13's ``tie_weights=True`` leaves the meta tensors behind in the model.)
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

_INTERNAL_DICTS = frozenset({"_parameters", "_buffers", "_modules"})


def _rng_state() -> tuple[torch.Tensor, list[torch.Tensor] | None]:
    cuda = None
    if torch.cuda.is_available() and torch.cuda.is_initialized():  # type: ignore[no-untyped-call]
        cuda = torch.cuda.get_rng_state_all()
    return torch.get_rng_state(), cuda


def _set_rng_state(state: tuple[torch.Tensor, list[torch.Tensor] | None]) -> None:
    cpu, cuda = state
    torch.set_rng_state(cpu)
    if cuda is not None:
        torch.cuda.set_rng_state_all(cuda)


def _tensor_attributes(module: nn.Module) -> list[tuple[str, Any]]:
    """Plain (unregistered) tensor attributes; old-style hooks like weight_norm set these."""
    return [
        (k, v) for k, v in vars(module).items()
        if k not in _INTERNAL_DICTS and isinstance(v, torch.Tensor)
    ]


@contextmanager
def preserved(model: nn.Module, *, real_run: bool, train: bool) -> Iterator[None]:
    """Run the body with ``model`` in the wanted mode; restore everything afterwards."""
    modules = list(model.modules())
    flags = [m.training for m in modules]
    attributes = [(m, _tensor_attributes(m)) for m in modules]
    attribute_keys = [(m, set(vars(m))) for m, _ in attributes]
    rng = _rng_state()
    buffers: list[tuple[torch.Tensor, torch.Tensor]] = []
    params: list[tuple[str, torch.Tensor, int]] = []
    if real_run:
        with torch.no_grad():
            buffers = [
                (b, b.clone()) for b in model.buffers() if not torch.nn.parameter.is_lazy(b)
            ]
        params = [(n, p, p._version) for n, p in model.named_parameters()]
    try:
        model.train(train)
        yield
    finally:
        for m, flag in zip(modules, flags, strict=True):
            m.training = flag
        for m, attrs in attributes:
            for key, value in attrs:
                if vars(m).get(key) is not value:
                    object.__setattr__(m, key, value)
        for m, keys in attribute_keys:
            for key in set(vars(m)) - keys:
                if isinstance(vars(m)[key], torch.Tensor):
                    object.__delattr__(m, key)
        _set_rng_state(rng)
        if buffers:
            with torch.no_grad():
                # Native kernels (BatchNorm's running stats) update buffers without
                # bumping their version counter, so every buffer is put back.
                for buf, saved in buffers:
                    buf.copy_(saved)
        changed = [n for n, p, version in params if p._version != version]
        if changed:
            warnings.warn(
                f"the model's forward changed parameter(s) {', '.join(changed[:5])} in place "
                "during a real (non-meta) trace; trace on device='meta' to leave them "
                "untouched",
                RuntimeWarning,
                stacklevel=4,
            )


def meta_twin(t: torch.Tensor) -> torch.Tensor:
    """A meta tensor like ``t`` (same class for parameters, lazy ones stay lazy)."""
    if isinstance(t, torch.nn.parameter.UninitializedParameter):
        return torch.nn.parameter.UninitializedParameter(  # type: ignore[call-arg]
            requires_grad=t.requires_grad, device="meta", dtype=t.dtype)
    twin = torch.empty_like(t, device="meta")
    if isinstance(t, nn.Parameter):
        return nn.Parameter(twin, requires_grad=t.requires_grad)
    return twin


@contextmanager
def meta_weights(model: nn.Module) -> Iterator[None]:
    """Swap parameters and buffers for meta twins (tied tensors share one twin)."""
    twins: dict[int, torch.Tensor] = {}
    swapped: list[tuple[dict[str, Any], str, Any]] = []
    try:
        for module in model.modules():
            registries: tuple[dict[str, Any], ...] = (module._parameters, module._buffers)
            for registry in registries:
                for name, tensor in registry.items():
                    if tensor is None:
                        continue
                    twin = twins.get(id(tensor))
                    if twin is None:
                        twin = twins[id(tensor)] = meta_twin(tensor)
                    swapped.append((registry, name, tensor))
                    registry[name] = twin
        yield
    finally:
        for registry, name, tensor in reversed(swapped):
            registry[name] = tensor
