"""Hypothesis strategies for CNN shapes: input sizes, and whole random CNN stacks.

    from hypothesis import given
    from pytest_cnnshape.strategies import image_shapes

    @given(image_shapes(channels=3, min_side=32, max_side=256, multiple_of=32))
    def test_any_size(shape):
        assert_output_shape(Net(), shape, "B x 10")

Shapes are plain tuples, ``(batch, channels, *spatial)``; they shrink towards the
smallest batch and side, so a failure is reported at the smallest input that
breaks. ``cnn_stacks`` draws valid Conv/Pool/BatchNorm/Dropout/Linear stacks with
the output shape they must produce, for testing tools that reason about shapes
(ours included).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

from hypothesis import strategies as st

from . import arith
from .errors import ArgumentError, ArgumentTypeError

if TYPE_CHECKING:
    from torch import nn

__all__ = ["CnnStack", "cnn_stacks", "image_shapes", "signal_shapes", "spatial_shapes", "volume_shapes"]

Shape = tuple[int, ...]


def _range(value: int | tuple[int, int], what: str) -> tuple[int, int]:
    if isinstance(value, int) and not isinstance(value, bool):
        low = high = value
    elif (
        isinstance(value, tuple)
        and len(value) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    ):
        low, high = value
    else:
        raise ArgumentTypeError(
            f"{what}={value!r} must be a whole number or a (min, max) pair, e.g. {what}=(1, 8)"
        )
    if low < 1 or high < low:
        raise ArgumentError(f"{what}={value!r}: need 1 <= min <= max, e.g. {what}=(1, 8)")
    return low, high


def spatial_shapes(
    ndim: int,
    *,
    channels: int | tuple[int, int] = 3,
    min_side: int = 1,
    max_side: int = 64,
    batch: int | tuple[int, int] = (1, 8),
    square: bool = False,
    multiple_of: int = 1,
) -> st.SearchStrategy[Shape]:
    """``(B, C, *sides)`` with ``ndim`` spatial sides in ``[min_side, max_side]``.

    ``multiple_of`` restricts sides to multiples (a U-Net of depth 4 wants 16);
    ``square`` makes every side equal.
    """
    if ndim < 1:
        raise ArgumentError(f"ndim={ndim!r} must be at least 1")
    b_low, b_high = _range(batch, "batch")
    c_low, c_high = _range(channels, "channels")
    _range((min_side, max_side), "(min_side, max_side)")
    if multiple_of < 1:
        raise ArgumentError(f"multiple_of={multiple_of!r} must be at least 1")
    lowest = -(-min_side // multiple_of)
    highest = max_side // multiple_of
    if lowest > highest:
        raise ArgumentError(
            f"no side in [{min_side}, {max_side}] is a multiple of {multiple_of}; widen the range"
        )
    side = st.integers(lowest, highest).map(lambda n: n * multiple_of)
    sides: st.SearchStrategy[Shape] = (
        side.map(lambda s: (s,) * ndim) if square else st.tuples(*([side] * ndim))
    )
    return st.tuples(st.integers(b_low, b_high), st.integers(c_low, c_high), sides).map(
        lambda t: (t[0], t[1], *t[2])
    )


def image_shapes(
    channels: int | tuple[int, int] = 3,
    *,
    min_side: int = 1,
    max_side: int = 64,
    batch: int | tuple[int, int] = (1, 8),
    square: bool = False,
    multiple_of: int = 1,
) -> st.SearchStrategy[Shape]:
    """``(B, C, H, W)`` image batches."""
    return spatial_shapes(
        2,
        channels=channels,
        min_side=min_side,
        max_side=max_side,
        batch=batch,
        square=square,
        multiple_of=multiple_of,
    )


def signal_shapes(
    channels: int | tuple[int, int] = 1,
    *,
    min_length: int = 1,
    max_length: int = 256,
    batch: int | tuple[int, int] = (1, 8),
    multiple_of: int = 1,
) -> st.SearchStrategy[Shape]:
    """``(B, C, L)`` 1-D signal batches (audio, sensor series) for Conv1d models."""
    return spatial_shapes(
        1, channels=channels, min_side=min_length, max_side=max_length, batch=batch, multiple_of=multiple_of
    )


def volume_shapes(
    channels: int | tuple[int, int] = 1,
    *,
    min_side: int = 1,
    max_side: int = 32,
    batch: int | tuple[int, int] = (1, 4),
    cube: bool = False,
    multiple_of: int = 1,
) -> st.SearchStrategy[Shape]:
    """``(B, C, D, H, W)`` volume batches (video clips, CT scans) for Conv3d models."""
    return spatial_shapes(
        3,
        channels=channels,
        min_side=min_side,
        max_side=max_side,
        batch=batch,
        square=cube,
        multiple_of=multiple_of,
    )


@dataclass
class CnnStack:
    """A random valid CNN, the input it was drawn for and the output it must give."""

    model: nn.Sequential
    input_shape: Shape
    output_shape: Shape

    def __repr__(self) -> str:  # hypothesis prints this for a failing example
        layers = ", ".join(repr(m) for m in self.model)
        return f"CnnStack(input={self.input_shape}, output={self.output_shape}, layers=[{layers}])"


@cache
def _blocks() -> tuple[type[nn.Module], type[nn.Module]]:
    """``Residual`` and ``Concat``, the branching blocks ``cnn_stacks(branches=True)`` draws
    (made on first use, so importing this module never imports torch)."""
    import torch
    from torch import nn

    class Residual(nn.Module):
        """``body(x) + shortcut(x)``: a ResNet block (the shortcut a strided 1x1 conv when
        the body changes the channels or the size, else the identity)."""

        def __init__(self, body: nn.Module, shortcut: nn.Module) -> None:
            super().__init__()
            self.body, self.shortcut = body, shortcut

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out: torch.Tensor = self.body(x) + self.shortcut(x)
            return out

    class Concat(nn.Module):
        """``torch.cat`` of its branches' outputs along the channels: an Inception block."""

        def __init__(self, *branches: nn.Module) -> None:
            super().__init__()
            self.branches = nn.ModuleList(branches)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.cat([branch(x) for branch in self.branches], dim=1)

    return Residual, Concat


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


@dataclass(frozen=True)
class _Kinds:
    """The layer classes of one spatial rank, and which extras a stack may draw."""

    ndim: int
    groups: bool
    transposed: bool
    branches: bool

    def classes(self) -> dict[str, Any]:
        from torch import nn

        i = self.ndim - 1
        return {
            "conv": (nn.Conv1d, nn.Conv2d, nn.Conv3d)[i],
            "conv_t": (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)[i],
            "max_pool": (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d)[i],
            "avg_pool": (nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d)[i],
            "norm": (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)[i],
            "drop": (nn.Dropout1d, nn.Dropout2d, nn.Dropout3d)[i],
        }

    def menu(self) -> list[str]:
        kinds = ["conv", "conv", "max_pool", "avg_pool", "norm", "act", "drop"]
        if self.transposed:
            kinds.append("conv_t")
        if self.branches:
            kinds += ["residual", "concat"]
        return kinds


def _conv(draw: st.DrawFn, kinds: _Kinds, c: int, *, transposed: bool = False) -> Any:
    """A convolution taking ``c`` channels (grouped, when drawn, by a divisor of ``c``)."""
    cls = kinds.classes()["conv_t" if transposed else "conv"]
    k = draw(st.integers(1, 5))
    groups = draw(st.sampled_from(_divisors(c))) if kinds.groups else 1
    out = groups * draw(st.integers(1, max(1, 8 // groups))) if kinds.groups else draw(st.integers(1, 8))
    stride = draw(st.integers(1, 2))
    padding = draw(st.integers(0, k // 2))
    dilation = draw(st.integers(1, 2))
    if transposed:
        extra = draw(st.integers(0, max(stride, dilation) - 1))  # torch: below stride or dilation
        return cls(
            c, out, k, stride=stride, padding=padding, output_padding=extra, groups=groups, dilation=dilation
        )
    if groups == 1:  # the arguments (and so the examples drawn) of stacks without groups
        return cls(c, out, k, stride=stride, padding=padding, dilation=dilation)
    return cls(c, out, k, stride=stride, padding=padding, dilation=dilation, groups=groups)


def _same_conv(draw: st.DrawFn, kinds: _Kinds, c: int, out: int, stride: int = 1) -> Any:
    """A conv whose output side is ``ceil(side / stride)``: odd kernel, padding ``d*(k-1)/2``."""
    k, d = draw(st.sampled_from([1, 3, 5])), draw(st.integers(1, 2))
    return kinds.classes()["conv"](c, out, k, stride=stride, padding=d * (k - 1) // 2, dilation=d)


def _residual(draw: st.DrawFn, kinds: _Kinds, c: int) -> tuple[Any, int]:
    """A residual block and its output channels; it keeps the size, or halves it (rounding up)."""
    from torch import nn

    stride = draw(st.integers(1, 2))
    out = draw(st.integers(1, 8)) if stride == 2 or draw(st.booleans()) else c
    body = [_same_conv(draw, kinds, c, out, stride), kinds.classes()["norm"](out), nn.ReLU()]
    if draw(st.booleans()):
        body.append(_same_conv(draw, kinds, out, out))
    shortcut = nn.Identity() if (stride, out) == (1, c) else kinds.classes()["conv"](c, out, 1, stride=stride)
    residual, _ = _blocks()
    return residual(nn.Sequential(*body), shortcut), out


def _concat(draw: st.DrawFn, kinds: _Kinds, c: int) -> tuple[Any, int]:
    """An Inception-style block: 2-3 branches that keep the size, concatenated on the channels."""
    from torch import nn

    branches, channels = [], 0
    for _ in range(draw(st.integers(2, 3))):
        kind = draw(st.sampled_from(["conv", "conv", "pool", "identity"]))
        if kind == "conv":
            out = draw(st.integers(1, 8))
            branches.append(_same_conv(draw, kinds, c, out))
        else:
            out = c
            pool = kinds.classes()["max_pool"]
            branches.append(pool(3, stride=1, padding=1) if kind == "pool" else nn.Identity())
        channels += out
    _, concat = _blocks()
    return concat(*branches), channels


@st.composite
def cnn_stacks(
    draw: st.DrawFn,
    ndim: int = 2,
    *,
    max_layers: int = 6,
    channels: int | tuple[int, int] = (1, 4),
    min_side: int = 4,
    max_side: int = 48,
    batch: int | tuple[int, int] = (1, 3),
    head: bool | None = None,
    groups: bool = False,
    transposed: bool = False,
    branches: bool = False,
) -> CnnStack:
    """Random Conv/Pool/BatchNorm/Dropout stacks, optionally ending in a Linear head.

    Each layer is drawn so the map it receives is large enough for it, and the
    expected output shape follows from ``pytest_cnnshape.arith``: the stack is a
    test oracle that does not depend on tracing. ``head=None`` draws whether to
    add ``Flatten -> Linear``. Convolutions may be dilated; ``groups=True`` also
    draws grouped (and depthwise) ones, ``transposed=True`` transposed convolutions
    (a map grows to at most twice ``max_side``), and ``branches=True`` residual
    blocks (``body(x) + shortcut(x)``) and Inception-style blocks (``torch.cat`` of
    branches), so the model is no longer a plain chain of layers.
    """
    from torch import nn

    kinds = _Kinds(ndim, groups, transposed, branches)
    classes = kinds.classes()
    shape = draw(spatial_shapes(ndim, channels=channels, min_side=min_side, max_side=max_side, batch=batch))
    batch_size, c = shape[0], shape[1]
    spatial: tuple[int, ...] = tuple(shape[2:])
    layers: list[Any] = []
    for _ in range(draw(st.integers(1, max_layers))):
        kind = draw(st.sampled_from(kinds.menu()))
        layer: Any
        out_channels = c
        if kind in ("conv", "conv_t"):
            layer = _conv(draw, kinds, c, transposed=kind == "conv_t")
            out_channels = layer.out_channels
        elif kind in ("max_pool", "avg_pool"):
            k = draw(st.integers(1, 3))
            layer = classes[kind](
                k,
                stride=draw(st.integers(1, 2)),
                padding=draw(st.integers(0, k // 2)),
                ceil_mode=draw(st.booleans()),
            )
        elif kind == "norm":
            layer = classes["norm"](c)
        elif kind == "act":
            layer = draw(st.sampled_from([nn.ReLU, nn.GELU, nn.Identity]))()
        elif kind == "drop":
            layer = classes["drop"](draw(st.sampled_from([0.1, 0.5])))
        elif kind == "residual":
            layer, out_channels = _residual(draw, kinds, c)
        else:
            layer, out_channels = _concat(draw, kinds, c)
        out = _block_output(layer, spatial)
        if out is None or min(out) < 1 or max(out) > 2 * max_side:
            continue  # this layer would run out of pixels here (or grow the map too far); draw the next
        layers.append(layer)
        spatial = out
        c = out_channels
    output: Shape = (batch_size, c, *spatial)
    if head if head is not None else draw(st.booleans()):
        features = arith.flatten_size(output)
        classes_out = draw(st.integers(1, 10))
        layers += [nn.Flatten(), nn.Linear(features, classes_out)]
        output = (batch_size, classes_out)
    if not layers:
        layers.append(nn.Identity())
    return CnnStack(nn.Sequential(*layers), tuple(shape), output)


def _block_output(layer: Any, spatial: tuple[int, ...]) -> tuple[int, ...] | None:
    """The spatial sizes a layer or a block of ``_blocks()`` gives (its body's: a residual's
    shortcut and a concat's branches give the same sizes by construction)."""
    residual, concat = _blocks()
    block: Any = layer
    if isinstance(layer, residual):
        for inner in block.body:
            out = arith.spatial_output_of(inner, spatial)
            if out is None:
                return None
            spatial = out
        return spatial
    if isinstance(layer, concat):
        return arith.spatial_output_of(block.branches[0], spatial)
    return arith.spatial_output_of(layer, spatial)
