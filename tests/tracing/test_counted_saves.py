"""``saves.saved_by`` against torch's autograd on the CPU: what a training step would keep.

The pass without autograd (the report's one forward, ``estimate_memory``) works out op
by op what autograd saves. Each rule is compared here with what autograd really saves
on the CPU (``saved_tensors_hooks``), for every pattern of which operands need a
gradient: the same tensors by storage (an input, the output) and fresh ones of the
same shapes and dtypes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from torch.overrides import TorchFunctionMode

from pytest_cnnshape.tracing.saves import COUNTED, NOTHING_SAVED, Fresh, saved_by

#: Where a saved tensor's storage comes from, and for a new one its bytes and dtype:
#: what the memory a step keeps depends on (a view of an input costs nothing more).
Origin = tuple[str, int, torch.dtype | None]


class _Last(TorchFunctionMode):
    """Records the outermost torch function a call makes (what the trace's mode sees)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[Any, tuple[Any, ...], dict[str, Any], Any]] = []

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if getattr(func, "__name__", "") != "__get__":
            self.calls.append((func, args, kwargs, out))
        return out


def _origins(tensors: list[torch.Tensor], named: dict[str, torch.Tensor]) -> Counter[Origin]:
    keys = {name: t.untyped_storage()._cdata for name, t in named.items()}

    def origin(t: torch.Tensor) -> Origin:
        key = t.untyped_storage()._cdata
        name = next((name for name, k in keys.items() if k == key), None)
        return (name, 0, None) if name is not None else ("new", t.untyped_storage().nbytes(), t.dtype)

    return Counter(origin(t) for t in tensors)


def compare(call: Callable[..., Any], operands: dict[str, torch.Tensor]) -> None:
    """autograd's saves for ``call(**operands)`` == ``saved_by``'s for the op it makes."""
    found: list[torch.Tensor] = []

    def pack(t: torch.Tensor) -> torch.Tensor:
        found.append(t)
        return t

    mode = _Last()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), mode:
        out = call(**operands)
    func, args, kwargs, result = mode.calls[-1]
    named = {**operands, "out": result[0] if isinstance(result, tuple) else result}
    if isinstance(result, tuple):
        named["out1"] = result[1]
    predicted = saved_by(func, lambda t: t.requires_grad, result, args, kwargs)
    assert predicted is not None, f"no rule for {func}"
    made = Counter(("new", t.nbytes, t.dtype) for t in predicted if isinstance(t, Fresh))
    given = _origins([t for t in predicted if isinstance(t, torch.Tensor)], named)
    assert given + made == _origins(found, named)
    assert out is not None


def tensor(shape: tuple[int, ...], grad: bool, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    t = torch.randn(shape, dtype=dtype)
    return (t.requires_grad_() * 1) if grad else t  # not a leaf: in-place ops may run on it


grads = st.booleans()


@given(dims=st.sampled_from([1, 2, 3]), x_grad=grads, w_grad=grads, transposed=st.booleans())
def test_convolutions(dims: int, x_grad: bool, w_grad: bool, transposed: bool) -> None:
    if not (x_grad or w_grad):
        return  # nothing needs a gradient: autograd records nothing, and neither does the pass
    sides = (5,) * dims
    weight = torch.randn((4, 3, *(3,) * dims) if not transposed else (3, 4, *(3,) * dims))
    weight.requires_grad_(w_grad)
    fn = getattr(F, f"conv_transpose{dims}d" if transposed else f"conv{dims}d")
    compare(fn, {"input": tensor((2, 3, *sides), x_grad), "weight": weight})


@given(rank=st.sampled_from([2, 3]), x_grad=grads, w_grad=grads, bias=st.booleans())
def test_linear(rank: int, x_grad: bool, w_grad: bool, bias: bool) -> None:
    if not (x_grad or w_grad):
        return
    weight = torch.randn(5, 7, requires_grad=w_grad)
    b = torch.randn(5, requires_grad=w_grad) if bias else None
    shape = (3, 7) if rank == 2 else (2, 3, 7)
    compare(lambda x, w: F.linear(x, w, b), {"x": tensor(shape, x_grad), "w": weight})


PRODUCTS: dict[str, Callable[..., Any]] = {
    "a * b": lambda a, b: a * b,
    "torch.mul": torch.mul,
    "a / b": lambda a, b: a / b,
    "a @ b": lambda a, b: a @ b.transpose(-1, -2),
    "torch.bmm": lambda a, b: torch.bmm(a.flatten(0, 1), b.flatten(0, 1).transpose(1, 2)),
}


@pytest.mark.parametrize("op", PRODUCTS)
@pytest.mark.parametrize(("a_grad", "b_grad"), [(True, False), (False, True), (True, True)])
def test_products(op: str, a_grad: bool, b_grad: bool) -> None:
    operands = {"a": tensor((2, 3, 4, 4), a_grad), "b": tensor((2, 3, 4, 4), b_grad)}
    if op == "torch.mul":
        operands = {"input": operands["a"], "other": operands["b"]}
    compare(PRODUCTS[op], operands)


@pytest.mark.parametrize("op", ["a * 2", "2 * a", "a / 2", "a + 1", "a - 1"])
def test_products_with_numbers_keep_nothing(op: str) -> None:
    compare(lambda a: eval(op), {"a": tensor((2, 3), True)})


POOLS: dict[str, Callable[..., Any]] = {
    "max_pool2d": lambda x: F.max_pool2d(x, 2),
    "max_pool2d ceil": lambda x: F.max_pool2d(x, 3, 2, 1, ceil_mode=True),
    "max_pool2d indices": lambda x: F.max_pool2d(x, 2, return_indices=True),
    "max_pool1d": lambda x: F.max_pool1d(x.flatten(2), 2),
    "max_pool3d": lambda x: F.max_pool3d(x.unsqueeze(2).expand(-1, -1, 2, -1, -1).contiguous(), 2),
    "avg_pool2d": lambda x: F.avg_pool2d(x, 3, 1, 1),
    "avg_pool1d": lambda x: F.avg_pool1d(x.flatten(2), 2),
    "avg_pool3d": lambda x: F.avg_pool3d(x.unsqueeze(2), (1, 2, 2)),
    "adaptive_avg 1": lambda x: F.adaptive_avg_pool2d(x, 1),
    "adaptive_avg (1, 1)": lambda x: F.adaptive_avg_pool2d(x, (1, 1)),
    "adaptive_avg 3": lambda x: F.adaptive_avg_pool2d(x, 3),
    "adaptive_avg1d 1": lambda x: F.adaptive_avg_pool1d(x.flatten(2), 1),
    "adaptive_avg3d 1": lambda x: F.adaptive_avg_pool3d(x.unsqueeze(2), 1),
    "adaptive_max 1": lambda x: F.adaptive_max_pool2d(x, 1),
    "adaptive_max 2 indices": lambda x: F.adaptive_max_pool2d(x, 2, return_indices=True),
}


@pytest.mark.parametrize("op", POOLS)
def test_pooling(op: str) -> None:
    compare(POOLS[op], {"x": tensor((2, 3, 6, 6), True)})


ELEMENTWISE: dict[str, Callable[..., Any]] = {
    "softmax": lambda x: F.softmax(x, 1),
    "log_softmax": lambda x: F.log_softmax(x, 1),
    "x.softmax": lambda x: x.softmax(1),
    "x.sigmoid": lambda x: x.sigmoid(),
    "x.tanh": lambda x: x.tanh(),
    "x.relu": lambda x: x.relu(),
    "x.relu_": lambda x: x.relu_(),
    "torch.relu_": lambda x: torch.relu_(x),  # noqa: PLW0108  (called with x=)
    "hardsigmoid": lambda x: F.hardsigmoid(x),  # noqa: PLW0108
    "softplus": lambda x: F.softplus(x),  # noqa: PLW0108
    "hardtanh": lambda x: F.hardtanh(x, 0.0, 6.0),
    "hardtanh_": lambda x: F.hardtanh(x, 0.0, 6.0, True),
    "pad constant": lambda x: F.pad(x, (1, 1, 2, 2)),
    "pad reflect": lambda x: F.pad(x, (1, 1, 1, 1), mode="reflect"),
    "pad replicate": lambda x: F.pad(x, (1, 1, 1, 1), mode="replicate"),
    "amax": lambda x: torch.amax(x, (2, 3)),
    "nearest": lambda x: F.interpolate(x, scale_factor=2),
    "bilinear": lambda x: F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False),
    "bicubic": lambda x: F.interpolate(x, size=(9, 9), mode="bicubic"),
    "pixel_shuffle": lambda x: F.pixel_shuffle(x.repeat(1, 4, 1, 1), 2),
    "cat": lambda x: torch.cat([x, x], 1),
    "mean": lambda x: x.mean((2, 3)),
    "flatten": lambda x: torch.flatten(x, 1),
    "permute + reshape": lambda x: x.permute(0, 2, 3, 1).reshape(2, -1),
}


@pytest.mark.parametrize("op", ELEMENTWISE)
def test_elementwise_and_layout(op: str) -> None:
    compare(ELEMENTWISE[op], {"x": tensor((2, 3, 6, 6), True)})


def test_an_embedding_keeps_its_indices_for_its_weight() -> None:
    weight = torch.randn(10, 4, requires_grad=True)
    compare(lambda ids: F.embedding(ids, weight), {"ids": torch.randint(0, 10, (2, 5))})


def test_every_counted_op_is_compared_above() -> None:
    """A rule added without a comparison with torch fails here."""
    tested = {
        torch.conv1d, torch.conv2d, torch.conv3d, torch.conv_transpose1d, torch.conv_transpose2d,
        torch.conv_transpose3d, F.linear, torch.matmul, torch.bmm, torch.mul, torch.Tensor.mul,
        torch.Tensor.__rmul__, torch.Tensor.div, torch.Tensor.__truediv__, torch.Tensor.matmul,
        F.max_pool1d, F.max_pool2d, F.max_pool3d, F.avg_pool1d, F.avg_pool2d, F.avg_pool3d,
        F.adaptive_avg_pool1d,
        F.adaptive_avg_pool2d, F.adaptive_avg_pool3d, F.adaptive_max_pool2d, F.softmax, F.log_softmax,
        torch.Tensor.softmax, torch.Tensor.sigmoid, torch.Tensor.tanh, torch.Tensor.relu,
        torch.Tensor.relu_, torch.relu_, F.hardsigmoid, F.softplus, F.hardtanh, F.pad, torch.amax,
        F.embedding,
    }  # fmt: skip
    shortcuts = {  # compared in test_saves.py (the shortcuts' graphs on meta) and by the zoo below
        F.batch_norm, F.group_norm, F.layer_norm, F.relu, torch.relu, torch.sigmoid, torch.tanh,
        F.relu6, F.silu, F.hardswish, F.mish, F.leaky_relu, F.elu, F.gelu, F.dropout, F.dropout1d,
        F.dropout2d, F.dropout3d,
    }  # fmt: skip
    aliases = {  # the same kernel under another name than one tested above
        torch.Tensor.mm, torch.mm, torch.Tensor.bmm, torch.div, torch.Tensor.log_softmax,
        torch.Tensor.amax, F.max_pool1d_with_indices, F.max_pool2d_with_indices, F.max_pool3d_with_indices,
        F.adaptive_max_pool1d, F.adaptive_max_pool3d, F.adaptive_max_pool1d_with_indices,
        F.adaptive_max_pool2d_with_indices, F.adaptive_max_pool3d_with_indices, F.selu, F.celu,
        F.logsigmoid,
    }  # fmt: skip
    assert set(COUNTED) - tested - shortcuts - aliases == set()
    assert torch.cat in NOTHING_SAVED and torch.Tensor.view in NOTHING_SAVED
