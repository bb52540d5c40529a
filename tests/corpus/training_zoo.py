"""CNNs as public sources write them, for checking the training-memory estimate.

Each entry is ``name -> (factory, input shape)``; ``tests/inspection/test_memory.py``
trains each for one step on the CPU and compares what autograd saved with the
estimate of a meta pass. The list covers what changes the saved tensors:
BatchNorm and Dropout, residual adds with in-place ReLU, max-pool indices, skip
concatenations, bilinear and nearest upsampling, padding, log-softmax heads.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from benchmarks.models import resnet50
from pytest_cnnshape.tracing.factory import build_model
from tests.corpus.zoo import TinyUNet, small_resnet

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


class MnistNet(nn.Module):
    """pytorch/examples ``mnist/main.py``: two convs, max-pool, Dropout(0.25/0.5), log_softmax."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, 1)
        self.conv2 = nn.Conv2d(32, 64, 3, 1)
        self.dropout1 = nn.Dropout(0.25)
        self.dropout2 = nn.Dropout(0.5)
        self.fc1 = nn.Linear(9216, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        x = F.max_pool2d(x, 2)
        x = self.dropout1(x)
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = self.dropout2(x)
        return F.log_softmax(self.fc2(x), dim=1)


class DoubleConv(nn.Module):
    """milesial/Pytorch-UNet ``unet_parts.py``: (conv => BN => ReLU) * 2, the ReLUs in place."""

    def __init__(self, cin: int, cout: int, mid: int | None = None) -> None:
        super().__init__()
        mid = mid or cout
        self.double_conv = nn.Sequential(
            nn.Conv2d(cin, mid, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(mid),
            nn.ReLU(inplace=True),
            nn.Conv2d(mid, cout, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.double_conv(x)


class Down(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.maxpool_conv = nn.Sequential(nn.MaxPool2d(2), DoubleConv(cin, cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.maxpool_conv(x)


class Up(nn.Module):
    """Bilinear upsampling, padding to the skip's size, concatenation, DoubleConv."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.up = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True)
        self.conv = DoubleConv(cin, cout, cin // 2)

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        x1 = self.up(x1)
        dy, dx = x2.size()[2] - x1.size()[2], x2.size()[3] - x1.size()[3]
        x1 = F.pad(x1, [dx // 2, dx - dx // 2, dy // 2, dy - dy // 2])
        return self.conv(torch.cat([x2, x1], dim=1))


class BilinearUNet(nn.Module):
    """milesial/Pytorch-UNet ``UNet(n_channels, n_classes, bilinear=True)``, narrower (base width 8)."""

    def __init__(self, n_channels: int = 3, n_classes: int = 2, width: int = 8) -> None:
        super().__init__()
        w = width
        self.inc = DoubleConv(n_channels, w)
        self.down1, self.down2 = Down(w, 2 * w), Down(2 * w, 4 * w)
        self.down3, self.down4 = Down(4 * w, 8 * w), Down(8 * w, 8 * w)
        self.up1, self.up2 = Up(16 * w, 4 * w), Up(8 * w, 2 * w)
        self.up3, self.up4 = Up(4 * w, w), Up(2 * w, w)
        self.outc = nn.Conv2d(w, n_classes, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.inc(x)
        x2 = self.down1(x1)
        x3 = self.down2(x2)
        x4 = self.down3(x3)
        x5 = self.down4(x4)
        x = self.up1(x5, x4)
        x = self.up2(x, x3)
        x = self.up3(x, x2)
        x = self.up4(x, x1)
        return self.outc(x)


class NearestUNet(nn.Module):
    """A decoder written with functional calls: F.interpolate (nearest), torch.cat, F.relu_."""

    def __init__(self) -> None:
        super().__init__()
        self.enc1 = nn.Conv2d(3, 8, 3, padding=1)
        self.enc2 = nn.Conv2d(8, 16, 3, padding=1)
        self.dec = nn.Conv2d(24, 8, 3, padding=1)
        self.head = nn.Conv2d(8, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = F.relu_(self.enc1(x))
        y = F.relu_(self.enc2(F.max_pool2d(s, 2)))
        y = F.interpolate(y, scale_factor=2, mode="nearest")
        y = F.relu_(self.dec(torch.cat([y, s], dim=1)))
        return torch.sigmoid(self.head(y))


def _example(spec: str) -> Callable[[], nn.Module]:
    """A model of one of the example projects, ``"vgg_style/vgg.py:VGGStyle"``."""
    return lambda: build_model(f"{EXAMPLES}/{spec}")


TRAINING_ZOO: dict[str, tuple[Callable[[], nn.Module], tuple[int, ...]]] = {
    "mnist-net (Dropout, max-pool, log_softmax)": (MnistNet, (4, 1, 28, 28)),
    "vgg_style example (BatchNorm, in-place ReLU, Dropout2d)": (
        _example("vgg_style/vgg.py:VGGStyle"),
        (4, 3, 32, 32),
    ),
    "resnet_style example (residual adds, shared ReLU)": (
        _example("resnet_style/resnet.py:ResNet"),
        (4, 3, 32, 32),
    ),
    "bottleneck resnet (in-place ReLU after the add)": (small_resnet, (4, 3, 32, 32)),
    "resnet-50 (benchmarks/models.py)": (resnet50, (1, 3, 64, 64)),
    "unet_style example (cat, transposed convs)": (_example("unet_style/unet.py:UNet"), (2, 1, 64, 64)),
    "milesial unet (bilinear upsample, pad, cat)": (BilinearUNet, (2, 3, 64, 64)),
    "nearest unet (F.interpolate, F.relu_, sigmoid)": (NearestUNet, (2, 3, 32, 32)),
    "tiny unet (zoo)": (TinyUNet, (2, 1, 32, 32)),
    "lenet example (tanh, avg-pool)": (_example("lenet/lenet.py:lenet5"), (8, 1, 28, 28)),
}
