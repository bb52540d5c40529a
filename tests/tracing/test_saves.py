"""With autograd on, a meta shortcut saves for backward exactly what torch's own kernel
saves: the same inputs, the output or fresh tensors of the same shapes and dtypes."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from pytest_cnnshape.tracing.metamode import RULES, meta_mode
from pytest_cnnshape.tracing.saves import SAVES

META = torch.device("meta")
Call = Callable[[torch.Tensor, dict[str, torch.Tensor]], Any]


def saved(call: Call, x: torch.Tensor, params: dict[str, torch.Tensor], shortcuts: bool) -> Counter[Any]:
    """What autograd saves for ``call``: (where it comes from, shape, dtype) of each tensor."""
    found: list[torch.Tensor] = []

    def pack(t: torch.Tensor) -> torch.Tensor:
        found.append(t)
        return t

    leaf = x.detach().requires_grad_()
    inp = leaf * 1  # not a leaf, so in-place activations may run
    args = {"x": inp, **params}
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        if shortcuts:
            with meta_mode():
                out = call(inp, params)
        else:
            out = call(inp, params)
    assert out.requires_grad
    assert out.grad_fn is not None
    args["out"] = out
    keys = {name: t.untyped_storage()._cdata for name, t in args.items()}

    def origin(t: torch.Tensor) -> str:
        key = t.untyped_storage()._cdata
        return next((name for name, k in keys.items() if k == key), "new")

    return Counter((origin(t), tuple(t.shape), t.dtype) for t in found)


def same_saves(call: Call, x: torch.Tensor, params: dict[str, torch.Tensor] | None = None) -> None:
    params = params or {}
    assert saved(call, x, params, shortcuts=True) == saved(call, x, params, shortcuts=False)


dtypes = st.sampled_from([torch.float32, torch.float16, torch.bfloat16, torch.float64])
maps = st.tuples(st.integers(1, 3), st.integers(1, 4), st.integers(2, 5), st.integers(1, 5))


def meta(shape: Any, dtype: torch.dtype, grad: bool = False) -> torch.Tensor:
    return torch.empty(shape, device=META, dtype=dtype, requires_grad=grad)


@given(
    shape=maps,
    dtype=dtypes,
    training=st.booleans(),
    stats=st.booleans(),
    affine=st.booleans(),
)
def test_batch_norm(
    shape: tuple[int, ...], dtype: torch.dtype, training: bool, stats: bool, affine: bool
) -> None:
    c = shape[1]
    params = {}
    if stats:
        params.update(mean=meta(c, dtype), var=meta(c, dtype))
    if affine:
        params.update(weight=meta(c, dtype, True), bias=meta(c, dtype, True))
    if not (training or stats):
        return
    same_saves(
        lambda x, p: F.batch_norm(x, p.get("mean"), p.get("var"), p.get("weight"), p.get("bias"), training),
        meta(shape, dtype),
        params,
    )


@given(shape=maps, dtype=dtypes, affine=st.booleans(), groups=st.sampled_from([1, 2]))
def test_group_norm(shape: tuple[int, ...], dtype: torch.dtype, affine: bool, groups: int) -> None:
    shape = (shape[0], 2 * shape[1], *shape[2:])
    c = shape[1]
    params = {"weight": meta(c, dtype, True), "bias": meta(c, dtype, True)} if affine else {}
    same_saves(
        lambda x, p: F.group_norm(x, groups, p.get("weight"), p.get("bias")), meta(shape, dtype), params
    )


@given(shape=maps, dtype=dtypes, affine=st.booleans(), axes=st.integers(1, 3))
def test_layer_norm(shape: tuple[int, ...], dtype: torch.dtype, affine: bool, axes: int) -> None:
    normalized = shape[-axes:]
    params = (
        {"weight": meta(normalized, dtype, True), "bias": meta(normalized, dtype, True)} if affine else {}
    )
    same_saves(
        lambda x, p: F.layer_norm(x, normalized, p.get("weight"), p.get("bias")), meta(shape, dtype), params
    )


ACTIVATIONS: dict[str, Call] = {
    "relu": lambda x, p: F.relu(x),
    "relu_": lambda x, p: F.relu(x, inplace=True),
    "torch.relu": lambda x, p: torch.relu(x),
    "sigmoid": lambda x, p: torch.sigmoid(x),
    "tanh": lambda x, p: torch.tanh(x),
    "relu6": lambda x, p: F.relu6(x),
    "relu6_": lambda x, p: F.relu6(x, inplace=True),
    "hardtanh (ReLU6 module)": lambda x, p: F.hardtanh(x, 0.0, 6.0),
    "hardtanh_": lambda x, p: F.hardtanh(x, 0.0, 6.0, True),
    "silu": lambda x, p: F.silu(x),
    "silu_": lambda x, p: F.silu(x, inplace=True),
    "hardswish": lambda x, p: F.hardswish(x),
    "hardswish_": lambda x, p: F.hardswish(x, inplace=True),
    "mish": lambda x, p: F.mish(x),
    "mish_": lambda x, p: F.mish(x, inplace=True),
    "leaky_relu": lambda x, p: F.leaky_relu(x, 0.1),
    "leaky_relu_": lambda x, p: F.leaky_relu(x, 0.1, True),
    "elu": lambda x, p: F.elu(x),
    "elu_": lambda x, p: F.elu(x, inplace=True),
    "gelu": lambda x, p: F.gelu(x),
    "gelu_tanh": lambda x, p: F.gelu(x, approximate="tanh"),
}


@pytest.mark.parametrize("name", ACTIVATIONS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.float64])
def test_activation(name: str, dtype: torch.dtype) -> None:
    same_saves(ACTIVATIONS[name], meta((2, 3, 4, 4), dtype))


@given(
    kind=st.sampled_from(["dropout", "dropout1d", "dropout2d", "dropout3d"]),
    p=st.sampled_from([0.0, 0.1, 0.5, 1.0]),
    inplace=st.booleans(),
    dtype=dtypes,
)
def test_dropout(kind: str, p: float, inplace: bool, dtype: torch.dtype) -> None:
    rank = {"dropout": 4, "dropout1d": 3, "dropout2d": 4, "dropout3d": 5}[kind]
    fn = getattr(F, kind)
    same_saves(lambda x, q: fn(x, p, True, inplace), meta((2, 3, 4, 5, 2)[:rank], dtype))


def test_every_shortcut_that_answers_with_a_fresh_tensor_knows_its_saves() -> None:
    """Shortcuts without a save rule run torch's kernel under autograd (slow, but exact);
    only the checks (which never answer) may go without one."""
    checks = {F.linear, F.conv_transpose1d, F.conv_transpose2d, F.conv_transpose3d}
    assert set(RULES) - set(SAVES) - checks == {F.instance_norm}


def test_a_shortcut_output_keeps_the_graph_going() -> None:
    """Downstream ops see requires_grad, and an in-place op after a shortcut still works."""
    weight = meta((4, 3, 3, 3), torch.float32, True)
    x = meta((2, 3, 8, 8), torch.float32)
    with meta_mode():
        y = F.batch_norm(F.conv2d(x, weight), None, None, training=True)
        z = F.relu(y, inplace=True)
    assert z is y
    assert z.requires_grad
    assert type(z.grad_fn).__name__ == "ShortcutBackward"
