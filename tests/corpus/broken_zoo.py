"""Broken CNNs, one classic mistake each, with what their diagnosis must say.

Every case names the failure kind, the layer (or the line of forward() code), the
shape that layer received, a piece of the fix that carries the right number, what
kind of change that fix is (``layer``, ``input``, ``code``) and where the mistake
was seen in public (``origin``). The diagnostics tests run each on meta and on
CPU, and apply the fix shown: the model must then run, on meta and on CPU.
``field_zoo`` holds the larger corpus re-created from public issue threads.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class Broken:
    factory: Callable[[], nn.Module]
    inputs: Any
    kind: str
    layer: str
    received: tuple[int, ...]
    fix: str | None  # a piece of the fix; None: no fix verifies
    source: str | None = None  # a piece of the user's line, when the failure is in forward()
    facts: dict[str, Any] = field(default_factory=dict)
    #: What the fix changes: "layer", "input" or "code" (None when there is no fix).
    fix_kind: str | None = "layer"
    #: Where this mistake was seen: an issue thread, a tutorial, a paper's code.
    origin: str = ""
    #: The kind of the alternative fix that must be shown too (None: none required).
    alternative: str | None = None
    #: Trace in training mode (BatchNorm with a batch of one).
    train: bool = False
    #: The fix gets the model to its output (False: only past this failure, to a second one).
    complete: bool = True


# --- Linear -------------------------------------------------------------------------


class FlattenThenFc(nn.Module):
    """in_features computed for 32x32 inputs, fed 28x28 ones."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(16, 32, 3), nn.ReLU(), nn.MaxPool2d(2)
        )
        self.fc = nn.Linear(32 * 6 * 6, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(self.features(x), 1)
        return self.fc(x)


def sequential_in_features() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(512, 10))


def unflattened() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Linear(8, 10))


def flatten_start_dim() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(3), nn.Flatten(0), nn.Linear(36, 5))


class ViewFoldsBatch(nn.Module):
    """view(-1, 100) turns a batch of 2 with 400 features each into 8 rows."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 16, 5)
        self.pool = nn.AdaptiveMaxPool2d(5)
        self.fc = nn.Linear(400, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.conv(x))
        x = x.view(-1, 100)
        return self.fc(x)


# --- Convolutions --------------------------------------------------------------------


def rgb_model() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 16, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10)
    )


class WrongPreviousChannels(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 64, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(F.relu(self.conv1(x)))


def gray_model() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 8, 3), nn.ReLU(), nn.Conv2d(8, 8, 3))


def conv1d_model() -> nn.Module:
    return nn.Sequential(nn.Conv1d(2, 8, 5), nn.ReLU(), nn.AdaptiveAvgPool1d(1))


def depthwise() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 16, 1), nn.Conv2d(32, 32, 3, groups=32, padding=1))


def conv3d_channels() -> nn.Module:
    return nn.Sequential(nn.Conv3d(1, 4, 3), nn.Conv3d(8, 8, 3))


def transposed_channels() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 8, 3, stride=2), nn.ConvTranspose2d(16, 8, 2, stride=2))


def video_frames() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 8, 3))


# --- Normalisation -------------------------------------------------------------------


def bn_features() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 32, 3), nn.BatchNorm2d(16), nn.ReLU())


def bn2d_in_head() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 8, 3),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 64),
        nn.BatchNorm2d(64),
        nn.ReLU(),
        nn.Linear(64, 10),
    )


def bn1d_sequence() -> nn.Module:
    return nn.Sequential(nn.Linear(32, 64), nn.BatchNorm1d(64))


def bn1d_on_map() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm1d(8))


def unbatched_until_bn() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.BatchNorm2d(8))


def groupnorm_groups() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 18, 3), nn.GroupNorm(4, 16))


def layernorm_on_map() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 32, 3), nn.LayerNorm(32))


def layernorm_shape() -> nn.Module:
    return nn.Sequential(nn.Linear(16, 32), nn.LayerNorm(64))


# --- Sizes -----------------------------------------------------------------------------


def lenet() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 6, 5),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.LazyLinear(10),
    )


def five_pools() -> nn.Module:
    return nn.Sequential(*(m for _ in range(5) for m in (nn.Conv2d(4, 4, 3, padding=1), nn.MaxPool2d(2))))


def signal_stack() -> nn.Module:
    return nn.Sequential(nn.Conv1d(1, 8, 9), nn.MaxPool1d(4), nn.Conv1d(8, 8, 9), nn.MaxPool1d(4))


def volume_stack() -> nn.Module:
    return nn.Sequential(nn.Conv3d(1, 4, 3), nn.MaxPool3d(2), nn.Conv3d(4, 4, 3), nn.AvgPool3d(2))


def pool_padding() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.MaxPool2d(2, padding=2))


# --- forward() code: cat, residual adds, views ----------------------------------------------


class UNet2(nn.Module):
    """Two poolings deep: input sides must be multiples of 4."""

    def __init__(self) -> None:
        super().__init__()
        self.enc1 = nn.Conv2d(1, 8, 3, padding=1)
        self.enc2 = nn.Conv2d(8, 16, 3, padding=1)
        self.bottom = nn.Conv2d(16, 32, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.up2 = nn.ConvTranspose2d(32, 16, 2, stride=2)
        self.dec2 = nn.Conv2d(32, 16, 3, padding=1)
        self.up1 = nn.ConvTranspose2d(16, 8, 2, stride=2)
        self.dec1 = nn.Conv2d(16, 8, 3, padding=1)
        self.head = nn.Conv2d(8, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s1 = self.enc1(x)
        s2 = self.enc2(self.pool(s1))
        b = self.bottom(self.pool(s2))
        d2 = self.dec2(torch.cat([self.up2(b), s2], dim=1))
        d1 = self.dec1(torch.cat([self.up1(d2), s1], dim=1))
        return self.head(d1)


class UNetPop(UNet2):
    """The skips kept in a list and popped: the popped map is not in the frame any more."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = [self.enc1(x)]
        skips.append(self.enc2(self.pool(skips[-1])))
        y = self.bottom(self.pool(skips[-1]))
        for up, fuse in ((self.up2, self.dec2), (self.up1, self.dec1)):
            y = fuse(torch.cat([up(y), skips.pop()], dim=1))
        return self.head(y)


class StridedBlock(nn.Module):
    """A residual block whose branch downsamples and whose shortcut does not."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(16, 16, 3, stride=2, padding=1)
        self.bn1 = nn.BatchNorm2d(16)
        self.conv2 = nn.Conv2d(16, 16, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv2(F.relu(self.bn1(self.conv1(x))))
        return F.relu(out + x)


class WideningBlock(nn.Module):
    """A residual block that doubles the channels without a projection shortcut."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(16, 32, 3, padding=1)
        self.conv2 = nn.Conv2d(32, 32, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x
        out = self.conv2(F.relu(self.conv1(x)))
        out += identity
        return out


def resnet_stage() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), StridedBlock())


class ViewWrongSize(nn.Module):
    """view(-1, 16 * 4 * 4) written for 32x32 inputs."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 16, 5), nn.MaxPool2d(2), nn.Conv2d(16, 16, 5), nn.MaxPool2d(2)
        )
        self.fc = nn.Linear(16 * 4 * 4, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        x = x.view(-1, 16 * 4 * 4)
        return self.fc(x)


class ViewAfterPermute(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x).permute(0, 2, 3, 1)
        return y.view(y.size(0), -1)


class TextCNN(nn.Module):
    """Kim (2014) sentence CNN: token ids -> Embedding -> Conv1d per width -> max over time."""

    def __init__(self, vocab: int = 1000, dim: int = 32, widths: tuple[int, ...] = (3, 4, 5)) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.convs = nn.ModuleList(nn.Conv1d(dim, 16, w) for w in widths)
        self.fc = nn.Linear(16 * len(widths), 2)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.embed(tokens).transpose(1, 2)
        return self.fc(torch.cat([conv(x).amax(2) for conv in self.convs], 1))


class OneHotGenerator(nn.Module):
    """A conditional generator that one-hot encodes its class labels (cGAN style)."""

    def __init__(self, latent: int = 100, classes: int = 10) -> None:
        super().__init__()
        self.classes = classes
        self.net = nn.Sequential(nn.Linear(latent + classes, 256), nn.ReLU(), nn.Linear(256, 784), nn.Tanh())

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        c = F.one_hot(labels, self.classes).to(z.dtype)
        return self.net(torch.cat([z, c], 1)).view(-1, 1, 28, 28)


def float64_input() -> torch.Tensor:
    return torch.zeros(1, 3, 16, 16, dtype=torch.float64)


CORPUS: dict[str, Broken] = {
    # Linear
    "linear_after_torch_flatten": Broken(
        FlattenThenFc,
        (1, 1, 28, 28),
        "linear_in_features",
        "fc",
        (1, 800),
        "in_features=800",
        "return self.fc(x)",
        {"in_features": 800},
        fix_kind="layer",
        origin="https://androidkt.com/fix-runtimeerror-mat1-and-mat2-shapes-cannot-be-multiplied/",
    ),
    "linear_in_sequential": Broken(
        sequential_in_features,
        (2, 3, 32, 32),
        "linear_in_features",
        "3",
        (2, 1800),
        "nn.Linear(in_features=1800, out_features=10)",
        fix_kind="layer",
        origin="https://github.com/MaitreChen/openvino-lenet-sample/issues/1",
    ),
    "linear_unflattened_map": Broken(
        unflattened,
        (2, 3, 16, 16),
        "linear_unflattened",
        "3",
        (2, 8, 2, 2),
        "in_features=32",
        fix_kind="layer",
        origin="https://scientyficworld.org/fix-hidden-layer-shape-mismatches-in-pytorch/",
    ),
    "flatten_wrong_start_dim": Broken(
        flatten_start_dim,
        (2, 3, 8, 8),
        "flatten_start_dim",
        "3",
        (72,),
        "nn.Flatten(start_dim=1)",
        fix_kind="layer",
        origin="https://scientyficworld.org/fix-hidden-layer-shape-mismatches-in-pytorch/",
    ),
    "view_folds_batch_into_linear": Broken(
        ViewFoldsBatch,
        (2, 1, 16, 16),
        "view_batch_fold",
        "fc",
        (8, 100),
        "x = torch.flatten(x, 1)",
        "return self.fc(x)",
        fix_kind="code",
        origin="https://github.com/pytorch/pytorch/issues/38469",
    ),
    # Convolutions
    "grayscale_into_rgb": Broken(
        rgb_model,
        (4, 1, 32, 32),
        "conv_in_channels",
        "0",
        (4, 1, 32, 32),
        "in_channels=1, out_channels=16",
        fix_kind="layer",
        origin="https://github.com/lucidrains/vit-pytorch/issues/54",
    ),
    "wrong_previous_out_channels": Broken(
        WrongPreviousChannels,
        (1, 3, 8, 8),
        "conv_in_channels",
        "conv2",
        (1, 32, 8, 8),
        "in_channels=32",
        "return self.conv2(F.relu(self.conv1(x)))",
        fix_kind="layer",
        origin="https://github.com/pytorch/pytorch/issues/9076",
    ),
    "channels_last_image": Broken(
        rgb_model,
        (2, 32, 32, 3),
        "channels_last",
        "0",
        (2, 32, 32, 3),
        "x.permute(0, 3, 1, 2)",
        fix_kind="input",
        origin="https://github.com/isl-org/MiDaS/issues/79",
    ),
    "conv1d_given_nlc": Broken(
        conv1d_model,
        (8, 100, 2),
        "channels_last",
        "0",
        (8, 100, 2),
        "x.transpose(1, 2)",
        fix_kind="input",
        origin="https://github.com/locuslab/TCN/issues/62",
    ),
    "missing_channel_axis": Broken(
        gray_model,
        (8, 28, 28),
        "missing_channel_axis",
        "0",
        (8, 28, 28),
        "x.unsqueeze(1)",
        fix_kind="input",
        origin="https://github.com/jbohnslav/opencv_transforms/issues/6",
    ),
    "depthwise_groups": Broken(
        depthwise,
        (1, 3, 8, 8),
        "conv_in_channels",
        "1",
        (1, 16, 8, 8),
        "in_channels=16, out_channels=16, kernel_size=3, padding=1, groups=16",
        fix_kind="layer",
        origin="https://github.com/TheStageAI/TorchIntegral/issues/31",
    ),
    "conv3d_in_channels": Broken(
        conv3d_channels,
        (1, 1, 8, 8, 8),
        "conv_in_channels",
        "1",
        (1, 4, 6, 6, 6),
        "in_channels=4",
        fix_kind="layer",
        origin="https://github.com/facebookarchive/C3D/issues/284",
    ),
    "conv_transpose_in_channels": Broken(
        transposed_channels,
        (1, 3, 16, 16),
        "conv_in_channels",
        "1",
        (1, 8, 7, 7),
        "in_channels=8",
        fix_kind="layer",
        origin="https://github.com/pytorch/examples/issues/486",
    ),
    "video_frames_into_conv2d": Broken(
        video_frames,
        (2, 5, 3, 16, 16),
        "conv_extra_axis",
        "0",
        (2, 5, 3, 16, 16),
        "x.flatten(0, 1)",
        fix_kind="input",
        origin="https://github.com/mit-han-lab/temporal-shift-module/issues/212",
    ),
    # Normalisation
    "batchnorm_num_features": Broken(
        bn_features,
        (2, 3, 8, 8),
        "norm_num_features",
        "1",
        (2, 32, 6, 6),
        "num_features=32",
        fix_kind="layer",
        origin="https://github.com/XPFly1989/FCRN/issues/3",
    ),
    "batchnorm2d_in_linear_head": Broken(
        bn2d_in_head,
        (2, 3, 8, 8),
        "norm_rank",
        "4",
        (2, 64),
        "nn.BatchNorm1d(64)",
        fix_kind="layer",
        origin="https://github.com/pytorch/pytorch/issues/13223",
    ),
    "batchnorm1d_on_nlc_sequence": Broken(
        bn1d_sequence,
        (8, 100, 32),
        "batchnorm_channels_last",
        "1",
        (8, 100, 64),
        "nn.LayerNorm(64)",
        fix_kind="layer",
        origin="https://github.com/ruotianluo/self-critical.pytorch/issues/44",
    ),
    "batchnorm1d_on_feature_map": Broken(
        bn1d_on_map,
        (2, 3, 8, 8),
        "norm_rank",
        "1",
        (2, 8, 6, 6),
        "nn.BatchNorm2d(8)",
        fix_kind="layer",
        origin="https://github.com/es-ude/elastic-ai.creator/issues/304",
    ),
    "missing_batch_axis": Broken(
        unbatched_until_bn,
        (3, 32, 32),
        "missing_batch_axis",
        "2",
        (8, 30, 30),
        "x.unsqueeze(0)",
        facts={"fixed_shape": [1, 3, 32, 32]},
        fix_kind="input",
        origin="https://github.com/jbohnslav/opencv_transforms/issues/6",
    ),
    "groupnorm_channels": Broken(
        groupnorm_groups,
        (1, 3, 8, 8),
        "groupnorm_channels",
        "1",
        (1, 18, 6, 6),
        "num_groups=3, num_channels=18",
        fix_kind="layer",
        origin="https://github.com/pytorch/pytorch/issues/72821",
    ),
    "layernorm_on_conv_map": Broken(
        layernorm_on_map,
        (2, 3, 8, 8),
        "layernorm_channels",
        "1",
        (2, 32, 6, 6),
        "nn.GroupNorm(1, 32)",
        fix_kind="layer",
        origin="https://github.com/huggingface/pytorch-image-models/pull/1930",
    ),
    "layernorm_wrong_shape": Broken(
        layernorm_shape,
        (4, 16),
        "layernorm_shape",
        "1",
        (4, 32),
        "normalized_shape=32",
        fix_kind="layer",
        origin="https://github.com/Lasagne/Lasagne/issues/668",
    ),
    # Sizes
    "lenet_input_too_small": Broken(
        lenet,
        (1, 1, 12, 12),
        "input_too_small",
        "3",
        (1, 6, 4, 4),
        "1x1x16x16",
        facts={"min_side": 16},
        fix_kind="input",
        origin="https://github.com/pytorch/pytorch/issues/38469",
    ),
    "five_pools_on_16x16": Broken(
        five_pools,
        (1, 4, 16, 16),
        "input_too_small",
        "9",
        (1, 4, 1, 1),
        "1x4x32x32",
        facts={"min_side": 32},
        fix_kind="input",
        origin="https://github.com/creafz/pytorch-cnn-finetune/issues/4",
    ),
    "signal_too_short": Broken(
        signal_stack,
        (1, 1, 40),
        "input_too_small",
        "2",
        (1, 8, 8),
        "1x1x56",
        facts={"min_side": 56},
        fix_kind="input",
        origin="https://github.com/locuslab/TCN/issues/35",
    ),
    "volume_too_small": Broken(
        volume_stack,
        (1, 1, 8, 8, 8),
        "input_too_small",
        "3",
        (1, 4, 1, 1, 1),
        "1x1x10x10x10",
        facts={"min_side": 10},
        fix_kind="input",
        origin="https://github.com/DavideA/c3d-pytorch/issues/10",
    ),
    "pool_padding_too_large": Broken(
        pool_padding,
        (1, 3, 8, 8),
        "pool_padding",
        "1",
        (1, 8, 6, 6),
        "padding=1",
        fix_kind="layer",
        origin="https://github.com/mkang315/RCS-YOLO/issues/12",
    ),
    # forward() code
    "unet_skip_not_divisible": Broken(
        UNet2,
        (1, 1, 34, 34),
        "combine_mismatch",
        "",
        (1, 16, 16, 16),
        "multiples of 4, e.g. 1x1x36x36",
        "torch.cat([self.up2(b), s2], dim=1)",
        {"multiple": 4},
        fix_kind="input",
        origin="https://github.com/bigmb/Unet-Segmentation-Pytorch-Nest-of-Unets/issues/52",
    ),
    "unet_skip_popped_from_a_list": Broken(
        UNetPop,
        (1, 1, 30, 30),
        "combine_mismatch",
        "",
        (1, 16, 14, 14),
        "multiples of 4, e.g. 1x1x32x32",
        "y = fuse(torch.cat([up(y), skips.pop()], dim=1))",
        {"multiple": 4, "axis": 2},
        fix_kind="input",
        origin="https://github.com/fepegar/unet/issues/29",
    ),
    "residual_stride_without_shortcut": Broken(
        resnet_stage,
        (2, 3, 16, 16),
        "combine_mismatch",
        "1",
        (2, 16, 8, 8),
        # one setting (the branch's stride) against two edits (the shortcut's line and a new
        # projection layer): the stride first, the projection the upstream fix took as "or"
        "1.conv1: nn.Conv2d(in_channels=16, out_channels=16, kernel_size=3, stride=1, padding=1)",
        "return F.relu(out + x)",
        fix_kind="layer",
        alternative="code",
        origin="https://github.com/soapisnotfat/pytorch-cifar10/pull/8",
    ),
    "residual_channels_without_projection": Broken(
        WideningBlock,
        (1, 16, 8, 8),
        "combine_mismatch",
        "",
        (1, 32, 8, 8),
        "nn.Conv2d(16, 32, kernel_size=1",
        "out += identity",
        fix_kind="code",
        origin="https://github.com/lessw2020/res2net-plus/issues/4",
    ),
    "view_written_for_another_size": Broken(
        ViewWrongSize,
        (1, 3, 32, 32),
        "view_size",
        "",
        (1, 16, 5, 5),
        "nn.Linear(in_features=400, out_features=10)",
        "x = x.view(-1, 16 * 4 * 4)",
        {"per_sample": 400},
        fix_kind="code",
        origin="https://github.com/pytorch/pytorch/issues/38469",
    ),
    "view_after_permute": Broken(
        ViewAfterPermute,
        (1, 3, 8, 8),
        "view_not_contiguous",
        "",
        (1, 6, 6, 4),
        "y.reshape(y.size(0), -1)",
        "return y.view(y.size(0), -1)",
        fix_kind="code",
        origin="https://github.com/Selen-Suyue/DensePolicy2D/issues/3",
    ),
    # dtype
    "float64_input": Broken(
        rgb_model,
        float64_input(),
        "dtype_mismatch",
        "0",
        (1, 3, 16, 16),
        "x = x.float()",
        fix_kind="input",
        origin="https://github.com/pytorch/pytorch/issues/2552",
    ),
    "float64_into_linear": Broken(
        lambda: nn.Sequential(nn.Linear(3, 4)),
        torch.zeros(2, 3, dtype=torch.float64),
        "dtype_mismatch",
        "0",
        (2, 3),
        "x = x.float()",
        fix_kind="input",
        origin="https://github.com/OUCMachineLearning/OUCML/issues/24",
    ),
    # integer indices given as floats (a shape spec without ':long')
    "embedding_given_floats": Broken(
        TextCNN,
        "8x50",
        "index_input_float",
        "embed",
        (8, 50),
        "'8x50:long'",
        facts={"input": "the input"},
        fix_kind="input",
    ),
    "one_hot_given_floats": Broken(
        OneHotGenerator,
        [(8, 100), (8,)],
        "index_input_float",
        "",
        (8, 100),
        "['8x100', '8:long']",
        "F.one_hot(labels, self.classes)",
        {"input": "input 1"},
        fix_kind="input",
    ),
}
