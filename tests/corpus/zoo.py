"""Real model structures the tracer must handle, each with an input it accepts.

Every entry is ``name -> (factory, inputs)``; tests compare each traced record with
a plain forward observed through hooks registered by hand.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from benchmarks.models import Bottleneck

Pair = namedtuple("Pair", ["logits", "features"])


def lenet() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 6, 5),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(16 * 4 * 4, 120),
        nn.ReLU(),
        nn.Linear(120, 10),
    )


class Functional(nn.Module):
    """Functional ops between modules: F.relu, torch.flatten, view."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 16, 3, stride=2, padding=1)
        self.fc = nn.Linear(16 * 8 * 8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.conv1(x))
        x = F.max_pool2d(x, 2)
        x = F.relu(self.conv2(x))
        x = torch.flatten(x, 1)
        x = x.view(x.size(0), -1)
        return self.fc(x)


class Reused(nn.Module):
    """One activation and one conv called several times."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, padding=1)
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for _ in range(3):
            x = self.act(self.conv(x))
        return x


class Shared(nn.Module):
    """One module reachable under two names."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Conv2d(3, 3, 3, padding=1)
        self.again = self.encoder
        self.head = nn.Conv2d(3, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.again(self.encoder(x)))


class Tied(nn.Module):
    """An autoencoder whose decoder weight is the encoder's, transposed."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Linear(64, 16, bias=False)
        self.decoder = nn.Linear(16, 64, bias=False)
        self.decoder.weight = nn.Parameter(self.encoder.weight.t().contiguous())
        self.out = nn.Linear(16, 64)
        self.out.weight = self.decoder.weight  # tied: one tensor, two modules

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.encoder(x)
        return self.decoder(z) + self.out(z)


class Listed(nn.Module):
    """A ModuleList of conv blocks, looped over."""

    def __init__(self) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.Conv2d(c, c * 2, 3, padding=1), nn.BatchNorm2d(c * 2), nn.ReLU())
            for c in (3, 6, 12)
        )
        self.pool = nn.AdaptiveAvgPool2d(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = F.max_pool2d(block(x), 2)
        return self.pool(x).flatten(1)


class Branches(nn.Module):
    """A ModuleDict of heads, all applied."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3)
        self.heads = nn.ModuleDict(
            {
                "cls": nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 5)),
                "seg": nn.Conv2d(8, 2, 1),
            }
        )

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.stem(x)
        return {name: head(x) for name, head in self.heads.items()}


def deep_nesting(depth: int = 6) -> nn.Module:
    inner: nn.Module = nn.Conv2d(3, 3, 3, padding=1)
    for _ in range(depth):
        inner = nn.Sequential(inner, nn.ReLU())
    return inner


class TupleOut(nn.Module):
    """Returns a namedtuple, a plain tuple inside, and a non-tensor."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Conv2d(3, 4, 3)
        self.fc = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> tuple[Any, ...]:
        f = self.body(x)
        logits = self.fc(f.mean((2, 3)))
        return Pair(logits, (f, None)), "meta-info", 3


class TwoInputs(nn.Module):
    """Image and a side vector, fused."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)
        self.side = nn.Linear(10, 8)
        self.fc = nn.Linear(16, 2)

    def forward(self, image: torch.Tensor, extra: torch.Tensor) -> torch.Tensor:
        a = self.conv(image).mean((2, 3))
        b = self.side(extra)
        return self.fc(torch.cat([a, b], 1))


class KeywordBlock(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1)

    def forward(self, x: torch.Tensor, *, scale: torch.Tensor | None = None) -> torch.Tensor:
        y = self.conv(x)
        return y if scale is None else y * scale


class Keywords(nn.Module):
    """Inner modules called with keyword arguments."""

    def __init__(self) -> None:
        super().__init__()
        self.block = KeywordBlock()

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.block(x, scale=mask)


class InPlace(nn.Module):
    """In-place activations and an in-place residual add."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, padding=1)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act(self.conv(x))
        y += x
        return self.act(y)


def parameter_free() -> nn.Module:
    return nn.Sequential(nn.MaxPool2d(2), nn.AvgPool2d(2), nn.Dropout(0.3), nn.Flatten())


def small_resnet() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1, bias=False),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        Bottleneck(16, 8, stride=1),
        Bottleneck(32, 16, stride=2),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(64, 10),
    )


class TinyUNet(nn.Module):
    """Encoder, decoder, skip concatenations, transposed convs."""

    def __init__(self) -> None:
        super().__init__()
        self.down1 = nn.Conv2d(1, 8, 3, padding=1)
        self.down2 = nn.Conv2d(8, 16, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.up = nn.ConvTranspose2d(16, 8, 2, stride=2)
        self.fuse = nn.Conv2d(16, 8, 3, padding=1)
        self.out = nn.Conv2d(8, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s1 = F.relu(self.down1(x))
        b = F.relu(self.down2(self.pool(s1)))
        u = self.up(b)
        return self.out(F.relu(self.fuse(torch.cat([u, s1], dim=1))))


class Dynamic(nn.Module):
    """Branches on the input size: small inputs skip the second stage."""

    def __init__(self) -> None:
        super().__init__()
        self.stage1 = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.stage2 = nn.Conv2d(8, 8, 3, stride=2, padding=1)
        self.head = nn.Conv2d(8, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stage1(x)
        while x.shape[-1] > 8:
            x = self.stage2(x)
        return self.head(x)


class Lazy(nn.Module):
    """LazyLinear head: in_features inferred at the first call."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.MaxPool2d(2))
        self.head = nn.LazyLinear(10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).flatten(1))


class ListInput(nn.Module):
    """forward takes a list of feature maps (FPN style)."""

    def __init__(self) -> None:
        super().__init__()
        self.lateral = nn.ModuleList(nn.Conv2d(c, 8, 1) for c in (4, 8))

    def forward(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        return [conv(f) for conv, f in zip(self.lateral, feats, strict=True)]


def conv1d_net() -> nn.Module:
    return nn.Sequential(
        nn.Conv1d(2, 8, 5, padding=2),
        nn.BatchNorm1d(8),
        nn.ReLU(),
        nn.MaxPool1d(2),
        nn.Conv1d(8, 8, 3, dilation=2),
        nn.AdaptiveMaxPool1d(4),
        nn.Flatten(),
        nn.Linear(32, 3),
    )


def conv3d_net() -> nn.Module:
    return nn.Sequential(
        nn.Conv3d(1, 4, 3, padding=1),
        nn.BatchNorm3d(4),
        nn.ReLU(),
        nn.MaxPool3d(2),
        nn.Conv3d(4, 4, 3, stride=2),
        nn.Dropout3d(0.2),
        nn.AdaptiveAvgPool3d(1),
        nn.Flatten(),
    )


def regularized() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 8, 3),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Dropout2d(0.25),
        nn.Flatten(),
        nn.Dropout(0.5),
        nn.Linear(8 * 28 * 28, 4),
        nn.GroupNorm(2, 4),
    )


ZOO: dict[str, tuple[Callable[[], nn.Module], Any]] = {
    "lenet_sequential": (lenet, (2, 1, 28, 28)),
    "functional_ops": (Functional, (1, 3, 32, 32)),
    "reused_modules": (Reused, (1, 4, 8, 8)),
    "shared_module": (Shared, (1, 3, 16, 16)),
    "tied_weights": (Tied, (4, 64)),
    "module_list": (Listed, (2, 3, 32, 32)),
    "module_dict_dict_output": (Branches, (1, 3, 16, 16)),
    "deep_nesting": (deep_nesting, (1, 3, 8, 8)),
    "namedtuple_and_nontensor_output": (TupleOut, (2, 3, 12, 12)),
    "two_positional_inputs": (TwoInputs, [(2, 3, 16, 16), (2, 10)]),
    "keyword_inputs": (Keywords, {"x": (1, 3, 8, 8), "mask": (1, 3, 8, 8)}),
    "in_place_ops": (InPlace, (1, 4, 8, 8)),
    "parameter_free": (parameter_free, (1, 3, 16, 16)),
    "resnet_bottlenecks": (small_resnet, (2, 3, 32, 32)),
    "unet_skip_concat": (TinyUNet, (1, 1, 32, 32)),
    "dynamic_loop": (Dynamic, (1, 3, 64, 64)),
    "lazy_linear": (Lazy, (1, 3, 16, 16)),
    "list_input": (ListInput, [[(1, 4, 16, 16), (1, 8, 8, 8)]]),
    "conv1d": (conv1d_net, (2, 2, 40)),
    "conv3d": (conv3d_net, (2, 1, 16, 16, 16)),
    "regularized": (regularized, (2, 3, 30, 30)),
}
