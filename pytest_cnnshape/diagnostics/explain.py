"""``trace(model, inputs)``: the tracer's run, and on failure the diagnosis, as one call.

The tracing layer records a forward and, when it raises, hands back the moment of
failure (``ForwardFailed``); this module turns that into a ShapeMismatchError
whose text is the diagnosis and which carries the partial trace. It is the public
entry point every higher layer (contracts, inspection, the plugin, the CLI) calls.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..errors import ForwardFailed, ShapeMismatchError
from ..tracing.request import TraceRequest
from ..tracing.tracer import holding, partial_trace, run
from . import diagnose

if TYPE_CHECKING:
    import torch
    from torch import nn

    from ..tracing.recorder import Observer
    from ..tracing.records import ShapeTrace


def trace(
    model: nn.Module,
    inputs: Any,
    *,
    device: str | torch.device = "auto",
    dtype: torch.dtype | str | None = None,
    train: bool = False,
    flow: bool = False,
) -> ShapeTrace:
    """Record the input and output shapes of every module call of one forward pass.

    ``inputs``: a shape (``(1, 3, 32, 32)`` or ``"1x3x32x32"``), a tensor, a list or
    tuple of those for several positional inputs, or a dict for keyword inputs.
    ``device``: ``"auto"`` (meta first, a real forward on the model's device when
    meta cannot run it), ``"meta"``, ``"cpu"`` or ``"cuda"``. ``dtype``: of inputs
    made from shapes (default: the model's). ``train``: trace in training mode.
    ``flow``: also record where each call's inputs came from (``LayerRecord.sources``),
    so the picture (``to_html()``) draws residual adds and skips as they are; off by
    default, since on a real device it costs a TorchFunctionMode.

    Raises ShapeMismatchError when the forward fails; the model is left as it was.
    """
    request = TraceRequest.of(model, inputs, device=device, dtype=dtype, train=train)
    return traced(request, (), flow=flow)


def traced(request: TraceRequest, observers: Sequence[Observer], *, flow: bool = False) -> ShapeTrace:
    """The request traced with ``observers`` of its module calls, the data flow recorded with ``flow``."""
    if not flow:
        return watched(request, observers)
    from ..tracing.lineage import Lineage

    lineage = Lineage()
    try:
        result = watched(request, (*observers, lineage))
    except ShapeMismatchError as err:
        lineage.annotate(err.trace.layers)
        raise
    lineage.annotate(result.layers)
    return result


def watched(request: TraceRequest, observers: Sequence[Observer], *, grad: bool = False) -> ShapeTrace:
    """The request traced with observers of the module calls (inspection's data flow, FLOPs,
    memory); ``grad=True`` records autograd's graph as a training forward does."""
    with holding(request):  # the diagnosis reads the model too: no other thread's trace meanwhile
        try:
            return run(request, observers=observers, grad=grad)
        except ForwardFailed as failed:
            raise explain(failed) from failed.context.exc


def explain(failed: ForwardFailed) -> ShapeMismatchError:
    """The ShapeMismatchError of a failed forward: its diagnosis and the partial trace."""
    from .scripted import explain_scripted

    scripted = explain_scripted(failed)  # TorchScript: the submodule, in the eager module's terms
    if scripted is not None:
        return scripted
    diagnosis = diagnose(failed.context)
    if failed.wrapper:  # what was traced of a wrapped model (TorchScript: the root only)
        diagnosis.hint = f"{diagnosis.hint}\n{failed.wrapper}" if diagnosis.hint else failed.wrapper
    return ShapeMismatchError(diagnosis, partial_trace(failed))
