"""A trace leaves the model exactly as it was, also when the forward raises."""

from __future__ import annotations

import contextlib
import copy

import pytest
import torch
from torch import nn

from pytest_cnnshape import ShapeMismatchError, trace
from tests.corpus.zoo import ZOO, regularized, small_resnet
from tests.helpers import assert_same, snapshot
from tests.truth import run_plain, shape_of


class Raising(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(3)
        self.drop = nn.Dropout(0.5)
        self.fc = nn.Linear(7, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.drop(self.bn(x)).flatten(1))


def frozen_mix() -> nn.Module:
    model = small_resnet()
    model.train()
    model[1].eval()  # a BatchNorm the user froze
    for p in model[0].parameters():
        p.requires_grad_(False)
    return model


@pytest.mark.parametrize("device", ["meta", "cpu", "auto"])
@pytest.mark.parametrize("train", [False, True])
@pytest.mark.parametrize("factory", [frozen_mix, regularized, Raising])
def test_model_is_left_exactly_as_it_was(factory, device: str, train: bool) -> None:
    torch.manual_seed(1)
    model = factory()
    model.train()
    # plain torch on a copy: where this forward fails (Raising's fc: 2700 features, not 7), or its output
    output, failed = run_plain(copy.deepcopy(model), (torch.randn(4, 3, 30, 30),), train=train)
    assert (failed is not None) is (factory is Raising)
    user_calls: list[int] = []
    model.register_forward_pre_hook(lambda m, i: user_calls.append(1))
    before = snapshot(model)
    rng = torch.get_rng_state()
    if failed is None:
        tr = trace(model, (4, 3, 30, 30), device=device, train=train)
        assert tr.train is train and tr.output_shape == shape_of(output)
    else:
        with pytest.raises(ShapeMismatchError) as info:
            trace(model, (4, 3, 30, 30), device=device, train=train)
        assert info.value.layer == failed.module == "fc"
    assert torch.equal(torch.get_rng_state(), rng)
    assert_same(before, model)
    # our hooks are gone, the user's still fires
    model.eval()
    with torch.no_grad(), contextlib.suppress(RuntimeError):
        model(torch.randn(4, 3, 30, 30))
    assert user_calls


def test_train_mode_runs_batchnorm_in_training_and_restores_running_stats() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)).eval()
    mean = model[1].running_mean.clone()
    tracked = model[1].num_batches_tracked.clone()
    tr = trace(model, (2, 3, 8, 8), device="cpu", train=True)
    assert tr.train
    assert torch.equal(model[1].running_mean, mean)
    assert torch.equal(model[1].num_batches_tracked, tracked)
    assert not model.training and not model[1].training


def test_train_mode_shows_training_only_failures() -> None:
    model = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4))
    trace(model, (1, 4))  # eval: batch of one is fine
    with pytest.raises(ShapeMismatchError, match="more than 1 value per channel"):
        trace(model, (1, 4), device="cpu", train=True)


def test_no_autograd_graph_and_weights_never_copied_on_meta() -> None:
    model = small_resnet()
    pointers = {n: p.data_ptr() for n, p in model.named_parameters()}
    tr = trace(model, (8, 3, 512, 512), device="meta")
    assert tr.output_shape == (8, 10)
    assert {n: p.data_ptr() for n, p in model.named_parameters()} == pointers
    assert all(p.device.type == "cpu" for p in model.parameters())
    assert all(p.grad is None for p in model.parameters())


def test_plain_tensor_attributes_replaced_by_forward_are_restored() -> None:
    class Caching(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 3, 1)
            self.last = torch.zeros(1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.conv(x)
            self.last = y
            self.extra = y
            return y

    model = Caching()
    before = model.last
    for device in ("meta", "cpu"):
        trace(model, (1, 3, 4, 4), device=device)
        assert model.last is before
        assert not hasattr(model, "extra")


def test_global_rng_stream_continues_as_if_no_trace_ran() -> None:
    # Dropout in train mode and random inputs draw numbers; the caller never sees it.
    model = regularized()
    torch.manual_seed(3)
    expected = torch.rand(3)
    torch.manual_seed(3)
    trace(model, (2, 3, 30, 30), device="cpu", train=True)
    assert torch.equal(torch.rand(3), expected)


@pytest.mark.parametrize("name", ["lazy_linear", "tied_weights", "shared_module"])
def test_special_models_are_left_as_they_were(name: str) -> None:
    factory, inputs = ZOO[name]
    model = factory()
    reference = copy.deepcopy(model)
    for device in ("meta", "cpu"):
        trace(model, inputs, device=device)
    assert str(model) == str(reference)
    for (n1, t1), (n2, t2) in zip(model.state_dict().items(), reference.state_dict().items(), strict=True):
        assert n1 == n2
        if not isinstance(t1, nn.parameter.UninitializedParameter):
            assert torch.equal(t1, t2)


class Rebinding(nn.Module):
    """A forward that rebinds a buffer, adds a submodule and sets plain attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1)
        self.register_buffer("count", torch.zeros(()))
        self.label = "fresh"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.count = self.count + 1
        self.extra = nn.ReLU()
        self.label = "seen"
        self.calls = 1
        return self.extra(self.conv(x))


@pytest.mark.parametrize("device", ["meta", "cpu"])
def test_rebound_buffers_added_modules_and_attributes_are_put_back(device: str) -> None:
    model = Rebinding()
    count = model.count
    captured: list[str] = []

    def capture(module: nn.Module, args: object, output: torch.Tensor) -> None:
        module.captured = output  # a feature-capture hook on a torch layer
        captured.append(module.__class__.__name__)

    model.conv.register_forward_hook(capture)
    trace(model, (1, 3, 4, 4), device=device)
    assert model.count is count and float(count) == 0.0
    assert "extra" not in model._modules and not hasattr(model, "extra")
    assert model.label == "fresh" and not hasattr(model, "calls")
    assert captured == ["Conv2d"] and not hasattr(model.conv, "captured")
    assert dict(model.named_buffers()) == {"count": count}


def test_a_train_override_of_the_user_is_honoured() -> None:
    class FrozenBN(nn.Sequential):
        def train(self, mode: bool = True) -> FrozenBN:
            super().train(mode)
            self[1].eval()  # the user keeps BatchNorm frozen while training
            return self

    model = FrozenBN(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)).eval()
    seen: list[bool] = []
    model[1].register_forward_pre_hook(lambda m, a: seen.append(m.training))
    trace(model, (2, 3, 8, 8), device="cpu", train=True)
    assert seen == [False]
    assert not model.training and not model[0].training


def test_buffers_a_user_module_changes_in_place_are_put_back() -> None:
    class Counting(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 3, 1)
            self.register_buffer("seen", torch.zeros(()))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            self.seen.add_(x.shape[0])  # in place, in eval mode
            return self.conv(x)

    model = Counting().eval()
    trace(model, (4, 3, 8, 8), device="cpu")
    assert float(model.seen) == 0.0


class ShrinksItsWeight(nn.Module):
    """A forward that changes a parameter in place: the real trace warns about it."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            self.fc.weight.mul_(0.5)
        return self.fc(x)


def test_the_in_place_warning_points_at_the_callers_line() -> None:
    with pytest.warns(RuntimeWarning, match=r"changed parameter\(s\) fc.weight in place") as caught:
        trace(ShrinksItsWeight(), (1, 4), device="cpu")
    assert caught[0].filename == __file__


class Remembers(nn.Module):
    """A forward that keeps a history in plain containers on ``self``."""

    def __init__(self, fail: bool = False) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 2)
        self.history: list[tuple[int, ...]] = [(0,)]
        self.stats: dict[str, int] = {"calls": 0}
        self.seen: set[int] = {1}
        self.fail = fail

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.history.append(tuple(x.shape))
        self.stats["calls"] += 1
        self.stats["batch"] = x.shape[0]
        self.seen.add(x.shape[0])
        if self.fail:
            x = x.flatten()
        return self.fc(x)


@pytest.mark.parametrize("device", ["meta", "cpu"])
@pytest.mark.parametrize("fail", [False, True])
def test_containers_a_forward_updates_are_put_back_in_place(device: str, fail: bool) -> None:
    model = Remembers(fail)
    history, stats, seen = model.history, model.stats, model.seen
    for _ in range(3):
        with contextlib.suppress(ShapeMismatchError):
            trace(model, (3, 4), device=device)
    assert model.history is history and history == [(0,)]
    assert model.stats is stats and stats == {"calls": 0}
    assert model.seen is seen and seen == {1}
