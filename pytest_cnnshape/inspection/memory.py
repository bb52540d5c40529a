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

import types
import weakref
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parameter import is_lazy

from ..tracing.metarules import tensor_arguments
from ..tracing.recorder import RunningCall
from ..tracing.saves import NO_GRADIENT, Fresh, saved_by
from .optimizer_state import OptimizerState, ParamInfo, optimizer_state
from .render import memory_text

if TYPE_CHECKING:
    from ..tracing.modelview import ModelView
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
    """Storages of the parameters and buffers as the forward sees them; any lazy left?

    The registries are read as they are now (meta twins during a meta trace), through
    the module list of one walk of the tree.
    """
    from ..tracing.modelview import ModelView

    keys: set[int] = set()
    lazy = False
    for m in ModelView.of(module).modules:
        for t in (*m._parameters.values(), *m._buffers.values()):
            if t is None:
                continue
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


def _has_grad_fn(t: torch.Tensor) -> bool:
    return t.grad_fn is not None


def _requires_grad(t: torch.Tensor) -> bool:
    return t.requires_grad


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


class _Grads:
    """Which tensors of a forward run without autograd would need a gradient in a training
    step, and the graph backward would walk: each such tensor's node holds the parameters
    it was computed from and the nodes of its other operands."""

    def __init__(self) -> None:
        #: ``id(tensor)`` -> (a weak reference to it, its node: (parameter ids, parent nodes))
        self.known: dict[int, tuple[weakref.ref[torch.Tensor], _Node]] = {}

    def needs(self, t: torch.Tensor) -> bool:
        """A parameter (or an input) that asks for a gradient, or a result made of one."""
        if t.requires_grad:
            return True
        entry = self.known.get(id(t))
        return entry is not None and entry[0]() is t

    def _node(self, t: torch.Tensor) -> _Node | None:
        entry = self.known.get(id(t))
        if entry is not None and entry[0]() is t:
            return entry[1]
        if t.requires_grad and t.is_leaf:
            return ((id(t),), ())
        return None

    def made(self, t: torch.Tensor, sources: list[torch.Tensor]) -> None:
        """``t`` was computed (in place or not) from ``sources``, some needing a gradient."""
        before = self._node(t)  # in place: what it was made of stays reachable
        parents = tuple(n for n in (*(self._node(s) for s in sources), before) if n is not None)
        self.known[id(t)] = (weakref.ref(t), ((), parents))

    def reached(self, output: Any) -> set[int]:
        """``id`` of the parameters the output depends on: those backward gives a gradient."""
        stack = [n for n in map(self._node, _tensors(output)) if n is not None]
        seen: set[int] = set()
        found: set[int] = set()
        while stack:
            node = stack.pop()
            if id(node) in seen:
                continue
            seen.add(id(node))
            found.update(node[0])
            stack.extend(node[1])
        return found


#: A node of the graph ``_Grads`` keeps: the parameters it is, and the nodes it came from.
_Node = tuple[tuple[int, ...], tuple[Any, ...]]


def _getitem_saves(args: tuple[Any, ...]) -> Any:
    """Basic indexing (ints, slices, None, ...) keeps nothing; indexing with a tensor keeps
    the index, a call not counted here."""
    index = args[1] if len(args) > 1 else None
    items = index if isinstance(index, tuple) else (index,)
    return None if any(isinstance(i, (torch.Tensor, list)) for i in items) else ()


_INDEXING = frozenset({torch.Tensor.__getitem__, torch.Tensor.__setitem__})
_DROPOUTS = frozenset({F.dropout, F.dropout1d, F.dropout2d, F.dropout3d})


class _MemoryPass:
    """Observer, op watcher and saved-tensors hook of the one training forward.

    Counts what autograd saves (``pack``), each call's output, the backward transient
    per op, and, by weak references to every tensor the torch functions return, the
    most bytes alive at once: the inference peak.

    ``counted=True``: the forward runs without autograd (a meta trace's own pass, where
    every size rule answers) and what autograd would save is worked out op by op
    (``tracing.saves.saved_by``), with which tensors would need a gradient kept here
    (``_Grads``). An op this does not know that a gradient would reach makes
    ``unknown`` its name: the caller then counts with autograd instead.
    ``as_training=True``: the forward runs in evaluation mode and stands for a training
    one (the report's one forward): batch statistics and dropout noise are counted, and
    an evaluation-mode dropout's output (its input itself) stands for a new storage, as
    a training one is.
    """

    def __init__(self, *, counted: bool = False, as_training: bool = False) -> None:
        self.refs: dict[int, weakref.ref[torch.Tensor]] = {}
        self.counted = counted
        self.as_training = as_training
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
        self.grads = _Grads()
        #: ``id(tensor)`` -> (a weak reference, the storage it stands for in a training step)
        self.virtual: dict[int, tuple[weakref.ref[torch.Tensor], int]] = {}
        #: The first op a gradient reaches whose saves are not known (counted pass only).
        self.unknown: str | None = None
        #: The last key given to a storage this forward does not make (``_new_key``).
        self.made_keys = 0

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
                reached = self.grads.reached(output) if self.counted else _reached(output)
                self._weights_of(call.module, reached)

    def _weights_of(self, root: nn.Module, reached: set[int]) -> None:
        from ..tracing.modelview import ModelView
        from .parameters import named_tensors

        view = ModelView.of(root)  # its registries as they are now (meta twins on meta)
        self.params = [
            ParamInfo(names[0], tuple(p.shape), p.dtype, p.requires_grad, p.requires_grad and key in reached)
            for key, (p, names) in named_tensors(view, "_parameters").items()
        ]
        self.buffer_bytes = sum(_size(b) for b, _ in named_tensors(view, "_buffers").values())

    # -- what autograd saves (torch.autograd.graph.saved_tensors_hooks) --

    def pack(self, t: torch.Tensor) -> _Saved:
        # Called inside the op that saves (the trace's TorchFunctionMode is off there).
        if _is_weight(t):
            return _Saved(0)
        key, size = _storage(t)
        stands = self.virtual.get(id(t)) if self.virtual else None
        if stands is not None and stands[0]() is t:
            key = stands[1]
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
        for t in outs:
            self._follow(t, alias)
        if self.counted:
            needs = self.grads.needs
            sources = [t for t in tensor_arguments(args, kwargs) if needs(t)]
            if not sources:
                return  # nothing this op sees needs a gradient: autograd would record nothing
            self._count(func, args, kwargs, result, outs, sources)
            self._transient(outs, sources, self._counted_grad, needs)
        else:
            self._transient(outs, tensor_arguments(args, kwargs), _has_grad_fn, _requires_grad)

    def _transient(
        self,
        outs: list[torch.Tensor],
        operands: list[torch.Tensor],
        has_grad: Callable[[torch.Tensor], bool],
        needs: Callable[[torch.Tensor], bool],
    ) -> None:
        """The gradient flowing into this op in backward, and those it produces for its inputs."""
        recorded = sum(_size(t) for t in outs if has_grad(t))
        if recorded:
            recorded += sum(_size(t) for t in operands if needs(t) and not _is_weight(t))
            if recorded > self.transient[0]:
                self.transient = (recorded, self.calls.current)

    def _counted_grad(self, t: torch.Tensor) -> bool:
        """Whether autograd would have given ``t`` a graph node (a result, not a parameter)."""
        return not (t.requires_grad and t.is_leaf) and self.grads.needs(t)

    def _count(  # noqa: PLR0917  (the op as the watcher sees it, and what needs a gradient)
        self,
        func: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        result: Any,
        outs: list[torch.Tensor],
        sources: list[torch.Tensor],
    ) -> None:
        """What autograd would save for this op, and which of its results need a gradient."""
        if func in NO_GRADIENT:
            return
        if func is torch.Tensor.__setitem__ and args:
            outs = [args[0]]  # assigned in place: the target now depends on the value
        differentiable = [t for t in outs if t.is_floating_point() or t.is_complex()]
        if not differentiable:
            return  # comparisons, indices: no gradient flows through them
        identity = func in _DROPOUTS and outs[0] is args[0] and not kwargs.get("inplace")
        if identity and not self.as_training:
            saved: Any = ()  # an evaluation-mode step: dropout is the identity, as here
        elif func in _INDEXING:
            saved = _getitem_saves(args)
        else:
            saved = saved_by(func, self.grads.needs, result, args, kwargs)
        if saved is None:
            self.unknown = self.unknown or str(getattr(func, "__qualname__", None) or func)
            return
        for t in saved:
            if isinstance(t, torch.Tensor):
                self.pack(t)
            elif isinstance(t, Fresh):
                self._fresh(t.nbytes)
        for t in differentiable:
            self.grads.made(t, sources)
        if identity and self.as_training:
            # evaluation-mode dropout returns its input; a training step's is a new tensor
            self.virtual[id(outs[0])] = (weakref.ref(outs[0]), self._new_key())

    def _new_key(self) -> int:
        """A storage of a training step that this forward does not make: a key no real
        storage has (negative)."""
        self.made_keys -= 1
        return self.made_keys

    def _fresh(self, nbytes: int) -> None:
        """A tensor autograd makes and saves itself (statistics, indices, a mask, a copy)."""
        if self.active:
            self.saved[self._new_key()] = (nbytes, self.calls.current)

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
    """``estimate_memory`` of a request (its mode is the training forward's).

    One forward without autograd, its saves worked out op by op (``counted`` pass),
    unless the model's own code depends on the mode or on autograd, or a gradient
    reaches an op whose saves are not known here: then one forward with autograd
    recording, as a training step's.
    """
    from ..tracing.modelview import shared_views

    with shared_views():  # the pass and the estimate read one walk of the model
        return _memory_report(request, optimizer)


def _memory_report(request: TraceRequest, optimizer: Any) -> MemoryReport:
    from ..diagnostics.explain import watched

    if counts_without_autograd(request.view):
        memory = counting_pass()
        try:
            trace = watched(request, (memory,))
            if memory.unknown is None:
                return estimate(request, memory, trace, optimizer)
        finally:
            memory.close()
    memory = _MemoryPass()
    try:
        with torch.autograd.graph.saved_tensors_hooks(memory.pack, _unpack):
            trace = watched(request, (memory,), grad=True)
    finally:
        memory.close()
    return estimate(request, memory, trace, optimizer)


def counting_pass(*, as_training: bool = False) -> _MemoryPass:
    """The observer that counts a training step's memory in a forward without autograd (for
    a trace that also serves other ends: the report's one forward, in evaluation mode,
    standing for a training one with ``as_training``)."""
    return _MemoryPass(counted=True, as_training=as_training)


def counted(memory: _MemoryPass) -> bool:
    """Whether a counting pass knew every op a gradient reached (its estimate stands)."""
    return memory.counted and memory.unknown is None


#: Names whose use in a model's own code makes its forward depend on the mode or on
#: autograd: what a forward without autograd, or in evaluation mode, cannot stand for.
_MODE_NAMES = frozenset(
    {
        "training",
        "no_grad",
        "enable_grad",
        "set_grad_enabled",
        "inference_mode",
        "is_grad_enabled",
        "requires_grad",
        "checkpoint",
        "checkpoint_sequential",
    }
)


def _names(code: types.CodeType) -> Iterator[str]:
    yield from code.co_names
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _names(const)


def counts_without_autograd(view: ModelView) -> bool:
    """True when no module class of the model outside torch's own reads its mode or the
    autograd state (``self.training``, ``torch.no_grad()``, ``x.requires_grad``,
    checkpointing): then a forward without autograd, in either mode, runs as a training
    step's does, and what it would save can be worked out op by op."""
    seen: set[type] = set()
    for module in view.modules:
        for cls in type(module).__mro__:
            if cls in seen or cls.__module__.startswith("torch.") or cls is object:
                continue
            seen.add(cls)
            for value in vars(cls).values():
                function = getattr(value, "__func__", value)
                code = getattr(function, "__code__", None)
                if isinstance(code, types.CodeType) and not _MODE_NAMES.isdisjoint(_names(code)):
                    return False
    return True


def estimate(
    request: TraceRequest, memory: _MemoryPass, trace: ShapeTrace, optimizer: Any = None
) -> MemoryReport:
    """The MemoryReport of a finished pass over ``request``'s model."""
    from ..tracing.records import inputs_text
    from .parameters import named_tensors

    model = request.model
    by_name = {info.name: info for info in memory.params}
    by_id = {
        key: by_name[names[0]]
        for key, (_, names) in named_tensors(request.view, "_parameters").items()
        if names[0] in by_name
    }
    trainable = [info for info in memory.params if info.gets_grad]
    state = optimizer_state(optimizer, by_id, memory.params)
    param_bytes = sum(info.bytes for info in memory.params)
    saved = memory.saved.values()
    return MemoryReport(
        model=type(model).__name__,
        input=inputs_text({"input_shapes": trace.input_shapes, "input_kwargs": trace.input_kwargs}, "-"),
        device=trace.device,
        dtype=trace.dtype,
        train=request.train or memory.as_training,
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
