"""Plain-torch truth about a forward, for tests and benchmarks that check our answers.

Nothing here imports pytest_cnnshape: where a forward fails is read from forward
hooks registered by hand (the innermost module whose pre-hook ran without its
post-hook, and the shapes that call received) and, for a failure inside
``forward()`` code, from a ``TorchFunctionMode`` that records the torch function
that raised and its tensor operands. ``plain_inputs`` makes the tensors a shape
spec stands for the way the documented contract says (the model's dtype unless the
spec names one; integer tensors hold zeros, a valid index for any table).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

Shape = tuple[int, ...]

_DTYPES = {
    "float": torch.float32,
    "float32": torch.float32,
    "float64": torch.float64,
    "double": torch.float64,
    "half": torch.float16,
    "float16": torch.float16,
    "long": torch.int64,
    "int64": torch.int64,
    "int": torch.int32,
    "int32": torch.int32,
    "bool": torch.bool,
}


def shape_of(value: Any) -> Any:
    """The shape of a tensor, the same structure of shapes for a tuple/list/dict, else None."""
    if isinstance(value, torch.Tensor):
        return tuple(value.shape)
    if isinstance(value, (tuple, list)):
        return type(value)(shape_of(v) for v in value) if not hasattr(value, "_fields") else None
    if isinstance(value, Mapping):
        return {k: shape_of(v) for k, v in value.items()}
    return None


def tensors_in(values: Any) -> list[torch.Tensor]:
    """The tensors among ``values``, those inside lists, tuples and dicts too, in order."""
    if isinstance(values, torch.Tensor):
        return [values]
    if isinstance(values, (tuple, list)):
        return [t for v in values for t in tensors_in(v)]
    if isinstance(values, Mapping):
        return [t for v in values.values() for t in tensors_in(v)]
    return []


def model_dtype(model: nn.Module) -> torch.dtype:
    """The dtype of the model's first floating-point parameter or buffer (float32 without one)."""
    for t in (*model.parameters(), *model.buffers()):
        if t.is_floating_point():
            return t.dtype
    return torch.float32


def random_tensor(shape: Shape, dtype: torch.dtype, device: str | torch.device = "cpu") -> torch.Tensor:
    """``torch.randn`` for a float dtype; zeros (a valid index, a valid label) otherwise."""
    if dtype.is_floating_point:
        return torch.randn(shape, dtype=dtype, device=device)
    return torch.zeros(shape, dtype=dtype, device=device)


def _shape_text(text: str) -> tuple[Shape, torch.dtype | None]:
    sizes, _, kind = text.strip().partition(":")
    shape = tuple(int(s) for s in re.split(r"\s*[x,]\s*", sizes.strip(" ()[]")) if s)
    return shape, (_DTYPES[kind.strip()] if kind else None)


def plain_inputs(
    spec: Any, dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu"
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Positional and keyword tensors for a spec as ``trace`` takes it.

    A tuple of ints or an ``"AxB[:dtype]"`` string is one input; a list (or a tuple of
    anything else) is several positional ones; a dict is keyword inputs; a tensor is
    moved to ``device`` as it is.
    """

    def make(value: Any) -> Any:
        if isinstance(value, torch.Tensor):
            return value.to(device)
        if isinstance(value, str):
            shape, kind = _shape_text(value)
            return random_tensor(shape, kind or dtype, device)
        if isinstance(value, (tuple, torch.Size)) and all(type(v) is int for v in value):
            return random_tensor(tuple(value), dtype, device)
        if isinstance(value, list):
            return [make(v) for v in value]
        return value

    if isinstance(spec, Mapping):
        return (), {k: make(v) for k, v in spec.items()}
    if isinstance(spec, (str, torch.Tensor, torch.Size)) or (
        isinstance(spec, tuple) and all(type(v) is int for v in spec)
    ):
        return (make(spec),), {}
    return tuple(make(v) for v in spec), {}


@dataclass
class Failure:
    """Where a plain forward raised."""

    #: Qualified name (as in ``named_modules()``) of the innermost module call running; "" = the root.
    module: str
    module_type: str
    #: Shapes of the positional arguments that call received (None for a non-tensor).
    received: tuple[Any, ...]
    #: The torch function that raised (``F.linear``, ``torch.cat``, ``Tensor.view``...),
    #: None when the error came from Python code, not from torch.
    op: Any
    #: Shapes of that function's tensor operands, those inside lists too, in order.
    operands: tuple[Shape, ...]
    error: Exception

    @property
    def op_name(self) -> str | None:
        return None if self.op is None else getattr(self.op, "__name__", repr(self.op))


class _FailingOp(TorchFunctionMode):
    """Remembers the first torch function call that raised, and its tensor operands."""

    def __init__(self) -> None:
        super().__init__()
        self.op: Any = None
        self.operands: tuple[Shape, ...] = ()

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        try:
            return func(*args, **kwargs)
        except Exception:
            if self.op is None:
                self.op = func
                self.operands = tuple(tuple(t.shape) for t in tensors_in((args, kwargs)))
            raise


def run_plain(
    model: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any] | None = None, *, train: bool = False
) -> tuple[Any, Failure | None]:
    """``model(*args, **kwargs)`` under ``no_grad`` watched by plain hooks: (output, None) when
    it runs, (None, the failure) when it raises. The model's hooks are removed afterwards and
    its ``training`` flags restored."""
    kwargs = kwargs or {}
    names = {id(m): n for n, m in model.named_modules()}
    running: list[tuple[nn.Module, tuple[Any, ...]]] = []
    handles = []

    def pre(module: nn.Module, inputs: tuple[Any, ...]) -> None:
        running.append((module, tuple(shape_of(a) for a in inputs)))

    def post(module: nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
        running.pop()

    modes = {id(m): m.training for m in model.modules()}
    for m in model.modules():
        handles.append(m.register_forward_pre_hook(pre))
        handles.append(m.register_forward_hook(post))
    watcher = _FailingOp()
    model.train(train)
    try:
        with torch.no_grad(), watcher:
            out = model(*args, **kwargs)
    except Exception as exc:
        module, received = running[-1] if running else (model, ())
        return None, Failure(
            names.get(id(module), "?"), type(module).__name__, received, watcher.op, watcher.operands, exc
        )
    finally:
        for h in handles:
            h.remove()
        for m in model.modules():
            m.training = modes[id(m)]
    return out, None


def to_meta(model: nn.Module) -> nn.Module:
    """``model`` with every parameter and buffer moved to meta, in place; lazy ones stay
    uninitialised (on meta, so the first forward materialises them there). Unlike
    ``model.to("meta")`` it keeps lazy layers lazy; unlike a deep copy it works with
    ``weight_norm``'s computed weights (recomputed from the moved parameters)."""
    from torch.nn.parameter import UninitializedBuffer, UninitializedParameter, is_lazy

    for module in model.modules():
        for name, p in module._parameters.items():
            if p is None:
                continue
            if is_lazy(p):
                module._parameters[name] = UninitializedParameter(device="meta", dtype=p.dtype)
            else:
                module._parameters[name] = nn.Parameter(p.to("meta"), requires_grad=p.requires_grad)
        for name, b in module._buffers.items():
            if b is None:
                continue
            moved = UninitializedBuffer(device="meta", dtype=b.dtype) if is_lazy(b) else b.to("meta")
            module._buffers[name] = moved
    return model


def run_on(
    model: nn.Module,
    args: tuple[Any, ...],
    kwargs: dict[str, Any] | None = None,
    *,
    device: str = "cpu",
    train: bool = False,
) -> tuple[Any, Failure | None]:
    """``run_plain`` on ``device``: on meta, the model moved there (in place: ``to_meta``) and
    meta copies of the tensors among the inputs."""
    if device == "meta":
        model = to_meta(model)
        args = tuple(_to(a, "meta") for a in args)
        kwargs = {k: _to(v, "meta") for k, v in (kwargs or {}).items()}
    return run_plain(model, args, kwargs, train=train)


def _to(value: Any, device: str) -> Any:
    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, (tuple, list)) and not hasattr(value, "_fields"):
        return type(value)(_to(v, device) for v in value)
    if isinstance(value, Mapping):
        return {k: _to(v, device) for k, v in value.items()}
    return value


def doubled(value: Any) -> Any:
    """Inputs with every spatial side doubled (each tensor of 3+ dims; fresh random values)."""
    if isinstance(value, torch.Tensor) and value.dim() >= 3:
        sides = tuple(2 * side for side in value.shape[2:])
        return random_tensor((*value.shape[:2], *sides), value.dtype, value.device)
    if isinstance(value, (tuple, list)) and not hasattr(value, "_fields"):
        return type(value)(doubled(v) for v in value)
    if isinstance(value, Mapping):
        return {k: doubled(v) for k, v in value.items()}
    return value


@dataclass
class Call:
    """One module call of a plain forward: the module, its name, and the ids of the tensors
    it received and returned (the tensors are kept alive meanwhile, so ids stay unique)."""

    name: str
    module: nn.Module
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]


def calls_of(
    model: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any] | None = None
) -> tuple[list[Call], Any]:
    """Every leaf module call of a plain eval forward, in call order, and the output: the data
    flow between layers as tensor identity shows it (a layer fed another's output directly)."""
    names = {id(m): n for n, m in model.named_modules()}
    calls: list[Call] = []
    alive: list[Any] = []
    handles = []

    def post(module: nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
        alive.append((inputs, output))
        calls.append(
            Call(
                names[id(module)],
                module,
                tuple(id(t) for t in tensors_in(inputs)),
                tuple(id(t) for t in tensors_in(output)),
            )
        )

    for m in model.modules():
        if not list(m.children()):
            handles.append(m.register_forward_hook(post))
    modes = {id(m): m.training for m in model.modules()}
    try:
        with torch.no_grad():
            out = model.eval()(*args, **(kwargs or {}))
    finally:
        for h in handles:
            h.remove()
        for m in model.modules():
            m.training = modes[id(m)]
    return calls, out
