"""``trace(model, inputs)``: the tracer's run, and on failure the diagnosis, as one call.

The tracing layer records a forward and, when it raises, hands back the moment of
failure (``ForwardFailed``); this module turns that into a ShapeMismatchError
whose text is the diagnosis and which carries the partial trace. It is the public
entry point every higher layer (contracts, inspection, the plugin, the CLI) calls.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..errors import ArgumentError, ForwardFailed, ShapeMismatchError
from ..tracing.request import TraceRequest
from ..tracing.tracer import holding, partial_trace, run
from . import diagnose

if TYPE_CHECKING:
    import torch
    from torch import nn

    from ..tracing.input_domain import InputDomain
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
    symbolic: bool = False,
    dims: Mapping[str, int] | None = None,
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

    ``symbolic=True``: ``inputs`` may name sizes (``"B x 3 x H x W"``; a shape of
    numbers or a tensor takes the names B, C, H, W by its rank) and every row also
    gets its output as a formula of them (``LayerRecord.output_formula``,
    ``"B x 64 x H//4 x W//4"``); ``.domain`` is the ``InputDomain`` of sizes the
    trace holds for. The table is for example sizes: ``dims=`` gives them by name,
    else they are found (a batch of 2, 3 channels, sides of 224, moved to where the
    model runs). Where torch's symbolic shapes cannot follow the model, the note
    says why and the trace is the concrete one at the example.

    Raises ShapeMismatchError when the forward fails; the model is left as it was.
    """
    if symbolic:
        return symbolic_trace(model, inputs, dims=dims, device=device, dtype=dtype, train=train, flow=flow)
    if dims is not None:
        raise ArgumentError("dims= gives the example sizes of a symbolic trace's names; add symbolic=True")
    request = TraceRequest.of(model, inputs, device=device, dtype=dtype, train=train)
    return traced(request, (), flow=flow)


def symbolic_trace(
    model: nn.Module,
    inputs: Any,
    *,
    dims: Mapping[str, int] | None = None,
    device: str | torch.device = "auto",
    dtype: torch.dtype | str | None = None,
    train: bool = False,
    flow: bool = False,
) -> ShapeTrace:
    """``trace(..., symbolic=True)``: the concrete trace at the example sizes (diagnosed when it
    fails), with each row's formula and the domain; or, where the engine cannot follow the
    model, the concrete trace with a note saying why."""
    from ..errors import SymbolicError
    from ..tracing.symbolic_follow import attach, plan_symbolic

    plan = plan_symbolic(model, inputs, dims=dims, dtype=dtype, train=train)
    request = TraceRequest.of(model, plan.concrete(), device=device, dtype=dtype, train=train)
    result = traced(request, (), flow=flow)
    result.symbolic = {"inputs": list(plan.inputs.texts), "example": dict(plan.example)}
    try:
        attach(result, plan.follow(_prober(request)), plan.example)
    except SymbolicError as why:
        sizes = ", ".join(f"{n}={v}" for n, v in plan.example.items())
        result.symbolic["why"] = str(why)
        note = f"no formulas: {why}; this table is for {sizes} only"
        result.note = f"{result.note}; {note}" if result.note else note
    return result


def input_domain(
    model: nn.Module,
    inputs: Any,
    *,
    dims: Mapping[str, int] | None = None,
    dtype: torch.dtype | str | None = None,
    train: bool = False,
) -> InputDomain:
    """The input sizes ``model`` runs at, for named ``inputs`` (``"B x 3 x H x W"``).

    ``.contains({"B": 2, "H": 64, "W": 64})``, ``.smallest()``, and ``str()`` in plain
    words ("H and W at least 32 and multiples of 32"). Found by torch's symbolic
    shapes from one forward at example sizes (``dims=``, or found as ``trace``
    finds them); for a forward that branches on sizes, the domain of the branch the
    example takes, and it says so. Raises ShapeMismatchError when the model fails
    at the example, SymbolicError (one line) when the engine cannot follow it.
    """
    from ..tracing.symbolic_follow import attach, plan_symbolic

    plan = plan_symbolic(model, inputs, dims=dims, dtype=dtype, train=train)
    if plan.refused is not None:
        raise plan.refused
    request = TraceRequest.of(model, plan.concrete(), dtype=dtype, train=train)
    result = traced(request, ())
    attach(result, plan.follow(_prober(request)), plan.example)
    assert result.domain is not None
    return result.domain


def _prober(request: TraceRequest) -> Callable[[Any], ShapeTrace | None]:
    """Plain meta forwards of the request's model at other sizes, undiagnosed: a trace, or None
    when it fails."""
    from ..tracing.records import ShapeTrace
    from ..tracing.tracer import Prober

    probe = Prober.of(request)

    def run(inputs: Any) -> ShapeTrace | None:
        result = probe(inputs)
        return result if isinstance(result, ShapeTrace) else None

    return run


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
