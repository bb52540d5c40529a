"""A forward that failed inside TorchScript, explained in the eager module's terms.

Hooks do not fire inside TorchScript: the tracer knows only that the scripted model
raised. ``tracing.scripted.locate_failure`` finds the submodule that raised and what
it received (running the scripted submodules one at a time); then, the most that can
be shown first:

1. a scripted model (``torch.jit.script``) is rebuilt as the eager model it was
   compiled from (``eager_twin``: its own classes holding the same tensors) and traced
   like any model: when the rebuild fails at the same submodule, its diagnosis is the
   answer, with every layer up to the failure and a fix verified on the rebuild;
2. else the failing submodule alone, when it has an eager twin (any scripted module;
   a traced ``Linear`` is ``nn.Linear``), is diagnosed on what it received, its fix
   verified on that layer;
3. else the submodule, what it received and torch's message, and plainly that
   scripted models are diagnosed to the module only.

The layer names are the scripted model's (``ShapeMismatchError.layer`` and
``.received_shapes`` are the failing submodule's), and the user's line comes from
TorchScript's own traceback when no Python frame shows it.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ..errors import ForwardFailed, ShapeMismatchError, TraceError
from ..shapes.tree import format_shape, shape_tree
from ..tracing.failure import error_text
from ..tracing.inputs import InputSpec
from ..tracing.request import TraceRequest
from ..tracing.scripted import Located, eager_twin, locate_failure, script_source
from ..tracing.state import preserved
from ..tracing.tracer import holding, partial_trace, run
from ..tracing.wrappers import is_script_module, type_name
from .report import Diagnosis

if TYPE_CHECKING:
    from ..tracing.failure import FailureContext

#: What the table says of a diagnosis made on the eager rebuild.
REBUILT = (
    "TorchScript: diagnosed on the eager model the scripted one was compiled from (its Python "
    "classes holding the same weights; forward hooks do not fire inside TorchScript): the layers "
    "and the fix are that model's"
)
MODULE_ONLY = (
    "scripted models are diagnosed to the module only here (forward hooks do not fire inside "
    "TorchScript, and this module has no eager twin to rebuild); trace the eager model for every "
    "layer up to the failure and a verified fix"
)


def explain_scripted(failed: ForwardFailed) -> ShapeMismatchError | None:
    """The ShapeMismatchError of a TorchScript model's failed forward; None for any other model."""
    if not is_script_module(failed.context.view.root):
        return None
    try:
        return _explained(failed)
    except Exception:  # a model this cannot rebuild or cut: the ordinary diagnosis stands
        if os.environ.get("CNNSHAPE_DEBUG"):
            raise
        return None


def _explained(failed: ForwardFailed) -> ShapeMismatchError | None:
    located = _located(failed.context)
    whole = _on_rebuild(failed, located)
    if whole is not None:
        return whole
    if located is None:
        return None  # nothing known beyond the root: the ordinary diagnosis says that
    return _on_part(failed, located) or _module_only(failed, located)


def _located(ctx: FailureContext) -> Located | None:
    """Where inside the scripted model the failure is, found on the failed run's own inputs."""
    call = ctx.running[0] if ctx.running else None
    if call is None or call.kwargs:
        return None  # compiled forwards are run positionally here
    try:
        with preserved(ctx.view, real_run=True, train=ctx.train), torch.no_grad():
            return locate_failure(ctx.view.root, tuple(call.args))
    except Exception:  # a graph this search cannot cut: the module tree tells no more
        return None


def _traced_failure(model: nn.Module, inputs: InputSpec, train: bool) -> ForwardFailed | None:
    """``model`` traced on ``inputs`` (meta first): its failure, or None when it runs."""
    request = TraceRequest.of(model, inputs, train=train)
    with holding(request):
        try:
            run(request)
        except ForwardFailed as failed:
            return failed
        except TraceError:
            return None
    return None


def _on_rebuild(failed: ForwardFailed, located: Located | None) -> ShapeMismatchError | None:
    """The eager rebuild's diagnosis, when it fails where the scripted model did."""
    from . import diagnose

    ctx = failed.context
    twin = eager_twin(ctx.view.root)
    if twin is None:
        return None
    again = _traced_failure(twin, ctx.inputs, ctx.train)
    innermost = again.context.innermost if again is not None else None
    if again is None or innermost is None:
        return None
    if located is not None and innermost.record.name != located.path:
        return None  # the rebuild fails elsewhere: not the same model
    diagnosis = diagnose(again.context)
    diagnosis.hint = f"{diagnosis.hint}\n{REBUILT}" if diagnosis.hint else REBUILT
    again.wrapper = REBUILT
    return ShapeMismatchError(diagnosis, partial_trace(again))


class _Part(nn.Module):
    """One rebuilt layer at the path it has in the scripted model, run on what it received."""

    def __init__(self, path: str, layer: nn.Module) -> None:
        super().__init__()
        owner: nn.Module = self
        *parents, name = path.split(".")
        for parent in parents:
            holder = nn.Module()
            owner.add_module(parent, holder)
            owner = holder
        owner.add_module(name, layer)
        self.path = path

    def forward(self, *args: Any) -> Any:
        return self.get_submodule(self.path)(*args)


def _on_part(failed: ForwardFailed, located: Located) -> ShapeMismatchError | None:
    """The failing submodule alone, rebuilt eager and diagnosed on what it received."""
    from . import diagnose

    ctx = failed.context
    layer = eager_twin(located.module) if located.path else None
    if layer is None:
        return None
    again = _traced_failure(_Part(located.path, layer), InputSpec(located.args, {}), ctx.train)
    if again is None:
        return None  # it runs alone on those inputs: the failure is not the layer's
    diagnosis = diagnose(again.context)
    if diagnosis.layer != located.path:
        return None
    diagnosis.source = script_source(ctx.exc) or diagnosis.source
    if diagnosis.shown is not None:  # what ran with the fix is this layer, not the model
        diagnosis.shown.verified = diagnosis.shown.verified.replace("the model", located.path, 1)
    alone = (
        f"verified on {located.path} alone: an eager {type_name(layer)} rebuilt from the TorchScript "
        "module (its weights), given what it received; the rest of the scripted model was not run "
        "with the fix"
    )
    diagnosis.hint = f"{diagnosis.hint}\n{alone}" if diagnosis.hint else alone
    return ShapeMismatchError(diagnosis, partial_trace(failed))


def _module_only(failed: ForwardFailed, located: Located) -> ShapeMismatchError:
    """The submodule that raised, what it received and torch's words; no fix."""
    ctx = failed.context
    label = located.path or "(root)"
    kind = type_name(located.module)
    message = error_text(ctx.exc).strip() or type(ctx.exc).__name__
    received = tuple(shape_tree(a) for a in located.args)
    diagnosis = Diagnosis(
        kind="torchscript_module",
        layer=located.path,
        module_type=kind,
        received_shapes=received,
        headline=f"{label} ({kind}) failed inside TorchScript: {message.splitlines()[0]}",
        details=[("received", ", ".join(format_shape(s) for s in received) or "-")],
        fix_note=MODULE_ONLY,
        source=script_source(ctx.exc),
        original=message,
        device=str(ctx.device),
    )
    return ShapeMismatchError(diagnosis, partial_trace(failed))
