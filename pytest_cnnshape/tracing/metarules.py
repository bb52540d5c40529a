"""Shape rules for the ops a CNN forward uses, so a meta trace never wakes torch's Python kernels.

On meta, torch computes most output shapes in Python: the first call of a conv,
a pooling, a matmul or a softmax imports ``torch._meta_registrations`` and its
decompositions (about 0.5 s and 490 modules), and the first elementwise add,
``cat`` or ``mean`` goes through ``torch._prims_common.wrappers`` into
``torch._compile``, which imports ``torch._dynamo`` (over a second more). A
process that traces one ResNet paid that every time: more than the trace itself.

Each rule here answers one op from the sizes alone, with the exact shape, dtype
and memory format torch's meta kernel gives, but only when torch would certainly
accept the call: every tensor a plain, contiguous meta tensor, sizes non-zero,
dtypes the CPU kernel takes, every argument checked as torch checks it (channels,
groups, kernel against the padded input, broadcasting, type promotion). Anything
else returns None and runs torch's own kernel, so errors stay torch's own and a
model that fails on CPU never passes here (``tests/tracing/test_metarules.py``
compares every rule with torch's meta and CPU results on random arguments).

Views (``view``, ``reshape``, ``flatten``, ``permute``, ``transpose``,
``squeeze``, ``unsqueeze``, indexing) and constant ``F.pad`` are not here: their
meta path is native code already (a tenth of a millisecond, nothing imported).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F

#: ``rule(*args, **kwargs)`` -> the op's result, or None to let torch run it.
Rule = Callable[..., Any]

#: dtypes whose CPU kernels take convolutions, pooling and matrix products.
_FLOATS = (torch.float32, torch.float64)
_INDICES = (torch.int64, torch.int32)
_SCALARS = (bool, int, float)


def plain_meta(t: Any, dtype: torch.dtype | None = None) -> bool:
    """A meta tensor or parameter of no subclass (of ``dtype``, when given): one whose
    ops torch's own kernels would run, with no ``__torch_function__`` of its own."""
    return (
        (type(t) is torch.Tensor or type(t) is torch.nn.Parameter)
        and t.is_meta
        and (dtype is None or t.dtype == dtype)
    )


def _plain(t: Any) -> bool:
    """A plain, contiguous meta tensor with no zero-sized dimension."""
    return plain_meta(t) and t.numel() > 0 and t.is_contiguous()


def tensor_arguments(args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[torch.Tensor]:
    """The tensors among an op's arguments, those in a list or tuple (``torch.cat([a, b])``) too."""
    found: list[torch.Tensor] = []
    for v in (*args, *kwargs.values()):
        if isinstance(v, torch.Tensor):
            found.append(v)
        elif isinstance(v, (list, tuple)):
            found.extend(t for t in v if isinstance(t, torch.Tensor))
    return found


def _float(t: Any) -> bool:
    return _plain(t) and t.dtype in _FLOATS


def _empty(shape: Sequence[int], dtype: torch.dtype) -> torch.Tensor:
    return torch.empty(tuple(shape), dtype=dtype, device="meta")


def _row_major(shape: Sequence[int]) -> tuple[int, ...]:
    """The strides ``torch.empty(shape)`` gives."""
    strides, step = [], 1
    for size in reversed(shape):
        strides.append(step)
        step *= max(size, 1)
    return tuple(reversed(strides))


def _channels_last(shape: Sequence[int]) -> tuple[int, ...] | None:
    """The strides of ``torch.empty(shape, memory_format=torch.channels_last)`` (4-D only)."""
    if len(shape) != 4:
        return None
    _, c, h, w = (max(s, 1) for s in shape)
    return (h * w * c, 1, w * c, c)


def empty_like(t: torch.Tensor, meta: bool = False) -> torch.Tensor:
    """``torch.empty_like(t)`` (``meta=True``: on meta, whatever ``t``'s device) for a meta
    tensor laid out as ``torch.empty`` lays tensors out (row-major or channels-last),
    without torch's Python meta kernel (30 us a call; its first imports
    ``torch._meta_registrations``); any other layout goes to torch."""
    stride = t.stride()
    if (meta or t.is_meta) and (stride == _row_major(t.shape) or stride == _channels_last(t.shape)):
        return torch.empty_strided(tuple(t.shape), stride, dtype=t.dtype, device="meta")
    return torch.empty_like(t, device="meta") if meta else torch.empty_like(t)


def _ints(value: Any, dims: int, minimum: int) -> tuple[int, ...] | None:
    """``value`` as ``dims`` ints of at least ``minimum`` (an int, or a sequence of 1 or ``dims``)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        values: tuple[Any, ...] = (value,) * dims
    elif isinstance(value, (tuple, list, torch.Size)) and len(value) in (1, dims):
        values = tuple(value) * (dims if len(value) == 1 else 1)
    else:
        return None
    if not all(type(v) is int and v >= minimum for v in values):
        return None
    return values


def _bias_ok(bias: Any, size: int, dtype: torch.dtype) -> bool:
    return bias is None or (_plain(bias) and bias.dtype == dtype and tuple(bias.shape) == (size,))


def _batched(input: Any, dims: int) -> bool | None:
    """True for an ``(N, C, *sides)`` input, False for ``(C, *sides)``, None for neither."""
    if input.dim() == dims + 2:
        return True
    if input.dim() == dims + 1:
        return False
    return None


# --- convolutions ---------------------------------------------------------------------


def _conv_sides(
    sides: Sequence[int], kernel: Sequence[int], stride: Any, padding: Any, dilation: Any
) -> list[int] | None:
    """A convolution's output sides, with torch's checks; None when torch would refuse."""
    dims = len(sides)
    strides, dilations = _ints(stride, dims, 1), _ints(dilation, dims, 1)
    if strides is None or dilations is None:
        return None
    if padding == "same":
        if any(s != 1 for s in strides) or any(
            d * (k - 1) % 2 for d, k in zip(dilations, kernel, strict=True)
        ):
            return None  # torch refuses the strides; an uneven padding it warns about
        return list(sides)
    pads = (0,) * dims if padding == "valid" else _ints(padding, dims, 0)
    if pads is None:
        return None
    out = []
    for i in range(dims):
        reach = dilations[i] * (kernel[i] - 1) + 1
        padded = sides[i] + 2 * pads[i]
        if padded < reach:
            return None  # torch: "Kernel size can't be greater than actual input size"
        out.append((padded - reach) // strides[i] + 1)
    return out


def _conv_operands(input: Any, weight: Any, dims: int, groups: Any) -> bool | None:
    """What every convolution checks first: float tensors of one dtype, the weight's rank,
    the groups; whether the input is batched (None: torch judges the call)."""
    if not (_float(input) and _float(weight)) or input.dtype != weight.dtype:
        return None
    if weight.dim() != dims + 2 or type(groups) is not int or groups < 1:
        return None
    return _batched(input, dims)


def _conv(dims: int) -> Rule:
    """``conv{dims}d(input, weight, bias, stride, padding, dilation, groups)``."""

    def rule(  # noqa: PLR0917  (mirrors torch.conv2d)
        input: Any,
        weight: Any,
        bias: Any = None,
        stride: Any = 1,
        padding: Any = 0,
        dilation: Any = 1,
        groups: Any = 1,
    ) -> Any:
        batched = _conv_operands(input, weight, dims, groups)
        if batched is None:
            return None
        out_channels, group_channels, *kernel = weight.shape
        channels = input.shape[1 if batched else 0]
        if channels != group_channels * groups or out_channels % groups:
            return None
        if not _bias_ok(bias, out_channels, input.dtype):
            return None
        out = _conv_sides(input.shape[-dims:], kernel, stride, padding, dilation)
        if out is None:
            return None
        shape = (input.shape[0], out_channels, *out) if batched else (out_channels, *out)
        return _empty(shape, input.dtype)

    return rule


def _conv_transpose(dims: int) -> Rule:
    """``conv_transpose{dims}d(input, weight, bias, stride, padding, output_padding, groups,
    dilation)``."""

    def rule(  # noqa: PLR0917  (mirrors torch.conv_transpose2d)
        input: Any,
        weight: Any,
        bias: Any = None,
        stride: Any = 1,
        padding: Any = 0,
        output_padding: Any = 0,
        groups: Any = 1,
        dilation: Any = 1,
    ) -> Any:
        batched = _conv_operands(input, weight, dims, groups)
        if batched is None:
            return None
        in_channels, group_out, *kernel = weight.shape
        if input.shape[1 if batched else 0] != in_channels or in_channels % groups:
            return None
        out_channels = group_out * groups
        if not _bias_ok(bias, out_channels, input.dtype):
            return None
        strides, dilations = _ints(stride, dims, 1), _ints(dilation, dims, 1)
        pads, extra = _ints(padding, dims, 0), _ints(output_padding, dims, 0)
        if strides is None or dilations is None or pads is None or extra is None:
            return None
        out = []
        for i, side in enumerate(input.shape[-dims:]):
            if extra[i] >= max(strides[i], dilations[i]):
                return None  # torch: "output padding must be smaller than either stride or dilation"
            size = (side - 1) * strides[i] - 2 * pads[i] + dilations[i] * (kernel[i] - 1) + extra[i] + 1
            if size < 1:
                return None
            out.append(size)
        shape = (input.shape[0], out_channels, *out) if batched else (out_channels, *out)
        return _empty(shape, input.dtype)

    return rule


# --- pooling --------------------------------------------------------------------------


def _pooled(side: int, *, kernel: int, stride: int, pad: int, dilation: int, ceil: bool) -> int | None:
    """torch's ``pooling_output_shape``; None when the window does not fit."""
    reach = dilation * (kernel - 1) + 1
    span = side + 2 * pad - reach + ((stride - 1) if ceil else 0)
    if span < 0:
        return None
    out = span // stride + 1
    if ceil and (out - 1) * stride >= side + pad:
        out -= 1
    return out if out >= 1 else None


def _pool_sides(
    input: Any, dims: int, *, kernel_size: Any, stride: Any, padding: Any, dilation: Any, ceil_mode: Any
) -> tuple[int, ...] | None:
    """The pooled sides of a max or average pooling, with torch's argument checks."""
    if not _float(input) or _batched(input, dims) is None or type(ceil_mode) is not bool:
        return None
    kernel = _ints(kernel_size, dims, 1)
    strides = kernel if stride is None or (isinstance(stride, (list, tuple)) and not stride) else None
    strides = strides or _ints(stride, dims, 1)
    pads, dilations = _ints(padding, dims, 0), _ints(dilation, dims, 1)
    if kernel is None or strides is None or pads is None or dilations is None:
        return None
    out = []
    for i, side in enumerate(input.shape[-dims:]):
        if 2 * pads[i] > kernel[i]:
            return None  # torch: "pad should be at most half of effective kernel size"
        size = _pooled(
            side, kernel=kernel[i], stride=strides[i], pad=pads[i], dilation=dilations[i], ceil=ceil_mode
        )
        if size is None:
            return None
        out.append(size)
    return tuple(out)


def _max_pool(dims: int, indices: bool) -> Rule:
    """``max_pool{dims}d`` (``_with_indices``: with the indices, as int64)."""

    def rule(  # noqa: PLR0917  (mirrors F.max_pool2d)
        input: Any,
        kernel_size: Any,
        stride: Any = None,
        padding: Any = 0,
        dilation: Any = 1,
        ceil_mode: Any = False,
        return_indices: Any = False,
    ) -> Any:
        if return_indices and not indices:
            return None
        sides = _pool_sides(
            input,
            dims,
            kernel_size=kernel_size,
            stride=stride,
            padding=padding,
            dilation=dilation,
            ceil_mode=ceil_mode,
        )
        if sides is None:
            return None
        shape = (*input.shape[:-dims], *sides)
        out = _empty(shape, input.dtype)
        return (out, _empty(shape, torch.int64)) if indices else out

    return rule


def _avg_pool(dims: int) -> Rule:
    """``avg_pool{dims}d(input, kernel_size, stride, padding, ceil_mode, count_include_pad,
    divisor_override)``."""

    def rule(  # noqa: PLR0917  (mirrors F.avg_pool2d)
        input: Any,
        kernel_size: Any,
        stride: Any = None,
        padding: Any = 0,
        ceil_mode: Any = False,
        count_include_pad: Any = True,
        divisor_override: Any = None,
    ) -> Any:
        if type(count_include_pad) is not bool:
            return None
        if divisor_override is not None and (
            dims == 1 or type(divisor_override) is not int or divisor_override == 0
        ):
            return None
        sides = _pool_sides(
            input,
            dims,
            kernel_size=kernel_size,
            stride=stride,
            padding=padding,
            dilation=1,
            ceil_mode=ceil_mode,
        )
        if sides is None:
            return None
        kernel = _ints(kernel_size, dims, 1) or ()
        if dims == 3 and any(side < k for side, k in zip(input.shape[-3:], kernel, strict=True)):
            return None  # torch's avg_pool3d: "input image ... smaller than kernel size"
        return _empty((*input.shape[:-dims], *sides), input.dtype)

    return rule


def _adaptive_sides(input: Any, dims: int, output_size: Any) -> tuple[int, ...] | None:
    if not _float(input) or _batched(input, dims) is None:
        return None
    sides = input.shape[-dims:]
    if isinstance(output_size, (tuple, list)) and len(output_size) == dims:
        wanted = [sides[i] if v is None else v for i, v in enumerate(output_size)]
    elif output_size is None:
        return None
    else:
        wanted = list(_ints(output_size, dims, 1) or ())
    if len(wanted) != dims or not all(type(v) is int and v >= 1 for v in wanted):
        return None
    return tuple(wanted)


def _adaptive_avg(dims: int) -> Rule:
    def rule(input: Any, output_size: Any) -> Any:
        sides = _adaptive_sides(input, dims, output_size)
        return None if sides is None else _empty((*input.shape[:-dims], *sides), input.dtype)

    return rule


def _adaptive_max(dims: int, indices: bool) -> Rule:
    def rule(input: Any, output_size: Any, return_indices: Any = False) -> Any:
        if return_indices and not indices:
            return None
        sides = _adaptive_sides(input, dims, output_size)
        if sides is None:
            return None
        shape = (*input.shape[:-dims], *sides)
        out = _empty(shape, input.dtype)
        return (out, _empty(shape, torch.int64)) if indices else out

    return rule


# --- matrix products ------------------------------------------------------------------


def _linear(input: Any, weight: Any, bias: Any = None) -> Any:
    if not (_float(input) and _float(weight)) or weight.dim() != 2 or input.dim() < 1:
        return None
    if input.dtype != weight.dtype or input.shape[-1] != weight.shape[1]:
        return None
    if not _bias_ok(bias, weight.shape[0], input.dtype):
        return None
    return _empty((*input.shape[:-1], weight.shape[0]), input.dtype)


def _broadcast(*shapes: Sequence[int]) -> tuple[int, ...] | None:
    """The broadcast of ``shapes``, or None when they do not broadcast."""
    rank = max((len(s) for s in shapes), default=0)
    out = [1] * rank
    for shape in shapes:
        for i, size in enumerate(shape, rank - len(shape)):
            if size == out[i] or size == 1:
                continue
            if out[i] != 1:
                return None
            out[i] = size
    return tuple(out)


def _matmul(input: Any, other: Any) -> Any:
    """``torch.matmul`` of matrices or batches of them (vector cases are left to torch)."""
    if not (_float(input) and _float(other)) or input.dtype != other.dtype:
        return None
    if input.dim() < 2 or other.dim() < 2 or input.shape[-1] != other.shape[-2]:
        return None
    batch = _broadcast(input.shape[:-2], other.shape[:-2])
    if batch is None:
        return None
    return _empty((*batch, input.shape[-2], other.shape[-1]), input.dtype)


def _mm(batched: bool) -> Rule:
    rank = 3 if batched else 2

    def rule(input: Any, mat2: Any) -> Any:
        if not (_float(input) and _float(mat2)) or input.dim() != rank or mat2.dim() != rank:
            return None
        if input.dtype != mat2.dtype or input.shape[-1] != mat2.shape[-2]:
            return None
        if batched and input.shape[0] != mat2.shape[0]:
            return None
        return _empty((*input.shape[:-1], mat2.shape[-1]), input.dtype)

    return rule


# --- elementwise arithmetic -----------------------------------------------------------


def _operand(value: Any) -> bool:
    if isinstance(value, torch.Tensor):
        return _plain(value) and not value.is_complex()
    return type(value) in _SCALARS


def _dtype(value: Any) -> torch.dtype | None:
    if isinstance(value, torch.Tensor):
        return value.dtype
    return torch.bool if type(value) is bool else None


def _binary(kind: str, inplace: bool) -> Rule:
    """``add``/``sub``/``mul``/``div`` of tensors and Python numbers, with torch's promotion."""

    def rule(input: Any, other: Any, *rest: Any, **kwargs: Any) -> Any:
        if rest or not isinstance(input, torch.Tensor) or not (_operand(input) and _operand(other)):
            return None
        alpha = kwargs.pop("alpha", 1)
        if kwargs or type(alpha) is not int or alpha != 1:  # rounding_mode=, out=: torch
            return None
        dtype = torch.result_type(input, other)
        if kind == "sub" and torch.bool in (_dtype(input), _dtype(other)):
            return None  # torch: "Subtraction, the `-` operator, with a bool tensor is not supported"
        if kind == "div" and not dtype.is_floating_point:
            dtype = torch.get_default_dtype()
        shape = _broadcast(input.shape, other.shape if isinstance(other, torch.Tensor) else ())
        if shape is None:
            return None
        if inplace:
            if shape != tuple(input.shape) or not torch.can_cast(dtype, input.dtype):
                return None
            return input
        return _empty(shape, dtype)

    return rule


def _reflected_sub(input: Any, other: Any) -> Any:
    """``other - input`` for a Python number ``other`` (``Tensor.__rsub__``)."""
    if type(other) not in _SCALARS:
        return None
    return _binary("sub", False)(input, other)


def _unary_float(input: Any) -> Any:
    """Ops such as ``x.sigmoid()``: same shape, a float dtype (integers become the default)."""
    if not _plain(input) or input.is_complex():
        return None
    dtype = input.dtype if input.dtype.is_floating_point else torch.get_default_dtype()
    return _empty(input.shape, dtype)


def _relu_method(input: Any) -> Any:
    if not _plain(input) or input.dtype == torch.bool or input.is_complex():
        return None
    return _empty(input.shape, input.dtype)


# --- joining, resampling, rearranging -------------------------------------------------


def _axis(dim: Any, rank: int) -> int | None:
    if type(dim) is not int or not -rank <= dim < rank:
        return None
    return dim % rank


def _cat(tensors: Any, dim: Any = 0) -> Any:
    if not isinstance(tensors, (list, tuple)) or not tensors or not all(_plain(t) for t in tensors):
        return None
    first = tensors[0]
    axis = _axis(dim, first.dim())
    if axis is None or any(t.dtype != first.dtype or t.dim() != first.dim() for t in tensors):
        return None
    for t in tensors[1:]:
        if any(t.shape[i] != first.shape[i] for i in range(first.dim()) if i != axis):
            return None
    shape = list(first.shape)
    shape[axis] = sum(t.shape[axis] for t in tensors)
    return _empty(shape, first.dtype)


def _stack(tensors: Any, dim: Any = 0) -> Any:
    if not isinstance(tensors, (list, tuple)) or not tensors or not all(_plain(t) for t in tensors):
        return None
    first = tensors[0]
    axis = _axis(dim, first.dim() + 1)
    if axis is None or any(t.dtype != first.dtype or t.shape != first.shape for t in tensors):
        return None
    shape = list(first.shape)
    shape.insert(axis, len(tensors))
    return _empty(shape, first.dtype)


_INTERPOLATE_RANKS = {
    "nearest": (3, 4, 5),
    "linear": (3,),
    "bilinear": (4,),
    "bicubic": (4,),
    "trilinear": (5,),
}


def _interpolate(  # noqa: PLR0917  (mirrors F.interpolate)
    input: Any,
    size: Any = None,
    scale_factor: Any = None,
    mode: str = "nearest",
    align_corners: Any = None,
    recompute_scale_factor: Any = None,
    antialias: bool = False,
) -> Any:
    if not _float(input) or input.dim() not in _INTERPOLATE_RANKS.get(mode, ()) or antialias:
        return None
    if align_corners is not None and (mode == "nearest" or type(align_corners) is not bool):
        return None
    dims = input.dim() - 2
    sides = input.shape[2:]
    if size is not None and scale_factor is None:
        wanted = _ints(size, dims, 1)
        return None if wanted is None else _empty((*input.shape[:2], *wanted), input.dtype)
    if scale_factor is None or size is not None or recompute_scale_factor:
        return None
    scales = scale_factor if isinstance(scale_factor, (tuple, list)) else (scale_factor,) * dims
    if len(scales) != dims or not all(type(s) in (int, float) and s > 0 for s in scales):
        return None
    out = [math.floor(float(side) * float(s)) for side, s in zip(sides, scales, strict=True)]
    if not all(v >= 1 for v in out):
        return None
    return _empty((*input.shape[:2], *out), input.dtype)


def _pixel_shuffle(input: Any, upscale_factor: Any) -> Any:
    if not _plain(input) or input.dim() < 3 or type(upscale_factor) is not int or upscale_factor < 1:
        return None
    r = upscale_factor
    *batch, c, h, w = input.shape
    if c % (r * r):
        return None
    return _empty((*batch, c // (r * r), h * r, w * r), input.dtype)


def _pixel_unshuffle(input: Any, downscale_factor: Any) -> Any:
    if not _plain(input) or input.dim() < 3 or type(downscale_factor) is not int or downscale_factor < 1:
        return None
    r = downscale_factor
    *batch, c, h, w = input.shape
    if h % r or w % r:
        return None
    return _empty((*batch, c * r * r, h // r, w // r), input.dtype)


def _softmax(input: Any, dim: Any = None, _stacklevel: int = 3, dtype: Any = None) -> Any:
    if not _float(input) or dtype is not None or _axis(dim, max(input.dim(), 1)) is None:
        return None
    return _empty(input.shape, input.dtype)


def _softmax_method(input: Any, dim: Any, dtype: Any = None) -> Any:
    return _softmax(input, dim, 3, dtype)


def _embedding(  # noqa: PLR0917  (mirrors F.embedding)
    input: Any,
    weight: Any,
    padding_idx: Any = None,
    max_norm: Any = None,
    norm_type: float = 2.0,
    scale_grad_by_freq: bool = False,
    sparse: bool = False,
) -> Any:
    if not (_plain(input) and _float(weight)) or input.dtype not in _INDICES or weight.dim() != 2:
        return None
    if max_norm is not None:
        return None  # renormalises the weight in place: torch must run it
    if padding_idx is not None and not (
        type(padding_idx) is int and -weight.shape[0] <= padding_idx < weight.shape[0]
    ):
        return None
    return _empty((*input.shape, weight.shape[1]), weight.dtype)


# --- reductions -----------------------------------------------------------------------


def _reduced_shape(input: Any, dim: Any, keepdim: Any, empty_means_all: bool) -> tuple[int, ...] | None:
    rank = input.dim()
    if type(keepdim) is not bool or rank == 0:
        return None
    if dim is None or (empty_means_all and isinstance(dim, (tuple, list)) and not dim):
        axes = set(range(rank))
    else:
        given = (dim,) if isinstance(dim, int) else dim
        if not isinstance(given, (tuple, list)) or not given:
            return None
        found = [_axis(d, rank) for d in given]
        if any(a is None for a in found) or len(set(found)) != len(found):
            return None
        axes = {a for a in found if a is not None}
    return tuple((1 if i in axes else size) for i, size in enumerate(input.shape) if keepdim or i not in axes)


def _reduction(kind: str) -> Rule:
    """``mean``/``sum``/``amax`` over dims, with ``keepdim`` (no ``dtype=``, no ``out=``)."""

    def rule(input: Any, dim: Any = None, keepdim: Any = False, **kwargs: Any) -> Any:
        if kwargs or not _plain(input) or input.is_complex():
            return None
        if kind == "mean" and input.dtype not in _FLOATS:
            return None
        if kind == "amax" and dim is None:
            dim = ()
        shape = _reduced_shape(input, dim, keepdim, empty_means_all=kind != "mean")
        if shape is None:
            return None
        if kind == "sum" and not input.dtype.is_floating_point:
            return _empty(shape, torch.int64)
        return _empty(shape, input.dtype)

    return rule


T = torch.Tensor

RULES: dict[Any, Rule] = {
    torch.conv1d: _conv(1),
    torch.conv2d: _conv(2),
    torch.conv3d: _conv(3),
    torch.conv_transpose1d: _conv_transpose(1),
    torch.conv_transpose2d: _conv_transpose(2),
    torch.conv_transpose3d: _conv_transpose(3),
    F.max_pool1d: _max_pool(1, False),
    F.max_pool2d: _max_pool(2, False),
    F.max_pool3d: _max_pool(3, False),
    F.max_pool1d_with_indices: _max_pool(1, True),
    F.max_pool2d_with_indices: _max_pool(2, True),
    F.max_pool3d_with_indices: _max_pool(3, True),
    F.avg_pool1d: _avg_pool(1),
    F.avg_pool2d: _avg_pool(2),
    F.avg_pool3d: _avg_pool(3),
    F.adaptive_avg_pool1d: _adaptive_avg(1),
    F.adaptive_avg_pool2d: _adaptive_avg(2),
    F.adaptive_avg_pool3d: _adaptive_avg(3),
    F.adaptive_max_pool1d: _adaptive_max(1, False),
    F.adaptive_max_pool2d: _adaptive_max(2, False),
    F.adaptive_max_pool3d: _adaptive_max(3, False),
    F.adaptive_max_pool1d_with_indices: _adaptive_max(1, True),
    F.adaptive_max_pool2d_with_indices: _adaptive_max(2, True),
    F.adaptive_max_pool3d_with_indices: _adaptive_max(3, True),
    F.linear: _linear,
    torch.matmul: _matmul,
    T.matmul: _matmul,
    torch.mm: _mm(False),
    T.mm: _mm(False),
    torch.bmm: _mm(True),
    T.bmm: _mm(True),
    torch.add: _binary("add", False),
    T.add: _binary("add", False),
    T.add_: _binary("add", True),
    torch.sub: _binary("sub", False),
    T.sub: _binary("sub", False),
    T.sub_: _binary("sub", True),
    T.__rsub__: _reflected_sub,
    torch.mul: _binary("mul", False),
    T.mul: _binary("mul", False),
    T.mul_: _binary("mul", True),
    torch.div: _binary("div", False),
    T.div: _binary("div", False),
    T.div_: _binary("div", True),
    T.sigmoid: _unary_float,
    T.tanh: _unary_float,
    T.relu: _relu_method,
    torch.cat: _cat,
    torch.concat: _cat,
    torch.stack: _stack,
    F.interpolate: _interpolate,
    F.pixel_shuffle: _pixel_shuffle,
    F.pixel_unshuffle: _pixel_unshuffle,
    F.softmax: _softmax,
    F.log_softmax: _softmax,
    T.softmax: _softmax_method,
    T.log_softmax: _softmax_method,
    F.embedding: _embedding,
    torch.mean: _reduction("mean"),
    T.mean: _reduction("mean"),
    torch.sum: _reduction("sum"),
    T.sum: _reduction("sum"),
    torch.amax: _reduction("amax"),
    T.amax: _reduction("amax"),
}
