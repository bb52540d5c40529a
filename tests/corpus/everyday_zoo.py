"""Models as people have them: lazy, wrapped, several inputs, plain-value arguments, token ids.

Re-created from public code: d2l.ai's lazy networks (LeNet, BatchNorm LeNet and
ResNet of "Dive into Deep Learning", built from ``nn.LazyConv2d`` and
``nn.LazyBatchNorm2d``), the conditional GAN of eriklindernoren/PyTorch-GAN
(``label_emb = nn.Embedding(n_classes, n_classes)``, ``forward(noise, labels)``),
Kim's (2014) sentence CNN on token ids, a multi-task network with
``forward(x, task="seg")``, an image-plus-metadata model fed a DataLoader-style
``[img, meta]`` batch, and the other lazy layer kinds (1d/3d convs, transposed
convs, instance norms).

Every ``Case`` gives the ``inputs`` written for ``trace`` (shape specs with
dtypes, ``Arg``) and ``reference``: the same inputs as real tensors and values,
for a plain CPU forward observed with hooks (``tests.helpers.observe``).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from pytest_cnnshape import Arg
from tests.corpus.zoo import lenet

# --- d2l.ai: lazy networks ------------------------------------------------------------


def d2l_lenet(num_classes: int = 10) -> nn.Module:
    """d2l 7.6: LeNet with every input size inferred."""
    return nn.Sequential(
        nn.LazyConv2d(6, kernel_size=5, padding=2),
        nn.Sigmoid(),
        nn.AvgPool2d(kernel_size=2, stride=2),
        nn.LazyConv2d(16, kernel_size=5),
        nn.Sigmoid(),
        nn.AvgPool2d(kernel_size=2, stride=2),
        nn.Flatten(),
        nn.LazyLinear(120),
        nn.Sigmoid(),
        nn.LazyLinear(84),
        nn.Sigmoid(),
        nn.LazyLinear(num_classes),
    )


def d2l_bn_lenet(num_classes: int = 10) -> nn.Module:
    """d2l 8.5: LeNet with lazy batch normalisation after every conv and linear layer."""
    return nn.Sequential(
        nn.LazyConv2d(6, kernel_size=5),
        nn.LazyBatchNorm2d(),
        nn.Sigmoid(),
        nn.AvgPool2d(kernel_size=2, stride=2),
        nn.LazyConv2d(16, kernel_size=5),
        nn.LazyBatchNorm2d(),
        nn.Sigmoid(),
        nn.AvgPool2d(kernel_size=2, stride=2),
        nn.Flatten(),
        nn.LazyLinear(120),
        nn.LazyBatchNorm1d(),
        nn.Sigmoid(),
        nn.LazyLinear(84),
        nn.LazyBatchNorm1d(),
        nn.Sigmoid(),
        nn.LazyLinear(num_classes),
    )


class Residual(nn.Module):
    """d2l 8.6: the residual block, lazy, with an optional 1x1 projection."""

    def __init__(self, num_channels: int, use_1x1conv: bool = False, strides: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.LazyConv2d(num_channels, kernel_size=3, padding=1, stride=strides)
        self.conv2 = nn.LazyConv2d(num_channels, kernel_size=3, padding=1)
        self.conv3 = nn.LazyConv2d(num_channels, kernel_size=1, stride=strides) if use_1x1conv else None
        self.bn1 = nn.LazyBatchNorm2d()
        self.bn2 = nn.LazyBatchNorm2d()

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        Y = F.relu(self.bn1(self.conv1(X)))
        Y = self.bn2(self.conv2(Y))
        if self.conv3 is not None:
            X = self.conv3(X)
        Y += X
        return F.relu(Y)


def d2l_resnet(num_classes: int = 10) -> nn.Module:
    """d2l 8.6's ResNet, two stages wide (the book's b1, then residual stages)."""
    b1 = nn.Sequential(
        nn.LazyConv2d(16, kernel_size=7, stride=2, padding=3),
        nn.LazyBatchNorm2d(),
        nn.ReLU(),
        nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
    )
    return nn.Sequential(
        b1,
        nn.Sequential(Residual(16), Residual(16)),
        nn.Sequential(Residual(32, use_1x1conv=True, strides=2), Residual(32)),
        nn.AdaptiveAvgPool2d((1, 1)),
        nn.Flatten(),
        nn.LazyLinear(num_classes),
    )


class LazySignal(nn.Module):
    """An audio encoder-decoder of lazy 1d layers: conv, batch and instance norm, transposed conv."""

    def __init__(self) -> None:
        super().__init__()
        self.encode = nn.Sequential(nn.LazyConv1d(8, 5, stride=2), nn.LazyBatchNorm1d(), nn.ReLU())
        self.norm = nn.LazyInstanceNorm1d(affine=True)
        self.decode = nn.LazyConvTranspose1d(2, 5, stride=2, output_padding=1)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        return self.decode(self.norm(self.encode(wave)))


class LazyVolume(nn.Module):
    """A 3d segmentation stub of lazy layers: conv, batch and instance norm, transposed conv."""

    def __init__(self) -> None:
        super().__init__()
        self.down = nn.Sequential(nn.LazyConv3d(4, 3, stride=2, padding=1), nn.LazyBatchNorm3d(), nn.ReLU())
        self.norm = nn.LazyInstanceNorm3d(affine=True, track_running_stats=True)
        self.up = nn.LazyConvTranspose3d(1, 2, stride=2)

    def forward(self, volume: torch.Tensor) -> torch.Tensor:
        return self.up(self.norm(self.down(volume)))


class LazyDecoder(nn.Module):
    """A DCGAN-style image decoder: a lazy linear stem, lazy transposed convs, lazy instance norm."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.LazyLinear(32 * 4 * 4)
        self.up = nn.Sequential(
            nn.LazyConvTranspose2d(16, 4, stride=2, padding=1),
            nn.LazyInstanceNorm2d(affine=True, track_running_stats=True),
            nn.ReLU(),
            nn.LazyConvTranspose2d(3, 4, stride=2, padding=1),
            nn.Tanh(),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.up(self.stem(z).view(-1, 32, 4, 4))


# --- PyTorch-GAN: a conditional GAN with label embeddings -----------------------------

IMG_SHAPE = (1, 28, 28)


class CGANGenerator(nn.Module):
    """eriklindernoren/PyTorch-GAN cgan.py's Generator: noise and a label embedding, concatenated."""

    def __init__(self, latent_dim: int = 100, n_classes: int = 10) -> None:
        super().__init__()
        self.label_emb = nn.Embedding(n_classes, n_classes)

        def block(in_feat: int, out_feat: int, normalize: bool = True) -> list[nn.Module]:
            layers: list[nn.Module] = [nn.Linear(in_feat, out_feat)]
            if normalize:
                layers.append(nn.BatchNorm1d(out_feat, 0.8))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
            return layers

        self.model = nn.Sequential(
            *block(latent_dim + n_classes, 128, normalize=False),
            *block(128, 256),
            *block(256, 512),
            nn.Linear(512, 1 * 28 * 28),
            nn.Tanh(),
        )

    def forward(self, noise: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        gen_input = torch.cat((self.label_emb(labels), noise), -1)
        img = self.model(gen_input)
        return img.view(img.size(0), *IMG_SHAPE)


class CGANDiscriminator(nn.Module):
    """PyTorch-GAN cgan.py's Discriminator: the flattened image and the label embedding."""

    def __init__(self, n_classes: int = 10) -> None:
        super().__init__()
        self.label_embedding = nn.Embedding(n_classes, n_classes)
        self.model = nn.Sequential(
            nn.Linear(n_classes + 28 * 28, 512),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Linear(512, 512),
            nn.Dropout(0.4),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Linear(512, 1),
        )

    def forward(self, img: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        d_in = torch.cat((img.view(img.size(0), -1), self.label_embedding(labels)), -1)
        return self.model(d_in)


# --- Kim (2014): a CNN over token ids ------------------------------------------------


class KimCNN(nn.Module):
    """Sentence classification: embeddings, convolutions of widths 3/4/5, max over time, dropout."""

    def __init__(self, vocab: int = 5000, dim: int = 64, filters: int = 32, classes: int = 2) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab, dim, padding_idx=0)
        self.convs = nn.ModuleList(nn.Conv1d(dim, filters, k) for k in (3, 4, 5))
        self.dropout = nn.Dropout(0.5)
        self.fc = nn.Linear(3 * filters, classes)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.embedding(tokens).transpose(1, 2)
        pooled = [F.relu(conv(x)).max(dim=2).values for conv in self.convs]
        return self.fc(self.dropout(torch.cat(pooled, dim=1)))


# --- several inputs, plain-value arguments ---------------------------------------------


class MultiTask(nn.Module):
    """A shared encoder with a head per task, chosen by ``forward(x, task="seg")``."""

    def __init__(self, classes: int = 5) -> None:
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1),
            nn.ReLU(),
        )
        self.heads = nn.ModuleDict(
            {
                "seg": nn.Sequential(nn.Conv2d(32, classes, 1), nn.Upsample(scale_factor=2)),
                "cls": nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, classes)),
            }
        )

    def forward(self, x: torch.Tensor, task: str = "seg") -> torch.Tensor:
        return self.heads[task](self.encoder(x))


class ImageWithMetadata(nn.Module):
    """An image CNN and a metadata MLP fused (melanoma/petfinder style): ``forward(img, meta)``."""

    def __init__(self, meta_features: int = 9) -> None:
        super().__init__()
        self.cnn = nn.Sequential(
            nn.Conv2d(3, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.AdaptiveAvgPool2d(1)
        )
        self.meta = nn.Sequential(nn.Linear(meta_features, 16), nn.ReLU())
        self.head = nn.Linear(32, 1)

    def forward(self, img: torch.Tensor, meta: torch.Tensor) -> torch.Tensor:
        return self.head(torch.cat([self.cnn(img).flatten(1), self.meta(meta)], dim=1))


class Mode(enum.Enum):
    FAST = "fast"
    FULL = "full"


class Refiner(nn.Module):
    """Plain values of every kind as forward arguments: int, bool, None, float, an enum, a dict."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.step = nn.Conv2d(8, 8, 3, padding=1)
        self.out = nn.Conv2d(8, 2, 1)

    def forward(
        self,
        x: torch.Tensor,
        steps: int = 1,
        return_features: bool = False,
        mask: torch.Tensor | None = None,
        scale: float = 1.0,
        mode: Mode = Mode.FULL,
        options: dict[str, Any] | None = None,
    ) -> Any:
        y = self.stem(x) * scale
        for _ in range(steps if mode is Mode.FULL else 1):
            y = F.relu(self.step(y))
        if mask is not None:
            y = y * mask
        if options and options.get("pool"):
            y = F.avg_pool2d(y, options["pool"])
        out = self.out(y)
        return (out, y) if return_features else out


class Picky(nn.Module):
    """A check of the user's own that raises: no shape fix, and no trace to show."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        if y.shape[-1] % 2:
            raise ValueError("this model wants even widths")
        return y


# --- the corpus --------------------------------------------------------------------------


def _labels(n: int, classes: int = 10) -> torch.Tensor:
    return torch.arange(n) % classes


def _tokens(b: int, length: int, vocab: int = 5000) -> torch.Tensor:
    return (torch.arange(b * length).view(b, length) * 37) % vocab


@dataclass(frozen=True)
class Case:
    """A model, the inputs for ``trace``, and the same inputs for a plain forward."""

    factory: Callable[[], nn.Module]
    inputs: Any
    #: Real tensors and values for ``tests.helpers.observe`` (a list: positional, a dict: keywords).
    reference: Callable[[], Any]


CORPUS: dict[str, Case] = {
    # lazy
    "d2l_lenet": Case(d2l_lenet, "2x1x28x28", lambda: [torch.randn(2, 1, 28, 28)]),
    "d2l_bn_lenet": Case(d2l_bn_lenet, (4, 1, 28, 28), lambda: [torch.randn(4, 1, 28, 28)]),
    "d2l_resnet": Case(d2l_resnet, "2x1x64x64", lambda: [torch.randn(2, 1, 64, 64)]),
    "lazy_signal": Case(LazySignal, "2x1x64", lambda: [torch.randn(2, 1, 64)]),
    "lazy_volume": Case(LazyVolume, "1x1x8x16x16", lambda: [torch.randn(1, 1, 8, 16, 16)]),
    "lazy_decoder": Case(LazyDecoder, (2, 100), lambda: [torch.randn(2, 100)]),
    # token ids and class labels
    "cgan_generator": Case(CGANGenerator, [(8, 100), "8:long"], lambda: [torch.randn(8, 100), _labels(8)]),
    "cgan_discriminator": Case(
        CGANDiscriminator,
        {"img": "8x1x28x28", "labels": "8:int64"},
        lambda: {"img": torch.randn(8, 1, 28, 28), "labels": _labels(8)},
    ),
    "kim_cnn": Case(KimCNN, "4x60:long", lambda: [_tokens(4, 60)]),
    # several inputs, plain values
    "multitask_seg": Case(
        MultiTask,
        {"x": "2x3x32x32", "task": Arg("seg")},
        lambda: {"x": torch.randn(2, 3, 32, 32), "task": "seg"},
    ),
    "multitask_cls": Case(
        MultiTask, [(2, 3, 32, 32), Arg("cls")], lambda: [torch.randn(2, 3, 32, 32), "cls"]
    ),
    "image_with_metadata_batch": Case(
        ImageWithMetadata,
        [torch.randn(4, 3, 32, 32), torch.randn(4, 9)],  # what a DataLoader yields: [img, meta]
        lambda: [torch.randn(4, 3, 32, 32), torch.randn(4, 9)],
    ),
    "refiner_plain_values": Case(
        Refiner,
        [(1, 3, 16, 16), 3, True, None, 0.5, Mode.FULL, {"pool": 2}],
        lambda: [torch.randn(1, 3, 16, 16), 3, True, None, 0.5, Mode.FULL, {"pool": 2}],
    ),
    "refiner_keywords": Case(
        Refiner,
        {"x": "1x3x16x16", "steps": 2, "mask": "1x8x16x16", "mode": Mode.FAST, "options": Arg({"pool": 4})},
        lambda: {
            "x": torch.randn(1, 3, 16, 16),
            "steps": 2,
            "mask": torch.randn(1, 8, 16, 16),
            "mode": Mode.FAST,
            "options": {"pool": 4},
        },
    ),
}

#: How a model is wrapped before it is traced; each takes the eager model and an example input.
WRAPPERS: dict[str, Callable[[nn.Module, torch.Tensor], nn.Module]] = {
    "compiled": lambda model, x: torch.compile(model),
    "data_parallel": lambda model, x: nn.DataParallel(model),
    "compiled_data_parallel": lambda model, x: torch.compile(nn.DataParallel(model)),
    "scripted": lambda model, x: torch.jit.script(model),
    "jit_traced": torch.jit.trace,
}

#: Eager models the wrappers are tried on, with an input.
WRAPPED: dict[str, tuple[Callable[[], nn.Module], tuple[int, ...]]] = {
    "lenet": (lenet, (2, 1, 28, 28)),
    "conv_bn": (lambda: nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU()), (2, 3, 16, 16)),
}
