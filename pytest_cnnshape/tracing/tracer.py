"""Run a model once with hooks on every module: the records, without touching the model.

On meta, parameters and buffers are swapped for meta twins for the duration of
the forward (``state.meta_weights``; weights are never copied), so even an
8x3x512x512 batch costs no activation memory and no compute. A forward runs
under ``no_grad`` (``grad=True``: with autograd recording, for a training-memory
pass that counts what autograd saves) inside ``state.preserved``, which puts back everything a forward
can change. Models with lazy modules are traced on a structural clone that shares
(or, on meta, swaps) their tensors, because initialising a lazy layer would
change the user's model; their rows are marked lazy and count the parameters the
layers will have. Wrappers are unwrapped first (``wrappers``: torch.compile,
DataParallel); a TorchScript module, which hooks cannot see into, is run by
``scripted``.

``run`` returns the ShapeTrace or raises ``ForwardFailed`` with the moment of
failure; ``pytest_cnnshape.trace`` (in ``diagnostics``) explains that failure as a
ShapeMismatchError. A failure no shape explains (no kernel on any device tried,
the model's own ``raise``) is a one-line TraceError instead (``untraceable``).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import replace
from typing import Any

import torch
from torch import nn
from torch.nn.parameter import is_lazy

from ..errors import ArgumentError, ForwardFailed, TraceError
from ..shapes.tree import shape_tree
from .devices import Plan, meta_limitation, model_device, plan, short_reason
from .failure import FailureContext
from .functional import FunctionalOps
from .guard import exclusive, gc_paused, guarded
from .inputs import materialize
from .metamode import OpWatcher, trace_mode
from .modelview import ModelView
from .params import model_counts
from .recorder import Observer, Recorder
from .records import ShapeTrace
from .request import TraceRequest
from .scripted import run_script, script_device
from .state import lazy_twin, meta_twin, meta_weights, preserved
from .untraceable import untraceable, where_failed
from .wrappers import is_script_module, type_name


def run(request: TraceRequest, *, observers: Sequence[Observer] = (), grad: bool = False) -> ShapeTrace:
    """One traced forward of ``request`` where its device says (see ``pytest_cnnshape.trace``).

    Raises ForwardFailed when the model's forward raises (on the device it ended up
    on), TraceError when meta cannot run it and no fallback was allowed.
    ``observers`` watch the module calls of the run that is reported. ``grad=True``
    runs the forward with autograd recording (nothing runs backward; the graph is
    dropped with the output), as a training step's forward would.
    """
    model = request.model
    with guarded(model, type_name(model)):
        return _traced(request, observers, grad)


def holding(request: TraceRequest) -> AbstractContextManager[None]:
    """Hold the request's model for a whole trace and its diagnosis (``guard.guarded``)."""
    return guarded(request.model, type_name(request.model))


def _traced(request: TraceRequest, observers: Sequence[Observer], grad: bool) -> ShapeTrace:
    """Run the trace; explain what no shape explains."""
    try:
        result = _dispatch(request, observers, grad)
    except ForwardFailed as failed:
        failed.wrapper = failed.wrapper or request.wrapper
        error = untraceable(failed, type_name(request.model), partial_trace(failed))
        if error is not None:
            raise error from failed.context.exc
        raise
    if request.wrapper:
        result.wrapper = "; ".join(n for n in (request.wrapper, result.wrapper) if n)
    return result


def _dispatch(request: TraceRequest, observers: Sequence[Observer], grad: bool) -> ShapeTrace:
    """The trace proper: meta, or a fallback; each forward with the model's modules locked (``guard``)."""
    view = request.view
    if is_script_module(view.root):
        where = script_device(view, request.device)
        _check_real_device(view, where)
        with exclusive(view.modules):
            return run_script(view, request, where, observers=observers)
    return _routed(request, observers, grad)


def _routed(request: TraceRequest, observers: Sequence[Observer], grad: bool) -> ShapeTrace:
    """Run where the plan says: meta first when it can, a real forward when meta cannot."""
    view = request.view
    route = plan(view, request.inputs, request.device)
    if route.first.type == "meta" and _script_parts(view):
        if route.fallback is None:
            raise TraceError(
                f"cannot trace {type_name(view.root)} on the meta device: its TorchScript "
                f"submodule(s) {', '.join(_script_parts(view)[:5])} keep their weights in the "
                "TorchScript interpreter, where they cannot be swapped for meta tensors; use "
                "device='auto' or 'cpu'"
            )
        route = Plan(route.fallback, None, "TorchScript submodules run where their weights are")
    _check_real_device(view, route.first)
    try:
        return _run(request, route.first, observers, grad)
    except ForwardFailed as failed:
        exc = failed.context.exc
        if route.first.type != "meta" or not meta_limitation(exc):
            raise
        if route.fallback is None:
            _, described = where_failed(failed.context)
            raise TraceError(
                f"cannot trace {type_name(view.root)} on the meta device: {described} does what "
                f"meta cannot ({short_reason(exc)}). Use device='auto' to fall back to a real "
                "forward, or device='cpu'.",
                layer=failed.context.innermost.record.name if failed.context.innermost else "",
                trace=partial_trace(failed),
            ) from exc
        note = (
            f"meta could not run this model ({short_reason(exc)}); "
            f"traced with a real forward on {route.fallback}"
        )
        try:
            result = _run(request, route.fallback, observers, grad)
        except ForwardFailed as again:
            again.note = note
            raise
        result.note = note
        return result


def _check_real_device(view: ModelView, where: torch.device) -> None:
    if where.type == "meta":
        return
    devices = view.devices()
    if any(d.type == "meta" for d in devices):
        raise ArgumentError(
            f"device={str(where)!r}: the model's weights are on meta, so no real forward can "
            "run; use device='meta' or 'auto'"
        )
    foreign = sorted(str(d) for d in devices if not _same_device(d, where))
    if foreign:
        raise ArgumentError(
            f"device={str(where)!r}: the model's weights are on {', '.join(foreign)}; move the "
            f"model there first (model.to({str(where)!r})) or use device='auto', which traces "
            "on meta without copying weights"
        )


def _same_device(a: torch.device, b: torch.device) -> bool:
    return a.type == b.type and (a.index is None or b.index is None or a.index == b.index)


def _lazy_holders(view: ModelView) -> set[int]:
    """``id`` of every module whose subtree holds an uninitialised lazy tensor."""
    holders: set[int] = set()
    for m in reversed(view.modules):  # children before parents
        own = any(t is not None and is_lazy(t) for t in (*m._parameters.values(), *m._buffers.values()))
        if own or any(id(c) in holders for c in m._modules.values() if c is not None):
            holders.add(id(m))
    return holders


def _structural_clone(view: ModelView, meta: bool) -> tuple[nn.Module, dict[int, str]]:
    """A copy of the module tree that shares (or meta-swaps) tensors: no weights copied.

    Uninitialised lazy parameters and buffers are the exception: the clone gets
    its own, so materialising them never reaches the user's model. Also returns
    ``id(clone module) -> class name in the user's model`` for the modules holding
    lazy layers: what their records are marked with.
    """
    memo: dict[int, Any] = {}
    for t in view.tensors():
        if is_lazy(t):
            memo[id(t)] = lazy_twin(t, "meta" if meta else None)
        else:
            memo[id(t)] = meta_twin(t) if meta else t
    clone = copy.deepcopy(view.root, memo)
    holders = _lazy_holders(view)
    return clone, {id(memo[id(m)]): type_name(m) for m in view.modules if id(m) in holders}


def _target(view: ModelView, where: torch.device) -> tuple[ModelView, dict[int, str]]:
    """What to hook and run: the model itself, or a clone when it has lazy layers."""
    if view.has_lazy():
        clone, lazy = _structural_clone(view, where.type == "meta")
        return ModelView.of(clone), lazy
    return view, {}


def _run(
    request: TraceRequest, where: torch.device, observers: Sequence[Observer] = (), grad: bool = False
) -> ShapeTrace:
    """One forward of ``request`` on ``where``, hooked, with the model's modules locked."""
    view = request.view
    with exclusive(view.modules):
        return _forward(request, view, where, observers, grad)


def _forward(
    request: TraceRequest, view: ModelView, where: torch.device, observers: Sequence[Observer], grad: bool
) -> ShapeTrace:
    target, lazy = _target(view, where)
    model = view.root
    dtype, train, spec = request.dtype, request.train, request.inputs
    args, kwargs = materialize(spec, where, dtype, view.modules)
    recorder = Recorder(target, observers, lazy)
    watchers: list[OpWatcher] = [o for o in observers if callable(getattr(o, "op", None))]  # type: ignore[misc]
    on_meta = where.type == "meta"
    swap = on_meta and target is view
    with (
        gc_paused() if on_meta else nullcontext(),  # a meta forward is short: no collection in it
        preserved(view, real_run=not on_meta, train=train),
        meta_weights(view) if swap else nullcontext(),
        trace_mode(meta=on_meta, watchers=watchers),
    ):
        if target is not view:
            target.root.train(train)
        recorder.attach()
        try:
            with recorder.active(), torch.enable_grad() if grad else torch.no_grad():
                output = target.root(*args, **kwargs)
        except Exception as exc:  # the model's failure, explained by the caller
            context = FailureContext(
                exc,
                target,
                recorder.records,
                recorder.running(),
                where,
                spec,
                recorder.produced,
                Prober(request, where),
                tuple(observers),
            )
            recorder.finish()
            raise ForwardFailed(context) from None
        finally:
            recorder.detach()
    records = recorder.finish()
    total, trainable = recorder.totals
    input_shapes, input_kwargs = spec.shapes()
    return ShapeTrace(
        wrapper=_script_parts_note(view),
        layers=records,
        output_shape=shape_tree(output),
        total_params=total,
        trainable_params=trainable,
        device=str(where),
        model_type=type_name(model),
        input_shapes=input_shapes,
        input_kwargs=input_kwargs,
        dtype=str(dtype).removeprefix("torch."),
        train=train,
    )


def _script_parts(view: ModelView) -> list[str]:
    """Names of the outermost TorchScript submodules of an eager model."""
    if not view.scripted:
        return []
    names = []
    for m in view.modules:
        name = view.names[id(m)]
        parent = view.by_name.get(name.rpartition(".")[0]) if name else None
        if id(m) in view.scripted and parent is not None and id(parent) not in view.scripted:
            names.append(name)
    return names


def _script_parts_note(view: ModelView) -> str | None:
    """The note for TorchScript submodules of an eager model: their calls are not seen."""
    names = _script_parts(view)
    if not names:
        return None
    return (
        f"TorchScript submodule(s) {', '.join(names[:5])}: forward hooks do not fire inside "
        "TorchScript, so their calls are not shown (their parameters are counted); trace the "
        "eager modules for their layers"
    )


class Prober:
    """Runs a request's model on other inputs without diagnosing failures: for searches over sizes.

    A diagnosis uses one to compute the smallest input that works, to watch the
    failed run again, and to try its fixes on a twin of the model (``root``);
    ``min_input_size`` and contracts do too. Meta first (milliseconds per run, no
    memory), the given real device when meta cannot run the model. Returns the
    trace, or the failure's context (undiagnosed: cheap). Every run is watched by a
    ``FunctionalOps``, so a size search also sees functional pooling run out of pixels.
    """

    def __init__(self, request: TraceRequest, fallback: torch.device) -> None:
        self.request = request
        view = request.view
        self.view, self.dtype, self.train = view, request.dtype, request.train
        # TorchScript submodules cannot take meta weights: they run where they are
        self.where = fallback if _script_parts(view) else torch.device("meta")
        self.fallback = fallback

    @classmethod
    def of(cls, request: TraceRequest) -> Prober:
        """A Prober for ``request``'s model, falling back to the model's own device."""
        return cls(request, model_device(request.model))

    def __call__(
        self,
        inputs: Any,
        *,
        observers: Sequence[Observer] = (),
        root: nn.Module | None = None,
        where: torch.device | None = None,
    ) -> ShapeTrace | FailureContext:
        """Run ``inputs`` through the model, or through ``root`` (a twin) on ``where``."""
        request = self.request.with_inputs(inputs)
        if root is not None:
            request = replace(request, model=root)
        watching = tuple(observers)
        if not any(isinstance(o, FunctionalOps) for o in watching):
            watching = (*watching, FunctionalOps())
        device = where or self.where
        try:
            if is_script_module(request.model):
                return run_script(request.view, request, self.fallback)
            return _run(request, device, watching)
        except ForwardFailed as failed:
            if (
                where is None
                and root is None
                and device.type == "meta"
                and self.fallback.type != "meta"
                and meta_limitation(failed.context.exc)
            ):
                self.where = self.fallback
                return self(inputs, observers=observers)
            return failed.context


def partial_trace(failed: ForwardFailed) -> ShapeTrace:
    """The trace up to a failure: what ran, and the counts of the whole model."""
    context = failed.context
    total, trainable = model_counts(context.view)
    input_shapes, input_kwargs = context.inputs.shapes()
    return ShapeTrace(
        layers=context.records,
        output_shape=None,
        total_params=total,
        trainable_params=trainable,
        device=str(context.device),
        model_type=type_name(context.model),
        input_shapes=input_shapes,
        input_kwargs=input_kwargs,
        note=failed.note,
        complete=False,
        wrapper=failed.wrapper,
    )
