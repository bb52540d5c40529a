"""A small ResNet for 3-channel images of any size.

Shapes to notice:

* a BasicBlock keeps its input for the shortcut; when the block halves the map
  (stride 2) or changes the channels, the shortcut needs the same change: a 1x1
  conv with that stride (``downsample``), or ``out + x`` fails;
* one ReLU module is reused by every block (its rows in the table say ``call 2``,
  ``call 3``...): a module is a function, calling it twice is fine;
* ``nn.AdaptiveAvgPool2d(1)`` before the classifier gives 1x1 whatever the input
  size, so the Linear's in_features (the last stage's channels) never depends on
  the image size: the model works for any input of at least 1x1... until the
  stride-2 stages run out of pixels. ``test_resnet.py`` checks that contract for
  hundreds of sizes.
"""

from __future__ import annotations

import torch
from torch import nn


class BasicBlock(nn.Module):
    """Two 3x3 convs and a shortcut; stride 2 on the first conv halves the map."""

    def __init__(self, cin: int, cout: int, stride: int, act: nn.Module) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.act = act  # shared with the other blocks
        self.downsample: nn.Module | None = None
        if stride != 1 or cin != cout:
            # the shortcut must change the map exactly as the branch does
            self.downsample = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.act(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.act(out + identity)


class ResNet(nn.Module):
    """Stem, three stages (the last two halve the map), global pooling, classifier."""

    def __init__(self, classes: int = 10, widths: tuple[int, ...] = (16, 32, 64)) -> None:
        super().__init__()
        self.act = nn.ReLU()
        self.stem = nn.Sequential(
            nn.Conv2d(3, widths[0], 3, padding=1, bias=False), nn.BatchNorm2d(widths[0])
        )
        blocks, cin = [], widths[0]
        for i, width in enumerate(widths):
            stride = 1 if i == 0 else 2
            blocks += [BasicBlock(cin, width, stride, self.act), BasicBlock(width, width, 1, self.act)]
            cin = width
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.act(self.stem(x)))
        return self.fc(torch.flatten(self.pool(x), 1))
