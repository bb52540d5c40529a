"""Meta shortcuts answer exactly as torch would: same shape, dtype and strides, or
torch's own error, for every call hypothesis can think of."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from pytest_cnnshape.tracing.metamode import RULES, meta_mode

META = torch.device("meta")


def outcome(call: Callable[[], Any]) -> tuple[Any, ...]:
    try:
        out = call()
    except Exception as exc:  # the comparison is the point: any error must match
        return ("raised", type(exc), str(exc))
    return ("ok", tuple(out.shape), out.dtype, out.stride())


def same_with_and_without_shortcuts(call: Callable[[], Any]) -> None:
    real = outcome(call)
    with meta_mode():
        fast = outcome(call)
    assert fast == real


def vector(size: int | None, dtype: torch.dtype = torch.float32) -> torch.Tensor | None:
    return None if size is None else torch.empty(size, device=META, dtype=dtype)


shapes = st.lists(st.integers(1, 4), min_size=1, max_size=5)
maybe_size = st.one_of(st.none(), st.integers(1, 5))
dtypes = st.sampled_from([torch.float32, torch.float16, torch.float64])


@st.composite
def inputs(draw: st.DrawFn) -> torch.Tensor:
    shape = draw(shapes)
    x = torch.empty(shape, device=META, dtype=draw(dtypes))
    if len(shape) == 4 and draw(st.booleans()):
        x = x.contiguous(memory_format=torch.channels_last)
    return x


@given(
    x=inputs(),
    sizes=st.tuples(maybe_size, maybe_size, maybe_size, maybe_size),
    training=st.booleans(),
    eps=st.sampled_from([1e-5, 0.0, -1.0]),
    param_dtype=dtypes,
)
def test_batch_norm(
    x: torch.Tensor, sizes: tuple[int | None, ...], training: bool, eps: float, param_dtype: torch.dtype
) -> None:
    mean, var, weight, bias = (vector(s, param_dtype) for s in sizes)
    call = lambda: F.batch_norm(x, mean, var, weight, bias, training=training, eps=eps)  # noqa: E731
    if mixed(x.dtype, param_dtype) and any(s is not None for s in sizes):
        with meta_mode(), pytest.raises(RuntimeError, match="mixed dtype"):
            call()  # the CPU's check, which meta skips: see the test below
        return
    same_with_and_without_shortcuts(call)


def mixed(x: torch.dtype, p: torch.dtype) -> bool:
    return p != x and not (x in (torch.float16, torch.bfloat16) and p == torch.float32)


@given(
    x=inputs(),
    sizes=st.tuples(maybe_size, maybe_size, maybe_size, maybe_size),
    stats=st.booleans(),
    eps=st.sampled_from([1e-5, 0.0]),
)
def test_instance_norm(x: torch.Tensor, sizes: tuple[int | None, ...], stats: bool, eps: float) -> None:
    mean, var, weight, bias = (vector(s, x.dtype) for s in sizes)
    same_with_and_without_shortcuts(
        lambda: F.instance_norm(x, mean, var, weight, bias, use_input_stats=stats, eps=eps)
    )


@given(
    x=inputs(),
    groups=st.integers(-1, 4),
    sizes=st.tuples(maybe_size, maybe_size),
    eps=st.sampled_from([1e-5, 0.0]),
)
def test_group_norm(x: torch.Tensor, groups: int, sizes: tuple[int | None, ...], eps: float) -> None:
    weight, bias = (vector(s, x.dtype) for s in sizes)
    same_with_and_without_shortcuts(lambda: F.group_norm(x, groups, weight, bias, eps))


@given(x=inputs(), data=st.data(), affine=st.booleans())
def test_layer_norm(x: torch.Tensor, data: st.DataObject, affine: bool) -> None:
    normalized = data.draw(st.lists(st.integers(1, 4), min_size=1, max_size=3))
    weight = torch.empty(normalized, device=META, dtype=x.dtype) if affine else None
    same_with_and_without_shortcuts(lambda: F.layer_norm(x, normalized, weight, weight))


ACTIVATIONS: list[Callable[..., Any]] = [
    F.relu,
    F.relu6,
    F.silu,
    F.hardswish,
    F.mish,
    F.leaky_relu,
    F.elu,
    F.gelu,
    torch.relu,
    torch.sigmoid,
    torch.tanh,
]


@given(x=inputs(), fn=st.sampled_from(ACTIVATIONS), inplace=st.booleans(), integer=st.booleans())
def test_activations(x: torch.Tensor, fn: Callable[..., Any], inplace: bool, integer: bool) -> None:
    if integer:
        x = x.to(torch.int64)
    kwargs = {"inplace": inplace} if fn not in (F.gelu, torch.relu, torch.sigmoid, torch.tanh) else {}
    same_with_and_without_shortcuts(lambda: fn(x, **kwargs))
    if inplace and kwargs and not integer:
        with meta_mode():
            assert fn(x, **kwargs) is x


@pytest.mark.filterwarnings("ignore:dropout.d. Received:UserWarning")  # torch's, for odd ranks
@given(
    x=inputs(),
    fn=st.sampled_from([F.dropout, F.dropout1d, F.dropout2d, F.dropout3d]),
    p=st.sampled_from([0.0, 0.5, 1.0, 1.5]),
    training=st.booleans(),
    inplace=st.booleans(),
)
def test_dropout(x: torch.Tensor, fn: Callable[..., Any], p: float, training: bool, inplace: bool) -> None:
    same_with_and_without_shortcuts(lambda: fn(x, p, training, inplace))


@given(
    x=inputs(),
    bounds=st.sampled_from([(-1.0, 1.0), (0.0, 6.0), (2.0, 2.0), (3.0, -3.0)]),
    inplace=st.booleans(),
)
def test_hardtanh(x: torch.Tensor, bounds: tuple[float, float], inplace: bool) -> None:
    """``nn.ReLU6`` runs ``F.hardtanh(x, 0, 6)``; bounds out of order are torch's ValueError."""
    same_with_and_without_shortcuts(lambda: F.hardtanh(x, *bounds, inplace))


def test_every_rule_is_covered_above() -> None:
    covered = {
        F.hardtanh,
        F.batch_norm,
        F.instance_norm,
        F.group_norm,
        F.layer_norm,
        F.dropout,
        F.dropout1d,
        F.dropout2d,
        F.dropout3d,
        *ACTIVATIONS,
    }
    assert set(RULES) == covered


def test_cpu_tensors_are_left_to_torch() -> None:
    x = torch.randn(2, 3, 4, 4)
    with meta_mode():
        out = F.batch_norm(x, torch.zeros(3), torch.ones(3))
    assert out.device.type == "cpu" and torch.allclose(out, x / (1 + 1e-5) ** 0.5)


def shape_or_error(call: Callable[[], Any]) -> tuple[Any, ...]:
    try:
        out = call()
    except Exception as exc:  # the comparison is the point: any error must match
        return ("raised", type(exc), str(exc).splitlines()[0])
    return ("ok", tuple(out.shape), out.dtype)


real_dtypes = st.sampled_from([torch.float32, torch.float64, torch.float16])


@given(
    rank=st.integers(1, 3),
    features=st.integers(1, 4),
    in_features=st.integers(1, 4),
    x_dtype=real_dtypes,
    w_dtype=real_dtypes,
)
def test_linear_on_meta_refuses_what_the_cpu_refuses(
    rank: int, features: int, in_features: int, x_dtype: torch.dtype, w_dtype: torch.dtype
) -> None:
    shape = [2] * (rank - 1) + [features]
    x, w = torch.zeros(shape, dtype=x_dtype), torch.zeros(3, in_features, dtype=w_dtype)
    cpu = shape_or_error(lambda: F.linear(x, w))
    with meta_mode():
        meta = shape_or_error(lambda: F.linear(x.to(META), w.to(META)))
    assert meta[:2] == cpu[:2]  # the same outcome
    if x_dtype == w_dtype and rank >= 2:
        assert meta == cpu  # sizes that do not fit: the CPU's own words


@given(
    dims=st.integers(1, 3),
    batched=st.booleans(),
    channels=st.integers(1, 4),
    expected=st.integers(1, 4),
    x_dtype=real_dtypes,
    w_dtype=real_dtypes,
)
def test_conv_transpose_on_meta_refuses_what_the_cpu_refuses(
    dims: int, batched: bool, channels: int, expected: int, x_dtype: torch.dtype, w_dtype: torch.dtype
) -> None:
    fn = (F.conv_transpose1d, F.conv_transpose2d, F.conv_transpose3d)[dims - 1]
    x = torch.zeros([2] * batched + [channels] + [3] * dims, dtype=x_dtype)
    w = torch.zeros([expected, 2] + [2] * dims, dtype=w_dtype)
    cpu = shape_or_error(lambda: fn(x, w))
    with meta_mode():
        meta = shape_or_error(lambda: fn(x.to(META), w.to(META)))
    assert meta[:2] == cpu[:2]
    if cpu[0] == "raised" and "channels" in cpu[2]:
        assert meta == cpu


norm_dtypes = st.sampled_from([torch.float32, torch.float64, torch.float16, torch.bfloat16])


@given(
    norm=st.sampled_from(["batch", "instance", "group", "layer"]),
    x_dtype=norm_dtypes,
    p_dtype=norm_dtypes,
    stats_only=st.booleans(),
)
def test_norms_on_meta_refuse_mixed_dtypes_as_the_cpu_does(
    norm: str, x_dtype: torch.dtype, p_dtype: torch.dtype, stats_only: bool
) -> None:
    def run(device: str) -> tuple[Any, ...]:
        x = torch.zeros(2, 4, 5, 5, dtype=x_dtype, device=device)
        v = torch.ones(4, dtype=p_dtype, device=device)
        w = None if stats_only else v
        calls = {
            "batch": lambda: F.batch_norm(x, v, v, w, w),
            "instance": lambda: F.instance_norm(x, weight=v, bias=v),
            "group": lambda: F.group_norm(x, 2, v, v),
            "layer": lambda: F.layer_norm(x, (5,), torch.ones(5, dtype=p_dtype, device=device)),
        }
        return shape_or_error(calls[norm])

    cpu = run("cpu")
    with meta_mode():
        meta = run("meta")
    assert meta[:2] == cpu[:2]  # the same outcome; the CPU words it per dtype pair


@given(
    dims=st.integers(1, 3),
    sides=st.lists(st.integers(2, 9), min_size=3, max_size=3),
    kernel=st.integers(1, 3),
    stride=st.integers(1, 3),
    ceil_mode=st.booleans(),
    given_size=st.booleans(),
)
def test_max_unpool_on_meta_refuses_what_the_cpu_refuses(
    dims: int, sides: list[int], kernel: int, stride: int, ceil_mode: bool, given_size: bool
) -> None:
    # values rising with the position put each window's maximum at its last position: the
    # largest index a pooling can produce, which the CPU checks against the unpooled map
    pool = (F.max_pool1d, F.max_pool2d, F.max_pool3d)[dims - 1]
    unpool = (F.max_unpool1d, F.max_unpool2d, F.max_unpool3d)[dims - 1]
    shape = (1, 2, *sides[:dims])
    x = torch.arange(float(torch.Size(shape).numel())).view(shape)

    def run(t: torch.Tensor) -> tuple[Any, ...]:
        def call() -> torch.Tensor:
            y, i = pool(t, kernel, stride, ceil_mode=ceil_mode, return_indices=True)
            return unpool(y, i, kernel, stride, output_size=shape[2:] if given_size else None)

        return shape_or_error(call)

    cpu = run(x)
    with meta_mode():
        meta = run(x.to(META))
    assert meta[:2] == cpu[:2]
    if cpu[0] == "raised" and "invalid max index" in cpu[2]:
        assert meta == cpu
