"""``cnn_stacks`` only builds valid models: torch itself runs each to the output it promises."""

from __future__ import annotations

import pytest
import torch
from hypothesis import event, given, settings
from hypothesis import strategies as st
from torch import nn

from pytest_cnnshape.strategies import CnnStack, cnn_stacks
from tests.helpers import examples


def _features(model: nn.Module) -> set[str]:
    """What a stack holds beyond a plain chain, for ``event()`` (the mix shows with
    ``--hypothesis-show-statistics``) and for the coverage test below."""
    found = set()
    for m in model.modules():
        if isinstance(m, nn.modules.conv._ConvTransposeNd):
            found.add("transposed")
        if isinstance(m, nn.modules.conv._ConvNd) and m.groups > 1:
            found.add("groups")
        if isinstance(m, nn.modules.conv._ConvNd) and max(m.dilation) > 1:
            found.add("dilation")
        if type(m).__name__ in ("Residual", "Concat"):
            found.add(type(m).__name__.lower())
    return found


@pytest.mark.parametrize("ndim", [1, 2, 3])
@settings(max_examples=examples(40))
@given(data=st.data())
def test_every_stack_runs_in_torch_to_the_output_it_promises(ndim: int, data: st.DataObject) -> None:
    stack: CnnStack = data.draw(
        cnn_stacks(ndim, max_side=16 if ndim == 3 else 40, groups=True, transposed=True, branches=True)
    )
    for feature in sorted(_features(stack.model)):
        event(feature)
    model = stack.model.eval()
    with torch.no_grad():
        out = model(torch.randn(stack.input_shape))
    assert tuple(out.shape) == stack.output_shape
    assert isinstance(stack.model, nn.Sequential) and repr(stack).startswith("CnnStack(input=")


def test_the_extras_are_drawn_only_when_asked_and_all_of_them_are() -> None:
    """The extras stay off by default (the chain-only tests rely on it), and asked for,
    each of them turns up within a modest number of draws."""
    seen: dict[bool, set[str]] = {False: set(), True: set()}

    @settings(max_examples=examples(60), database=None)
    @given(plain=cnn_stacks(2), rich=cnn_stacks(2, groups=True, transposed=True, branches=True))
    def draw(plain: CnnStack, rich: CnnStack) -> None:
        seen[False] |= _features(plain.model)
        seen[True] |= _features(rich.model)

    draw()
    assert seen[False] <= {"dilation"}
    assert seen[True] == {"transposed", "groups", "dilation", "residual", "concat"}
