"""LeNet-5 (LeCun et al., 1998) as an nn.Sequential, for 1x28x28 digits (MNIST).

How the shapes go, per image:

    1x28x28  --Conv2d(1, 6, 5, padding=2)-->  6x28x28   (28 + 2*2 - 5 + 1 = 28)
             --AvgPool2d(2)-->                6x14x14
             --Conv2d(6, 16, 5)-->           16x10x10   (14 - 5 + 1 = 10)
             --AvgPool2d(2)-->               16x5x5
             --Flatten()-->                   400       (16 * 5 * 5)
             --Linear(400, 120) -> Linear(120, 84) -> Linear(84, 10)

The one number people get wrong is the 400: the in_features of the first
Linear must equal channels * height * width of the last feature map.
"""

from __future__ import annotations

from torch import nn


def lenet5(classes: int = 10) -> nn.Sequential:
    """LeNet-5 with tanh activations and average pooling, as published."""
    return nn.Sequential(
        nn.Conv2d(1, 6, kernel_size=5, padding=2),
        nn.Tanh(),
        nn.AvgPool2d(2),
        nn.Conv2d(6, 16, kernel_size=5),
        nn.Tanh(),
        nn.AvgPool2d(2),
        nn.Flatten(),
        nn.Linear(16 * 5 * 5, 120),
        nn.Tanh(),
        nn.Linear(120, 84),
        nn.Tanh(),
        nn.Linear(84, classes),
    )
