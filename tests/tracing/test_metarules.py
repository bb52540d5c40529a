"""The meta size rules answer exactly what torch gives, and only what the CPU accepts.

For random arguments, accepted and rejected alike: whenever a rule answers, the
CPU runs the same call to the same shape and dtype, and torch's own meta kernel
(when it accepts the call) gives the same shape, dtype and strides; whenever the
CPU refuses a call, the rule declines, so torch raises its own error. Under the
trace's mode the whole outcome, errors included, equals torch's meta outcome.

A rule that declined everything would pass all of that, so each test also states the
domain on which its rules must answer (the ``domain=`` of ``agrees``): every tensor a
plain, contiguous, non-empty meta tensor of the dtypes the rule takes, and the
arguments of the forms it reads (what ``metarules`` documents). Inside it, a call the
CPU accepts (with a non-empty result) must be answered: declining there fails. ``test_every_rule_answers``
asks each rule one ordinary question, so a rule switched off fails whatever was drawn.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_cnnshape.tracing.metamode import meta_mode
from pytest_cnnshape.tracing.metarules import RULES, empty_like
from tests.helpers import examples

T = torch.Tensor
META, CPU = torch.device("meta"), torch.device("cpu")


class Spec:
    """A tensor to make on either device: shape, dtype, memory layout."""

    def __init__(
        self, shape: tuple[int, ...], dtype: torch.dtype = torch.float32, last: bool = False
    ) -> None:
        self.shape, self.dtype, self.last = shape, dtype, last

    def make(self, device: torch.device) -> torch.Tensor:
        if device == META:
            t = torch.empty(self.shape, dtype=self.dtype, device=META)
        elif self.dtype.is_floating_point:
            t = torch.randn(self.shape, dtype=self.dtype)
        elif self.dtype == torch.bool:
            t = torch.zeros(self.shape, dtype=torch.bool)
        else:
            t = torch.zeros(self.shape, dtype=self.dtype)  # valid indices for an embedding
        if self.last and t.dim() == 4:
            t = t.contiguous(memory_format=torch.channels_last)
        return t


def build(value: Any, device: torch.device) -> Any:
    if isinstance(value, Spec):
        return value.make(device)
    if isinstance(value, list) and value and isinstance(value[0], Spec):
        return [build(v, device) for v in value]
    return value


def result(call: Callable[[], Any]) -> tuple[Any, ...]:
    try:
        out = call()
    except Exception as exc:  # the outcome is what is compared
        return ("raised", type(exc).__name__, str(exc).splitlines()[0] if str(exc) else "")
    outs = out if isinstance(out, tuple) else (out,)
    return ("ok", tuple((tuple(o.shape), o.dtype) for o in outs), tuple(o.stride() for o in outs))


FLOATS = (torch.float32, torch.float64)  # what the conv, pool, matmul and softmax rules take
ANY = (torch.float32, torch.float64, torch.float16, torch.int64, torch.int32, torch.bool)
INDICES = (torch.int64, torch.int32)


def plain(*values: Any, dtypes: tuple[torch.dtype, ...] = FLOATS, same: bool = True) -> bool:
    """Every tensor among ``values`` (lists of them too; None skipped) plain, contiguous and
    non-empty on meta, of one of ``dtypes`` (and, with ``same``, all of one dtype)."""
    specs = [v for value in values for v in (value if isinstance(value, list) else [value])]
    tensors = [s.make(META) for s in specs if isinstance(s, Spec)]
    return all(t.is_contiguous() and t.numel() > 0 and t.dtype in dtypes for t in tensors) and (
        not same or len({t.dtype for t in tensors}) <= 1
    )


def agrees(func: Any, args: tuple[Any, ...], kwargs: dict[str, Any] | None = None, *, domain: bool) -> None:
    """The rule for ``func`` answers as torch does on meta and only what the CPU accepts, and
    answers every call in its ``domain`` that the CPU accepts."""
    kwargs = kwargs or {}
    meta_args = tuple(build(a, META) for a in args)
    answered = RULES[func](*meta_args, **kwargs)
    answer = ("declined",) if answered is None else result(lambda: answered)
    cpu = result(lambda: func(*(build(a, CPU) for a in args), **kwargs))
    torch_meta = result(lambda: func(*(build(a, META) for a in args), **kwargs))
    if answer[0] == "raised":
        pytest.fail(f"the rule itself raised: {answer}")
    # an empty result (a transposed conv's side of 0) is torch's to make, like empty operands
    if domain and cpu[0] == "ok" and all(0 not in shape for shape, _ in cpu[1]):
        assert answer[0] == "ok", f"declined a call of its domain that the CPU runs to {cpu[1]}"
    if answer[0] == "ok":
        assert cpu[0] == "ok", f"answered {answer[1]} where the CPU raised {cpu}"
        assert answer[1] == cpu[1]
        if torch_meta[0] == "ok":
            assert answer == torch_meta
    with meta_mode():
        moded = result(lambda: func(*(build(a, META) for a in args), **kwargs))
    if answer[0] == "ok":
        assert moded[:2] == answer[:2]
    elif moded != torch_meta:  # the mode's own checks refuse what the CPU refuses
        assert moded[0] == "raised" and cpu[0] == "raised", (moded, torch_meta, cpu)


floats = st.sampled_from([torch.float32, torch.float32, torch.float64, torch.float16])
layouts = st.booleans()
side = st.integers(1, 7)

CONV = {1: torch.conv1d, 2: torch.conv2d, 3: torch.conv3d}
CONV_T = {1: torch.conv_transpose1d, 2: torch.conv_transpose2d, 3: torch.conv_transpose3d}


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel lengths")
@settings(max_examples=examples(150), deadline=None)
@given(data=st.data(), dims=st.sampled_from([1, 2, 3]), transposed=st.booleans())
def test_convolutions(data: st.DataObject, dims: int, transposed: bool) -> None:
    groups = data.draw(st.integers(1, 3))
    channels = groups * data.draw(st.integers(1, 2)) + data.draw(st.sampled_from([0, 0, 0, 1]))
    out_channels = groups * data.draw(st.integers(1, 2)) + data.draw(st.sampled_from([0, 0, 0, 1]))
    kernel = tuple(data.draw(st.integers(1, 4)) for _ in range(dims))
    batched = data.draw(st.booleans())
    shape = ((data.draw(st.integers(1, 2)),) if batched else ()) + (
        channels,
        *(data.draw(side) for _ in range(dims)),
    )
    dtype, wdtype = data.draw(floats), data.draw(floats)
    x = Spec(shape, dtype, data.draw(layouts))
    per_group = max(channels // groups, 1)
    if transposed:
        weight = Spec((channels, max(out_channels // groups, 1), *kernel), wdtype)
        bias = Spec((max(out_channels // groups, 1) * groups,), wdtype) if data.draw(st.booleans()) else None
    else:
        weight = Spec((out_channels, per_group, *kernel), wdtype)
        bias = Spec((out_channels,), wdtype) if data.draw(st.booleans()) else None
    stride = data.draw(st.one_of(st.integers(1, 3), st.tuples(*[st.integers(1, 3)] * dims)))
    dilation = data.draw(st.integers(1, 2))
    domain = plain(x, weight, bias)
    if transposed:
        padding = data.draw(st.integers(0, 2))
        extra = data.draw(st.integers(0, 2))
        agrees(CONV_T[dims], (x, weight, bias, stride, padding, extra, groups, dilation), domain=domain)
    else:
        padding = data.draw(st.one_of(st.integers(0, 3), st.sampled_from(["same", "valid"])))
        # padding="same" with an odd total padding: torch pads one side more (and warns); left to it
        uneven = padding == "same" and any(dilation * (k - 1) % 2 for k in kernel)
        agrees(CONV[dims], (x, weight, bias, stride, padding, dilation, groups), domain=domain and not uneven)


MAX_POOL = {
    (1, False): F.max_pool1d,
    (2, False): F.max_pool2d,
    (3, False): F.max_pool3d,
    (1, True): F.max_pool1d_with_indices,
    (2, True): F.max_pool2d_with_indices,
    (3, True): F.max_pool3d_with_indices,
}
AVG_POOL = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}
ADAPTIVE = {
    (1, "avg"): F.adaptive_avg_pool1d,
    (2, "avg"): F.adaptive_avg_pool2d,
    (3, "avg"): F.adaptive_avg_pool3d,
    (1, "max"): F.adaptive_max_pool1d,
    (2, "max"): F.adaptive_max_pool2d,
    (3, "max"): F.adaptive_max_pool3d,
    (1, "maxi"): F.adaptive_max_pool1d_with_indices,
    (2, "maxi"): F.adaptive_max_pool2d_with_indices,
    (3, "maxi"): F.adaptive_max_pool3d_with_indices,
}


def map_spec(data: st.DataObject, dims: int, dtype: st.SearchStrategy[torch.dtype] = floats) -> Spec:
    lead = tuple(data.draw(st.integers(1, 3)) for _ in range(data.draw(st.integers(1, 2))))
    return Spec((*lead, *(data.draw(side) for _ in range(dims))), data.draw(dtype), data.draw(layouts))


@settings(max_examples=examples(150), deadline=None)
@given(data=st.data(), dims=st.sampled_from([1, 2, 3]), kind=st.sampled_from(["max", "maxi", "avg"]))
def test_pooling(data: st.DataObject, dims: int, kind: str) -> None:
    x = map_spec(data, dims)
    kernel = data.draw(st.one_of(st.integers(1, 4), st.tuples(*[st.integers(1, 4)] * dims)))
    stride = data.draw(st.one_of(st.none(), st.integers(1, 3)))
    padding = data.draw(st.integers(0, 2))
    ceil = data.draw(st.booleans())
    if kind == "avg":
        include = data.draw(st.booleans())
        divisor = data.draw(st.sampled_from([None, None, 2])) if dims > 1 else None
        extra = (include, divisor) if dims > 1 else (include,)
        agrees(AVG_POOL[dims], (x, kernel, stride, padding, ceil, *extra), domain=plain(x))
    else:
        dilation = data.draw(st.integers(1, 2))
        agrees(MAX_POOL[dims, kind == "maxi"], (x, kernel, stride, padding, dilation, ceil), domain=plain(x))


@settings(max_examples=examples(120), deadline=None)
@given(data=st.data(), dims=st.sampled_from([1, 2, 3]), kind=st.sampled_from(["avg", "max", "maxi"]))
def test_adaptive_pooling(data: st.DataObject, dims: int, kind: str) -> None:
    x = map_spec(data, dims)
    size = st.one_of(st.integers(1, 5), st.none()) if dims > 1 else st.integers(0, 5)
    output = data.draw(st.one_of(st.integers(0, 5), st.tuples(*[size] * dims)))
    sizes = output if isinstance(output, tuple) else (output,)
    agrees(ADAPTIVE[dims, kind], (x, output), domain=plain(x) and all(v is None or v >= 1 for v in sizes))


@settings(max_examples=examples(150), deadline=None)
@given(data=st.data(), op=st.sampled_from(["linear", "matmul", "mm", "bmm"]))
def test_matrix_products(data: st.DataObject, op: str) -> None:
    k = data.draw(st.integers(1, 4))
    off = data.draw(st.sampled_from([0, 0, 0, 1]))
    dtype, other = data.draw(floats), data.draw(floats)
    if op == "linear":
        lead = tuple(data.draw(st.integers(1, 3)) for _ in range(data.draw(st.integers(0, 3))))
        bias = data.draw(st.sampled_from([None, "ok", "wrong"]))
        out = data.draw(st.integers(1, 4))
        b = None if bias is None else Spec((out + (bias == "wrong"),), other)
        x, w = Spec((*lead, k), dtype), Spec((out, k + off), other)
        agrees(F.linear, (x, w, b), domain=plain(x, w, b))
        return
    rank_a = {"mm": 2, "bmm": 3}.get(op) or data.draw(st.integers(1, 4))
    rank_b = {"mm": 2, "bmm": 3}.get(op) or data.draw(st.integers(1, 4))
    batch = [data.draw(st.integers(1, 3)) for _ in range(4)]
    a = (*batch[: rank_a - 2], data.draw(st.integers(1, 3)), k)[-rank_a:]
    b_batch = [data.draw(st.sampled_from([1, n])) for n in batch[: rank_b - 2]]
    b = (*b_batch, k + off, data.draw(st.integers(1, 3)))[-rank_b:] if rank_b > 1 else (k + off,)
    func = {"matmul": torch.matmul, "mm": torch.mm, "bmm": torch.bmm}[op]
    first, second = Spec(tuple(a), dtype), Spec(tuple(b), other)
    domain = plain(first, second) and rank_a >= 2 and rank_b >= 2  # products of vectors: torch's
    agrees(func, (first, second), domain=domain)
    agrees({"matmul": T.matmul, "mm": T.mm, "bmm": T.bmm}[op], (first, second), domain=domain)


any_dtype = st.sampled_from(
    [torch.float32, torch.float64, torch.float16, torch.int64, torch.int32, torch.bool]
)
BINARY = [torch.add, T.add, T.add_, torch.sub, T.sub, T.sub_, T.__rsub__, torch.mul, T.mul, T.mul_]
BINARY += [torch.div, T.div, T.div_]


@st.composite
def broadcastable(draw: st.DrawFn) -> tuple[tuple[int, ...], tuple[int, ...]]:
    shape = [draw(st.integers(1, 3)) for _ in range(draw(st.integers(0, 4)))]
    other = [draw(st.sampled_from([n, 1, n + 1])) for n in shape][draw(st.integers(0, len(shape))) :]
    return tuple(shape), tuple(other)


@settings(max_examples=examples(300), deadline=None)
@given(
    func=st.sampled_from(BINARY),
    shapes=broadcastable(),
    dtypes=st.tuples(any_dtype, any_dtype),
    scalar=st.one_of(st.none(), st.sampled_from([2, 0.5, True, -1])),
    swap=st.booleans(),
    alpha=st.sampled_from([None, None, 2]),
)
def test_elementwise_arithmetic(
    func: Any,
    shapes: tuple[tuple[int, ...], tuple[int, ...]],
    dtypes: tuple[torch.dtype, torch.dtype],
    scalar: Any,
    swap: bool,
    alpha: Any,
) -> None:
    a, b = (shapes[1], shapes[0]) if swap else shapes
    first = Spec(a, dtypes[0], len(a) == 4)
    second: Any = scalar if scalar is not None or func is T.__rsub__ else Spec(b, dtypes[1])
    if second is None:
        second = 3
    kwargs = (
        {"alpha": alpha} if alpha is not None and func not in (torch.mul, T.mul, T.mul_, T.__rsub__) else {}
    )
    if func in (torch.div, T.div, T.div_):
        kwargs = {}
    # an alpha other than 1 is left to torch
    agrees(func, (first, second), kwargs, domain=plain(first, second, dtypes=ANY, same=False) and not kwargs)


@settings(max_examples=examples(100), deadline=None)
@given(
    func=st.sampled_from([T.sigmoid, T.tanh, T.relu]),
    shape=st.lists(st.integers(1, 3), max_size=4),
    dtype=any_dtype,
)
def test_unary_methods(func: Any, shape: list[int], dtype: torch.dtype) -> None:
    x = Spec(tuple(shape), dtype)
    agrees(func, (x,), domain=plain(x, dtypes=ANY))


@settings(max_examples=examples(150), deadline=None)
@given(data=st.data(), func=st.sampled_from([torch.cat, torch.concat, torch.stack]))
def test_joining(data: st.DataObject, func: Any) -> None:
    shape = [data.draw(st.integers(1, 3)) for _ in range(data.draw(st.integers(1, 4)))]
    count = data.draw(st.integers(1, 3))
    specs = []
    for _ in range(count):
        own = [data.draw(st.sampled_from([n, n, n + 1])) for n in shape]
        specs.append(
            Spec(tuple(own), data.draw(st.sampled_from([torch.float32, torch.float32, torch.float64])))
        )
    dim = data.draw(st.integers(-len(shape) - 2, len(shape) + 1))
    agrees(func, (specs, dim), domain=plain(specs))  # mixed dtypes (torch promotes): torch's


@settings(max_examples=examples(150), deadline=None)
@given(
    data=st.data(), mode=st.sampled_from(["nearest", "linear", "bilinear", "bicubic", "trilinear", "area"])
)
def test_interpolate(data: st.DataObject, mode: str) -> None:
    dims = data.draw(st.integers(1, 3))
    x = Spec((data.draw(st.integers(1, 2)), 2, *(data.draw(side) for _ in range(dims))), data.draw(floats))
    if data.draw(st.booleans()):
        size = data.draw(st.one_of(st.integers(1, 9), st.tuples(*[st.integers(1, 9)] * dims)))
        kwargs: dict[str, Any] = {"size": size}
    else:
        scale = st.sampled_from([0.5, 1.5, 2, 2.0, 3, 0.3, 1.7])
        kwargs = {"scale_factor": data.draw(st.one_of(scale, st.tuples(*[scale] * dims)))}
    kwargs["mode"] = mode
    corners = data.draw(st.sampled_from([None, True, False]))
    if corners is not None:
        kwargs["align_corners"] = corners
    agrees(F.interpolate, (x,), kwargs, domain=plain(x) and mode != "area")  # "area" is adaptive pooling


@settings(max_examples=examples(80), deadline=None)
@given(data=st.data(), shuffle=st.booleans())
def test_pixel_shuffle(data: st.DataObject, shuffle: bool) -> None:
    shape = tuple(data.draw(st.integers(1, 8)) for _ in range(data.draw(st.integers(2, 5))))
    r = data.draw(st.integers(1, 3))
    x = Spec(shape, data.draw(floats))
    agrees(F.pixel_shuffle if shuffle else F.pixel_unshuffle, (x, r), domain=plain(x, dtypes=ANY))


@settings(max_examples=examples(100), deadline=None)
@given(data=st.data(), func=st.sampled_from([F.softmax, F.log_softmax, T.softmax, T.log_softmax]))
def test_softmax(data: st.DataObject, func: Any) -> None:
    shape = tuple(data.draw(st.integers(1, 3)) for _ in range(data.draw(st.integers(0, 4))))
    dim = data.draw(st.integers(-len(shape) - 1, len(shape)))
    x = Spec(shape, data.draw(any_dtype))
    agrees(func, (x, dim), domain=plain(x))


@settings(max_examples=examples(100), deadline=None)
@given(data=st.data())
def test_embedding(data: st.DataObject) -> None:
    shape = tuple(data.draw(st.integers(1, 3)) for _ in range(data.draw(st.integers(1, 3))))
    index = Spec(shape, data.draw(st.sampled_from([torch.int64, torch.int32, torch.float32])))
    weight = Spec((data.draw(st.integers(1, 5)), data.draw(st.integers(1, 4))), data.draw(floats))
    padding = data.draw(st.sampled_from([None, 0, -1, 7]))
    agrees(F.embedding, (index, weight, padding), domain=plain(index, dtypes=INDICES) and plain(weight))


@settings(max_examples=examples(200), deadline=None)
@given(
    data=st.data(),
    func=st.sampled_from([torch.mean, T.mean, torch.sum, T.sum, torch.amax, T.amax]),
    dtype=any_dtype,
    keepdim=st.booleans(),
)
def test_reductions(data: st.DataObject, func: Any, dtype: torch.dtype, keepdim: bool) -> None:
    shape = tuple(data.draw(st.integers(1, 3)) for _ in range(data.draw(st.integers(1, 4))))
    rank = len(shape)
    axis = st.integers(-rank - 1, rank)
    dim = data.draw(st.one_of(st.none(), axis, st.lists(axis, max_size=3).map(tuple)))
    x = Spec(shape, dtype, rank == 4)
    mean = func in (torch.mean, T.mean)
    # mean: of floats only, and over the dims named (an empty tuple is left to torch)
    domain = plain(x, dtypes=FLOATS if mean else ANY) and not (mean and dim == ())
    agrees(func, (x, dim, keepdim), domain=domain)


def test_every_rule_has_a_property_test_above() -> None:
    covered = {
        *CONV.values(),
        *CONV_T.values(),
        *MAX_POOL.values(),
        *AVG_POOL.values(),
        *ADAPTIVE.values(),
        F.linear,
        torch.matmul,
        T.matmul,
        torch.mm,
        T.mm,
        torch.bmm,
        T.bmm,
        *BINARY,
        T.sigmoid,
        T.tanh,
        T.relu,
        torch.cat,
        torch.concat,
        torch.stack,
        F.interpolate,
        F.pixel_shuffle,
        F.pixel_unshuffle,
        F.softmax,
        F.log_softmax,
        T.softmax,
        T.log_softmax,
        F.embedding,
        torch.mean,
        T.mean,
        torch.sum,
        T.sum,
        torch.amax,
        T.amax,
    }
    assert set(RULES) == covered


def _ordinary_calls() -> dict[Any, tuple[tuple[Any, ...], dict[str, Any]]]:
    """One everyday call of every op with a rule: float32 maps, sizes that fit."""
    calls: dict[Any, tuple[tuple[Any, ...], dict[str, Any]]] = {}
    for d in (1, 2, 3):
        x = Spec((2, 4, *(6,) * d))
        calls[CONV[d]] = ((x, Spec((8, 4, *(3,) * d)), Spec((8,)), 1, 1), {})
        calls[CONV_T[d]] = ((x, Spec((4, 8, *(3,) * d)), None, 2, 1, 1), {})
        calls[MAX_POOL[d, False]] = calls[MAX_POOL[d, True]] = calls[AVG_POOL[d]] = ((x, 2), {})
        for kind in ("avg", "max", "maxi"):
            calls[ADAPTIVE[d, kind]] = ((x, 3), {})
    matrix = (Spec((2, 3, 4)), Spec((4, 5)))
    calls[F.linear] = ((Spec((2, 5)), Spec((3, 5)), Spec((3,))), {})
    calls[torch.matmul] = calls[T.matmul] = (matrix, {})
    calls[torch.mm] = calls[T.mm] = ((Spec((3, 4)), Spec((4, 5))), {})
    calls[torch.bmm] = calls[T.bmm] = ((Spec((2, 3, 4)), Spec((2, 4, 5))), {})
    for func in BINARY:
        calls[func] = ((Spec((2, 3)), 2 if func is T.__rsub__ else Spec((2, 3))), {})
    for func in (T.sigmoid, T.tanh, T.relu):
        calls[func] = ((Spec((2, 3)),), {})
    for func in (torch.cat, torch.concat, torch.stack):
        calls[func] = (([Spec((2, 3)), Spec((2, 3))], 1), {})
    calls[F.interpolate] = ((Spec((1, 2, 4, 4)),), {"scale_factor": 2})
    calls[F.pixel_shuffle] = ((Spec((1, 8, 2, 2)), 2), {})
    calls[F.pixel_unshuffle] = ((Spec((1, 2, 4, 4)), 2), {})
    for func in (F.softmax, F.log_softmax, T.softmax, T.log_softmax):
        calls[func] = ((Spec((2, 3)), 1), {})
    calls[F.embedding] = ((Spec((2, 3), torch.int64), Spec((5, 4))), {})
    for func in (torch.mean, T.mean, torch.sum, T.sum, torch.amax, T.amax):
        calls[func] = ((Spec((2, 3)), 1, False), {})
    return calls


def test_every_rule_answers_an_everyday_call_as_the_cpu_does() -> None:
    calls = _ordinary_calls()
    assert set(calls) == set(RULES)
    for func, (args, kwargs) in calls.items():
        answered = RULES[func](*(build(a, META) for a in args), **kwargs)
        cpu = result(lambda: func(*(build(a, CPU) for a in args), **kwargs))  # noqa: B023
        assert cpu[0] == "ok", (func, cpu)
        assert answered is not None, f"the rule for {func.__name__} declined an everyday call"
        assert result(lambda: answered)[1] == cpu[1], func  # noqa: B023


@settings(max_examples=examples(100), deadline=None)
@given(shape=st.lists(st.integers(1, 3), max_size=4), permute=st.booleans(), step=st.booleans())
def test_empty_like_keeps_the_strides_torch_keeps(shape: list[int], permute: bool, step: bool) -> None:
    x = torch.empty(shape, device=META)
    if permute and x.dim() > 1:
        x = x.transpose(0, -1)
    if step and x.dim() > 0 and x.shape[-1] > 1:
        x = x[..., ::2]
    ours, theirs = empty_like(x), torch.empty_like(x)
    assert (ours.shape, ours.stride(), ours.dtype) == (theirs.shape, theirs.stride(), theirs.dtype)
