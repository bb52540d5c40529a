"""What the meta device gets slow or wrong, put right while a meta trace runs.

Slow to start: most ops' meta kernels are Python, and their first call imports
``torch._meta_registrations`` and ``torch._dynamo``; ``metarules`` answers the ops
a CNN uses from their sizes, so a fresh process never pays that.

Slow: on meta, torch computes output shapes with Python decompositions; for
normalisation layers and most activations these cost 0.4-2 ms per call (a conv
costs 0.05 ms), which made BatchNorm three quarters of a ResNet-50 meta trace.
These ops return a tensor shaped like their input, so a ``TorchFunctionMode``
answers them with an empty tensor of that shape (strides as torch's meta kernel
gives them) — but only when torch would certainly accept the call: every
argument a plain meta tensor of the input's dtype, every parameter sized for the
input's channels. Anything else (a wrong channel count, a batch of one in
training, a CPU tensor) goes to the real op, so errors are torch's own.

Wrong: a few meta kernels skip checks that every real device makes, so a model
that fails on CPU and CUDA would trace cleanly on meta. ``F.linear`` accepts an
input whose dtype differs from the weight's, and ``F.conv_transpose*d`` accepts
any number of input channels. Here they raise a RuntimeError as the CPU does (the
channel message word for word; dtype messages vary between CPU kernels anyway).
Normalisation layers accept parameters of another dtype than the input on meta
(``mixed dtype (CPU)`` on a real device). ``F.max_unpool*d`` cannot check its
indices on meta (they hold no values): the mode remembers which map each
``max_pool*d(..., return_indices=True)`` indexed and
raises, as the CPU does, when an index the pooling can produce falls outside the
unpooled map (a SegNet decoder without ``output_size=`` on an odd-sized map).

With autograd on (a training-memory pass), a shortcut whose inputs require grad
answers with the graph node torch would record, saving what torch saves
(``saves``); an op whose saves are not known there runs torch's kernel.
"""

from __future__ import annotations

import contextlib
import math
import weakref
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from contextvars import ContextVar
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from . import metarules
from .metarules import Rule, empty_like, plain_meta
from .saves import needs_graph, with_graph


def _float_input(t: Any) -> bool:
    return plain_meta(t) and t.is_floating_point()


def _contiguous_like(t: torch.Tensor) -> torch.Tensor:
    """What instance, group and layer norm return on meta: the input's shape, contiguous."""
    return torch.empty(t.shape, dtype=t.dtype, device=t.device)


def _sized(values: tuple[Any, ...], numel: int, dtype: torch.dtype) -> bool:
    """Every given (non-None) tensor is a meta tensor of ``dtype`` with ``numel`` elements."""
    return all(v is None or (plain_meta(v, dtype) and v.numel() == numel) for v in values)


def _batch_norm(  # noqa: PLR0917  (mirrors F.batch_norm, called positionally)
    input: Any,
    running_mean: Any = None,
    running_var: Any = None,
    weight: Any = None,
    bias: Any = None,
    training: bool = False,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> Any:
    if not _float_input(input) or input.dim() < 2 or eps <= 0:
        return None
    if training and input.shape[0] * math.prod(input.shape[2:]) <= 1:
        return None  # torch: "Expected more than 1 value per channel when training"
    if not training and (running_mean is None or running_var is None):
        return None
    if not _sized((running_mean, running_var, weight, bias), input.shape[1], input.dtype):
        return None
    return empty_like(input)


def _instance_norm(  # noqa: PLR0917  (mirrors F.instance_norm)
    input: Any,
    running_mean: Any = None,
    running_var: Any = None,
    weight: Any = None,
    bias: Any = None,
    use_input_stats: bool = True,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> Any:
    if not _float_input(input) or input.dim() < 3 or eps <= 0:
        return None
    if use_input_stats and math.prod(input.shape[2:]) <= 1:
        return None  # torch: "Expected more than 1 spatial element when training"
    if not use_input_stats and (running_mean is None or running_var is None):
        return None
    if not _sized((running_mean, running_var, weight, bias), input.shape[1], input.dtype):
        return None
    return _contiguous_like(input)


def _group_norm(input: Any, num_groups: int, weight: Any = None, bias: Any = None, eps: float = 1e-5) -> Any:
    if not _float_input(input) or input.dim() < 2 or not isinstance(num_groups, int):
        return None
    channels = input.shape[1]
    if num_groups <= 0 or channels % num_groups or eps <= 0:
        return None
    if input.shape[0] * (channels // num_groups) * math.prod(input.shape[2:]) <= 1:
        return None
    if not _sized((weight, bias), channels, input.dtype):
        return None
    return _contiguous_like(input)


def _layer_norm(
    input: Any, normalized_shape: Any, weight: Any = None, bias: Any = None, eps: float = 1e-5
) -> Any:
    if not _float_input(input) or eps <= 0:
        return None
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    if not shape or len(shape) > input.dim() or tuple(input.shape[-len(shape) :]) != shape:
        return None
    for t in (weight, bias):
        if t is not None and (not plain_meta(t, input.dtype) or tuple(t.shape) != shape):
            return None
    return _contiguous_like(input)


def _elementwise(inplace_position: int | None) -> Rule:
    """A rule for an activation ``f(input, ..., inplace=False)``: same shape out."""

    def rule(input: Any, *args: Any, **kwargs: Any) -> Any:
        if not _float_input(input):
            return None
        inplace = kwargs.get("inplace", False)
        if inplace_position is not None and len(args) >= inplace_position:
            inplace = args[inplace_position - 1]
        return input if inplace else empty_like(input)

    return rule


_SCALAR_NAMES = {
    "float64": "Double",
    "float32": "Float",
    "float16": "Half",
    "bfloat16": "BFloat16",
    "int64": "Long",
    "int32": "Int",
    "int16": "Short",
    "int8": "Char",
    "uint8": "Byte",
    "bool": "Bool",
    "complex64": "ComplexFloat",
    "complex128": "ComplexDouble",
}


def _scalar_name(dtype: torch.dtype) -> str:
    """torch's C++ name of a dtype, as its error messages print it (``Double``)."""
    name = str(dtype).removeprefix("torch.")
    return _SCALAR_NAMES.get(name, name)


def _linear(input: Any, weight: Any, bias: Any = None) -> None:
    """Real devices refuse an input whose dtype differs from the weight's; meta does not.
    Sizes that do not fit get the CPU's words, the ones users search for (meta's
    Python kernel says "a and b must have same reduction dim")."""
    if not (plain_meta(input) and plain_meta(weight)):
        return
    if input.dtype != weight.dtype:
        raise RuntimeError(
            f"mat1 and mat2 must have the same dtype, but got {_scalar_name(input.dtype)} "
            f"and {_scalar_name(weight.dtype)}"
        )
    if input.dim() >= 2 and weight.dim() == 2 and input.shape[-1] != weight.shape[1]:
        rows = math.prod(input.shape[:-1])
        raise RuntimeError(
            f"mat1 and mat2 shapes cannot be multiplied ({rows}x{input.shape[-1]} and "
            f"{weight.shape[1]}x{weight.shape[0]})"
        )


def _conv_transpose(dims: int) -> Rule:
    """Real devices check a transposed conv's input channels and dtype; meta does not."""

    def rule(input: Any, weight: Any, *args: Any, **kwargs: Any) -> None:
        if not (plain_meta(input) and plain_meta(weight)) or input.dim() not in (dims + 1, dims + 2):
            return
        batched = input if input.dim() == dims + 2 else input.unsqueeze(0)
        if batched.shape[1] != weight.shape[0]:
            raise RuntimeError(
                f"Given transposed=1, weight of size {list(weight.shape)}, expected "
                f"input{list(batched.shape)} to have {weight.shape[0]} channels, but got "
                f"{batched.shape[1]} channels instead"
            )
        if input.dtype != weight.dtype:
            raise RuntimeError(
                f"expected scalar type {_scalar_name(input.dtype)} but found {_scalar_name(weight.dtype)}"
            )

    return rule


_REDUCED = (torch.float16, torch.bfloat16)


def _mixed_dtypes(input: Any, *params: Any) -> None:
    """Real devices refuse a normalisation whose parameters or statistics have another dtype
    than the input (float32 ones with a float16/bfloat16 input excepted); meta does not."""
    if not _float_input(input):
        return
    for p in params:
        if (
            plain_meta(p)
            and p.dtype != input.dtype
            and not (input.dtype in _REDUCED and p.dtype == torch.float32)
        ):
            raise RuntimeError("mixed dtype (CPU): all inputs must share same datatype.")


def _norm_check(positions: tuple[int, ...], names: tuple[str, ...]) -> Rule:
    """The dtype check of a norm whose tensors sit at ``positions`` (or are passed as ``names``)."""

    def check(*args: Any, **kwargs: Any) -> None:
        tensors = [args[i] for i in positions if i < len(args)] + [kwargs[n] for n in names if n in kwargs]
        if args:
            _mixed_dtypes(args[0], *tensors)

    return check


#: Checks a real device makes before the op runs, which meta skips.
CHECKS: dict[Any, Rule] = {
    F.batch_norm: _norm_check((1, 2, 3, 4), ("running_mean", "running_var", "weight", "bias")),
    F.instance_norm: _norm_check((1, 2, 3, 4), ("running_mean", "running_var", "weight", "bias")),
    F.group_norm: _norm_check((2, 3), ("weight", "bias")),
    F.layer_norm: _norm_check((2, 3), ("weight", "bias")),
    F.linear: _linear,
    F.conv_transpose1d: _conv_transpose(1),
    F.conv_transpose2d: _conv_transpose(2),
    F.conv_transpose3d: _conv_transpose(3),
}


def _hardtanh(input: Any, min_val: float = -1.0, max_val: float = 1.0, inplace: bool = False) -> Any:
    """``nn.ReLU6`` and ``nn.Hardtanh`` (the bounds must be in order: torch's own check)."""
    if not _float_input(input) or not min_val <= max_val:
        return None
    return input if inplace else empty_like(input)


def _gelu(input: Any, approximate: str = "none") -> Any:
    if approximate not in ("none", "tanh") or not _float_input(input):
        return None
    return empty_like(input)


def _dropout(rank: int | None) -> Rule:
    """``F.dropout*(input, p, training, inplace)``; feature dropouts only at their own rank."""

    def rule(input: Any, p: float = 0.5, training: bool = True, inplace: bool = False) -> Any:
        if not _float_input(input) or not 0.0 <= p <= 1.0 or not training:
            return None  # eval-mode dropout is already free
        if rank is not None and input.dim() != rank:
            return None
        return input if inplace else empty_like(input)

    return rule


#: Shape-preserving ops answered fast (with their graph, when autograd records).
RULES: dict[Any, Rule] = {
    F.batch_norm: _batch_norm,
    F.instance_norm: _instance_norm,
    F.group_norm: _group_norm,
    F.layer_norm: _layer_norm,
    F.relu: _elementwise(1),
    F.relu6: _elementwise(1),
    F.hardtanh: _hardtanh,
    F.silu: _elementwise(1),
    F.hardswish: _elementwise(1),
    F.mish: _elementwise(1),
    F.leaky_relu: _elementwise(2),
    F.elu: _elementwise(2),
    F.gelu: _gelu,
    torch.relu: _elementwise(None),
    torch.sigmoid: _elementwise(None),
    torch.tanh: _elementwise(None),
    F.dropout: _dropout(None),
    F.dropout1d: _dropout(3),
    F.dropout2d: _dropout(4),
    F.dropout3d: _dropout(5),
}

#: Every op a meta trace answers itself: the above and ``metarules``' size rules.
ALL_RULES: dict[Any, Rule] = {**metarules.RULES, **RULES}

#: False inside ``dispatched_ops()``: the size rules stand aside for that context.
_SIZE_RULES: ContextVar[bool] = ContextVar("cnnshape_size_rules", default=True)


@contextmanager
def dispatched_ops() -> Iterator[None]:
    """Traces started here let torch run every op the size rules would answer, so that a
    ``TorchDispatchMode`` (torch's FLOP counter) sees them all."""
    token = _SIZE_RULES.set(False)
    try:
        yield
    finally:
        _SIZE_RULES.reset(token)


class OpWatcher(Protocol):
    """Something that sees every torch function a traced forward calls, with its result.

    A watcher that also has ``failed(func, args, kwargs, exc)`` is told of the op
    that raised (the moment a forward fails).
    """

    def op(self, func: Any, args: tuple[Any, ...], kwargs: dict[str, Any], result: Any) -> None:
        """``func(*args, **kwargs)`` returned ``result`` (attribute reads are not reported)."""


def _per_dim(value: Any, dims: int) -> tuple[int, ...]:
    if isinstance(value, (tuple, list, torch.Size)):
        values = tuple(int(v) for v in value)
        return values * dims if len(values) == 1 else values[-dims:]
    return (int(value),) * dims


class _UnpoolCheck:
    """The index check a real ``max_unpool*d`` makes, on meta.

    For each indices tensor a meta ``max_pool*d_with_indices`` returned, the pooled
    map's sides and the largest flat index its windows can reach; an unpool whose
    output map is smaller than that raises torch's own message.
    """

    def __init__(self) -> None:
        self._largest: dict[int, tuple[weakref.ref[torch.Tensor], int]] = {}

    def pooled(self, dims: int, args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> None:
        names = ("input", "kernel_size", "stride", "padding", "dilation", "ceil_mode")
        given = dict(zip(names, args, strict=False)) | kwargs
        x = given.get("input")
        if not isinstance(out, tuple) or len(out) != 2 or not isinstance(x, torch.Tensor):
            return
        indices = out[1]
        kernel = _per_dim(given["kernel_size"], dims)
        stride = _per_dim(given.get("stride") or kernel, dims)
        padding = _per_dim(given.get("padding", 0), dims)
        dilation = _per_dim(given.get("dilation", 1), dims)
        sides = tuple(x.shape[-dims:])
        pooled = tuple(indices.shape[-dims:])
        largest = 0
        for side, o, k, s, p, d in zip(sides, pooled, kernel, stride, padding, dilation, strict=True):
            last = min(side - 1, (o - 1) * s - p + (k - 1) * d)
            largest = largest * side + max(last, 0)
        self._largest[id(indices)] = (weakref.ref(indices), largest)

    def unpool(self, dims: int, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        names = ("input", "indices", "kernel_size", "stride", "padding", "output_size")
        given = dict(zip(names, args, strict=False)) | kwargs
        x, indices = given.get("input"), given.get("indices")
        entry = self._largest.get(id(indices))
        if entry is None or entry[0]() is not indices or not isinstance(x, torch.Tensor):
            return
        if given.get("output_size") is not None:
            out = _per_dim(given["output_size"], dims)
        else:
            kernel = _per_dim(given["kernel_size"], dims)
            stride = _per_dim(given.get("stride") or kernel, dims)
            padding = _per_dim(given.get("padding", 0), dims)
            out = tuple(
                (i - 1) * s - 2 * p + k
                for i, k, s, p in zip(x.shape[-dims:], kernel, stride, padding, strict=True)
            )
        if entry[1] >= math.prod(out):
            shown = (*out, 1) if dims == 1 else out  # max_unpool1d runs as a 2-D unpool
            raise RuntimeError(
                f"Found an invalid max index: {entry[1]} (output volumes are of size "
                f"{'x'.join(map(str, shown))})"
            )


_POOL_WITH_INDICES = {
    F.max_pool1d_with_indices: 1,
    F.max_pool2d_with_indices: 2,
    F.max_pool3d_with_indices: 3,
}
_UNPOOL = {F.max_unpool1d: 1, F.max_unpool2d: 2, F.max_unpool3d: 3}


def _is_attribute_read(func: Any) -> bool:
    # ``x.shape``, ``x.device`` and other descriptor reads reach the mode as ``__get__``
    return getattr(func, "__name__", "") == "__get__"


class TraceMode(TorchFunctionMode):
    """The one mode a traced forward runs under: meta shortcuts (on meta) and op watchers."""

    def __init__(self, *, meta: bool, watchers: Sequence[OpWatcher] = ()) -> None:
        super().__init__()
        self.rules = (ALL_RULES if _SIZE_RULES.get() else RULES) if meta else {}
        self.checks = CHECKS if meta else {}
        self.unpool = _UnpoolCheck() if meta else None
        self.watchers = tuple(watchers)
        self.failing = tuple(w for w in self.watchers if callable(getattr(w, "failed", None)))

    def __torch_function__(
        self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None
    ) -> Any:
        kwargs = kwargs or {}
        try:
            out = self._call(func, args, kwargs)
        except Exception as exc:
            for watcher in self.failing:
                watcher.failed(func, args, kwargs, exc)  # type: ignore[attr-defined]
            raise
        if self.watchers and not _is_attribute_read(func):
            for watcher in self.watchers:
                watcher.op(func, args, kwargs, out)
        return out

    def _call(self, func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        out = None
        check = self.checks.get(func)
        if check is not None:
            check(*args, **kwargs)
        rule = self.rules.get(func)
        if rule is not None:
            try:
                out = rule(*args, **kwargs)
            except TypeError:  # a call shape the rule does not know: let torch judge it
                out = None
            if out is not None and needs_graph(args, kwargs):
                out = with_graph(func, out, args, kwargs)
        if self.unpool is not None and func in _UNPOOL:
            with contextlib.suppress(KeyError, TypeError, ValueError):  # an odd call: torch judges
                self.unpool.unpool(_UNPOOL[func], args, kwargs)
        if out is None:
            out = func(*args, **kwargs)
        if self.unpool is not None and func in _POOL_WITH_INDICES:
            with contextlib.suppress(KeyError, TypeError, ValueError):
                self.unpool.pooled(_POOL_WITH_INDICES[func], args, kwargs, out)
        return out


@contextmanager
def trace_mode(*, meta: bool, watchers: Sequence[OpWatcher] = ()) -> Iterator[None]:
    """On meta: fast answers for shape-preserving ops and real-device checks for lax meta
    kernels. Anywhere: ``watchers`` see every op. A real run with no watchers runs plain."""
    if not meta and not watchers:
        yield
        return
    with TraceMode(meta=meta, watchers=watchers):
        yield


def meta_mode() -> AbstractContextManager[None]:
    """``trace_mode`` on meta, without watchers."""
    return trace_mode(meta=True)
