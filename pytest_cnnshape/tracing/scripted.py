"""Tracing a TorchScript module: what is true without hooks.

Forward hooks do not fire inside the TorchScript interpreter, and its weights
cannot be swapped for meta tensors, so a scripted or traced module is run for
real on its own device (CPU for a module without weights). The trace has a row
per submodule from the module tree, with its parameter count; only the root
row has shapes (the inputs, and the output of the run), and the trace's
``wrapper`` note says that per-layer shapes need the eager model. Observers see
the root call, so FLOPs are counted in total.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

import torch

from ..errors import ForwardFailed, TraceError
from ..shapes.tree import shape_tree
from .devices import model_device
from .failure import FailureContext
from .inputs import materialize
from .metamode import OpWatcher, trace_mode
from .modelview import ModelView
from .params import subtree_counts
from .recorder import Observer, RunningCall
from .records import LayerRecord, ShapeTrace
from .state import preserved
from .wrappers import script_note, type_name

if TYPE_CHECKING:
    from .request import TraceRequest


def script_device(view: ModelView, requested: torch.device | Literal["auto"]) -> torch.device:
    """Where a TorchScript module runs: its own device, or the one asked for (never meta)."""
    home = model_device(view.root)
    where = home if requested == "auto" else requested
    if where.type == "meta":
        raise TraceError(
            f"cannot trace {type_name(view.root)} (TorchScript) on the meta device: its weights live "
            "in the TorchScript interpreter and cannot be swapped for meta tensors; use "
            "device='auto' (a real run on the model's device), or trace the eager model on meta"
        )
    return where


def tree_records(view: ModelView) -> list[LayerRecord]:
    """A row per module, in ``named_modules()`` order, with parameter counts and no shapes."""
    counts = subtree_counts(view)
    records = []
    for module in view.modules:
        name = view.names[id(module)]
        total, trainable = counts[id(module)]
        records.append(
            LayerRecord(
                name=name,
                type=type_name(module),
                depth=name.count(".") + 1 if name else 0,
                call=0,
                input_shapes=(),
                num_params=total,
                trainable_params=trainable,
                is_leaf=next(iter(module.children()), None) is None,
                finished=True,
                aliases=view.aliases.get(id(module), ()),
            )
        )
    return records


def run_script(
    view: ModelView, request: TraceRequest, where: torch.device, observers: Sequence[Observer] = ()
) -> ShapeTrace:
    """One real forward of the TorchScript module ``view`` holds; ForwardFailed when it raises."""
    spec, dtype, train = request.inputs, request.dtype, request.train
    args, kwargs = materialize(spec, where, dtype, view.modules)
    records = tree_records(view)
    root = records[0]
    root.input_shapes = tuple(shape_tree(a) for a in args)
    root.input_kwargs = {k: shape_tree(v) for k, v in kwargs.items()}
    root.finished = False
    call = RunningCall(view.root, root, args, kwargs, 0)
    watchers: list[OpWatcher] = [o for o in observers if callable(getattr(o, "op", None))]  # type: ignore[misc]
    note = script_note(view.root, where)
    with preserved(view, real_run=True, train=train), trace_mode(meta=False, watchers=watchers):
        for observer in observers:
            observer.started()
            observer.entered(call)
        try:
            with torch.no_grad():
                output = view.root(*args, **kwargs)
        except Exception as exc:  # the model's failure, explained by the caller
            failed = ForwardFailed(FailureContext(exc, view, [root], [call], where, spec))
            failed.wrapper = note
            raise failed from None
        for observer in observers:
            observer.left(call, output)
    root.output_shape, root.finished = shape_tree(output), True
    total, trainable = root.num_params, root.trainable_params
    input_shapes, input_kwargs = spec.shapes()
    return ShapeTrace(
        layers=records,
        output_shape=root.output_shape,
        total_params=total,
        trainable_params=trainable,
        device=str(where),
        model_type=type_name(view.root),
        input_shapes=input_shapes,
        input_kwargs=input_kwargs,
        dtype=str(dtype).removeprefix("torch."),
        train=train,
        wrapper=note,
    )
