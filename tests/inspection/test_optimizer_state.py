"""The optimizer state an estimate counts is the state a real ``step()`` creates, class by class."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch import nn

from benchmarks.measure import saved_tensors, state_bytes
from pytest_cnnshape import estimate_memory
from pytest_cnnshape.errors import ArgumentTypeError, SpecError
from pytest_cnnshape.inspection.optimizer_state import RULES, parse_optimizer

Factory = Callable[[list[nn.Parameter]], torch.optim.Optimizer]


class Net(nn.Module):
    """Conv weights (4-d), BatchNorm and biases (1-d), a Linear (2-d), a frozen and an unused layer."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, bias=False)
        self.bn = nn.BatchNorm2d(8)
        self.fc = nn.Linear(8, 5)
        self.frozen = nn.Linear(5, 5)
        self.frozen.requires_grad_(False)
        self.unused = nn.Linear(5, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn(self.conv(x))).mean((2, 3))
        return self.frozen(self.fc(x))


optim = torch.optim
CASES: dict[str, Factory] = {
    "SGD": lambda p: optim.SGD(p, lr=0.1),
    "SGD(momentum=0.9)": lambda p: optim.SGD(p, lr=0.1, momentum=0.9),
    "SGD(momentum=0.9, nesterov=True, foreach=True)": lambda p: optim.SGD(
        p, lr=0.1, momentum=0.9, nesterov=True, foreach=True
    ),
    "SGD(momentum=0.9, fused=True)": lambda p: optim.SGD(p, lr=0.1, momentum=0.9, fused=True),
    "Adam": optim.Adam,
    "Adam(amsgrad=True)": lambda p: optim.Adam(p, amsgrad=True),
    "Adam(foreach=True)": lambda p: optim.Adam(p, foreach=True),
    "Adam(foreach=False)": lambda p: optim.Adam(p, foreach=False),
    "Adam(fused=True)": lambda p: optim.Adam(p, fused=True),
    "AdamW": lambda p: optim.AdamW(p, weight_decay=0.01),
    "AdamW(amsgrad=True, fused=True)": lambda p: optim.AdamW(p, amsgrad=True, fused=True),
    "NAdam": optim.NAdam,
    "NAdam(decoupled_weight_decay=True)": lambda p: optim.NAdam(
        p, weight_decay=0.01, decoupled_weight_decay=True
    ),
    "RAdam": optim.RAdam,
    "Adamax": optim.Adamax,
    "Adagrad": optim.Adagrad,
    "Adagrad(fused=True)": lambda p: optim.Adagrad(p, fused=True),
    "Adadelta": optim.Adadelta,
    "RMSprop": optim.RMSprop,
    "RMSprop(centered=True)": lambda p: optim.RMSprop(p, centered=True),
    "RMSprop(momentum=0.9)": lambda p: optim.RMSprop(p, momentum=0.9),
    "RMSprop(momentum=0.9, centered=True)": lambda p: optim.RMSprop(p, momentum=0.9, centered=True),
    "Rprop": optim.Rprop,
    "ASGD": optim.ASGD,
    "Adafactor": optim.Adafactor,
    "Muon": lambda p: optim.Muon([q for q in p if q.ndim == 2]),
    "two param groups": lambda p: optim.SGD([{"params": p[:2], "momentum": 0.9}, {"params": p[2:]}], lr=0.1),
}


def stepped(model: nn.Module, optimizer: torch.optim.Optimizer) -> int:
    """Bytes of the optimizer's state after one real training step on the CPU."""
    optimizer.zero_grad()
    saved_tensors(model, torch.randn(2, 3, 8, 8))
    optimizer.step()
    return state_bytes(optimizer)


@pytest.mark.parametrize("case", CASES)
def test_the_estimate_is_what_one_step_creates(case: str) -> None:
    model = Net()
    optimizer = CASES[case](list(model.parameters()))
    before = estimate_memory(model, (2, 3, 8, 8), optimizer, device="meta").optimizer
    # Adagrad builds its state when it is constructed: it is measured from the start
    assert before.how == ("measured" if case.startswith("Adagrad") else "estimated"), before.note
    assert before.bytes == stepped(model, optimizer)
    after = estimate_memory(model, (2, 3, 8, 8), optimizer, device="meta").optimizer
    assert after.bytes == before.bytes
    assert after.how == ("measured" if optimizer.state else "estimated")  # plain SGD keeps nothing


def test_a_name_or_a_class_counts_every_trainable_parameter() -> None:
    model = Net()
    trainable = [p for p in model.parameters() if p.requires_grad]
    given = estimate_memory(model, (2, 3, 8, 8), optim.SGD(trainable, lr=0.1, momentum=0.9), device="meta")
    for spec in ("SGD(momentum=0.9)", "torch.optim.SGD(momentum=0.9)", "sgd(momentum=0.9)"):
        assert (
            estimate_memory(model, (2, 3, 8, 8), spec, device="meta").optimizer.bytes == given.optimizer.bytes
        )
    assert estimate_memory(model, (2, 3, 8, 8), optim.SGD, device="meta").optimizer.bytes == 0  # momentum 0
    adam = estimate_memory(model, (2, 3, 8, 8), optim.Adam, device="meta").optimizer
    assert adam.bytes == stepped(model, optim.Adam(model.parameters()))
    # Adagrad's rule, checked before it has any state to measure: every parameter of its
    # groups, the frozen and the unused ones too
    adagrad = estimate_memory(model, (2, 3, 8, 8), "Adagrad", device="meta").optimizer
    assert adagrad.how == "estimated"
    assert adagrad.bytes == stepped(model, optim.Adagrad(trainable))


def test_state_follows_the_dtype_of_each_parameter_and_the_default_dtype() -> None:
    model = Net().double()
    optimizer = optim.Adam(model.parameters())
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # step counts become float64 too
    try:
        estimate = estimate_memory(model, (2, 3, 8, 8), optimizer, device="meta").optimizer
        assert estimate.bytes == stepped(model, optimizer)
    finally:
        torch.set_default_dtype(previous)


class Custom(torch.optim.Optimizer):
    def __init__(self, params: Any) -> None:
        super().__init__(params, {"lr": 0.1})

    def step(self, closure: Any = None) -> None:
        for group in self.param_groups:
            for p in group["params"]:
                self.state[p]["trace"] = torch.zeros_like(p)


class MyAdam(torch.optim.Adam):
    pass


def test_unknown_optimizers_are_not_counted_until_they_step() -> None:
    model = Net()
    for optimizer, why in (
        (Custom(model.parameters()), "does not know what it keeps"),
        (optim.LBFGS(model.parameters()), "history buffers"),
    ):
        state = estimate_memory(model, (2, 3, 8, 8), optimizer, device="meta").optimizer
        assert (state.bytes, state.how) == (None, "not counted")
        assert why in state.note and "after one step()" in state.note
    custom = Custom(model.parameters())
    custom.step()
    measured = estimate_memory(model, (2, 3, 8, 8), custom, device="meta").optimizer
    assert (measured.how, measured.bytes) == ("measured", state_bytes(custom))


def test_a_subclass_of_a_known_optimizer_counts_as_it() -> None:
    model = Net()
    optimizer = MyAdam(model.parameters())
    state = estimate_memory(model, (2, 3, 8, 8), optimizer, device="meta").optimizer
    assert "MyAdam (as Adam)" in state.note
    assert state.bytes == stepped(model, optimizer)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("Adamm", "not a torch.optim optimizer"),
        ("SGD(0.1)", "give settings by name"),
        ("SGD(momentum=x)", "must be literals"),
        ("SGD(momentumm=0.9)", "has no setting 'momentumm'"),
        ("3", "not a torch.optim class name"),
        ("SGD(", "not an optimizer name"),
    ],
)
def test_optimizer_names_are_checked(text: str, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        estimate_memory(Net(), (2, 3, 8, 8), text, device="meta")


def test_anything_else_is_a_type_error() -> None:
    with pytest.raises(ArgumentTypeError, match="is not an optimizer"):
        estimate_memory(Net(), (2, 3, 8, 8), 0.1, device="meta")


def test_every_rule_names_a_torch_optimizer() -> None:
    for name in RULES:
        assert issubclass(getattr(torch.optim, name), torch.optim.Optimizer)
    assert parse_optimizer("AdamW(amsgrad=True)").kwargs == {"amsgrad": True}
