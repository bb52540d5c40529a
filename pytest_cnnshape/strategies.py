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
) -> CnnStack:
    """Random Conv/Pool/BatchNorm/Dropout stacks, optionally ending in a Linear head.

    Each layer is drawn so the map it receives is large enough for it, and the
    expected output shape follows from ``pytest_cnnshape.arith``: the stack is a
    test oracle that does not depend on tracing. ``head=None`` draws whether to
    add ``Flatten -> Linear``.
    """
    from torch import nn

    conv = (nn.Conv1d, nn.Conv2d, nn.Conv3d)[ndim - 1]
    max_pool = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d)[ndim - 1]
    avg_pool = (nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d)[ndim - 1]
    norm = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)[ndim - 1]
    drop = (nn.Dropout1d, nn.Dropout2d, nn.Dropout3d)[ndim - 1]

    shape = draw(spatial_shapes(ndim, channels=channels, min_side=min_side, max_side=max_side, batch=batch))
    batch_size, c = shape[0], shape[1]
    spatial: tuple[int, ...] = tuple(shape[2:])
    layers: list[Any] = []
    for _ in range(draw(st.integers(1, max_layers))):
        kind = draw(st.sampled_from(["conv", "conv", "max_pool", "avg_pool", "norm", "act", "drop"]))
        layer: Any
        if kind == "conv":
            k = draw(st.integers(1, 5))
            layer = conv(
                c,
                draw(st.integers(1, 8)),
                k,
                stride=draw(st.integers(1, 2)),
                padding=draw(st.integers(0, k // 2)),
                dilation=draw(st.integers(1, 2)),
            )
        elif kind in ("max_pool", "avg_pool"):
            k = draw(st.integers(1, 3))
            cls = max_pool if kind == "max_pool" else avg_pool
            layer = cls(
                k,
                stride=draw(st.integers(1, 2)),
                padding=draw(st.integers(0, k // 2)),
                ceil_mode=draw(st.booleans()),
            )
        elif kind == "norm":
            layer = norm(c)
        elif kind == "act":
            layer = draw(st.sampled_from([nn.ReLU, nn.GELU, nn.Identity]))()
        else:
            layer = drop(draw(st.sampled_from([0.1, 0.5])))
        out = arith.spatial_output_of(layer, spatial)
        if out is None or min(out) < 1:
            continue  # this layer would run out of pixels here; draw the next one
        layers.append(layer)
        spatial = out
        c = getattr(layer, "out_channels", c)
    output: Shape = (batch_size, c, *spatial)
    if head if head is not None else draw(st.booleans()):
        features = arith.flatten_size(output)
        classes = draw(st.integers(1, 10))
        layers += [nn.Flatten(), nn.Linear(features, classes)]
        output = (batch_size, classes)
    if not layers:
        layers.append(nn.Identity())
    return CnnStack(nn.Sequential(*layers), tuple(shape), output)
