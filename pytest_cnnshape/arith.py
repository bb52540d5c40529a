"""Shape arithmetic of CNN layers: the output-size formulas torch documents, as code.

Diagnostics use these to say which number to change ("in_features=800 because
32 * 5 * 5"), how small an input may be, and how sizes shrink along a stack.
Every formula is checked against torch itself by property tests. The scalar
functions need no torch; the ``*_of`` helpers read a module's own settings.

    >>> conv_output_size(32, kernel_size=5)
    28
    >>> pool_output_size(7, kernel_size=2, ceil_mode=True)
    4
    >>> conv_transpose_output_size(16, kernel_size=2, stride=2)
    32
    >>> flatten_size((1, 32, 5, 5))
    800

This module imports nothing of the package but ``errors``: it is the bottom layer.
``pytest_cnnshape.linear_in_features(features, input_shape)``, which traces a feature
extractor on meta for the number a Linear after it needs, lives with the other sizes
found by tracing (``contracts.sizes``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import ArgumentError

if TYPE_CHECKING:
    from torch import nn

__all__ = [
    "ReceptiveField",
    "conv_output_size",
    "conv_transpose_output_size",
    "flatten_size",
    "kernel_of",
    "linear_in_features",  # noqa: F822  (module __getattr__ below: it needs a trace)
    "min_input_size_of",
    "per_dim",
    "pool_output_size",
    "receptive_field_of",
    "smallest_input",
    "spatial_output_of",
]


def _positive(name: str, value: int, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ArgumentError(f"{name}={value!r} must be a whole number >= {minimum}")
    return value


def conv_output_size(
    size: int, kernel_size: int, *, stride: int = 1, padding: int = 0, dilation: int = 1
) -> int:
    """Output length of a convolution along one dimension (may be <= 0: too small).

    ``floor((size + 2*padding - dilation*(kernel_size - 1) - 1) / stride) + 1``
    """
    _positive("kernel_size", kernel_size)
    _positive("stride", stride)
    _positive("dilation", dilation)
    return (size + 2 * padding - dilation * (kernel_size - 1) - 1) // stride + 1


def pool_output_size(
    size: int,
    kernel_size: int,
    *,
    stride: int | None = None,
    padding: int = 0,
    dilation: int = 1,
    ceil_mode: bool = False,
) -> int:
    """Output length of max/avg pooling along one dimension (stride defaults to the kernel).

    With ``ceil_mode`` the last window may hang over the end, but it must start
    inside the input or the left padding (torch drops it otherwise).
    """
    _positive("kernel_size", kernel_size)
    stride = kernel_size if stride is None else _positive("stride", stride)
    _positive("dilation", dilation)
    span = size + 2 * padding - dilation * (kernel_size - 1) - 1
    out = (span + (stride - 1 if ceil_mode else 0)) // stride + 1
    if ceil_mode and (out - 1) * stride >= size + padding:
        out -= 1
    return out


def conv_transpose_output_size(
    size: int,
    kernel_size: int,
    *,
    stride: int = 1,
    padding: int = 0,
    output_padding: int = 0,
    dilation: int = 1,
) -> int:
    """Output length of a transposed convolution along one dimension.

    ``(size - 1)*stride - 2*padding + dilation*(kernel_size - 1) + output_padding + 1``
    """
    _positive("kernel_size", kernel_size)
    _positive("stride", stride)
    _positive("dilation", dilation)
    return (size - 1) * stride - 2 * padding + dilation * (kernel_size - 1) + output_padding + 1


def flatten_size(shape: Sequence[int], start_dim: int = 1, end_dim: int = -1) -> int:
    """Number of features ``torch.flatten(x, start_dim, end_dim)`` merges into one dimension.

    ``flatten_size((1, 32, 5, 5)) == 800``: the ``in_features`` a Linear after
    ``nn.Flatten()`` needs.
    """
    rank = len(shape)
    if rank == 0:
        return 1
    start = start_dim + rank if start_dim < 0 else start_dim
    end = end_dim + rank if end_dim < 0 else end_dim
    if not 0 <= start <= end < rank:
        raise ArgumentError(f"start_dim={start_dim}, end_dim={end_dim} do not fit a shape of rank {rank}")
    return math.prod(shape[start : end + 1])


def per_dim(value: Any, n: int) -> tuple[Any, ...]:
    """A layer setting for each of ``n`` dimensions: ``per_dim(3, 2) == (3, 3)``."""
    if isinstance(value, (tuple, list)):
        if len(value) == 1:
            return tuple(value) * n
        return tuple(value)
    return (value,) * n


def spatial_output_of(module: nn.Module, spatial: Sequence[int]) -> tuple[int, ...] | None:
    """The spatial sizes ``module`` turns ``spatial`` into, from its own settings.

    ``spatial`` is the input's trailing dimensions (H, W for 2-D layers). Covers
    convolutions, transposed convolutions, max/avg pooling, adaptive pooling and
    Upsample; layers that keep the size (activations, normalisation, dropout)
    return it unchanged; anything else returns None. Sizes below 1 mean the layer
    runs out of pixels.
    """
    from torch import nn

    dims = len(spatial)
    if isinstance(module, nn.modules.conv._ConvTransposeNd):
        return tuple(
            conv_transpose_output_size(s, k, stride=st, padding=p, output_padding=op, dilation=d)
            for s, k, st, p, op, d in zip(
                spatial,
                per_dim(module.kernel_size, dims),
                per_dim(module.stride, dims),
                per_dim(module.padding, dims),
                per_dim(module.output_padding, dims),
                per_dim(module.dilation, dims),
                strict=True,
            )
        )
    if isinstance(module, nn.modules.conv._ConvNd):
        if module.padding == "same":
            return tuple(spatial)
        padding: Any = 0 if module.padding == "valid" else module.padding
        return tuple(
            conv_output_size(s, k, stride=st, padding=p, dilation=d)
            for s, k, st, p, d in zip(
                spatial,
                per_dim(module.kernel_size, dims),
                per_dim(module.stride, dims),
                per_dim(padding, dims),
                per_dim(module.dilation, dims),
                strict=True,
            )
        )
    if isinstance(module, nn.modules.pooling._MaxPoolNd):
        return tuple(
            pool_output_size(s, k, stride=st, padding=p, dilation=d, ceil_mode=module.ceil_mode)
            for s, k, st, p, d in zip(
                spatial,
                per_dim(module.kernel_size, dims),
                per_dim(module.stride or module.kernel_size, dims),
                per_dim(module.padding, dims),
                per_dim(module.dilation, dims),
                strict=True,
            )
        )
    if isinstance(module, nn.modules.pooling._AvgPoolNd) and hasattr(module, "ceil_mode"):
        # AvgPool3d also refuses any side smaller than its kernel, padding or not.
        strict = isinstance(module, nn.AvgPool3d)
        ceil = bool(module.ceil_mode)
        return tuple(
            0 if strict and s < k else pool_output_size(s, k, stride=st, padding=p, ceil_mode=ceil)
            for s, k, st, p in zip(
                spatial,
                per_dim(module.kernel_size, dims),
                per_dim(module.stride or module.kernel_size, dims),
                per_dim(module.padding, dims),
                strict=True,
            )
        )
    if isinstance(module, (nn.modules.pooling._AdaptiveAvgPoolNd, nn.modules.pooling._AdaptiveMaxPoolNd)):
        return tuple(
            s if o is None else int(o)
            for s, o in zip(spatial, per_dim(module.output_size, dims), strict=True)
        )
    if isinstance(module, nn.Upsample):
        if module.size is not None:
            return tuple(int(v) for v in per_dim(module.size, dims))
        scale = per_dim(module.scale_factor, dims)
        return tuple(math.floor(s * f) for s, f in zip(spatial, scale, strict=True))
    if _keeps_size(module):
        return tuple(spatial)
    return None


def _keeps_size(module: nn.Module) -> bool:
    from torch import nn

    keeping = (
        nn.modules.batchnorm._NormBase,
        nn.GroupNorm,
        nn.LocalResponseNorm,
        nn.modules.dropout._DropoutNd,
        nn.Identity,
        nn.ReLU,
        nn.ReLU6,
        nn.LeakyReLU,
        nn.PReLU,
        nn.ELU,
        nn.SELU,
        nn.CELU,
        nn.GELU,
        nn.SiLU,
        nn.Mish,
        nn.Sigmoid,
        nn.Tanh,
        nn.Hardswish,
        nn.Hardsigmoid,
        nn.Hardtanh,
        nn.Softplus,
    )
    return isinstance(module, keeping)


def smallest_input(
    output_of: Callable[[int], int], required: int = 1, *, start: int = 1, limit: int = 1 << 20
) -> int | None:
    """The smallest ``n >= start`` with ``output_of(n) >= required`` (None above ``limit``).

    Output sizes of convolutions and pooling never shrink when the input grows,
    so a doubling search followed by bisection finds it in O(log n) evaluations.
    """
    if output_of(start) >= required:
        return start
    high = max(start, 1) * 2
    while output_of(high) < required:
        if high >= limit:
            return None
        high *= 2
    low = high // 2  # output_of(low) < required <= output_of(high)
    while high - low > 1:
        mid = (low + high) // 2
        if output_of(mid) >= required:
            high = mid
        else:
            low = mid
    return high


def min_input_size_of(modules: Sequence[nn.Module], ndim: int = 2) -> int | None:
    """Smallest square (cube, length) input side a chain of layers runs on.

    ``modules`` are applied one after the other (an ``nn.Sequential``'s layers);
    layers whose size rule is unknown are skipped. None when no side up to 2**20
    works (e.g. a transposed conv that cannot reach size 1 never limits, but a
    stride larger than any map would).
    """
    chain = [m for m in modules if spatial_output_of(m, (8,) * ndim) is not None]

    def smallest_side(side: int) -> int:
        sizes: tuple[int, ...] = (side,) * ndim
        for m in chain:
            out = spatial_output_of(m, sizes)
            assert out is not None
            if min(out) < 1:
                return 0
            sizes = out
        return min(sizes)

    return smallest_input(smallest_side, 1)


@dataclass(frozen=True)
class ReceptiveField:
    """How many input pixels one output position sees, and how far apart outputs are."""

    #: Side of the input window that influences one output position.
    size: int
    #: Input pixels between neighbouring output positions (product of strides).
    jump: int


def receptive_field_of(modules: Sequence[nn.Module]) -> ReceptiveField:
    """Receptive field of a chain of conv/pool layers, along the first spatial axis.

    ``r_out = r_in + (kernel - 1) * dilation * jump_in``, ``jump_out = jump_in * stride``.
    Layers without a kernel (activations, normalisation) change neither.
    """
    size, jump = 1, 1
    for m in modules:
        window = kernel_of(m)
        if window is not None:
            k, s, d = window
            size += (k - 1) * d * jump
            jump *= s
    return ReceptiveField(size, jump)


def kernel_of(module: nn.Module) -> tuple[int, int, int] | None:
    """``(kernel, stride, dilation)`` of a conv or pooling layer along its first spatial
    axis; None for layers without a window (and for transposed convs, which upsample:
    no receptive-field rule)."""
    from torch import nn

    if isinstance(module, nn.modules.conv._ConvTransposeNd):
        return None
    if not isinstance(
        module, (nn.modules.conv._ConvNd, nn.modules.pooling._MaxPoolNd, nn.modules.pooling._AvgPoolNd)
    ) or not hasattr(module, "kernel_size"):
        return None
    k = per_dim(module.kernel_size, 1)[0]
    d = per_dim(getattr(module, "dilation", 1), 1)[0]
    s = per_dim(getattr(module, "stride", None) or k, 1)[0]
    return int(k), int(s), int(d)
