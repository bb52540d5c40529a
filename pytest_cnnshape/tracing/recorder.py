"""Forward hooks that record one LayerRecord per module call, and tell observers.

The pre-hook opens a record (name, depth, call index, input shapes) and pushes it
on a stack of running calls; the hook fills the output shape and pops it. When the
forward raises, the stack still holds every call that was running: the innermost
one is the layer that failed. Cost per call is a dict lookup, a shape walk and one
small object, so tracing stays linear in the number of calls at any nesting.

Whatever else wants to watch a forward (inspection's data flow and FLOP counts)
registers an ``Observer`` instead of hooks of its own, so there is one call stack
and every observer sees the calls in the order the records have them.

Each recorder counts only the calls made while it is the active one of its
thread (a context variable): a trace run in another thread, or one started from
inside a forward (re-entrant: ``trace(self.block, ...)`` in ``forward``), has
its own recorder, and the hooks of the other see none of its calls.

The modules of a ``torch.nn.utils.parametrize`` parametrization (spectral_norm,
weight_norm, orthogonal) compute a weight, not the data flow: they are not
hooked, and the layer they belong to counts as a leaf.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Protocol

from torch import nn
from torch.utils.hooks import RemovableHandle

from ..shapes.tree import shape_tree
from .exported import is_guards_call, program_of, unflatten_type
from .modelview import ModelView
from .params import subtree_counts
from .records import LayerRecord

#: The recorder whose forward is running in this thread (and context), if any.
_ACTIVE: ContextVar[Recorder | None] = ContextVar("cnnshape_recorder", default=None)


@dataclass(slots=True)
class RunningCall:
    """A call on the stack: the module and the arguments it received."""

    module: nn.Module
    record: LayerRecord
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    #: Position of the record in the trace: ``trace.layers[index]``.
    index: int


class Observer(Protocol):
    """Something that watches the module calls of a traced forward."""

    def started(self) -> None:
        """A forward begins (each attempt of a trace: meta, then a real fallback)."""

    def entered(self, call: RunningCall) -> None:
        """A module call begins (after the user's own pre-hooks)."""

    def left(self, call: RunningCall, output: Any) -> None:
        """A module call returned ``output``."""


def parametrization_modules(view: ModelView) -> set[int]:
    """``id()`` of every module that belongs to a parametrization (not data flow)."""
    from torch.nn.utils.parametrize import ParametrizationList

    skipped: set[int] = set()
    for module in view.modules:
        if id(module) in view.scripted:
            continue
        holder = module._modules.get("parametrizations")
        if isinstance(holder, nn.ModuleDict) and all(
            isinstance(p, ParametrizationList) for p in holder.values()
        ):
            skipped.update(id(sub) for sub in holder.modules())
    return skipped


def _held(module: nn.Module) -> Iterator[Any]:
    """The parameters and buffers a module holds itself."""
    yield from (t for t in module._parameters.values() if t is not None)
    yield from (t for t in module._buffers.values() if t is not None)


class Recorder:
    """Attach to every module of a model; collect records; detach without a trace."""

    def __init__(
        self, view: ModelView, observers: Sequence[Observer] = (), lazy: Mapping[int, str] | None = None
    ) -> None:
        self.view = view
        self.observers = tuple(observers)
        #: ``id(module) -> class name`` of modules holding lazy layers not initialised in the
        #: user's model (``view`` is then a clone, whose layers initialise as they run).
        self.lazy = lazy or {}
        self.records: list[LayerRecord] = []
        self.record_modules: list[nn.Module] = []
        self.stack: list[RunningCall] = []
        self.calls: dict[int, int] = {}
        self._handles: list[RemovableHandle] = []
        self.counts: dict[int, tuple[int, int]] = {}
        #: ``id(output) -> record`` of finished calls: which layer made a tensor.
        self.produced: dict[int, LayerRecord] = {}
        self._leaves: set[int] = set()
        #: ``id`` of the weights an unflattened exported program may pass between its modules
        #: as arguments (a shared or tied one): not inputs of the call in the eager model.
        self._weights: frozenset[int] = frozenset()

    def attach(self) -> None:
        """Register our hooks last, so they see what user pre-hooks hand to forward."""
        for observer in self.observers:
            observer.started()
        if program_of(self.view.root) is not None:  # the weights as they are now (meta twins on meta)
            self._weights = frozenset(id(t) for m in self.view.modules for t in _held(m))
        skipped = parametrization_modules(self.view)
        self._leaves = {
            id(m) for m in self.view.modules if all(id(c) in skipped for c in m._modules.values())
        }
        for module in self.view.modules:
            if id(module) in skipped or id(module) in self.view.scripted or is_guards_call(module):
                continue  # parametrizations and input checks are not data flow; TorchScript takes no hooks
            self._handles.append(module.register_forward_pre_hook(self._pre, with_kwargs=True))
            self._handles.append(module.register_forward_hook(self._post, with_kwargs=True))

    @contextmanager
    def active(self) -> Iterator[None]:
        """Make this recorder the one that records, in this thread, for the body."""
        token = _ACTIVE.set(self)
        try:
            yield
        finally:
            _ACTIVE.reset(token)

    def detach(self) -> None:
        """Remove every hook this recorder added; user hooks stay."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def _pre(self, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        if _ACTIVE.get() is not self:
            return  # another trace's call: another thread, or a trace inside a forward
        key = id(module)
        call = self.calls.get(key, 0)
        self.calls[key] = call + 1
        if self._weights:
            args = tuple(a for a in args if id(a) not in self._weights)
        record = LayerRecord(
            name=self.view.names.get(key, "?"),
            type=type(module).__name__,
            depth=len(self.stack),
            call=call,
            input_shapes=tuple([shape_tree(a) for a in args]),
            input_kwargs={k: shape_tree(v) for k, v in kwargs.items()} if kwargs else {},
            is_leaf=key in self._leaves,
            aliases=self.view.aliases.get(key, ()),
        )
        running = RunningCall(module, record, args, kwargs, len(self.records))
        self.records.append(record)
        self.record_modules.append(module)
        self.stack.append(running)
        for observer in self.observers:
            observer.entered(running)

    def _post(self, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], output: Any) -> None:
        if _ACTIVE.get() is not self:
            return
        stack = self.stack
        # Calls above ours whose hook never ran raised inside a try/except of the
        # forward; they stay unfinished.
        while stack:
            running = stack.pop()
            if running.module is module:
                running.record.output_shape = shape_tree(output)
                running.record.finished = True
                self.produced[id(output)] = running.record
                for observer in self.observers:
                    observer.left(running, output)
                return

    def running(self) -> list[RunningCall]:
        """Calls still open: after a failed forward, outermost first."""
        return list(self.stack)

    def finish(self) -> list[LayerRecord]:
        """Fill parameter counts (after forward, so lazy modules count materialised).

        A lazy layer has become its ``cls_to_become`` (LazyLinear -> Linear) by the
        time it runs; its record keeps the class the user's model has, marked lazy. A
        module of an unflattened exported program gets the class it stands for.
        """
        self.counts = subtree_counts(self.view)
        lazy = self.lazy
        exported = program_of(self.view.root) is not None  # rows name the classes the program stands for
        for record, module in zip(self.records, self.record_modules, strict=True):
            record.num_params, record.trainable_params = self.counts.get(id(module), (0, 0))
            if lazy and id(module) in lazy:
                record.type, record.lazy = lazy[id(module)], True
            elif exported:
                record.type = unflatten_type(module) or record.type
        self.record_modules = []
        return self.records

    @property
    def totals(self) -> tuple[int, int]:
        """Parameters and trainable parameters of the whole model (after ``finish``)."""
        return self.counts[id(self.view.root)]
