"""A VGG-style network for 32x32 RGB images (CIFAR-10), and how it is regularized.

Shapes: three stages of two 3x3 convs (padding 1 keeps the size) and a 2x2 max
pool (halves it): 32 -> 16 -> 8 -> 4, with 32, 64, 128 channels; the classifier
then sees 128 * 4 * 4 = 2048 features. ``nn.AdaptiveAvgPool2d(4)`` before the
flatten does nothing at 32x32 (the map is 4x4 already) and keeps those 2048 for
any other input size, so the Linear is never sized for one image size only.

Regularization, each for a reason a linter can check:

* convs feed BatchNorm, so they have no bias (BatchNorm's own shift replaces it);
* ``Dropout2d`` on the feature maps drops whole channels (neighbouring pixels are
  too correlated for element-wise dropout to regularize);
* plain ``Dropout`` in the classifier, on flat features;
* weight decay only on conv and linear weights, never on biases or BatchNorm
  parameters, with AdamW, where the decay is decoupled from the gradient.
"""

from __future__ import annotations

import torch
from torch import nn


def conv_block(cin: int, cout: int, drop: float) -> nn.Sequential:
    """conv-BN-ReLU twice, 2x2 max pool, channel dropout: (N, cin, H, W) -> (N, cout, H/2, W/2)."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
        nn.Dropout2d(drop),
    )


class VGGStyle(nn.Module):
    def __init__(self, classes: int = 10, widths: tuple[int, ...] = (32, 64, 128)) -> None:
        super().__init__()
        blocks, cin, drops = [], 3, (0.1, 0.2, 0.3)  # more dropout deeper, where maps are smaller
        for i, width in enumerate(widths):
            blocks.append(conv_block(cin, width, drop=drops[i]))
            cin = width
        self.features = nn.Sequential(*blocks)
        self.classifier = nn.Sequential(
            nn.AdaptiveAvgPool2d(4),
            nn.Flatten(),
            nn.Linear(cin * 4 * 4, 256),
            nn.ReLU(inplace=True),
            nn.Dropout(0.5),
            nn.Linear(256, classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def make_optimizer(model: nn.Module, lr: float = 1e-3, weight_decay: float = 5e-4) -> torch.optim.AdamW:
    """AdamW with weight decay on weights (ndim > 1) only: biases and BatchNorm stay undecayed."""
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    return torch.optim.AdamW(
        [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}], lr=lr
    )
