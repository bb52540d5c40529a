"""``estimate_memory`` against reality: what a real CPU training step saves, grads, liveness."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from itertools import pairwise

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from benchmarks.measure import inference_peak, saved_tensors, training_step_peak
from benchmarks.models import resnet50
from pytest_cnnshape import ShapeMismatchError, estimate_memory
from pytest_cnnshape.inspection.memory import _storage
from tests.corpus.inspection_zoo import DeadHead
from tests.corpus.training_zoo import TRAINING_ZOO, BilinearUNet, MnistNet
from tests.corpus.zoo import Lazy
from tests.helpers import assert_same, snapshot

MIB = 2**20


def within(estimate: int, measured: int, tolerance: float) -> bool:
    return abs(estimate - measured) <= tolerance * measured


@pytest.mark.parametrize("name", TRAINING_ZOO)
def test_saved_activations_match_a_real_cpu_training_step(name: str) -> None:
    factory, shape = TRAINING_ZOO[name]
    torch.manual_seed(0)
    model = factory()
    estimate = estimate_memory(model, shape, device="meta")
    real = saved_tensors(model, torch.randn(shape))
    assert estimate.device == "meta"
    assert within(estimate.saved_activation_bytes, real.bytes, 0.02), (
        estimate.saved_activation_bytes,
        real.bytes,
    )
    assert estimate.saved_tensors == real.count
    assert estimate.grad_bytes == real.grad_bytes
    assert estimate.param_bytes == sum(p.numel() * p.element_size() for p in model.parameters())
    assert estimate.buffer_bytes == sum(b.numel() * b.element_size() for b in model.buffers())


@pytest.mark.parametrize(
    "name",
    ["vgg_style example (BatchNorm, in-place ReLU, Dropout2d)", "mnist-net (Dropout, max-pool, log_softmax)"],
)
def test_an_eval_mode_training_forward_matches_too(name: str) -> None:
    """``train=False``: frozen BatchNorm statistics, no dropout (fine-tuning)."""
    factory, shape = TRAINING_ZOO[name]
    model = factory()
    estimate = estimate_memory(model, shape, train=False, device="meta")
    real = saved_tensors(model, torch.randn(shape), train=False)
    assert within(estimate.saved_activation_bytes, real.bytes, 0.02)
    assert not estimate.train


def test_meta_and_a_real_cpu_pass_count_the_same() -> None:
    """The same pass, on meta or on the CPU (where auto runs tiny models), agrees exactly."""
    model = BilinearUNet()
    on_meta = estimate_memory(model, (1, 3, 32, 32), device="meta").to_dict()
    on_cpu = estimate_memory(model, (1, 3, 32, 32), device="cpu").to_dict()
    assert on_cpu.pop("device") == "cpu"
    assert on_meta.pop("device") == "meta"
    assert on_cpu == on_meta


def test_storage_identity_works_on_meta() -> None:
    """Views and in-place results share a storage, separate tensors do not, also on meta,
    where every data pointer is 0."""
    a = torch.empty(4, 8, device="meta")
    b = torch.empty(4, 8, device="meta")
    assert a.untyped_storage().data_ptr() == b.untyped_storage().data_ptr() == 0
    assert _storage(a)[0] != _storage(b)[0]
    assert _storage(a.view(8, 4))[0] == _storage(a[1:])[0] == _storage(a.t())[0] == _storage(a)[0]
    assert _storage(a.relu_())[0] == _storage(a)[0]
    assert _storage(a[1:]) == (_storage(a)[0], 4 * 8 * 4)  # the whole storage is what is kept


class SavesOneStorageTwice(nn.Module):
    """An in-place ReLU saves its result, a view of it is saved again by the multiply."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.scale = nn.Parameter(torch.ones(1, 4 * 8 * 8))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.conv(x), inplace=True)
        return y.flatten(1) * self.scale


def test_a_storage_saved_twice_counts_once() -> None:
    model = SavesOneStorageTwice()
    estimate = estimate_memory(model, (2, 3, 8, 8), device="meta")
    feature_map = 2 * 4 * 8 * 8 * 4
    image = 2 * 3 * 8 * 8 * 4
    assert estimate.saved_activation_bytes == image + feature_map
    assert estimate.saved_activation_bytes == saved_tensors(model, torch.randn(2, 3, 8, 8)).bytes


def test_the_model_is_left_as_it_was() -> None:
    torch.manual_seed(0)
    model = TRAINING_ZOO["vgg_style example (BatchNorm, in-place ReLU, Dropout2d)"][0]().eval()
    before = snapshot(model)
    rng = torch.get_rng_state()
    for device in ("meta", "cpu"):
        estimate_memory(model, (2, 3, 32, 32), torch.optim.Adam(model.parameters()), device=device)
    assert_same(before, model)
    assert torch.equal(torch.get_rng_state(), rng)
    assert all(p.grad is None for p in model.parameters())


def test_layers_add_up() -> None:
    """Each call's total is its own saves plus those of the calls inside it; the root's is the whole."""
    estimate = estimate_memory(resnet50(), (2, 3, 64, 64), device="meta")
    layers = estimate.layers
    assert layers[0].name == ""
    assert (
        layers[0].saved_total == estimate.saved_activation_bytes == sum(layer.saved_bytes for layer in layers)
    )
    for i, layer in enumerate(layers):
        children = []
        for later in layers[i + 1 :]:
            if later.depth <= layer.depth:
                break
            if later.depth == layer.depth + 1:
                children.append(later)
        assert layer.saved_total == layer.saved_bytes + sum(c.saved_total for c in children)
    stem = next(layer for layer in layers if layer.name == "bn1")
    # BatchNorm keeps its input (conv1's output, 2x64x32x32 floats) and two per-channel vectors
    assert stem.saved_bytes == 2 * 64 * 32 * 32 * 4 + 2 * 64 * 4
    assert stem.output_bytes == 2 * 64 * 32 * 32 * 4
    largest = estimate.largest(3)
    assert [layer.saved_bytes for layer in largest] == sorted(
        (layer.saved_bytes for layer in layers), reverse=True
    )[:3]


def test_only_what_gets_a_gradient_counts() -> None:
    """A frozen backbone saves only what the trainable head needs; an unused layer gets no gradient."""
    model = MnistNet()
    for name, p in model.named_parameters():
        p.requires_grad = name.startswith("fc2")
    estimate = estimate_memory(model, (4, 1, 28, 28), "Adam", device="meta")
    real = saved_tensors(model, torch.randn(4, 1, 28, 28))
    assert estimate.saved_activation_bytes == real.bytes
    assert estimate.grad_bytes == real.grad_bytes == (128 * 10 + 10) * 4

    dead = DeadHead()
    estimate = estimate_memory(dead, (2, 3, 16, 16), device="meta")
    real = saved_tensors(dead, torch.randn(2, 3, 16, 16))
    assert estimate.grad_bytes == real.grad_bytes < estimate.param_bytes


def test_lazy_layers_count_as_materialised() -> None:
    model = Lazy()
    estimate = estimate_memory(model, (2, 3, 16, 16), device="meta")
    built = copy.deepcopy(model)
    built(torch.randn(2, 3, 16, 16))
    assert estimate.param_bytes == sum(p.numel() * p.element_size() for p in built.parameters())
    assert estimate.saved_activation_bytes == saved_tensors(built, torch.randn(2, 3, 16, 16)).bytes
    assert any(isinstance(p, nn.parameter.UninitializedParameter) for p in model.parameters())


@pytest.mark.parametrize("name", TRAINING_ZOO)
def test_the_inference_peak_matches_a_real_eval_forward(name: str) -> None:
    """The training pass's liveness, autograd's saved tensors not held and dropout as the
    identity, is that of an eval forward under no_grad on the CPU."""
    factory, shape = TRAINING_ZOO[name]
    model = factory()
    estimate = estimate_memory(model, shape, device="meta")
    real = inference_peak(model, torch.randn(shape))
    weights = estimate.param_bytes + estimate.buffer_bytes
    assert within(estimate.peak_inference_bytes - weights, real, 0.02), (
        estimate.peak_inference_bytes - weights,
        real,
    )


def test_the_inference_peak_follows_tensor_lifetimes() -> None:
    """In ``nn.Sequential`` a layer's input dies once the next layer has run: the peak is
    the input (held by the caller) plus the largest neighbouring pair of outputs."""
    model = nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 4, 3, padding=1), nn.Flatten()
    )
    estimate = estimate_memory(model, (2, 3, 32, 32), device="meta")
    pixels = 2 * 32 * 32 * 4
    sizes = [3 * pixels, 16 * pixels, 16 * pixels, 4 * pixels]  # input, conv, relu, conv; flatten is a view
    weights = estimate.param_bytes + estimate.buffer_bytes
    pairs = max(a + b for a, b in pairwise(sizes[1:]))
    assert estimate.peak_inference_bytes == weights + sizes[0] + pairs
    assert estimate.inference_peak_at == "1"
    # in place, the ReLU allocates nothing
    model[1] = nn.ReLU(inplace=True)
    estimate = estimate_memory(model, (2, 3, 32, 32), device="meta")
    assert estimate.peak_inference_bytes == weights + sizes[0] + sizes[1] + sizes[3]


def test_the_peak_adds_up_and_the_optimizer_is_named() -> None:
    model = MnistNet()
    bare = estimate_memory(model, (8, 1, 28, 28), device="meta")
    assert bare.optimizer_state_bytes is None
    assert bare.optimizer.how == "not counted"
    assert bare.peak_training_bytes == (
        bare.param_bytes
        + bare.buffer_bytes
        + bare.grad_bytes
        + bare.saved_activation_bytes
        + bare.backward_transient_bytes
    )
    adam = estimate_memory(model, (8, 1, 28, 28), torch.optim.Adam(model.parameters()), device="meta")
    assert adam.optimizer_state_bytes == 2 * adam.param_bytes + 8 * 4  # 8 parameter tensors' step counts
    assert adam.peak_training_bytes == bare.peak_training_bytes + adam.optimizer_state_bytes
    assert "not counted" in bare.table() and "Adam" in adam.table()


def test_the_estimate_is_close_to_a_measured_cpu_training_step() -> None:
    """The allocator's peak over a whole step (forward, backward, Adam) is within 15%."""
    torch.manual_seed(0)
    model = TRAINING_ZOO["resnet_style example (residual adds, shared ReLU)"][0]()
    optimizer = torch.optim.Adam(model.parameters())
    x = torch.randn(16, 3, 32, 32)
    estimate = estimate_memory(model, x, optimizer, device="meta")
    measured = training_step_peak(model, (x,), optimizer)
    assert within(estimate.peak_training_bytes, measured, 0.15), (estimate.peak_training_bytes, measured)


def test_to_dict_is_json_and_the_table_speaks_mib() -> None:
    estimate = estimate_memory(resnet50(), (16, 3, 224, 224), "SGD(momentum=0.9)", device="meta")
    data = json.loads(json.dumps(estimate.to_dict()))
    assert data["peak_training_bytes"] == estimate.peak_training_bytes
    assert data["optimizer"]["name"] == "SGD"
    assert data["layers"][0]["saved_total"] == estimate.saved_activation_bytes
    text = estimate.table(max_depth=1)
    assert "GiB" in text and "MiB" in text
    assert "layer4" in text and "layer4.0" not in text
    assert str(estimate) == estimate.table()


def test_a_failing_forward_is_diagnosed() -> None:
    with pytest.raises(ShapeMismatchError, match="in_features"):
        estimate_memory(MnistNet(), (2, 1, 32, 32))


needs_cuda = pytest.mark.skipif(
    not torch.cuda.is_available(),
    reason="needs a CUDA device: compares peak_training_bytes with torch.cuda.max_memory_allocated()",
)


@needs_cuda
@pytest.mark.parametrize("factory", [resnet50, BilinearUNet], ids=["resnet50", "milesial-unet"])
def test_the_training_peak_matches_cuda_max_memory_allocated(
    factory: Callable[[], nn.Module],
) -> None:  # pragma: no cover
    """One training step on a GPU: the allocator's peak against the estimate (goal: within 15%)."""
    device = torch.device("cuda")
    model = factory().to(device).train()
    optimizer = torch.optim.Adam(model.parameters())
    x = torch.randn(16, 3, 128, 128, device=device)
    estimate = estimate_memory(model, tuple(x.shape), optimizer, device="meta")

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        model(x).float().sum().backward()
        optimizer.step()

    step()  # the optimizer's state exists from here on, as in training
    optimizer.zero_grad(set_to_none=True)
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    step()
    torch.cuda.synchronize()
    measured = torch.cuda.max_memory_allocated()
    ratio = estimate.peak_training_bytes / measured
    print(
        f"{factory.__name__}: estimate {estimate.peak_training_bytes / MIB:.1f} MiB, "
        f"measured {measured / MIB:.1f} MiB, ratio {ratio:.3f}"
    )
    assert 0.85 <= ratio <= 1.15
