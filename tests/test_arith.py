"""The size formulas in ``pytest_cnnshape.arith`` agree with what torch computes."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from pytest_cnnshape import arith

META = torch.device("meta")


def torch_length(fn, size: int, channels: int = 1, **kwargs) -> int | None:  # type: ignore[no-untyped-def]
    """Output length torch gives a (1, C, size) input, None when it refuses."""
    try:
        return int(fn(torch.empty(1, channels, size, device=META), **kwargs).shape[-1])
    except RuntimeError:
        return None


@given(
    size=st.integers(1, 64),
    k=st.integers(1, 9),
    s=st.integers(1, 5),
    p=st.integers(0, 4),
    d=st.integers(1, 3),
)
def test_conv_output_size(size: int, k: int, s: int, p: int, d: int) -> None:
    expected = arith.conv_output_size(size, k, stride=s, padding=p, dilation=d)
    weight = torch.empty(1, 1, k, device=META)
    got = torch_length(F.conv1d, size, weight=weight, stride=s, padding=p, dilation=d)
    assert got == (expected if expected >= 1 else None)


@given(
    size=st.integers(1, 64),
    k=st.integers(1, 7),
    s=st.integers(1, 5),
    d=st.integers(1, 3),
    ceil=st.booleans(),
    data=st.data(),
)
def test_max_pool_output_size(size: int, k: int, s: int, d: int, ceil: bool, data: st.DataObject) -> None:
    p = data.draw(st.integers(0, k // 2))  # torch: padding at most half the kernel
    expected = arith.pool_output_size(size, k, stride=s, padding=p, dilation=d, ceil_mode=ceil)
    got = torch_length(F.max_pool1d, size, kernel_size=k, stride=s, padding=p, dilation=d, ceil_mode=ceil)
    assert got == (expected if expected >= 1 else None)


@given(size=st.integers(1, 64), k=st.integers(1, 7), s=st.integers(1, 5), ceil=st.booleans(), data=st.data())
def test_avg_pool_output_size(size: int, k: int, s: int, ceil: bool, data: st.DataObject) -> None:
    p = data.draw(st.integers(0, k // 2))
    expected = arith.pool_output_size(size, k, stride=s, padding=p, ceil_mode=ceil)
    got = torch_length(F.avg_pool1d, size, kernel_size=k, stride=s, padding=p, ceil_mode=ceil)
    assert got == (expected if expected >= 1 else None)


@given(
    size=st.integers(1, 32),
    k=st.integers(1, 6),
    s=st.integers(1, 4),
    p=st.integers(0, 3),
    d=st.integers(1, 3),
    data=st.data(),
)
def test_conv_transpose_output_size(size: int, k: int, s: int, p: int, d: int, data: st.DataObject) -> None:
    op = data.draw(st.integers(0, max(s, d) - 1))  # torch: output_padding < max(stride, dilation)
    expected = arith.conv_transpose_output_size(size, k, stride=s, padding=p, output_padding=op, dilation=d)
    weight = torch.empty(1, 1, k, device=META)
    got = torch_length(
        F.conv_transpose1d, size, weight=weight, stride=s, padding=p, output_padding=op, dilation=d
    )
    assert got == (expected if expected >= 1 else None)


@given(shape=st.lists(st.integers(1, 6), min_size=1, max_size=5), data=st.data())
def test_flatten_size(shape: list[int], data: st.DataObject) -> None:
    rank = len(shape)
    start = data.draw(st.integers(-rank, rank - 1))
    end = data.draw(st.integers(start if start >= 0 else start + rank, rank - 1))
    flat = torch.flatten(torch.empty(shape, device=META), start, end)
    lo = start + rank if start < 0 else start
    assert arith.flatten_size(shape, start, end) == flat.shape[lo]


def test_flatten_size_rejects_dims_outside_the_shape() -> None:
    with pytest.raises(ValueError, match="do not fit a shape of rank 2"):
        arith.flatten_size((2, 3), start_dim=2)


def layers_2d() -> st.SearchStrategy[nn.Module]:
    k, s, p = st.integers(1, 5), st.integers(1, 3), st.integers(0, 2)
    return st.one_of(
        st.builds(lambda k, s, p, d: nn.Conv2d(1, 1, k, s, min(p, k), d), k, s, p, st.integers(1, 2)),
        st.builds(lambda k, s, p, c: nn.MaxPool2d(k, s, min(p, k // 2), ceil_mode=c), k, s, p, st.booleans()),
        st.builds(lambda k, s, p, c: nn.AvgPool2d(k, s, min(p, k // 2), ceil_mode=c), k, s, p, st.booleans()),
        st.builds(lambda k, s, p: nn.ConvTranspose2d(1, 1, k, s, min(p, k - 1)), k, s, p),
        st.builds(nn.AdaptiveAvgPool2d, st.integers(1, 4)),
        st.builds(lambda f: nn.Upsample(scale_factor=f), st.integers(1, 3)),
        st.just(nn.ReLU()),
        st.just(nn.BatchNorm2d(1).eval()),
        st.just(nn.Conv2d(1, 1, 3, padding="same")),
    ).map(lambda m: m.to(META))


@given(layer=layers_2d(), h=st.integers(1, 40), w=st.integers(1, 40))
def test_spatial_output_of_a_module_matches_torch(layer: nn.Module, h: int, w: int) -> None:
    expected = arith.spatial_output_of(layer, (h, w))
    assert expected is not None
    try:
        with torch.no_grad():
            got = tuple(layer(torch.empty(1, 1, h, w, device=META)).shape[2:])
    except RuntimeError:
        assert min(expected) < 1
    else:
        assert got == expected


def runs(model: nn.Module, side: int) -> bool:
    try:
        with torch.no_grad():
            out = model(torch.empty(1, 1, side, side, device=META))
    except RuntimeError:
        return False
    return min(out.shape[2:]) >= 1


@given(stack=st.lists(layers_2d(), min_size=1, max_size=5))
def test_min_input_size_of_a_chain_is_the_smallest_side_torch_runs(stack: list[nn.Module]) -> None:
    model = nn.Sequential(*stack)
    side = arith.min_input_size_of(stack)
    if side is None:  # e.g. adaptive pooling to 1x1, then a 2x2 kernel: no size works
        assert not runs(model, 512)
        return
    assert runs(model, side)
    assert side == 1 or not runs(model, side - 1)


def test_min_input_size_of_lenet_features() -> None:
    features = [nn.Conv2d(1, 6, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(6, 16, 5), nn.MaxPool2d(2)]
    assert arith.min_input_size_of(features) == 16


def test_smallest_input_gives_up_above_the_limit() -> None:
    assert arith.smallest_input(lambda n: 0, limit=64) is None
    assert arith.smallest_input(lambda n: n // 10, required=3) == 30


@given(
    kernels=st.lists(
        st.tuples(st.integers(1, 5), st.integers(1, 3), st.integers(1, 2)), min_size=1, max_size=4
    )
)
def test_receptive_field_is_the_input_window_one_output_sees(kernels: list[tuple[int, int, int]]) -> None:
    layers = [nn.Conv2d(1, 1, k, s, dilation=d, bias=False) for k, s, d in kernels]
    for conv in layers:
        nn.init.constant_(conv.weight, 1.0)
    field = arith.receptive_field_of(layers)
    side = field.size + 4 * field.jump
    x = torch.ones(1, 1, side, side, requires_grad=True)
    out = nn.Sequential(*layers)(x)
    out[0, 0, 0, 0].backward()
    assert x.grad is not None
    seen = (x.grad[0, 0, 0] != 0).nonzero().flatten()
    assert int(seen.max()) + 1 == field.size
    if out.shape[-1] > 1:
        x.grad = None
        out = nn.Sequential(*layers)(x)
        out[0, 0, 0, 1].backward()
        assert int((x.grad[0, 0, 0] != 0).nonzero().min()) == field.jump


def test_bad_arguments_name_the_argument() -> None:
    with pytest.raises(ValueError, match="stride=0 must be a whole number >= 1"):
        arith.conv_output_size(8, 3, stride=0)


def test_linear_in_features_after_a_feature_extractor() -> None:
    from pytest_cnnshape import linear_in_features

    features = nn.Sequential(nn.Conv2d(3, 16, 5), nn.MaxPool2d(2), nn.Conv2d(16, 32, 5), nn.MaxPool2d(2))
    assert (
        linear_in_features(features, (1, 3, 32, 32))
        == 32 * 5 * 5
        == features(torch.zeros(1, 3, 32, 32))[0].numel()
    )
    assert linear_in_features(features, (4, 3, 64, 48)) == 32 * 13 * 9
    with pytest.raises(ValueError, match="not one"):
        linear_in_features(nn.Identity(), (5,))


def test_arith_imports_nothing_above_it() -> None:
    """The formulas are the bottom layer: no name of theirs reaches up to tracing."""
    assert not hasattr(arith, "linear_in_features")
