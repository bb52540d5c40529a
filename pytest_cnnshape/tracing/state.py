"""Leave the model exactly as it was: the guarantee every trace makes.

A trace flips training flags, may run BatchNorm in train mode, draws random
numbers (dropout, inputs) and, on meta, has forward code see swapped tensors. The
snapshot taken here undoes all of it, also when the forward raises: training flags
of every submodule, the global RNG (CPU and initialised CUDA devices), the
values of every buffer a real forward may write (running stats and
``num_batches_tracked`` of normalisation layers in training mode, any buffer of a
user module or of a module with hooks: copied, they are small), and every
attribute or registry entry a forward rebinds, adds or deletes (``self.cache =
y``, ``self.count = self.count + 1`` on a buffer), and the contents of the plain
lists, dicts and sets in a module's ``__dict__`` (``self.history.append(x)``,
``self.stats["calls"] += 1``: shallow copies, put back in place, so the user's
container is the same object with the same items). Parameters are never copied
(that would cost the model's size on every trace); one changed in place by a real
forward is reported.

A TorchScript module keeps its state in the interpreter: its training flags and
attributes (``self.count += 1`` compiles) are read and put back through
TorchScript, and all its buffers are copied, since a compiled forward may write
any of them.

On meta, ``meta_weights`` swaps every parameter and buffer for a meta twin in the
modules' own registries and puts the very same objects back afterwards. (It does
not use ``torch.func.functional_call``: with a module reachable under two names,
torch 2.13's ``tie_weights=True`` leaves the meta tensors behind in the model.)
"""

from __future__ import annotations

import contextlib
import inspect
import operator
import os
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache
from typing import Any

import torch
from torch import nn
from torch.nn.parameter import is_lazy

from .metarules import empty_like
from .modelview import ModelView

_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))
_CONTEXTLIB = os.path.realpath(contextlib.__file__)


def user_stacklevel() -> int:
    """The ``stacklevel`` that makes a warning point at the user's line, not at ours.

    Counts the frames above the caller that belong to pytest_cnnshape (or to
    ``contextlib``, which runs our context managers), whatever path led here:
    ``trace()``, a fixture, lint.
    """
    frame = inspect.currentframe()
    frame = frame.f_back if frame is not None else None  # the function that warns: level 1
    level = 1
    while frame is not None and frame.f_back is not None:
        filename = os.path.realpath(frame.f_code.co_filename)
        if not (filename.startswith(_PACKAGE_DIR + os.sep) or filename == _CONTEXTLIB):
            break
        frame = frame.f_back
        level += 1
    return level


def _rng_state() -> tuple[torch.Tensor, list[torch.Tensor] | None]:
    cuda = None
    if torch.cuda.is_available() and torch.cuda.is_initialized():  # type: ignore[no-untyped-call]
        cuda = torch.cuda.get_rng_state_all()
    return torch.get_rng_state(), cuda


def _set_rng_state(state: tuple[torch.Tensor, list[torch.Tensor] | None]) -> None:
    cpu, cuda = state
    if not torch.equal(torch.get_rng_state(), cpu):
        torch.set_rng_state(cpu)
    if cuda is not None:
        torch.cuda.set_rng_state_all(cuda)


def _default_device() -> torch.device | None:
    """The device ``torch.set_default_device`` set in this thread; None when none is set."""
    context = getattr(torch._GLOBAL_DEVICE_CONTEXT, "device_context", None)
    return None if context is None else torch.device(context.device)


@contextmanager
def kept_process_state() -> Iterator[None]:
    """Put back the global state torch code may change, however the body ends.

    The random generators (CPU, and CUDA once initialised: dropout, inputs, the
    weight initialisation of a layer a diagnosis builds to verify a fix), the default
    dtype and device, and grad mode. Around every trace with its diagnosis
    (``tracer.holding``), every probe and every real forward (``preserved``): a seeded
    test suite draws the same numbers after a check, failed or not.
    """
    rng = _rng_state()
    dtype, device, grad = torch.get_default_dtype(), _default_device(), torch.is_grad_enabled()
    try:
        yield
    finally:
        _set_rng_state(rng)
        if torch.get_default_dtype() != dtype:
            torch.set_default_dtype(dtype)
        if _default_device() != device:
            torch.set_default_device(device)
        torch.set_grad_enabled(grad)


@cache
def _module_keys() -> frozenset[str]:
    """Attributes every nn.Module has (hook dicts, registries, ``training``)."""
    return frozenset(vars(nn.Module()))


def _may_rebind(module: nn.Module) -> bool:
    """Whether a forward might rebind this module's attributes.

    torch's own layers never do in their forward; user classes and any module
    with hooks (feature-capture hooks set ``module.out = ...``; old-style
    weight_norm rebinds ``module.weight``) may. Skipping the others keeps the
    snapshot proportional to the user's own modules.
    """
    return (
        not type(module).__module__.startswith("torch.nn.modules.")
        or bool(module._forward_pre_hooks)
        or bool(module._forward_hooks)
    )


def _same(current: dict[str, Any], saved: dict[str, Any]) -> bool:
    """The same keys bound to the very same objects (no tensor ``==``)."""
    return current.keys() == saved.keys() and all(map(operator.is_, current.values(), saved.values()))


_CONTAINERS = (list, dict, set)


def _put_back(container: Any, saved: Any) -> None:
    """Make ``container`` hold ``saved``'s items again, in place (it stays the same object)."""
    if type(container) is list:
        if len(container) != len(saved) or not all(map(operator.is_, container, saved)):
            container[:] = saved
    elif type(container) is dict:
        if not _same(container, saved):
            container.clear()
            container.update(saved)
    elif len(container) != len(saved) or not container.issuperset(saved):
        container.clear()
        container.update(saved)


class _Attributes:
    """A module's own attributes (beyond nn.Module's standard ones), its containers and registries."""

    __slots__ = ("contents", "module", "own", "saved")

    def __init__(self, module: nn.Module, base: frozenset[str]) -> None:
        d = vars(module)
        self.module = module
        self.own = {k: d[k] for k in d.keys() - base}
        #: Shallow copies of the plain containers among them (exact types: no subclass tricks).
        self.contents = [(v, v.copy()) for v in self.own.values() if type(v) in _CONTAINERS]
        self.saved: tuple[dict[str, Any], ...] = (
            module._parameters.copy(),
            module._buffers.copy(),
            module._modules.copy(),
        )

    def restore(self, base: frozenset[str]) -> None:
        """Rebind what the forward rebound, drop what it added, put back what it deleted."""
        module = self.module
        d = vars(module)
        own = self.own
        current = {k: d[k] for k in d.keys() - base}
        if not _same(current, own):
            for key in current.keys() - own.keys():
                del d[key]
            d.update(own)
        for container, saved in self.contents:
            _put_back(container, saved)
        registries: tuple[dict[str, Any], ...] = (module._parameters, module._buffers, module._modules)
        for registry, saved in zip(registries, self.saved, strict=True):
            if not _same(registry, saved):
                registry.clear()
                registry.update(saved)


class _ScriptAttributes:
    """The plain attributes of a scripted module (``count``, ``mode``) a compiled forward may set."""

    __slots__ = ("module", "saved")

    def __init__(self, module: nn.Module) -> None:
        self.module = module
        concrete = getattr(module, "_concrete_type", None)
        names = concrete.get_attributes() if concrete is not None else {}
        c: Any = module._c
        self.saved = {n: c.getattr(n) for n in names if n != "training"}

    def restore(self) -> None:
        c: Any = self.module._c
        for name, value in self.saved.items():
            if c.getattr(name) is not value:
                c.setattr(name, value)


def _set_training(module: nn.Module, flag: bool, scripted: bool) -> None:
    if scripted:
        module.training = flag  # the interpreter's flag
    else:
        vars(module)["training"] = flag  # nn.Module.__setattr__ is slow and needless here


def _buffers_a_forward_may_change(view: ModelView) -> list[torch.Tensor]:
    """Buffers whose values a real forward may write, in the mode the trace runs in.

    torch's own layers write buffers only in normalisation layers in training mode
    (running stats, ``num_batches_tracked``); user modules and any module with hooks
    may write theirs at any time. Copying only those keeps an eval-mode trace of a
    torch-built network free of snapshot copies.
    """
    seen: dict[int, torch.Tensor] = {}
    for m in view.modules:
        if (
            id(m) in view.scripted
            or _may_rebind(m)
            or (m.training and isinstance(m, nn.modules.batchnorm._NormBase))
        ):
            for b in m._buffers.values():
                if b is not None and not is_lazy(b):
                    seen.setdefault(id(b), b)
    return list(seen.values())


def _train_is_a_no_op(view: ModelView, mode: bool) -> bool:
    """True when ``root.train(mode)`` could change nothing: no override, flags already set."""
    return all(m.training is mode and type(m).train is nn.Module.train for m in view.modules)


def _refuses_mode(module: nn.Module) -> bool:
    """A module whose own ``train``/``eval`` raise: ``ExportedProgram.module()`` sets them on the
    instance (pytorch#151726); its mode is fixed in its graph."""
    return "train" in vars(module) or "eval" in vars(module)


def _set_mode(view: ModelView, mode: bool) -> None:
    """``root.train(mode)``, the model's own overrides honoured; never a call on a module that
    refuses it (its flag, and those of the modules it holds, are left: they change nothing)."""
    refusing = [m for m in view.modules if _refuses_mode(m)]
    if not refusing:
        view.root.train(mode)
        return
    held = {id(m) for r in refusing for m in r.modules()}
    for m in view.modules:
        if id(m) not in held and m.training is not mode:
            _set_training(m, mode, id(m) in view.scripted)


@contextmanager
def preserved(view: ModelView, *, real_run: bool, train: bool) -> Iterator[None]:
    """Run the body with the model in the wanted mode; restore everything afterwards."""
    modules = view.modules
    flags = [m.training for m in modules]
    base = _module_keys()
    script = view.scripted  # their Python side is a view of the interpreter's: _ScriptAttributes
    attributes = [_Attributes(m, base) for m in modules if id(m) not in script and _may_rebind(m)]
    scripted = [_ScriptAttributes(m) for m in modules if id(m) in script] if script else []
    buffers: list[tuple[torch.Tensor, torch.Tensor]] = []
    params: list[tuple[nn.Parameter, int]] = []
    if real_run:
        params = [(p, p._version) for p in view.parameters]
    with kept_process_state():  # the RNG a real forward draws from (dropout), grad mode
        try:
            if not _train_is_a_no_op(view, train):
                _set_mode(view, train)
            if real_run:
                with torch.no_grad():
                    buffers = [(b, b.clone()) for b in _buffers_a_forward_may_change(view)]
            yield
        finally:
            for attrs in attributes:
                attrs.restore(base)
            for saved_attributes in scripted:
                saved_attributes.restore()
            for m, flag in zip(modules, flags, strict=True):
                if m.training is not flag:
                    _set_training(m, flag, id(m) in script)
            if buffers:
                with torch.no_grad():
                    # Native kernels (BatchNorm's running stats) update buffers without
                    # bumping their version counter, so every buffer is put back.
                    for buf, saved in buffers:
                        buf.copy_(saved)
            _warn_changed_parameters(view, params)


def _warn_changed_parameters(view: ModelView, params: list[tuple[nn.Parameter, int]]) -> None:
    """Say which parameters a real forward changed in place (never copied: they are not put back)."""
    changed_ids = {id(p) for p, version in params if p._version != version}
    if changed_ids:
        changed = [n for n, p in view.root.named_parameters() if id(p) in changed_ids]
        warnings.warn(
            f"the model's forward changed parameter(s) {', '.join(changed[:5])} in place "
            "during a real (non-meta) trace; trace on device='meta' to leave them "
            "untouched",
            RuntimeWarning,
            stacklevel=user_stacklevel(),
        )


def lazy_twin(t: torch.Tensor, device: torch.device | str | None = None) -> torch.Tensor:
    """A fresh uninitialised parameter or buffer like the lazy ``t``: its materialisation is its own."""
    from torch.nn.parameter import UninitializedBuffer, UninitializedParameter

    where = t.device if device is None else device
    if isinstance(t, UninitializedParameter):
        return UninitializedParameter(requires_grad=t.requires_grad, device=where, dtype=t.dtype)  # type: ignore[call-arg]
    return UninitializedBuffer(requires_grad=t.requires_grad, device=where, dtype=t.dtype)  # type: ignore[call-arg]


def meta_twin(t: torch.Tensor) -> torch.Tensor:
    """A meta tensor like ``t`` (same class for parameters, lazy ones stay lazy)."""
    if is_lazy(t):
        return lazy_twin(t, "meta")
    twin = empty_like(t, meta=True)
    if isinstance(t, nn.Parameter):
        return nn.Parameter(twin, requires_grad=t.requires_grad)
    return twin


@contextmanager
def meta_weights(view: ModelView, twin: Callable[[torch.Tensor], torch.Tensor] = meta_twin) -> Iterator[None]:
    """Swap parameters and buffers for meta twins (tied tensors share one twin).

    ``twin`` makes them: a symbolic trace swaps in fake tensors the same way.
    """
    twins: dict[int, torch.Tensor] = {}
    swapped: list[tuple[dict[str, Any], str, Any]] = []
    try:
        for module in view.modules:
            registries: tuple[dict[str, Any], ...] = (module._parameters, module._buffers)
            for registry in registries:
                for name, tensor in registry.items():
                    if tensor is None:
                        continue
                    made = twins.get(id(tensor))
                    if made is None:
                        made = twins[id(tensor)] = twin(tensor)
                    swapped.append((registry, name, tensor))
                    registry[name] = made
        yield
    finally:
        for registry, name, tensor in reversed(swapped):
            registry[name] = tensor
