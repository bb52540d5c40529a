"""assert_output_shape names the layer that made each wrong dimension, its formula, and a fix
that really gives the expected size."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from hypothesis import assume, event, given
from hypothesis import strategies as st
from torch import nn

from pytest_cnnshape import assert_output_shape, trace
from pytest_cnnshape.contracts.attribution import _settings


def failure_text(model: nn.Module, inputs: object, expected: object) -> str:
    with pytest.raises(AssertionError) as info:
        assert_output_shape(model, inputs, expected)
    return str(info.value)


def test_a_transposed_conv_one_row_too_many() -> None:
    model = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ConvTranspose2d(16, 8, 3, stride=2))
    text = failure_text(model, (1, 3, 64, 64), "B x 8 x 2*H x 2*W")
    assert (
        "  dims 2 and 3: last changed by 1 (ConvTranspose2d): (64 - 1)*2 - 2*0 + 1*(3 - 1) + 0 + 1 = 129"
    ) in text
    assert (
        "    fix: nn.ConvTranspose2d(in_channels=16, out_channels=8, kernel_size=3, stride=2, "
        "padding=1, output_padding=1) gives 128"
    ) in text
    fixed = nn.Sequential(model[0], nn.ConvTranspose2d(16, 8, 3, stride=2, padding=1, output_padding=1))
    assert trace(fixed, (1, 3, 64, 64)).output_shape == (1, 8, 128, 128)


def test_a_pool_that_drops_the_odd_row_prefers_ceil_mode() -> None:
    model = nn.Sequential(nn.Conv2d(3, 16, 3), nn.MaxPool2d(2))
    text = failure_text(model, (2, 3, 31, 31), "B x 16 x 15 x 15")
    assert (
        "dims 2 and 3: last changed by 1 (MaxPool2d): floor((29 + 2*0 - 1*(2 - 1) - 1) / 2) + 1 = 14"
    ) in text
    assert "fix: nn.MaxPool2d(kernel_size=2, ceil_mode=True) gives 15" in text


def test_the_classes_of_a_linear_head() -> None:
    model = nn.Sequential(nn.Conv2d(3, 16, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10))
    text = failure_text(model, (2, 3, 32, 32), "B x 12")
    assert "dim 1: last changed by 3 (Linear): out_features = 10" in text
    assert "fix: nn.Linear(in_features=16, out_features=12) gives 12" in text


def test_a_batch_changed_by_forward_code() -> None:
    class Fold(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(1, 4, 3)
            self.fc = nn.Linear(18, 5)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(self.conv(x).view(-1, 18))

    text = failure_text(Fold(), (2, 1, 5, 5), "B x 5")
    assert (
        "dim 0: forward code between conv (Conv2d) and fc (Linear) reshaped the tensor, making "
        "it 4 (a view(-1, K) folds features into the batch"
    ) in text


settings_layers = st.one_of(
    st.builds(
        lambda k, s, p: nn.Conv1d(1, 1, k, s, p), st.integers(1, 5), st.integers(1, 3), st.integers(0, 2)
    ),
    st.builds(
        lambda k, s, p, op: nn.ConvTranspose1d(1, 1, k, s, p, min(op, s - 1)),
        st.integers(1, 5),
        st.integers(1, 3),
        st.integers(0, 2),
        st.integers(0, 2),
    ),
    st.builds(
        lambda k, s, c: nn.MaxPool1d(k, s, ceil_mode=c), st.integers(1, 4), st.integers(1, 3), st.booleans()
    ),
    st.builds(
        lambda k, s, c: nn.AvgPool1d(k, s, ceil_mode=c), st.integers(1, 4), st.integers(1, 3), st.booleans()
    ),
)


def _searched(layer: nn.Module) -> list[dict[str, Any]]:
    """The settings ``_settings`` may change, each combination in the ranges it searches:
    padding up to ``kernel * dilation`` and output_padding below ``max(stride, dilation)``
    for convolutions, padding up to half the kernel and ceil_mode for poolings (torch's
    own limits). Inside them it must find the fewest changes there are."""
    k = layer.kernel_size[0] if isinstance(layer.kernel_size, tuple) else layer.kernel_size  # type: ignore[index]
    stride = layer.stride[0] if isinstance(layer.stride, tuple) else layer.stride  # type: ignore[index]
    if isinstance(layer, nn.modules.conv._ConvTransposeNd):
        d = layer.dilation[0]
        return [
            {"padding": p, "output_padding": op} for p in range(k * d + 1) for op in range(max(stride, d))
        ]
    if isinstance(layer, nn.modules.conv._ConvNd):
        return [{"padding": p} for p in range(k * layer.dilation[0] + 1)]
    return [{"padding": p, "ceil_mode": c} for p in range(k // 2 + 1) for c in (False, True)]


def _rebuilt(layer: nn.Module, change: dict[str, Any]) -> nn.Module:
    kwargs = {name: getattr(layer, name) for name in ("kernel_size", "stride", "padding")}
    if isinstance(layer, nn.modules.conv._ConvTransposeNd):
        kwargs["output_padding"] = layer.output_padding
        kwargs["dilation"] = layer.dilation
    if hasattr(layer, "ceil_mode"):
        kwargs["ceil_mode"] = layer.ceil_mode
    kwargs.update(change)
    channels = (1, 1) if isinstance(layer, nn.modules.conv._ConvNd) else ()
    return type(layer)(*channels, **kwargs)


def _side(layer: nn.Module, size: int) -> int | None:
    """What torch itself makes of a side of ``size`` (None: it refuses)."""
    try:
        return int(layer(torch.empty(1, 1, size, device="meta")).shape[-1])
    except RuntimeError:
        return None


def _changed(layer: nn.Module, option: dict[str, Any]) -> dict[str, Any]:
    def now(name: str) -> Any:
        value = getattr(layer, name)
        return value[0] if isinstance(value, tuple) else value

    return {k: v for k, v in option.items() if now(k) != v}


@given(layer=settings_layers, size=st.integers(4, 40), delta=st.integers(-2, 2))
def test_every_suggested_setting_gives_the_wanted_size(layer: nn.Module, size: int, delta: int) -> None:
    """Against torch by brute force: a change is suggested exactly when one in the searched
    ranges gives the wanted size, it does, and none changes fewer settings (then less padding)."""
    got = _side(layer, size)
    assume(got is not None)  # the layer itself does not fit this size
    assert got is not None
    want = got + delta
    working = [option for option in _searched(layer) if _side(_rebuilt(layer, option), size) == want]
    settings = _settings(layer, 0, size, want)
    event("a setting in range gives the size" if working else "none does")
    if not working:
        assert settings is None, f"suggested {settings}, but no setting in range gives {want}"
        return
    assert settings is not None, f"declined, but {working[0]} gives {want}"
    assert _side(_rebuilt(layer, settings), size) == want
    # the fewest changed settings, then the least padding (ceil_mode before padding for pools)
    best = min(working, key=lambda o: (len(_changed(layer, o)), sum(v for v in o.values() if v is not True)))
    assert settings == _changed(layer, best), working


def dcgan_generator(padding: int = 1) -> nn.Sequential:
    """pytorch/examples#425's DCGAN generator (channels cut), one transposed conv padded wrong."""
    return nn.Sequential(
        nn.ConvTranspose2d(16, 32, 4, 1, 0, bias=False),
        nn.BatchNorm2d(32),
        nn.ReLU(True),
        nn.ConvTranspose2d(32, 16, 4, 2, padding, bias=False),
        nn.BatchNorm2d(16),
        nn.ReLU(True),
        nn.ConvTranspose2d(16, 8, 4, 2, 1, bias=False),
        nn.BatchNorm2d(8),
        nn.ReLU(True),
        nn.ConvTranspose2d(8, 3, 4, 2, 1, bias=False),
        nn.Tanh(),
    )


def test_the_blame_walks_back_to_the_first_layer_that_diverged() -> None:
    model = dcgan_generator(padding=2)
    text = failure_text(model, (1, 16, 1, 1), (1, 3, 32, 32))
    # the last ConvTranspose2d did its job (doubling); the one padded wrong did not
    assert (
        "dims 2 and 3: diverged at 3 (ConvTranspose2d): it got 4x4 and made 6x6, where 8x8 leads to the "
        "expected output: (4 - 1)*2 - 2*2 + 1*(4 - 1) + 0 + 1 = 6"
    ) in text
    assert (
        "fix: nn.ConvTranspose2d(in_channels=32, out_channels=16, kernel_size=4, stride=2, padding=1, "
        "bias=False) gives 8x8 (verified: the output is then [1, 3, 32, 32])"
    ) in text
    assert "9 (ConvTranspose2d)" not in text  # no cropping fix at the end
    assert trace(dcgan_generator(padding=1), (1, 16, 1, 1)).output_shape == (1, 3, 32, 32)


def test_a_stride_one_conv_that_shrinks_is_blamed_only_against_same_padded_neighbours() -> None:
    same = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 8, 3), nn.Conv2d(8, 8, 3, padding=1))
    assert "last changed by 1 (Conv2d)" in failure_text(same, (1, 3, 32, 32), "B x 8 x H x W")
    # LeNet-style valid convs shrink on purpose: the pool's rounding is the change to make
    text = failure_text(
        nn.Sequential(nn.Conv2d(3, 16, 3), nn.MaxPool2d(2)), (2, 3, 31, 31), "B x 16 x 15 x 15"
    )
    assert "last changed by 1 (MaxPool2d)" in text and "ceil_mode=True" in text


class VAE(nn.Module):
    """julian-8897/conv-vae-pytorch#1 / nakosung/VQ-VAE#3: the decoder's last layer gives 30x30
    (the input is 28x28), and the latent heads are sized apart from each other."""

    def __init__(self) -> None:
        super().__init__()
        self.enc = nn.Sequential(nn.Conv2d(1, 8, 4, 2, 1), nn.ReLU(), nn.Conv2d(8, 16, 4, 2, 1), nn.Flatten())
        self.mu = nn.Linear(16 * 7 * 7, 20)
        self.logvar = nn.Linear(16 * 7 * 7, 16)
        self.fc = nn.Linear(20, 16 * 7 * 7)
        self.dec = nn.Sequential(
            nn.ConvTranspose2d(16, 8, 4, 2, 1), nn.ReLU(), nn.ConvTranspose2d(8, 1, 4, 2, 0)
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        h = self.enc(x)
        mu, logvar = self.mu(h), self.logvar(h)
        recon = self.dec(self.fc(mu).view(-1, 16, 7, 7))
        return recon, mu, logvar


def test_tuple_outputs_are_attributed_per_element() -> None:
    text = failure_text(VAE(), (2, 1, 28, 28), ("B x 1 x 28 x 28", "B x 20", "B x 20"))
    assert "output[0]: dims 2 and 3: last changed by dec.2 (ConvTranspose2d)" in text
    assert "padding=1) gives 28x28 (verified: the output is then [2, 1, 28, 28])" in text
    assert "output[2]: dim 1: last changed by logvar (Linear): out_features = 16" in text
    assert (
        "fix: nn.Linear(in_features=784, out_features=20) gives 20 (verified: the output is then [2, 20])"
        in text
    )
    assert "output[1]" not in text  # mu is right


def test_a_setting_that_gives_the_size_but_not_the_output_is_not_shown() -> None:
    # the size needed at the last conv cannot be had with its settings: no fix, plainly
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 8, 1))
    text = failure_text(model, (1, 3, 16, 16), "B x 8 x 40 x 40")
    assert "fix:" not in text
