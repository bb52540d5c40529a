"""Tracing a TorchScript module: what is true without hooks.

Forward hooks do not fire inside the TorchScript interpreter, and its weights
cannot be swapped for meta tensors, so a scripted or traced module is run for
real on its own device (CPU for a module without weights). The trace has a row
per submodule from the module tree, with its parameter count; only the root
row has shapes (the inputs, and the output of the run), and the trace's
``wrapper`` note says that per-layer shapes need the eager model. Observers see
the root call, so FLOPs are counted in total.

When its forward fails, ``locate_failure`` finds the scripted submodule that raised
and what it received, by running the submodules one at a time on the arguments a
copy of each compiled forward, cut before the call, computes; ``eager_twin``
rebuilds an eager module holding the same tensors (a scripted module keeps the
class it was compiled from, with its settings), which ``diagnostics.scripted``
traces with hooks to explain the failure in the eager module's terms.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import torch
from torch import nn

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
            failed = ForwardFailed(FailureContext(exc, view, [root], [call], where, spec, train=train))
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


# -- a failure inside TorchScript: which submodule, what it received, its eager twin ---------


@dataclass(frozen=True)
class Located:
    """The innermost scripted submodule whose forward raised, and what it received."""

    path: str
    module: nn.Module
    args: tuple[Any, ...]


def _forward_calls(module: nn.Module) -> list[tuple[int, str]]:
    """``(node index, submodule path)`` of each ``self.<path>(...)`` forward call in the
    top-level block of ``module``'s compiled forward, in order."""
    graph: Any = module.graph
    self_value = next(graph.inputs()).debugName()
    calls = []
    for index, node in enumerate(graph.nodes()):
        if node.kind() != "prim::CallMethod" or node.s("name") != "forward":
            continue
        path, value = [], node.inputsAt(0)
        while value.node().kind() == "prim::GetAttr":
            path.append(value.node().s("name"))
            value = value.node().inputsAt(0)
        if value.debugName() == self_value and path:
            calls.append((index, ".".join(reversed(path))))
    return calls


def _received(module: nn.Module, index: int, args: tuple[Any, ...]) -> tuple[Any, ...]:
    """What the call at node ``index`` of ``module``'s forward receives, for ``args``: a copy
    of the compiled forward cut just before that call, returning its arguments, is run."""
    script: Any = module
    graph: Any = script.graph.copy()
    nodes = list(graph.nodes())
    values = list(nodes[index].inputs())[1:]
    for _ in range(len(list(graph.outputs()))):
        graph.eraseOutput(0)
    for value in values:
        graph.registerOutput(value)
    for node in reversed(nodes[index:]):
        node.destroy()
    torch._C._jit_pass_dce(graph)
    function = torch._C._create_function_from_graph("cnnshape_received", graph)
    out = function(script._c, *args)
    return out if isinstance(out, tuple) and len(values) != 1 else (out,)


def _call_forward(module: nn.Module, args: tuple[Any, ...]) -> Any:
    """A scripted submodule's compiled forward (a traced one refuses ``module(...)``)."""
    script: Any = module
    return script._c._get_method("forward")(*args)


def locate_failure(root: nn.Module, args: tuple[Any, ...]) -> Located:
    """Run the scripted submodules one at a time to find which one raises, and on what.

    Each ``self.<child>(...)`` call of a forward gets the arguments a copy of that forward
    cut before the call computes; the first child that raises on them is where the
    failure is, and it is searched the same way. A forward whose own code raises (before
    or between its calls), or whose calls sit in a loop or a branch, is the answer.
    The caller runs this inside ``state.preserved`` (real forwards, on the model's device).
    """
    path, module = "", root
    while True:
        for index, name in _forward_calls(module):
            try:
                received = _received(module, index, args)
            except Exception:  # the forward's own code raised before this call
                return Located(path, module, args)
            child = module.get_submodule(name)
            try:
                _call_forward(child, received)
            except Exception:
                path, module, args = f"{path}.{name}" if path else name, child, received
                break
        else:
            return Located(path, module, args)


def py_class(module: nn.Module) -> type | None:
    """The Python class a scripted module was compiled from; None for a traced one."""
    concrete = getattr(module, "_concrete_type", None)
    cls = getattr(concrete, "py_class", None) if concrete is not None else None
    if (
        not isinstance(cls, type)
        or not issubclass(cls, nn.Module)
        or cls.__qualname__.endswith("QualnameWrapper")
    ):
        return None
    return cls


def eager_twin(module: nn.Module) -> nn.Module | None:
    """An eager module equivalent to a TorchScript one, holding the very same tensors; None
    when it cannot be rebuilt.

    A scripted module (``torch.jit.script``) keeps the Python class it was compiled from,
    its constants and attributes: the twin is that class, given them, so its forward is
    the code that was compiled. A traced Linear (``torch.jit.trace``) is ``nn.Linear`` of
    its weight's sizes; other traced modules keep no settings, and have no twin.
    """
    cls = py_class(module)
    if cls is None:
        return _traced_linear(module)
    twin: nn.Module = object.__new__(cls)  # its __init__'s arguments are not known: its state is set below
    nn.Module.__init__(twin)
    concrete: Any = module._concrete_type
    params = dict(module.named_parameters(recurse=False))
    buffers = dict(module.named_buffers(recurse=False))
    for name, value in concrete.get_constants().items():
        object.__setattr__(twin, name, value)
    for name in concrete.get_attributes():
        if name == "training" or name in module._modules:
            continue
        if name in params:
            twin._parameters[name] = params[name]
        elif name in buffers:
            twin._buffers[name] = buffers[name]
        else:
            object.__setattr__(twin, name, getattr(module, name))
    for name, child in module._modules.items():
        twin_child = eager_twin(child) if child is not None else None
        if twin_child is None:
            return None
        twin._modules[name] = twin_child
    vars(twin)["training"] = module.training
    return twin


def _traced_linear(module: nn.Module) -> nn.Module | None:
    """``nn.Linear`` holding a traced Linear's weight and bias."""
    params = dict(module.named_parameters(recurse=False))
    weight = params.get("weight") if type_name(module) == "Linear" else None
    if weight is None or weight.dim() != 2:
        return None
    bias = params.get("bias")
    with torch.device("meta"):
        twin = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
    twin._parameters["weight"] = weight
    twin._parameters["bias"] = bias
    vars(twin)["training"] = module.training
    return twin


def script_source(exc: BaseException) -> str | None:
    """``file.py:LINE: code`` of the user's innermost line in TorchScript's own traceback."""
    import linecache

    from .failure import is_user_file

    text = str(exc)
    frames = [(m[1], int(m[2])) for m in _SCRIPT_FRAME.finditer(text)]  # outermost first
    traced = [(m[1], int(m[2])) for m in _TRACED_FRAME.finditer(text)]  # innermost first
    for filename, line in [*reversed(frames), *traced]:
        if is_user_file(filename):
            code = linecache.getline(filename, line).strip()
            return f"{_relative(filename)}:{line}: {code}" if code else f"{_relative(filename)}:{line}"
    return None


#: ``  File "model.py", line 11, in forward`` (torch.jit.script) and ``model.py(10): forward``
#: (torch.jit.trace): the frames of TorchScript's traceback.
_SCRIPT_FRAME = re.compile(r'^\s*File "(.+)", line (\d+), in \w+', re.MULTILINE)
_TRACED_FRAME = re.compile(r"^(\S.*?)\((\d+)\): forward$", re.MULTILINE)


def _relative(path: str) -> str:
    import os

    try:
        rel = os.path.relpath(path)
    except ValueError:
        return path
    return path if rel.startswith("..") else rel
