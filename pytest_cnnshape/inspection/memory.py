"""``estimate_memory(model, inputs, optimizer)``: the memory one training step takes, before it runs.

torchinfo's "Estimated Total Size" sums the layers' output sizes; what training
actually keeps is what autograd saves for backward, which can be several times
more (a BatchNorm keeps its input, a ReLU its output, a max-pool its indices) or
less (an in-place ReLU shares its input's storage). So this counts those tensors
themselves: the forward runs once on meta with autograd recording, inside
``torch.autograd.graph.saved_tensors_hooks``, and every tensor autograd saves is
counted by its storage, each storage once (views and in-place results share one),
parameters and buffers left out. Nothing is allocated and no weight is copied;
the model is left as every trace leaves it (the pass *is* a trace, watched by an
observer of the tracer's own recorder and an op watcher of its TorchFunctionMode).

The same pass gives the inference peak: the hook hands autograd a placeholder
instead of each saved tensor (keeping only the storage, so identities stay
unique), so tensors die when the forward drops them, as they do under
``no_grad``; weak references to every tensor the torch functions return find the
most bytes alive at once. Dropout, the identity in eval mode, counts as its input.
``tests/inspection/test_memory.py`` checks the figure against a real eval forward
under ``no_grad``.

``peak_training_bytes`` adds up what a training step holds at its fullest, at the
start of backward: parameters, buffers, one gradient per trainable parameter that
the graph reaches, the optimizer's state (``optimizer_state``), the saved
activations, and the largest transient of the backward pass. That transient is
estimated per op of the forward as the gradient flowing into it (the size of its
output) plus the gradients it produces for its inputs (the sizes of its inputs that
require grad, parameters excluded: their gradients are counted already); the
largest such sum is taken. The sum is an upper bound of the step's tensors (by the
time backward reaches the large early maps, the late layers' saved tensors are
freed); allocator rounding, convolution workspaces (cuDNN's, or the CPU's im2col
buffers), CUDA's context and the loss are not included.
"""

from __future__ import annotations

import weakref
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parameter import is_lazy

from ..tracing.recorder import RunningCall
from .optimizer_state import OptimizerState, ParamInfo, optimizer_state
from .render import memory_text

if TYPE_CHECKING:
    from ..tracing.records import ShapeTrace
    from ..tracing.request import TraceRequest


@dataclass(frozen=True)
class LayerMemory:
    """One module call: its output, and what autograd saved while it ran."""

    name: str
    type: str
    depth: int
    call: int
    is_leaf: bool
    #: Bytes of the tensors the call returned.
    output_bytes: int
    #: Bytes of the storages autograd first saved while this was the innermost call
    #: running (a container's own forward code: its cat, add, functional ReLU).
    saved_bytes: int
    #: The same, with every call nested inside it.
    saved_total: int


@dataclass(frozen=True)
class MemoryReport:
    """What one training step of a model takes, estimated from one meta pass (bytes)."""

    model: str
    #: The inputs as traced, e.g. ``"64x3x224x224"``.
    input: str
    #: Where the passes ran (``meta`` unless the model is tiny or meta cannot run it).
    device: str
    dtype: str
    #: The modules' mode during the training forward.
    train: bool
    param_bytes: int
    buffer_bytes: int
    #: One gradient per trainable parameter the autograd graph reaches.
    grad_bytes: int
    optimizer: OptimizerState
    #: Unique storages autograd saves for backward, parameters and buffers excluded.
    saved_activation_bytes: int
    saved_tensors: int
    #: The largest gradient-in plus gradients-out of one op in backward.
    backward_transient_bytes: int
    #: The call whose op has that transient.
    transient_at: str
    #: Parameters, buffers and the most bytes of tensors alive at once in an eval forward.
    peak_inference_bytes: int
    inference_peak_at: str
    layers: tuple[LayerMemory, ...]

    @property
    def optimizer_state_bytes(self) -> int | None:
        """The optimizer's state; None when it is not counted (no optimizer given, or unknown)."""
        return self.optimizer.bytes

    @property
    def peak_training_bytes(self) -> int:
        """Params + buffers + grads + optimizer state + saved activations + backward transient."""
        return (
            self.param_bytes
            + self.buffer_bytes
            + self.grad_bytes
            + (self.optimizer.bytes or 0)
            + self.saved_activation_bytes
            + self.backward_transient_bytes
        )

    def largest(self, n: int = 5) -> list[LayerMemory]:
        """The calls that keep the most for backward themselves, largest first."""
        ranked = sorted(self.layers, key=lambda layer: -layer.saved_bytes)
        return [layer for layer in ranked[:n] if layer.saved_bytes]

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form: every figure in bytes, ``layers`` one object per call."""
        return {
            "model": self.model,
            "input": self.input,
            "device": self.device,
            "dtype": self.dtype,
            "train": self.train,
            "param_bytes": self.param_bytes,
            "buffer_bytes": self.buffer_bytes,
            "grad_bytes": self.grad_bytes,
            "optimizer": self.optimizer.to_dict(),
            "optimizer_state_bytes": self.optimizer.bytes,
            "saved_activation_bytes": self.saved_activation_bytes,
            "saved_tensors": self.saved_tensors,
            "backward_transient_bytes": self.backward_transient_bytes,
            "transient_at": self.transient_at,
            "peak_training_bytes": self.peak_training_bytes,
            "peak_inference_bytes": self.peak_inference_bytes,
            "inference_peak_at": self.inference_peak_at,
            "layers": [asdict(layer) for layer in self.layers],
        }

    def table(self, max_depth: int | None = None) -> str:
        """Per call: output and saved bytes (MiB/GiB), then the totals and both peaks."""
        return memory_text(self.to_dict(), max_depth)

    def __str__(self) -> str:
        return self.table()


# -- what a tensor costs -------------------------------------------------------------


def _tensors(value: Any) -> list[torch.Tensor]:
    """The tensors in a value (nested lists, tuples, dicts); most values are one tensor."""
    if isinstance(value, torch.Tensor):
        return [value]
    out: list[torch.Tensor] = []
    if isinstance(value, (list, tuple)):
        for v in value:
            out += _tensors(v)
    elif isinstance(value, dict):
        for v in value.values():
            out += _tensors(v)
    return out


def _storage(t: torch.Tensor) -> tuple[int, int]:
    """A storage's identity and size. On meta ``data_ptr()`` is 0 for every tensor, but the
    storage object underneath (``_cdata``) is one per allocation, shared by views and
    in-place results, on meta as on real devices."""
    try:
        storage = t.untyped_storage()
    except (RuntimeError, NotImplementedError):  # sparse or nested: no storage of its own
        return id(t), t.numel() * t.element_size()
    return int(storage._cdata), storage.nbytes()


def _size(t: torch.Tensor) -> int:
    return t.numel() * t.element_size()


def _is_weight(t: torch.Tensor) -> bool:
    """A parameter or a view of one (``weight.t()`` in a Linear): its gradient is a weight's."""
    base = t if t._base is None else t._base
    return base.is_leaf and base.requires_grad


def _weight_keys(module: nn.Module) -> tuple[set[int], bool]:
    """Storages of the parameters and buffers as the forward sees them; any lazy left?"""
    keys: set[int] = set()
    lazy = False
    for t in (*module.parameters(), *module.buffers()):
        if is_lazy(t):
            lazy = True
        else:
            keys.add(_storage(t)[0])
    return keys, lazy


def _reached(output: Any) -> set[int]:
    """``id()`` of the leaf tensors (parameters) the output's autograd graph reaches."""
    reached = {id(t) for t in _tensors(output) if t.grad_fn is None and t.requires_grad}
    stack = [t.grad_fn for t in _tensors(output) if t.grad_fn is not None]
    seen: dict[int, Any] = {}  # the nodes themselves are kept, so an id is never reused
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen[id(node)] = node
        variable = getattr(node, "variable", None)
        if isinstance(variable, torch.Tensor):
            reached.add(id(variable))
        stack.extend(n for n, _ in node.next_functions if n is not None)
    return reached


def _unwatched() -> Any:
    """Our own bookkeeping (``t.numel()``, ``t.untyped_storage()``) runs outside the trace's
    TorchFunctionMode: it is not the model's work, and no op watcher should pay for it."""
    return torch._C.DisableTorchFunction()


class _Calls:
    """The running calls as record indices: which call an op or a save belongs to."""

    def __init__(self) -> None:
        self.stack: list[int] = []

    def enter(self, call: RunningCall) -> None:
        self.stack.append(call.index)

    def leave(self, call: RunningCall) -> None:
        while self.stack and self.stack.pop() != call.index:
            pass  # calls that raised inside a try/except of the forward

    @property
    def current(self) -> int:
        return self.stack[-1] if self.stack else 0


# -- the pass ---------------------------------------------------------------------------

#: Ops that are the identity in eval mode: their training-mode result is, for the
#: inference peak, the input itself.
_EVAL_IDENTITY = frozenset(
    {F.dropout, F.dropout1d, F.dropout2d, F.dropout3d, F.alpha_dropout, F.feature_alpha_dropout}
)


class _Saved:
    """What the graph holds instead of a saved tensor: its storage's identity only, so the
    forward's tensors die when the forward drops them, as without autograd."""

    __slots__ = ("key",)

    def __init__(self, key: int) -> None:
        self.key = key


def _unpack(saved: _Saved) -> torch.Tensor:
    raise RuntimeError(
        "estimate_memory keeps no saved tensors, so a forward that runs backward itself "
        "(autograd.grad inside forward) cannot be estimated"
    )


class _MemoryPass:
    """Observer, op watcher and saved-tensors hook of the one training forward.

    Counts what autograd saves (``pack``), each call's output, the backward transient
    per op, and, by weak references to every tensor the torch functions return, the
    most bytes alive at once: the inference peak.
    """

    def __init__(self) -> None:
        self.refs: dict[int, weakref.ref[torch.Tensor]] = {}
        self.started()

    def started(self) -> None:
        """A forward begins (a meta attempt, then maybe a real fallback): start afresh."""
        self.close()
        self.calls = _Calls()
        self.active = False
        self.weights: set[int] = set()
        self.lazy = False
        #: storage -> (bytes, index of the call that saved it first)
        self.saved: dict[int, tuple[int, int]] = {}
        #: The saved storages, so none is freed (and its identity reused) during the pass.
        self.keep: list[torch.UntypedStorage] = []
        self.outputs: dict[int, int] = {}
        self.transient = (0, 0)
        self.params: list[ParamInfo] = []
        self.buffer_bytes = 0
        #: storage -> [bytes, tensors alive on it]
        self.live: dict[int, list[int]] = {}
        #: id of a weak reference -> (id of its tensor, its storage)
        self.followed: dict[int, tuple[int, int]] = {}
        self.current = 0
        self.peak = (0, 0)

    def close(self) -> None:
        """Stop following tensors (dropping the weak references drops their callbacks)
        and let go of the saved storages."""
        self.refs = {}
        self.keep = []

    # -- module calls (tracing.recorder.Observer) --

    def entered(self, call: RunningCall) -> None:
        with _unwatched():
            if call.index == 0:
                self.active = True
                self.weights, self.lazy = _weight_keys(call.module)
                for t in _tensors((call.args, call.kwargs)):
                    self._follow(t)  # the inputs: held by the caller throughout
            elif self.lazy:  # lazy layers materialise in their own pre-hook, before ours
                self.weights |= _weight_keys(call.module)[0]
            self.calls.enter(call)

    def left(self, call: RunningCall, output: Any) -> None:
        with _unwatched():
            tensors = _tensors(output)
            for t in tensors:
                self._follow(t)
            self.calls.leave(call)
            self.outputs[call.index] = sum(_size(t) for t in {id(t): t for t in tensors}.values())
            if call.index == 0:
                self.active = False
                self._weights_of(call.module, _reached(output))

    def _weights_of(self, root: nn.Module, reached: set[int]) -> None:
        self.params = [
            ParamInfo(name, tuple(p.shape), p.dtype, p.requires_grad, p.requires_grad and id(p) in reached)
            for name, p in root.named_parameters()
        ]
        self.buffer_bytes = sum(_size(b) for b in root.buffers())

    # -- what autograd saves (torch.autograd.graph.saved_tensors_hooks) --

    def pack(self, t: torch.Tensor) -> _Saved:
        # Called inside the op that saves (the trace's TorchFunctionMode is off there).
        if _is_weight(t):
            return _Saved(0)
        key, size = _storage(t)
        if self.active and key not in self.saved and key not in self.weights:
            self.saved[key] = (size, self.calls.current)
            self.keep.append(t.untyped_storage())
        return _Saved(key)

    # -- every torch function (tracing.metamode.OpWatcher) --

    def op(self, func: Any, args: tuple[Any, ...], kwargs: dict[str, Any], result: Any) -> None:
        if not self.active:
            return
        outs = _tensors(result)
        alias = None
        if func in _EVAL_IDENTITY and args and isinstance(args[0], torch.Tensor):
            alias = _storage(args[0])[0]
        recorded = 0
        for t in outs:
            self._follow(t, alias)
            if t.grad_fn is not None:
                recorded += _size(t)
        if recorded:
            for a in (*args, *kwargs.values()):
                for t in (
                    (a,)
                    if isinstance(a, torch.Tensor)
                    else _tensors(a)
                    if isinstance(a, (list, tuple))
                    else ()
                ):
                    if t.requires_grad and not _is_weight(t):
                        recorded += _size(t)
            if recorded > self.transient[0]:
                self.transient = (recorded, self.calls.current)

    def _follow(self, t: torch.Tensor, key: int | None = None) -> None:
        """Count ``t`` alive until it is freed (``key``: the storage it stands for)."""
        if id(t) in self.refs:
            return
        own, size = _storage(t)
        key = own if key is None else key
        if key in self.weights:
            return
        entry = self.live.get(key)
        if entry is None:
            self.live[key] = [size, 1]
            self.current += size
            if self.current > self.peak[0]:
                self.peak = (self.current, self.calls.current)
        else:
            entry[1] += 1
        ref = weakref.ref(t, self._freed)
        self.refs[id(t)] = ref
        self.followed[id(ref)] = (id(t), key)

    def _freed(self, ref: weakref.ref[torch.Tensor]) -> None:
        tid, key = self.followed.pop(id(ref))
        self.refs.pop(tid, None)
        entry = self.live[key]
        entry[1] -= 1
        if entry[1] == 0:
            self.current -= entry[0]
            del self.live[key]


# -- the estimate ----------------------------------------------------------------------


def _layers(trace: ShapeTrace, memory: _MemoryPass) -> tuple[LayerMemory, ...]:
    own = [0] * len(trace.layers)
    for size, index in memory.saved.values():
        own[index] += size
    total = list(own)
    stack: list[int] = []
    for i, record in enumerate(trace.layers):
        while stack and trace.layers[stack[-1]].depth >= record.depth:
            stack.pop()
        for ancestor in stack:
            total[ancestor] += own[i]
        stack.append(i)
    return tuple(
        LayerMemory(
            name=r.name,
            type=r.type,
            depth=r.depth,
            call=r.call,
            is_leaf=r.is_leaf,
            output_bytes=memory.outputs.get(i, 0),
            saved_bytes=own[i],
            saved_total=total[i],
        )
        for i, r in enumerate(trace.layers)
    )


def _label(trace: ShapeTrace, index: int) -> str:
    if not trace.layers:
        return ""
    return trace.layers[index].label


def estimate_memory(
    model: nn.Module,
    inputs: Any,
    optimizer: Any = None,
    *,
    train: bool = True,
    dtype: torch.dtype | str | None = None,
    device: str | torch.device = "auto",
) -> MemoryReport:
    """Estimate the memory of one training step of ``model`` on ``inputs``, on meta.

    ``inputs`` as for ``trace`` (the batch size is the first input's first size).
    ``optimizer``: a ``torch.optim.Optimizer`` (its class and param groups say what
    state it keeps; one that has stepped is measured), its class, or a name such as
    ``"AdamW"`` or ``"SGD(momentum=0.9)"``; None leaves the optimizer state out and
    the report says "not counted". ``train``: the modules' mode in the training
    forward (False: BatchNorm with running stats, no dropout, as when fine-tuning a
    frozen backbone). ``dtype``: of inputs made from shapes, as for ``trace``.

    Raises ShapeMismatchError when the forward fails; the model is left as it was.
    """
    from ..tracing.request import TraceRequest

    return memory_report(TraceRequest.of(model, inputs, device=device, dtype=dtype, train=train), optimizer)


def memory_report(request: TraceRequest, optimizer: Any = None) -> MemoryReport:
    """``estimate_memory`` of a request (its mode is the training forward's)."""
    from ..diagnostics.explain import watched
    from ..tracing.records import inputs_text

    model = request.model
    train = request.train
    memory = _MemoryPass()
    try:
        with torch.autograd.graph.saved_tensors_hooks(memory.pack, _unpack):
            trace = watched(request, (memory,), grad=True)
    finally:
        memory.close()
    by_name = {info.name: info for info in memory.params}
    by_id = {id(p): by_name[name] for name, p in model.named_parameters() if name in by_name}
    trainable = [info for info in memory.params if info.gets_grad]
    state = optimizer_state(optimizer, by_id, memory.params)
    param_bytes = sum(info.bytes for info in memory.params)
    saved = memory.saved.values()
    return MemoryReport(
        model=type(model).__name__,
        input=inputs_text(trace.to_dict(), "-"),
        device=trace.device,
        dtype=trace.dtype,
        train=train,
        param_bytes=param_bytes,
        buffer_bytes=memory.buffer_bytes,
        grad_bytes=sum(info.bytes for info in trainable),
        optimizer=state,
        saved_activation_bytes=sum(size for size, _ in saved),
        saved_tensors=len(saved),
        backward_transient_bytes=memory.transient[0],
        transient_at=_label(trace, memory.transient[1]),
        peak_inference_bytes=param_bytes + memory.buffer_bytes + memory.peak[0],
        inference_peak_at=_label(trace, memory.peak[1]),
        layers=_layers(trace, memory),
    )
