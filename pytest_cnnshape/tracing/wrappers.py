"""Models that come wrapped: what is traced for each, and how the table says so.

* ``torch.compile(model)`` returns an ``OptimizedModule`` whose forward runs
  dynamo, which cannot run under our hooks; it holds the eager module as
  ``_orig_mod`` (the very object the user compiled), and that is traced. Nothing
  is read from or written to the wrapper. The class is recognised by name, so
  tracing never imports ``torch._dynamo`` (seconds of import time).
* ``nn.DataParallel`` / ``DistributedDataParallel`` hold the model as
  ``.module``; their forward only scatters the batch, so the model is traced.
* A TorchScript module (``torch.jit.script`` or ``torch.jit.trace``) runs in the
  TorchScript interpreter, where forward hooks do not fire: what can be told
  truthfully is its output shape (a real run), and the parameters of every
  submodule (the module tree); ``tracer`` does that, and says per-layer shapes
  need the eager model.
* An exported program (``torch.export.export``) or its ``.module()`` is a flat graph
  of ops; ``exported`` rebuilds its module hierarchy (``torch.export.unflatten``), and
  that is traced: a row per module call, as the eager model has.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .exported import is_exported, unflatten_type, unflattened


@dataclass(frozen=True)
class Unwrapped:
    """The module to trace and, when it was wrapped, the note the table shows."""

    module: nn.Module
    note: str | None = None


def is_script_module(module: nn.Module) -> bool:
    """A TorchScript module, scripted or traced: hooks do not fire inside it."""
    return isinstance(module, torch.jit.ScriptModule)


def compiled_inner(module: nn.Module) -> nn.Module | None:
    """The eager module a ``torch.compile`` wrapper holds; None for anything else.

    Checked by class name and module, and read from ``_modules`` (the wrapper's
    ``__getattr__`` forwards to the inner module), without importing dynamo.
    """
    cls = type(module)
    if cls.__name__ != "OptimizedModule" or not cls.__module__.startswith("torch._dynamo"):
        return None
    inner = module._modules.get("_orig_mod")
    return inner if isinstance(inner, nn.Module) else None


def unwrap(model: object) -> Unwrapped:
    """The module to trace: compile and data-parallel wrappers removed (nested ones too), an
    exported program's hierarchy rebuilt. ``model`` is an nn.Module or an ExportedProgram."""
    notes: list[str] = []
    while True:
        if is_exported(model):
            module, program = unflattened(model)
            notes.append(program.note())
            return Unwrapped(module, "; ".join(notes))
        assert isinstance(model, nn.Module)
        inner = compiled_inner(model)
        if inner is not None:
            notes.append(
                f"torch.compile: traced the eager {type_name(inner)} it wraps (_orig_mod); the "
                "compiled graph itself is not run"
            )
            model = inner
            continue
        if isinstance(model, (nn.DataParallel, nn.parallel.DistributedDataParallel)):
            notes.append(f"{type(model).__name__}: traced the {type_name(model.module)} it wraps (.module)")
            model = model.module
            continue
        return Unwrapped(model, "; ".join(notes) or None)


def type_name(module: nn.Module) -> str:
    """Class name as the user wrote it: a TorchScript module's original class (``Conv2d``),
    the class a module of an unflattened exported program stands for."""
    if is_script_module(module):
        return str(getattr(module, "original_name", None) or type(module).__name__)
    return unflatten_type(module) or type(module).__name__


def model_name(model: object) -> str:
    """The class name a surface shows for the model a user gave (before unwrapping): its own,
    or for an exported program the class of the model it was exported from."""
    if is_exported(model):
        return unflattened(model)[1].model_type
    return type(model).__name__


def script_note(module: nn.Module, device: torch.device) -> str:
    """The one line a TorchScript trace carries: what is shown, what is not, what to do."""
    from torch.jit._trace import TracedModule

    how = "torch.jit.trace" if isinstance(module, TracedModule) else "torch.jit.script"
    return (
        f"TorchScript ({how}): forward hooks do not fire inside TorchScript, so per-layer shapes "
        f"are not shown; the output is from a real run on {device}, the parameter counts from the "
        f"module tree. For every layer's shapes trace the eager model (before {how})"
    )
