"""A trace that also sees what shapes cannot show: data flow, FLOPs, parameter use.

Lint needs to know whether a BatchNorm consumes *the very tensor* a conv returned
(not merely the next call: a functional ``F.relu`` between them changes
everything), which parameters a forward actually touches, and ``count_flops`` needs
each call's share of the FLOPs (``flop_counting``). All of it is gathered during an
ordinary ``trace()`` by an observer of the trace's own recorder (one call stack,
no hooks of our own), so the device choice, the meta weights swap, the state
restore and the diagnostics are the trace's own.

Each forward ``trace`` runs (a meta attempt, then a real fallback) starts the
observer afresh, so what is kept describes the run the trace reports:
``calls[i]`` belongs to ``trace.layers[i]``.
"""

from __future__ import annotations

import contextlib
import weakref
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ..tracing.metarules import tensor_arguments
from ..tracing.modelview import ModelView
from ..tracing.recorder import RunningCall
from ..tracing.records import ShapeTrace
from .flop_counting import FlopCounter
from .parameters import named_tensors
from .size_freedom import SizeFreedom

if TYPE_CHECKING:
    from ..tracing.request import TraceRequest


@dataclass(slots=True)
class ObservedCall:
    """What the hooks saw of one module call (aligned with a trace record)."""

    module: nn.Module
    #: The call's first positional input is the very tensor the leaf call just
    #: before it returned (no functional op in between).
    fed_by_previous_leaf: bool = False
    #: A container call returned the very tensor its last leaf call returned.
    returns_last_leaf: bool = False
    #: FLOPs counted while the call ran (its children's included).
    flops: int = 0
    #: The torch function whose result this call returned, when it was a softmax or
    #: log-softmax of forward code (``F.softmax(logits, 1)``).
    returned_op: str | None = None


@dataclass
class Observation:
    """A trace, with one ObservedCall per record and the parameters the forward used."""

    trace: ShapeTrace
    calls: list[ObservedCall]
    #: Qualified names of parameters passed to a torch function during the forward;
    #: None when not tracked.
    used_parameters: frozenset[str] | None = None
    #: Forward code permuted or transposed axes somewhere.
    permuted: bool = False
    #: What counted the FLOPs (None: not counted).
    counter: Any = None
    #: The FLOPs come from torch's FlopCounterMode, in a second pass (``observed_trace``).
    torch_counted: bool = False
    #: Some Linear call's input may depend on the input size (``size_freedom``).
    linear_may_be_locked: bool = True
    #: What a training step of this forward would keep (``memory.counting_pass``), when
    #: counted in the same pass.
    memory: Any = None


def _is_parameter(t: torch.Tensor) -> bool:
    # nn.Parameter's isinstance check runs Python code: most tensors are plain ones
    return type(t) is nn.Parameter or (type(t) is not torch.Tensor and isinstance(t, nn.Parameter))


class _ParameterUse:
    """Notes every parameter handed to a torch function while a forward runs.

    Told of each op by the observer (an op watcher of the trace's own mode, so it
    sees the ops a meta size rule answers too); attribute reads (``p.shape``,
    ``p.device``) are not reported as ops, so they are not uses. During a meta
    trace the parameters are meta twins, so names are looked up in the registries
    as they are at that moment; the map keeps the tensors alive so an id is never
    reused for another tensor while it is in use.
    """

    def __init__(self, view: ModelView) -> None:
        self.view = view
        self.active = False
        self.used: set[str] = set()
        self._names: dict[int, tuple[torch.Tensor, list[str]]] = {}

    def op(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        """An op was called with these arguments."""
        if not self.active:
            return
        for tensor in tensor_arguments(args, kwargs):
            if _is_parameter(tensor):
                self._note(tensor)

    def forget(self) -> None:
        """Drop the names looked up so far (another module tree is about to run)."""
        self._names.clear()

    def _note(self, param: torch.Tensor) -> None:
        entry = self._names.get(id(param))
        if entry is None or entry[0] is not param:
            self._names.update(named_tensors(self.view, "_parameters"))
            entry = self._names.get(id(param))
        if entry is not None and entry[0] is param:
            self.used.update(entry[1])


@dataclass
class _Observer:
    """Watches one trace's module calls (``tracing.recorder.Observer``)."""

    #: A FlopCounter (our own, an op watcher) or torch's FlopCounterMode, when FLOPs are counted.
    counter: Any = None
    use: _ParameterUse | None = None
    calls: list[ObservedCall] = field(default_factory=list)
    #: FLOPs counted when each running call began, by record index.
    flops_at: dict[int, int] = field(default_factory=dict)
    #: What the last leaf call returned: a weak reference to a tensor (a watcher must not
    #: keep a forward's tensors alive: the memory estimate of the same pass follows their
    #: lifetimes), or the object itself (a tuple of an RNN).
    last_leaf_output: Any = None
    #: ``id(tensor) -> (a weak reference to it, op)`` of the latest softmax-like result.
    softmaxed: dict[int, tuple[Any, str]] = field(default_factory=dict)
    #: Forward code moved axes (a permute or transpose): a sequence-first output is by design.
    permuted: bool = False
    freedom: SizeFreedom = field(default_factory=SizeFreedom)

    def flops(self) -> int:
        if isinstance(self.counter, FlopCounter):
            return self.counter.total
        return int(self.counter.get_total_flops()) if self.counter is not None else 0

    def _last_leaf(self) -> Any:
        last = self.last_leaf_output
        return last() if isinstance(last, weakref.ref) else last

    def started(self) -> None:
        """A forward begins: forget any earlier attempt."""
        self.calls.clear()
        self.flops_at.clear()
        self.softmaxed.clear()
        self.permuted = False
        self.last_leaf_output = None
        if self.use is not None:
            self.use.used.clear()
        if isinstance(self.counter, FlopCounter):
            self.counter.reset()
        self.freedom.started()

    def entered(self, call: RunningCall) -> None:
        if self.use is not None and call.index == 0:
            self.use.active = True
            if call.module is not self.use.view.root:  # a clone of a lazy model runs: its names
                self.use.view = ModelView.of(call.module)
                self.use.forget()
        module = call.module
        last = self._last_leaf()
        fed = not module._modules and last is not None and bool(call.args) and call.args[0] is last
        self.calls.append(ObservedCall(module, fed_by_previous_leaf=fed))
        self.flops_at[call.index] = self.flops()
        self.freedom.entered(call.index, module, call.args)

    def op(self, func: Any, args: tuple[Any, ...], kwargs: dict[str, Any], result: Any) -> None:
        """An op watcher too: FLOPs, which softmax a forward returns, whether it moves axes."""
        if isinstance(self.counter, FlopCounter):
            self.counter.op(func, args, kwargs, result)
        self.freedom.op(func, args, kwargs, result)
        if self.use is not None:
            self.use.op(args, kwargs)
        _watch_op(self, func, result)

    def left(self, call: RunningCall, output: Any) -> None:
        observed = self.calls[call.index]
        observed.flops = self.flops() - self.flops_at.pop(call.index)
        if call.module._modules:
            observed.returns_last_leaf = output is self._last_leaf()
        else:
            self.last_leaf_output = weakref.ref(output) if isinstance(output, torch.Tensor) else output
        noted = self.softmaxed.get(id(output))
        if noted is not None and noted[0]() is output:
            observed.returned_op = noted[1]
        if self.use is not None and call.index == 0:
            self.use.active = False


_SOFTMAX = frozenset({"softmax", "log_softmax"})
_AXIS_MOVES = frozenset({"permute", "transpose", "movedim", "moveaxis", "swapaxes", "swapdims"})
#: ``func -> its __name__`` once looked up (an op is seen hundreds of times per forward).
_NAMES: dict[Any, str] = {}


def _watch_op(observer: _Observer, func: Any, result: Any) -> None:
    name = _NAMES.get(func)
    if name is None:
        name = getattr(func, "__name__", "")
        with contextlib.suppress(TypeError):  # an unhashable callable: looked up each time
            _NAMES[func] = name
    if name in _SOFTMAX and isinstance(result, torch.Tensor):
        observer.softmaxed = {id(result): (weakref.ref(result), name)}  # only the latest one matters
    elif name in _AXIS_MOVES:
        observer.permuted = True


def observed_trace(
    request: TraceRequest,
    *,
    flow: bool = False,
    flops: bool = False,
    parameter_use: bool = False,
    memory: bool = False,
) -> Observation:
    """The request traced, watched: data flow always, FLOPs, parameter use and what a training
    step would keep for backward (``memory``: ``Observation.memory``) on request.

    FLOPs are counted in the same pass by ``flop_counting.FlopCounter``; a model with
    ops only torch's ``FlopCounterMode`` can count (attention, recurrent layers,
    TorchScript) is counted by it in a second pass. ``flow`` records the data flow
    for the picture, as ``trace(flow=True)`` does. Raises what ``trace`` raises
    (ShapeMismatchError when the forward fails); the model is left as it was.
    """
    view = request.view
    observation = _observed(request, view, flow, flops, parameter_use, torch_counter=False, memory=memory)
    counter = observation.counter
    if flops and (view.scripted or (isinstance(counter, FlopCounter) and counter.opaque)):
        from ..tracing.metamode import dispatched_ops

        with dispatched_ops():
            counted = _observed(request, view, False, True, False, torch_counter=True)
        observation.calls = (
            counted.calls if len(counted.calls) == len(observation.calls) else observation.calls
        )
        observation.torch_counted = True
    return observation


def _observed(
    request: TraceRequest,
    view: ModelView,
    flow: bool,
    flops: bool,
    parameter_use: bool,
    *,
    torch_counter: bool,
    memory: bool = False,
) -> Observation:
    from ..diagnostics.explain import traced

    observer = _Observer()
    observers: tuple[Any, ...] = (observer,)
    if memory:
        from .memory import counting_pass

        counting = counting_pass(as_training=not request.train)
        observers = (observer, counting)
    with ExitStack() as stack:
        if flops and torch_counter:
            from torch.utils.flop_counter import FlopCounterMode

            observer.counter = stack.enter_context(FlopCounterMode(display=False))
        elif flops:
            observer.counter = FlopCounter()
        if parameter_use:
            observer.use = _ParameterUse(view)
        try:
            result = traced(request, observers, flow=flow)
        finally:
            observer.last_leaf_output = None
            observer.softmaxed.clear()
            observer.freedom.finished()
            if memory:
                counting.close()
    used = frozenset(observer.use.used) if observer.use is not None else None
    return Observation(
        result,
        list(observer.calls),
        used,
        observer.permuted,
        counter=observer.counter,
        linear_may_be_locked=observer.freedom.linear_may_be_locked,
        memory=counting if memory else None,
    )
