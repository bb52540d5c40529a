"""One walk over a model's module tree, shared by every step of a trace.

Choosing the device, checking it, snapshotting state, swapping in meta weights,
attaching hooks and counting parameters all need the same lists: every module
once (with every name it is reachable under), every parameter and buffer once.
Walking the tree once per trace instead of once per step keeps a trace's fixed
cost small next to the forward itself (ResNet-50 has 161 parameter tensors in
151 modules).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.parameter import is_lazy


@dataclass(frozen=True, eq=False)
class ModelView:
    """The module tree of ``root`` flattened: each module, parameter and buffer once."""

    root: nn.Module
    #: Every module once, in ``named_modules()`` order (root first).
    modules: tuple[nn.Module, ...]
    #: ``id(module)`` -> its first qualified name (``""`` for the root).
    names: dict[int, str]
    #: ``id(module)`` -> the other names of a module reachable more than once.
    aliases: dict[int, tuple[str, ...]]
    parameters: tuple[nn.Parameter, ...]
    buffers: tuple[torch.Tensor, ...]
    #: True when a module or a parameter is reachable along two paths.
    shared: bool
    #: Every qualified name (aliases too) -> its module.
    by_name: dict[str, nn.Module]
    #: ``id`` of every TorchScript module (scripted or traced): hooks do not fire inside them.
    scripted: frozenset[int] = frozenset()

    @classmethod
    def of(cls, root: nn.Module) -> ModelView:
        """Walk ``root`` once (inside ``shared_views``: once for the whole block)."""
        cache = _SHARED.get()
        if cache is not None:
            hit = cache.get(id(root))
            if hit is not None and hit.root is root:
                return hit
        view = cls._walk(root)
        if cache is not None:
            cache[id(root)] = view
        return view

    @classmethod
    def _walk(cls, root: nn.Module) -> ModelView:
        names: dict[int, str] = {}
        extra: dict[int, list[str]] = {}
        modules: list[nn.Module] = []
        by_name: dict[str, nn.Module] = {}
        for name, module in root.named_modules(remove_duplicate=False):
            by_name[name] = module
            key = id(module)
            if key in names:
                extra[key].append(name)
            else:
                names[key] = name
                extra[key] = []
                modules.append(module)
        params: dict[int, nn.Parameter] = {}
        buffers: dict[int, torch.Tensor] = {}
        shared = any(extra.values())
        script = torch.jit.ScriptModule
        scripted = frozenset(id(m) for m in modules if isinstance(m, script))
        for module in modules:
            for p in module._parameters.values():
                if p is not None:
                    shared = shared or id(p) in params
                    params[id(p)] = p
            for b in module._buffers.values():
                if b is not None:
                    buffers[id(b)] = b
        return cls(
            root=root,
            modules=tuple(modules),
            names=names,
            aliases={k: tuple(v) for k, v in extra.items() if v},
            parameters=tuple(params.values()),
            buffers=tuple(buffers.values()),
            shared=shared,
            by_name=by_name,
            scripted=scripted,
        )

    def tensors(self) -> tuple[torch.Tensor, ...]:
        """Parameters, then buffers."""
        return (*self.parameters, *self.buffers)

    def has_lazy(self) -> bool:
        """True while a lazy module (LazyLinear, ...) has not been initialised."""
        return any(is_lazy(t) for t in self.tensors())

    def devices(self) -> set[torch.device]:
        """Devices the materialised weights live on."""
        return {t.device for t in self.tensors() if not is_lazy(t)}

    def module(self, name: str) -> nn.Module | None:
        """The module a qualified name (or alias) refers to."""
        return self.by_name.get(name)

    def name_of(self, module: nn.Module) -> str:
        """Qualified name of a module of this model (``"?"`` for a stranger)."""
        return self.names.get(id(module), "?")


#: ``id(root) -> view`` while ``shared_views`` is active (None: every call walks).
_SHARED: ContextVar[dict[int, ModelView] | None] = ContextVar("cnnshape_shared_views", default=None)


@contextmanager
def shared_views() -> Iterator[None]:
    """One walk per model for the block: for steps that only read a model whose tree does
    not change meanwhile (a report's trace and inspection), each of which asks for its view."""
    token = _SHARED.set({})
    try:
        yield
    finally:
        _SHARED.reset(token)
