"""Exported programs (``torch.export``): traced for what they hold, a row per module call.

``torch.export.export(model, args)`` returns an ``ExportedProgram``: a flat graph of
aten ops, each node tagged with the module calls it ran inside (``nn_module_stack``),
the weights, and the range of every dimension it was exported dynamic in. Its
``.module()`` is the same graph as an nn.Module whose ``train()``/``eval()`` raise
(pytorch#151726). Neither holds the model's layers as modules, so no hook sees one.

``torch.export.unflatten`` rebuilds the hierarchy from that metadata: a module per
original submodule (``InterpreterModule``, under its original name and with its
original class name) running its own part of the graph. Traced like any model, its
hooks give the rows the eager model gives: names, shapes and parameter counts. It is
built once per program (cached weakly) with meta stand-ins for the weights (unflatten
copies every weight it is given), then holds the program's own tensors, not copies:
a meta trace swaps them for meta twins as for any model, and a real forward leaves
them as they were (``state.preserved``). A ``.module()`` is exported again first, on
meta, with the dynamic dimensions it has (by name and range), for the hierarchy its
graph keeps; its own ``_guards_fn`` call, which checks the inputs, is left out of the
copy (the unflattened program checks them itself).

What cannot be shown is said in one line (``Program.note``): a module that left no op
in the graph (``nn.Identity``) has no row; layers are graph ops, so what reads a
layer's class and settings (lint rules, regularization) cannot; and the mode is the
one the program was exported in (``train=`` changes nothing). Nothing here is imported
unless the model is an exported one: ``torch.export`` loads dynamo (seconds).
"""

from __future__ import annotations

import copy
import warnings
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ..errors import TraceError
from .guard import guarded
from .state import kept_process_state, meta_twin, meta_weights

if TYPE_CHECKING:
    from ..errors import ForwardFailed
    from .inputs import InputSpec

#: What the table's note calls each kind of source.
PROGRAM, MODULE = "torch.export program", "torch.export module (ExportedProgram.module())"
#: torch's functions that check a call's inputs against the program's signature.
_INPUT_CHECKS = frozenset(
    {"process_forward_inputs", "_check_input_constraints_for_graph", "_adapt_flat_args"}
)


def _from_torch_export(cls: type, name: str) -> bool:
    return cls.__name__ == name and cls.__module__.startswith("torch.export")


def is_exported_program(obj: object) -> bool:
    """An ``ExportedProgram`` (by class name: no import of ``torch.export``)."""
    return any(_from_torch_export(c, "ExportedProgram") for c in type(obj).__mro__)


def is_exported_module(obj: object) -> bool:
    """An ``ExportedProgram.module()``: a GraphModule that refuses ``train()``/``eval()``."""
    return isinstance(obj, nn.Module) and any(
        _from_torch_export(c, "_StatefulGraphModule") for c in type(obj).__mro__
    )


def is_exported(obj: object) -> bool:
    """Either kind: what ``unflattened`` turns into a module with the original hierarchy."""
    return is_exported_program(obj) or is_exported_module(obj)


def is_guards_call(module: nn.Module) -> bool:
    """The ``_guards_fn`` an ``ExportedProgram.module()`` calls first: it checks the inputs
    (no data flow, not a layer of the model)."""
    return _from_torch_export(type(module), "GuardsFn")


def unflatten_type(module: nn.Module) -> str | None:
    """The original class name of a module ``torch.export.unflatten`` made (``Conv2d``), else None."""
    cls = type(module)
    if not cls.__module__.startswith("torch.export"):
        return None
    original = getattr(module, "_ty", None)
    return str(original).rpartition(".")[2] if original else None


@dataclass(frozen=True)
class Dynamic:
    """A dimension the program was exported dynamic in: its name, where it is, its range."""

    name: str
    input: str
    axis: int
    low: int
    high: int | None

    def __str__(self) -> str:
        where = f"{self.name} = {self.input} dim {self.axis}"
        if self.high is None:
            return f"{where} (>= {self.low})"
        return f"{where} ({self.low}..{self.high})"


@dataclass(frozen=True)
class Program:
    """What an exported program takes: its inputs as it was exported, and its dynamic dims."""

    kind: str
    model_type: str
    #: ``(name, shape or value as text)`` per input, in the program's order.
    inputs: tuple[tuple[str, str], ...]
    dims: tuple[Dynamic, ...]
    #: The pytree structure of ``(args, kwargs)`` the program takes.
    in_spec: Any

    def signature(self) -> str:
        """``x [batch, 3, 32, 32]`` (and the dims' ranges): what the program was exported for."""
        text = ", ".join(f"{name} {shape}" for name, shape in self.inputs) or "no inputs"
        if self.dims:
            text += " with " + ", ".join(map(str, self.dims))
        else:
            text += ", every size fixed"
        return text

    def note(self) -> str:
        """The one line a trace carries: what was traced, what cannot be shown."""
        dynamic = f"dynamic: {', '.join(map(str, self.dims))}" if self.dims else "exported with static shapes"
        return (
            f"{self.kind}: traced its graph, a row per module call from its nn_module_stack "
            f"(torch.export.unflatten); {dynamic}; not shown: modules that left no op in the graph "
            "(nn.Identity), layer classes and settings (the layers are graph ops), and the mode "
            "(fixed by torch.export: train= changes nothing)"
        )

    def check(self, spec: InputSpec) -> None:
        """A TraceError when ``spec`` has not the structure the program takes (torch would
        print to stdout and fail without naming it)."""
        import torch.utils._pytree as pytree

        kwargs = dict(spec.kwargs)
        wanted = _keyword_names(self.in_spec)
        if wanted is not None and set(wanted) == set(kwargs):
            kwargs = {k: kwargs[k] for k in wanted}  # the order it was exported with
        if pytree.tree_structure((tuple(spec.args), kwargs)) != self.in_spec:
            raise TraceError(
                f"{self.model_type} ({self.kind}) takes {self.signature()}; these inputs have another "
                "structure (another number of inputs, or other keyword names): give the inputs it "
                "was exported for"
            )


def _keyword_names(in_spec: Any) -> list[str] | None:
    """The keyword argument names of an ``(args, kwargs)`` spec, in its order."""
    children = in_spec.children() if callable(getattr(in_spec, "children", None)) else in_spec.children_specs
    if len(children) != 2 or children[1].context is None:
        return None
    return list(children[1].context)


_BUILT: weakref.WeakKeyDictionary[Any, tuple[nn.Module, Program]] = weakref.WeakKeyDictionary()
_PROGRAMS: weakref.WeakKeyDictionary[nn.Module, Program] = weakref.WeakKeyDictionary()


def program_of(module: nn.Module) -> Program | None:
    """The program a module unflattened here stands for; None for any other module."""
    return _PROGRAMS.get(module)


def unflattened(source: Any) -> tuple[nn.Module, Program]:
    """The module to trace for an exported program or module, and what the program takes."""
    built = _BUILT.get(source)
    if built is None:
        with kept_process_state(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's deprecation notices from inside unflatten
            built = _build(source)
        _BUILT[source] = built
        _PROGRAMS[built[0]] = built[1]
    module, program = built
    with guarded(module, program.model_type):  # not while another thread traces it on meta
        _bind(module, _tensors(source))  # the source's tensors as they are now: no copy
    return module, program


def _build(source: Any) -> tuple[nn.Module, Program]:
    from torch.export import unflatten

    if is_exported_program(source):
        graph, constraints = source.graph, source.range_constraints
        users = set(source.graph_signature.user_inputs)
        placeholders = [n for n in graph.nodes if n.op == "placeholder" and n.name in users]
        program = _describe(PROGRAM, placeholders, constraints, source.module_call_graph[0].signature.in_spec)
        stand_in = _meta_copy(source)
    else:
        placeholders = [n for n in source.graph.nodes if n.op == "placeholder"]
        program = _describe(MODULE, placeholders, source.range_constraints, source._in_spec)
        stand_in = _exported_again(source, placeholders)
    module = unflatten(stand_in)  # edits only the stand-in (its own graph and metadata)
    _drop_guards_call(module)
    return module, program


def _describe(kind: str, placeholders: list[Any], constraints: dict[Any, Any], in_spec: Any) -> Program:
    """The inputs and dynamic dims of a program, from its placeholders' fake values."""
    from torch.utils._sympy.numbers import int_oo

    dims: dict[Any, Dynamic] = {}
    inputs = []
    for node in placeholders:
        name = str(node.target)
        value = node.meta.get("val")
        if not isinstance(value, torch.Tensor):
            inputs.append((name, f"= {value!r}"))
            continue
        sizes = []
        for axis, size in enumerate(_sizes(value)):
            if not isinstance(size, torch.SymInt):
                sizes.append(str(int(size)))
                continue
            expr = size.node.expr
            label = _debug_name(size, expr)
            sizes.append(label)
            if expr in constraints and expr not in dims:
                vr = constraints[expr]
                high = None if vr.upper is int_oo else int(vr.upper)
                dims[expr] = Dynamic(label, name, axis, int(vr.lower), high)
        inputs.append((name, f"[{', '.join(sizes)}]"))
    model_type = _model_type(placeholders)
    return Program(kind, model_type, tuple(inputs), tuple(dims.values()), in_spec)


def _model_type(placeholders: list[Any]) -> str:
    """The exported model's class name, from the root entry of any node's module stack."""
    if not placeholders:
        return "ExportedProgram"
    for node in placeholders[0].graph.nodes:
        stack = node.meta.get("nn_module_stack")
        if stack:
            path, cls = next(iter(stack.values()))
            if path == "":
                return (cls if isinstance(cls, str) else getattr(cls, "__name__", "")).rpartition(".")[2]
    return "ExportedProgram"


def _sizes(value: torch.Tensor) -> tuple[int | torch.SymInt, ...]:
    """A fake tensor's sizes: ints, and a SymInt for each dynamic dimension."""
    return tuple(value.shape)


def _debug_name(size: torch.SymInt, expr: Any) -> str:
    """The name the user gave a dimension (``Dim("batch")``), else torch's symbol (``s77``)."""
    env = size.node.shape_env
    for source in getattr(env, "var_to_sources", {}).get(expr, ()):
        name = source.name
        name = name() if callable(name) else name
        found = getattr(env, "source_name_to_debug_name", {}).get(name)
        if found:
            return str(found)
    return str(expr)


def _meta_copy(program: Any) -> Any:
    """A copy of an ExportedProgram to unflatten: its graph, signature and module call graph
    its own (unflatten's passes edit them: dead getitems, effect tokens), its weights and
    constants meta stand-ins; the rest shared."""
    stand_in = copy.copy(program)
    graph_module = torch.fx.GraphModule(program.graph_module, copy.deepcopy(program.graph))
    graph_module.meta = dict(program.graph_module.meta)
    stand_in._graph_module = graph_module
    stand_in._graph_signature = copy.deepcopy(program.graph_signature)
    stand_in._module_call_graph = copy.deepcopy(program.module_call_graph)
    stand_in._state_dict = {k: meta_twin(v) for k, v in program.state_dict.items()}
    stand_in._constants = {
        k: meta_twin(v) if isinstance(v, torch.Tensor) else v for k, v in program.constants.items()
    }
    return stand_in


def _exported_again(module: nn.Module, placeholders: list[Any]) -> Any:
    """``module`` (an ExportedProgram.module()) exported again on meta, dynamic where it is."""
    import torch.utils._pytree as pytree
    from torch.export import Dim, ShapesCollection, export

    constraints: Any = module.range_constraints
    flat: list[Any] = []
    shapes = ShapesCollection()  # type: ignore[no-untyped-call]
    named: dict[Any, Any] = {}
    for node in placeholders:
        value = node.meta.get("val")
        if not isinstance(value, torch.Tensor):
            flat.append(value)
            continue
        sizes: list[int] = []
        dynamic: dict[int, Any] = {}
        for axis, size in enumerate(_sizes(value)):
            if isinstance(size, torch.SymInt):
                sizes.append(_hint(size))
                dynamic[axis] = _dim(size, constraints, named, Dim)
            else:
                sizes.append(int(size))
        tensor = torch.empty(sizes, dtype=value.dtype, device="meta")
        flat.append(tensor)
        if dynamic:
            shapes[tensor] = dynamic
    in_spec: Any = module._in_spec
    args, kwargs = pytree.tree_unflatten(flat, in_spec)
    name = type(module).__name__
    try:
        with guarded(module, name), meta_weights(_view(module)):
            return export(
                module,
                tuple(args),
                kwargs,
                dynamic_shapes=shapes.dynamic_shapes(module, args, kwargs),  # type: ignore[no-untyped-call]
            )
    except Exception as exc:
        raise TraceError(
            f"cannot trace this {MODULE}: exporting it again for its module tree failed "
            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); trace the "
            "ExportedProgram itself (torch.export.export(...), not .module())"
        ) from exc


def _view(module: nn.Module) -> Any:
    from .modelview import ModelView

    return ModelView.of(module)


def _hint(size: torch.SymInt) -> int:
    """The size a dynamic dimension had when the program was exported."""
    env = size.node.shape_env
    return int(size.node.expr.xreplace(env.var_to_val))


def _dim(size: torch.SymInt, constraints: dict[Any, Any], named: dict[Any, Any], dim: Any) -> Any:
    """The ``Dim`` a dynamic dimension was exported with: its name and range (one per symbol)."""
    from torch.utils._sympy.numbers import int_oo

    expr = size.node.expr
    if expr not in constraints:
        return dim.DYNAMIC  # a derived size (2 * batch): torch works it out again
    if expr not in named:
        vr = constraints[expr]
        high = None if vr.upper is int_oo else int(vr.upper)
        named[expr] = dim(_debug_name(size, expr), min=int(vr.lower), max=high)
    return named[expr]


def _drop_guards_call(module: nn.Module) -> None:
    """Leave out the ``_guards_fn`` a re-exported ``.module()`` calls: it checks inputs, and
    the unflattened program checks them itself; as a module call it would be a row."""
    guards = module._modules.get("_guards_fn")
    graph = getattr(module, "graph", None)
    if guards is None or not isinstance(graph, torch.fx.Graph):
        return
    for node in list(graph.nodes):
        if node.op == "call_module" and node.target == "_guards_fn" and not node.users:
            graph.erase_node(node)
    del module._modules["_guards_fn"]
    finalize = getattr(module, "finalize", None)
    if callable(finalize):
        finalize()


def _tensors(source: Any) -> dict[str, Any]:
    """The source's own tensors by qualified name: weights, buffers, constants."""
    if is_exported_program(source):
        return {**source.constants, **source.state_dict}
    named: dict[str, Any] = dict(source.named_parameters(remove_duplicate=False))
    named.update(source.named_buffers(remove_duplicate=False))
    return named


def _bind(module: nn.Module, tensors: dict[str, Any]) -> None:
    """Put ``tensors`` where the unflattened module holds its stand-ins (the same names)."""
    for name, tensor in tensors.items():
        if not isinstance(tensor, torch.Tensor):
            continue
        path, _, leaf = name.rpartition(".")
        try:
            owner = module.get_submodule(path)
        except AttributeError:
            continue
        registries: tuple[dict[str, Any], ...] = (owner._parameters, owner._buffers, vars(owner))
        for registry in registries:
            held = registry.get(leaf)
            if isinstance(held, torch.Tensor):
                if held is not tensor:
                    registry[leaf] = tensor
                break


def input_failure(failed: ForwardFailed, model: nn.Module) -> TraceError | None:
    """A one-line TraceError when an exported program refused its inputs (torch checks them
    against the shapes it was exported for before any layer runs); None otherwise."""
    program = program_of(model)
    context = failed.context
    if program is None or len(context.records) > 1:
        return None
    tb = context.exc.__traceback__
    checked = False
    while tb is not None:
        checked = checked or tb.tb_frame.f_code.co_name in _INPUT_CHECKS
        tb = tb.tb_next
    if not checked:
        return None
    reason = (
        str(context.exc).strip().splitlines()[0] if str(context.exc).strip() else type(context.exc).__name__
    )
    return TraceError(
        f"{program.model_type} ({program.kind}) cannot take these inputs: {reason}. It was exported "
        f"for {program.signature()}: trace it with inputs it was exported for, or export it again "
        "with dynamic_shapes for the sizes that change (e.g. {0: torch.export.Dim('batch')})"
    )
