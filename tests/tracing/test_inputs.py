"""Input forms trace accepts, and clear errors for the ones it does not."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from pytest_cnnshape import ShapeMismatchError, SpecError, TraceError, trace
from tests.corpus.zoo import TwoInputs, lenet


@pytest.mark.parametrize(
    "inputs",
    [
        (2, 1, 28, 28),
        [2, 1, 28, 28],
        "2x1x28x28",
        "2 x 1 x 28 x 28",
        "2, 1, 28, 28",
        "(2, 1, 28, 28)",
        torch.Size([2, 1, 28, 28]),
    ],
)
def test_shape_forms_are_equivalent(inputs: object) -> None:
    tr = trace(lenet(), inputs)
    assert tr.input_shapes == ((2, 1, 28, 28),)
    assert tr.output_shape == (2, 10)


@pytest.mark.parametrize("device", ["meta", "cpu"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float16])
def test_tensor_input_keeps_its_dtype_and_is_not_modified(device: str, dtype: torch.dtype) -> None:
    """A hook of the user's own sees what the model is given: the tensor's dtype, never
    converted (to the trace's dtype or any other), its shape, and the device traced on."""
    model = lenet().to(dtype)
    received: list[tuple[torch.dtype, tuple[int, ...], str]] = []
    model.register_forward_pre_hook(
        lambda m, args: received.append((args[0].dtype, tuple(args[0].shape), args[0].device.type))
    )
    x = torch.randn(1, 1, 28, 28, dtype=dtype)
    copy = x.clone()
    tr = trace(model, x, device=device)
    assert received == [(dtype, (1, 1, 28, 28), device)]
    assert tr.dtype == str(dtype).removeprefix("torch.") and tr.output_shape == (1, 10)
    assert torch.equal(x, copy) and x.dtype == dtype
    # a float32 model given a float64 tensor: the tensor stays float64, and torch says no
    with pytest.raises(ShapeMismatchError) as info:
        trace(lenet(), x.double(), device=device)
    assert info.value.kind == "dtype_mismatch"


def test_several_inputs_as_list_and_tuple_of_shapes_or_tensors() -> None:
    model = TwoInputs()
    a = trace(model, [(2, 3, 16, 16), (2, 10)])
    b = trace(model, ("2x3x16x16", "2x10"))
    c = trace(model, [torch.randn(2, 3, 16, 16), (2, 10)])
    assert a.output_shape == b.output_shape == c.output_shape == (2, 2)
    assert a.input_shapes == ((2, 3, 16, 16), (2, 10))


def test_dtype_follows_the_model_or_the_argument() -> None:
    model = lenet().double()
    assert trace(model, (1, 1, 28, 28)).dtype == "float64"
    half = trace(lenet().half(), (1, 1, 28, 28), device="meta")
    assert half.dtype == "float16"
    assert trace(model, (1, 1, 28, 28), dtype="float64").dtype == "float64"


@pytest.mark.parametrize(
    ("inputs", "words"),
    [
        ("1x3xfoo", "foo is not a size"),
        ((1, 0, 28, 28), "not positive"),
        ((1, -3, 28, 28), "not positive"),
        ((), "no dimensions"),
        ("", "no dimensions"),
        (3.5, "not a shape"),
        ({"x": "1xx2"}, "empty dimension"),
        ([(1, 1, 28, 28), object()], "inputs[1]"),
        ("1 x 2.5", "non-integer"),
    ],
)
def test_bad_inputs_name_the_problem_and_an_example(inputs: object, words: str) -> None:
    with pytest.raises(SpecError) as info:
        trace(lenet(), inputs)
    text = str(info.value)
    assert words in text
    assert "'1x3x32x32'" in text  # every message shows a shape that would work


def test_bad_model_dtype_device_and_train_arguments() -> None:
    with pytest.raises(TypeError, match=r"class .* not an instance; pass Linear\(\)"):
        trace(nn.Linear, (1, 3))
    with pytest.raises(TypeError, match=r"torch\.nn\.Module instance"):
        trace(lambda x: x, (1, 3))
    with pytest.raises(TypeError, match="not a torch dtype"):
        trace(nn.Linear(3, 2), (1, 3), dtype="floaty")
    with pytest.raises(ValueError, match="not a device"):
        trace(nn.Linear(3, 2), (1, 3), device="gpu-please")
    with pytest.raises(ValueError, match="CUDA is not available"):
        trace(nn.Linear(3, 2), (1, 3), device="cuda")
    with pytest.raises(TypeError, match="True or False"):
        trace(nn.Linear(3, 2), (1, 3), train="yes")  # type: ignore[arg-type]


class DataDependent(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        if y.mean() > 100:  # .item() on meta: impossible
            return y * 2
        return y[y > 0]  # nonzero: no meta kernel


class PlainAttribute(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)
        self.scale = torch.ones(8, 1, 1)  # neither parameter nor buffer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x) * self.scale


@pytest.mark.parametrize("factory", [DataDependent, PlainAttribute])
def test_auto_falls_back_to_a_real_forward_and_says_so(factory: type[nn.Module]) -> None:
    model = factory()
    tr = trace(model, (8, 3, 256, 256))  # large enough that auto starts on meta
    assert tr.device == "cpu"
    assert tr.note and "meta could not run this model" in tr.note
    assert "Note: meta could not run" in tr.table()
    with pytest.raises(TraceError, match=r"cannot trace .* on the meta device.*device='auto'"):
        trace(model, (8, 3, 256, 256), device="meta")


def test_auto_uses_meta_for_large_models_and_cpu_for_tiny_ones() -> None:
    from tests.corpus.zoo import small_resnet

    assert trace(small_resnet(), (8, 3, 512, 512)).device == "meta"
    assert trace(nn.Linear(4, 2), (1, 4)).device == "cpu"


def test_model_on_meta_is_traced_on_meta_only() -> None:
    with torch.device("meta"):
        model = lenet()
    assert trace(model, (1, 1, 28, 28)).device == "meta"
    with pytest.raises(ValueError, match="weights are on meta"):
        trace(model, (1, 1, 28, 28), device="cpu")
