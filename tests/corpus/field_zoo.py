"""Broken CNNs re-created from public issue threads, tutorials and Q&A.

Each model reproduces the mistake of the thread named in ``origin`` (usually a
smaller copy: fewer channels, smaller inputs, the same shapes logic), and says
what its diagnosis must be: the failing layer or line, the kind, a piece of the
verified fix and what that fix changes. The tests apply every fix shown and run
the model again, on meta and on CPU.
"""

from __future__ import annotations

from itertools import pairwise

import torch
import torch.nn.functional as F
from torch import nn

from .broken_zoo import Broken

# --- Linear heads -----------------------------------------------------------------------


class AndroidktCNN(nn.Module):
    """The tutorial's MNIST CNN: padding 2 keeps 28 -> 14 -> 7, so 32 * 7 * 7 = 1568, not 1050."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Sequential(nn.Conv2d(1, 16, 5, 1, 2), nn.ReLU(), nn.MaxPool2d(kernel_size=2))
        self.conv2 = nn.Sequential(nn.Conv2d(16, 32, 5, 1, 2), nn.ReLU(), nn.MaxPool2d(2))
        self.out = nn.Linear(1050, 10)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.conv1(x)
        x = self.conv2(x)
        x = x.view(x.size(0), -1)
        output = self.out(x)
        return output, x


class LeNetView(nn.Module):
    """pytorch/pytorch#38469: ``x.view(-1, 16*5*5)`` given 21x21 inputs."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 5)
        self.pool = nn.MaxPool2d(2, 2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(F.relu(self.conv1(x)))
        x = self.pool(F.relu(self.conv2(x)))
        x = x.view(-1, 16 * 5 * 5)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


def lenet_for_32() -> nn.Module:
    """Dive-into-DL#159: LeNet written for 32x32 (16*5*5) trained on 28x28 Fashion-MNIST."""
    return nn.Sequential(
        nn.Conv2d(1, 6, 5),
        nn.Sigmoid(),
        nn.MaxPool2d(2, 2),
        nn.Conv2d(6, 16, 5),
        nn.Sigmoid(),
        nn.MaxPool2d(2, 2),
        nn.Flatten(),
        nn.Linear(16 * 5 * 5, 120),
        nn.Sigmoid(),
        nn.Linear(120, 84),
        nn.Sigmoid(),
        nn.Linear(84, 10),
    )


class CaptchaNet(nn.Module):
    """skyduy/CNN_keras#20: ``x.view(-1, 48 * 6 * 27)`` written for 48x216 captchas, given 64x216."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(3, 12, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(12, 24, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(24, 48, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.fc = nn.Linear(48 * 6 * 27, 36)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        x = x.view(-1, 48 * 6 * 27)  # flatten here
        return self.fc(x)


class GeekyDense(nn.Module):
    """geekycodes: a dense layer sized for the raw 28x28 image, after a 128-channel conv."""

    def __init__(self) -> None:
        super().__init__()
        self.conv_layer = nn.Conv2d(1, 16, 3, padding=1)
        self.dense_layer = nn.Linear(784, 128)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv_layer(x)
        x = torch.flatten(x, 1)
        return self.dense_layer(x)


class FlattenAll(nn.Module):
    """torch.flatten(x) without start_dim: the batch is flattened too (the Linear gets one vector)."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(4))
        self.classifier = nn.Linear(8 * 4 * 4, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(self.features(x))
        return self.classifier(x)


class ResNetHeadNoFlatten(nn.Module):
    """A replaced ResNet head called on the pooled map (N, C, 1, 1) without the flatten."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 32, 3, stride=2, padding=1), nn.ReLU())
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(32, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.avgpool(self.body(x)))


class SNDiscriminator(nn.Module):
    """christiancosgrove/pytorch-spectral-normalization-gan#19: ``SpectralNorm(nn.Linear(w_g * w_g *
    512, 1))`` sized for 32x32 images, given 48x48 (torch's parametrization API)."""

    def __init__(self) -> None:
        super().__init__()
        sn = nn.utils.parametrizations.spectral_norm
        self.main = nn.Sequential(
            sn(nn.Conv2d(3, 16, 4, 2, 1)),
            nn.LeakyReLU(0.1),
            sn(nn.Conv2d(16, 32, 4, 2, 1)),
            nn.LeakyReLU(0.1),
            sn(nn.Conv2d(32, 64, 4, 2, 1)),
            nn.LeakyReLU(0.1),
        )
        self.fc = sn(nn.Linear(4 * 4 * 64, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.main(x).view(x.size(0), -1))


class OldSNDiscriminator(SNDiscriminator):
    """kwotsin/mimicry#47: an SNGAN discriminator for 32x32 given 128x128 images, with the old
    hook-based ``torch.nn.utils.spectral_norm``."""

    def __init__(self) -> None:
        super().__init__()
        sn = nn.utils.spectral_norm
        self.main = nn.Sequential(sn(nn.Conv2d(3, 16, 4, 2, 1)), nn.ReLU(), sn(nn.Conv2d(16, 64, 4, 4, 0)))
        self.fc = sn(nn.Linear(4 * 4 * 64, 1))


# --- convolution channels and layouts ------------------------------------------------------


class ResNetStem(nn.Module):
    """lucidrains/vit-pytorch#54: a ResNet built for RGB given grayscale medical images."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        return self.fc(torch.flatten(self.pool(x), 1))


class ResnetGenerator(nn.Module):
    """taesungp/contrastive-unpaired-translation#158: a generator built with input_nc=1 fed RGB
    crops; the conv sits behind a ReflectionPad2d, so the channel count is the fix, not a layout."""

    def __init__(self) -> None:
        super().__init__()
        self.model = nn.Sequential(
            nn.ReflectionPad2d(3),
            nn.Conv2d(1, 16, 7),
            nn.InstanceNorm2d(16),
            nn.ReLU(True),
            nn.Conv2d(16, 1, 3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class DepthwiseFirst(nn.Module):
    """sunsmarterjie/yolov12#161: a depthwise conv (groups=64) meets a grayscale image. No change
    of one layer makes this model run (the stem it expects is missing); the gray channel's
    way through the depthwise and the pointwise conv, both taking it, does."""

    def __init__(self) -> None:
        super().__init__()
        self.dw = nn.Conv2d(64, 64, 5, padding=2, groups=64)
        self.pw = nn.Conv2d(64, 32, 1)
        self.bn = nn.BatchNorm2d(32)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.pw(self.dw(x)))


class SeganGenerator(nn.Module):
    """dansuh17/segan-pytorch#27: the latent ``z`` is drawn with another batch (3) than the
    signal's (32), and the cat of the encoding with it fails on the batch axis. No change of
    a layer or of the signal fixes it: ``z`` is the second input, made by the caller."""

    def __init__(self) -> None:
        super().__init__()
        widths = (1, 8, 16, 32, 64)
        self.enc = nn.Sequential(*(nn.Conv1d(a, b, 31, stride=4, padding=15) for a, b in pairwise(widths)))
        self.dec = nn.Conv1d(128, 1, 1)

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        c = self.enc(x)
        encoded = torch.cat((c, z), dim=1)
        return self.dec(encoded)


def integral_grouped() -> nn.Module:
    """TheStageAI/TorchIntegral#31: a grouped conv built for 4096 input channels (64 groups)."""
    return nn.Sequential(
        nn.Conv2d(3, 64, 3, padding=1), nn.ReLU(), nn.Conv2d(4096, 64, 3, padding=1, groups=64)
    )


class MiDaSInput(nn.Module):
    """isl-org/MiDaS#79: an OpenCV image, HWC, batched without the transpose to CHW."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Conv2d(3, 16, 3, stride=2, padding=1), nn.ReLU())
        self.head = nn.Conv2d(16, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(x))


def diffusion_unet_stub() -> nn.Module:
    """johnowhitaker/aiaiart#2: ``torch.tensor(np.array(im))`` without ``.permute(2, 0, 1).unsqueeze(0)``."""
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.SiLU(), nn.Conv2d(8, 3, 3, padding=1))


class TextCNN(nn.Module):
    """ZephyrChenzf/text-classification-pytorch#1: the embedding (B, L, E) fed to Conv1d, whose
    permute to (B, E, L) was commented out."""

    def __init__(self) -> None:
        super().__init__()
        self.embedding = nn.Embedding(100, 32)
        self.conv = nn.Conv1d(32, 16, 3)
        self.fc = nn.Linear(16, 2)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        embeds = self.embedding(ids)
        # embeds = embeds.permute(0, 2, 1)
        out = F.relu(self.conv(embeds))
        return self.fc(out.max(dim=2).values)


def tcn() -> nn.Module:
    """locuslab/TCN#35: a TCN given (N, T, features) like an LSTM, where it wants (N, features, T)."""
    return nn.Sequential(
        nn.Conv1d(6, 16, 3, padding=2, dilation=1),
        nn.ReLU(),
        nn.Conv1d(16, 16, 3, padding=4, dilation=2),
        nn.ReLU(),
        nn.AdaptiveAvgPool1d(1),
        nn.Flatten(),
        nn.Linear(16, 3),
    )


class TemporalBlock(nn.Module):
    """shonaka/EEG-neural-decoding#2: a weight-normed TCN block whose num_inputs is the tap size,
    not the number of EEG channels."""

    def __init__(self, n_inputs: int = 10, n_outputs: int = 16) -> None:
        super().__init__()
        self.conv1 = nn.utils.weight_norm(nn.Conv1d(n_inputs, n_outputs, 3, padding=1))
        self.conv2 = nn.utils.weight_norm(nn.Conv1d(n_outputs, n_outputs, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.conv2(F.relu(self.conv1(x))))


def c3d() -> nn.Module:
    """A C3D-style clip classifier: clips arrive as (B, T, C, H, W) from a frame loader
    (lucidrains/perceiver-pytorch#18, facebookarchive/C3D#278)."""
    return nn.Sequential(
        nn.Conv3d(3, 8, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool3d((1, 2, 2)),
        nn.Conv3d(8, 16, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool3d(1),
        nn.Flatten(),
        nn.Linear(16, 5),
    )


def frame_cnn() -> nn.Module:
    """mit-han-lab/temporal-shift-module#212: 8 frames of 3 channels into a 2-D backbone."""
    return nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1))


def gap_classifier() -> nn.Module:
    """GreenWaves gap_sdk#375: a grayscale image (H, W) with neither batch nor channel axis."""
    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(8, 4, 1))


def gray_batch_model() -> nn.Module:
    """jbohnslav/opencv_transforms#6: a batch of grayscale images (N, H, W) without the channel axis."""
    return nn.Sequential(nn.Conv2d(1, 8, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())


# --- dtypes ---------------------------------------------------------------------------------


class Normalised(nn.Module):
    """facebookresearch/detectron2#5026: a mean/std from numpy (float64) turns the batch into
    doubles before the first conv."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor([0.5, 0.4, 0.3], dtype=torch.float64).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.2, 0.2, 0.2], dtype=torch.float64).view(1, 3, 1, 1))
        self.conv = nn.Conv2d(3, 8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - self.mean) / self.std
        return self.conv(x)


def double_input() -> torch.Tensor:
    return torch.zeros(2, 1, 12, 12, dtype=torch.float64)


def double_features() -> torch.Tensor:
    return torch.zeros(4, 15, dtype=torch.float64)


# --- normalisation -------------------------------------------------------------------------


def dcgan_discriminator() -> nn.Module:
    """pytorch/pytorch#9076: a DCGAN discriminator whose BatchNorm2d(128) follows a 256-channel conv."""
    return nn.Sequential(
        nn.Conv2d(1, 64, 4, 2, 1),
        nn.LeakyReLU(0.2),
        nn.Conv2d(64, 256, 4, 2, 1),
        nn.BatchNorm2d(128),
        nn.LeakyReLU(0.2),
        nn.Conv2d(256, 1, 7),
    )


class PyramidPooling(nn.Module):
    """meetps/pytorch-semseg#214: PSPNet's pyramid pooling, conv+BN on a 1x1 map, in training with a
    batch of one ("Expected more than 1 value per channel when training")."""

    def __init__(self) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.conv = nn.Sequential(nn.Conv2d(16, 8, 1, bias=False), nn.BatchNorm2d(8), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(self.pool(x))
        return torch.cat([x, F.interpolate(y, size=x.shape[2:])], dim=1)


def pointnet_head() -> nn.Module:
    """nikitakaraevv/pointnet#18: the classifier's BatchNorm1d in training with a batch of one."""
    return nn.Sequential(
        nn.Conv1d(3, 16, 1), nn.AdaptiveMaxPool1d(1), nn.Flatten(), nn.Linear(16, 8), nn.BatchNorm1d(8)
    )


def att_embed() -> nn.Module:
    """ruotianluo/self-critical.pytorch#44: BatchNorm1d(2048) on (B, 36, 2048) region features."""
    return nn.Sequential(nn.BatchNorm1d(64), nn.Linear(64, 32), nn.ReLU())


# --- inputs too small ------------------------------------------------------------------------


def alexnet_features() -> nn.Module:
    """creafz/pytorch-cnn-finetune#4: AlexNet's feature extractor (channels cut by 8) on 32x32."""
    return nn.Sequential(
        nn.Conv2d(3, 8, 11, stride=4, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(3, 2),
        nn.Conv2d(8, 24, 5, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(3, 2),
        nn.Conv2d(24, 48, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(48, 32, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(3, 2),
    )


class SKNetCifar(nn.Module):
    """pppLang/SKNet#15: a network for 224 inputs trained on CIFAR: AvgPool2d(8) meets a 4x4 map."""

    def __init__(self) -> None:
        super().__init__()
        self.stages = nn.Sequential(
            nn.Conv2d(3, 16, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(16, 32, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(32, 64, 3, stride=2, padding=1),
            nn.ReLU(),
        )
        self.pool = nn.AvgPool2d(8)
        self.classifier = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fea = self.pool(self.stages(x))
        return self.classifier(fea.flatten(1))


class InceptionResNetTail(nn.Module):
    """tamerthamoqa/facenet-pytorch-glint360k#6: Inception-ResNet-v2's AvgPool2d(8) sized for 299
    inputs, on VGGFace2's smaller crops (a 5x5 map). The thread's fix: kernel_size=5."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 16, 3, stride=2),
            nn.ReLU(),
            nn.Conv2d(16, 32, 3, stride=2),
            nn.ReLU(),
            nn.Conv2d(32, 48, 3, stride=2),
            nn.ReLU(),
        )
        self.avgpool_1a = nn.AvgPool2d(8, count_include_pad=False)
        self.last_linear = nn.Linear(48, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.avgpool_1a(self.features(x))
        return self.last_linear(x.view(x.size(0), -1))


def cifar_resnet_tail() -> nn.Module:
    """KaihuaTang/Long-Tailed-Recognition.pytorch#29: AvgPool2d(7, stride=1) of an ImageNet ResNet on
    CIFAR's 1x1 last map ("Calculated output size: (2048x-5x-5)")."""
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Conv2d(16, 32, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Conv2d(32, 64, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.AvgPool2d(7, stride=1),
        nn.Flatten(),
        nn.Linear(64, 10),
    )


class VisitNet(nn.Module):
    """ABadCandy/BaiDuBigData19-URFC#4: ``out = F.avg_pool2d(out, 4)`` on a 4x3 map; only its width
    is too small."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(7, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.fc = nn.Linear(16, 9)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(x)
        out = F.avg_pool2d(out, 4)
        return self.fc(out.view(out.size(0), -1))


class Down(nn.Module):
    """milesial/Pytorch-UNet's ``Down``: max pooling then a double conv."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.maxpool_conv = nn.Sequential(
            nn.MaxPool2d(2),
            nn.Conv2d(cin, cout, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(cout, cout, 3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.maxpool_conv(x)


class UNetEncoder(nn.Module):
    """milesial/Pytorch-UNet#134: a thin image (64 rows, 12 columns) runs out of columns at the 4th
    pooling ("Given input size: (512x4x1)"); the rows fit."""

    def __init__(self) -> None:
        super().__init__()
        self.inc = nn.Conv2d(1, 8, 3, padding=1)
        self.down1, self.down2, self.down3, self.down4 = Down(8, 16), Down(16, 32), Down(32, 64), Down(64, 64)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down4(self.down3(self.down2(self.down1(self.inc(x)))))


def image_classifier() -> nn.Module:
    """keras-team/autokeras#393: (N, 2, 128, 1) signals fed to an image classifier: the width of 1
    runs out at the first pooling."""
    return nn.Sequential(
        nn.Conv2d(2, 16, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.AdaptiveAvgPool2d(1),
    )


def ppm_branch() -> nn.Module:
    """backseason/PoolNet#53: a wide, short image; the pyramid pooling's AvgPool2d(8) runs out of rows."""
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Conv2d(16, 16, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.AvgPool2d(8, 8),
        nn.Conv2d(16, 16, 1),
    )


def c3d_temporal() -> nn.Module:
    """DavideA/c3d-pytorch#10: C3D is built for 16-frame clips; 10 frames run out in time
    ("Calculated output size: (512x0x8x8)") while the frames' sides fit."""
    return nn.Sequential(
        nn.Conv3d(3, 8, 3, padding=1),
        nn.MaxPool3d((1, 2, 2)),
        nn.Conv3d(8, 16, 3, padding=1),
        nn.MaxPool3d(2),
        nn.Conv3d(16, 32, 3, padding=1),
        nn.MaxPool3d(2),
        nn.Conv3d(32, 32, 3, padding=1),
        nn.MaxPool3d(2),
        nn.Conv3d(32, 32, 3, padding=1),
        nn.MaxPool3d(2),
    )


def inception_stem() -> nn.Module:
    """pytorch/pytorch#1190: Inception v3's stem (valid convs, stride 2) given 64x64 images."""
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, stride=2),
        nn.Conv2d(8, 8, 3),
        nn.Conv2d(8, 16, 3, padding=1),
        nn.MaxPool2d(3, stride=2),
        nn.Conv2d(16, 20, 1),
        nn.Conv2d(20, 48, 3),
        nn.MaxPool2d(3, stride=2),
        nn.Conv2d(48, 48, 5),
        nn.Conv2d(48, 64, 3, stride=2),
        nn.Conv2d(64, 64, 3, stride=2),
    )


def dcgan_d_32() -> nn.Module:
    """pytorch/examples#486: DCGAN's discriminator for 64x64 run with --imageSize 32: its last 4x4
    conv meets a 2x2 map ("sizes must be non-negative")."""
    return nn.Sequential(
        nn.Conv2d(3, 8, 4, 2, 1, bias=False),
        nn.LeakyReLU(0.2),
        nn.Conv2d(8, 16, 4, 2, 1, bias=False),
        nn.BatchNorm2d(16),
        nn.LeakyReLU(0.2),
        nn.Conv2d(16, 32, 4, 2, 1, bias=False),
        nn.BatchNorm2d(32),
        nn.LeakyReLU(0.2),
        nn.Conv2d(32, 64, 4, 2, 1, bias=False),
        nn.BatchNorm2d(64),
        nn.LeakyReLU(0.2),
        nn.Conv2d(64, 1, 4, 1, 0, bias=False),
        nn.Sigmoid(),
    )


class FunctionalUNet(nn.Module):
    """A fully convolutional U-Net that pools with ``F.max_pool2d`` in forward (fepegar/unet#28 style):
    at 12x12 the third pooling runs out of pixels inside the model's own forward."""

    def __init__(self) -> None:
        super().__init__()
        self.enc = nn.ModuleList(
            [nn.Conv2d(1, 4, 3, padding=1), nn.Conv2d(4, 8, 3, padding=1), nn.Conv2d(8, 8, 3, padding=1)]
        )
        self.bottom = nn.Conv2d(8, 8, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv in self.enc:
            x = F.max_pool2d(F.relu(conv(x)), 2)
        x = F.max_pool2d(self.bottom(x), 2)
        return F.interpolate(x, scale_factor=16)


# --- joins: U-Net skips, residual blocks -------------------------------------------------------


class UNet3(nn.Module):
    """Three poolings deep, as a U-Net whose skips are concatenated (lbktrinh/UNet_scAG#1, bigmb/...#55,
    Hsuxu/carvana-pytorch-uNet#1, ptrblck/pytorch_misc#2): the sides must be multiples of 8."""

    def __init__(self, dims: int = 2) -> None:
        super().__init__()
        conv = nn.Conv2d if dims == 2 else nn.Conv3d
        up = nn.ConvTranspose2d if dims == 2 else nn.ConvTranspose3d
        pool = nn.MaxPool2d if dims == 2 else nn.MaxPool3d
        self.e1, self.e2, self.e3 = (
            conv(1, 4, 3, padding=1),
            conv(4, 8, 3, padding=1),
            conv(8, 8, 3, padding=1),
        )
        self.pool = pool(2)
        self.mid = conv(8, 8, 3, padding=1)
        self.u3, self.u2, self.u1 = up(8, 8, 2, stride=2), up(8, 8, 2, stride=2), up(8, 4, 2, stride=2)
        self.d3, self.d2, self.d1 = (
            conv(16, 8, 3, padding=1),
            conv(16, 8, 3, padding=1),
            conv(8, 4, 3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e1 = self.e1(x)
        e2 = self.e2(self.pool(e1))
        e3 = self.e3(self.pool(e2))
        m = self.mid(self.pool(e3))
        d3 = self.d3(torch.cat((e3, self.u3(m)), dim=1))
        d2 = self.d2(torch.cat((e2, self.u2(d3)), dim=1))
        return self.d1(torch.cat((e1, self.u1(d2)), dim=1))


def unet3d() -> nn.Module:
    return UNet3(dims=3)


class BasicBlock(nn.Module):
    """keon/3-min-pytorch#29: the stride is applied to both convs of a BasicBlock, while the
    projection shortcut downsamples once."""

    def __init__(self, in_planes: int = 16, planes: int = 32, stride: int = 2) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential(
            nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += self.shortcut(x)
        return F.relu(out)


class CifarBlock(nn.Module):
    """soapisnotfat/pytorch-cifar10#8: a downsampling block (stride 2, channels doubled) whose
    shortcut is the identity."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(16, 32, 3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(32)
        self.conv2 = nn.Conv2d(32, 32, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(32)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + residual)


class ResNetDBlock(nn.Module):
    """FrancescoSaverioZuppichini/glasses#236: ResNet-D's shortcut pools (rounding down) where the
    branch's stride-2 conv rounds up: on an odd map they differ by one ("8 vs 7")."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(8, 16, 3, stride=2, padding=1)
        self.shortcut = nn.Sequential(nn.AvgPool2d(2), nn.Conv2d(8, 16, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.conv(x) + self.shortcut(x))


def resnet_d() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), ResNetDBlock(), ResNetDBlock2())


class ResNetDBlock2(ResNetDBlock):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(16, 16, 3, stride=2, padding=1)
        self.shortcut = nn.Sequential(nn.AvgPool2d(2), nn.Conv2d(16, 16, 1))


class StyleEncoderBlock(nn.Module):
    """yl4579/StyleTTS2#208: ``self._shortcut(x) + self._residual(x)`` on a spectrogram of odd
    length: 34 frames against 35."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.down = nn.Conv2d(8, 8, 3, stride=2, padding=1)

    def _shortcut(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(x, 2)

    def _residual(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(F.leaky_relu(x, 0.2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        return self._shortcut(x) + self._residual(x)


# --- upsampling ------------------------------------------------------------------------------


class ESPCN(nn.Module):
    """ESPCN (Shi et al., 2016): the sub-pixel conv must give 3 * r^2 channels; this one gives 3 * r.
    The same error as Snowfallingplum/SHMT#1 ("not divisible by 16")."""

    def __init__(self, upscale_factor: int = 2) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 5, padding=2)
        self.conv2 = nn.Conv2d(16, 8, 3, padding=1)
        self.conv3 = nn.Conv2d(8, 3 * upscale_factor, 3, padding=1)
        self.pixel_shuffle = nn.PixelShuffle(upscale_factor)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.tanh(self.conv1(x))
        x = torch.tanh(self.conv2(x))
        return torch.sigmoid(self.pixel_shuffle(self.conv3(x)))


class SegNet(nn.Module):
    """delta-onera/segnet_pytorch#3: unpooling without output_size= after an odd-sized map
    ("found an invalid max index 207 (output volumes are of size 14x14)")."""

    def __init__(self) -> None:
        super().__init__()
        self.enc1 = nn.Conv2d(3, 8, 3, padding=1)
        self.enc2 = nn.Conv2d(8, 8, 3, padding=1)
        self.pool = nn.MaxPool2d(2, 2, return_indices=True)
        self.unpool = nn.MaxUnpool2d(2, 2)
        self.dec2 = nn.Conv2d(8, 8, 3, padding=1)
        self.dec1 = nn.Conv2d(8, 2, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, id1 = self.pool(F.relu(self.enc1(x)))
        x, id2 = self.pool(F.relu(self.enc2(x)))
        x = F.relu(self.dec2(self.unpool(x, id2)))
        return self.dec1(self.unpool(x, id1))


class UnpoolChain(nn.Module):
    """pytorch/pytorch#580: three poolings of a 540x960 image, unpooled without output_size=: the
    second unpooling's indices do not fit the map ("Expected shape of indices to be same")."""

    def __init__(self) -> None:
        super().__init__()
        self.pool = nn.MaxPool2d(2, 2, return_indices=True)
        self.unpool = nn.MaxUnpool2d(2, 2)

    def forward(self, data: torch.Tensor) -> torch.Tensor:
        out, indices1 = self.pool(data)
        out, indices2 = self.pool(out)
        out, indices3 = self.pool(out)
        out = self.unpool(out, indices3)
        out = self.unpool(out, indices2)
        return self.unpool(out, indices1)


class ViT(nn.Module):
    """yitu-opensource/T2T-ViT#53: a ViT whose position embedding was sized for 224x224 given 384x384
    ("The size of tensor a (577) must match the size of tensor b (197)")."""

    def __init__(self, img_size: int = 224, patch: int = 16, dim: int = 24) -> None:
        super().__init__()
        self.patch_embed = nn.Conv2d(3, dim, patch, stride=patch)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, (img_size // patch) ** 2 + 1, dim))
        self.head = nn.Linear(dim, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x).flatten(2).transpose(1, 2)
        cls_tokens = self.cls_token.expand(x.shape[0], -1, -1)
        x = torch.cat((cls_tokens, x), dim=1)
        x = x + self.pos_embed
        return self.head(x[:, 0])


class PositionalEmbedding1D(nn.Module):
    """lukemelas/PyTorch-Pretrained-ViT#14: ``return x + self.pos_embedding`` in its own module."""

    def __init__(self, seq_len: int, dim: int) -> None:
        super().__init__()
        self.pos_embedding = nn.Parameter(torch.zeros(1, seq_len, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.pos_embedding


class PretrainedViT(nn.Module):
    """The ViT of lukemelas/PyTorch-Pretrained-ViT built for 128x128 (patch 32) given 192x192."""

    def __init__(self) -> None:
        super().__init__()
        self.patch_embedding = nn.Conv2d(3, 16, 32, stride=32)
        self.positional_embedding = PositionalEmbedding1D(16, 16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embedding(x).flatten(2).transpose(1, 2)
        return self.positional_embedding(x)


# --- recurrent heads after a conv stack ------------------------------------------------------------


class CRNN(nn.Module):
    """meijieru/crnn.pytorch#84: a CRNN for 32-pixel-high crops given 64-pixel-high ones: the map
    keeps a height of 3, so each step has 3 * 64 features where the LSTM takes 64."""

    def __init__(self) -> None:
        super().__init__()
        self.cnn = nn.Sequential(
            nn.Conv2d(1, 16, 3, 1, 1),
            nn.ReLU(True),
            nn.MaxPool2d(2, 2),
            nn.Conv2d(16, 32, 3, 1, 1),
            nn.ReLU(True),
            nn.MaxPool2d(2, 2),
            nn.Conv2d(32, 64, 3, 1, 1),
            nn.ReLU(True),
            nn.MaxPool2d((2, 2), (2, 1), (0, 1)),
            nn.Conv2d(64, 64, 3, 1, 1),
            nn.ReLU(True),
            nn.MaxPool2d((2, 2), (2, 1), (0, 1)),
            nn.Conv2d(64, 64, 2, 1, 0),
        )
        self.rnn = nn.LSTM(64, 32, bidirectional=True)
        self.embedding = nn.Linear(64, 37)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        conv = self.cnn(x)
        b, c, h, w = conv.size()
        conv = conv.view(b, c * h, w)
        conv = conv.permute(2, 0, 1)  # [w, b, c]
        recurrent, _ = self.rnn(conv)
        t, n, hidden = recurrent.size()
        return self.embedding(recurrent.view(t * n, hidden)).view(t, n, -1)


class CRNNSmallCNN(CRNN):
    """Holmeyoung/crnn-pytorch#71: a slimmer CNN (64 channels at the end) before BidirectionalLSTM(512,
    ...) built for 512 ("Expected 512, got 64")."""

    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.LSTM(512, 32, bidirectional=True)


class CRNNNoReshape(nn.Module):
    """HHTseng/video-classification#15 style: the CNN's map handed straight to the LSTM, unflattened."""

    def __init__(self) -> None:
        super().__init__()
        self.cnn = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d((4, 2)))
        self.rnn = nn.LSTM(32, 16, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(self.cnn(x))
        return out


FIELD: dict[str, Broken] = {
    # Linear heads
    "androidkt_mnist_cnn_1050": Broken(
        AndroidktCNN,
        (2, 1, 28, 28),
        "linear_in_features",
        "out",
        (2, 1568),
        "nn.Linear(in_features=1568, out_features=10)",
        "output = self.out(x)",
        {"in_features": 1568},
        origin="https://androidkt.com/fix-runtimeerror-mat1-and-mat2-shapes-cannot-be-multiplied/",
    ),
    "pytorch_38469_view_400": Broken(
        LeNetView,
        (6, 3, 21, 21),
        "view_size",
        "",
        (6, 16, 2, 2),
        "x = torch.flatten(x, 1), and fc1: nn.Linear(in_features=64, out_features=120)",
        "x = x.view(-1, 16 * 5 * 5)",
        {"per_sample": 64},
        fix_kind="code",
        origin="https://github.com/pytorch/pytorch/issues/38469",
    ),
    "dive_into_dl_lenet_on_28": Broken(
        lenet_for_32,
        (2, 1, 28, 28),
        "linear_in_features",
        "7",
        (2, 256),
        "nn.Linear(in_features=256, out_features=120)",
        facts={"in_features": 256},
        origin="https://github.com/ShusenTang/Dive-into-DL-PyTorch/issues/159",
    ),
    "skyduy_captcha_view": Broken(
        CaptchaNet,
        (2, 3, 64, 216),
        "view_size",
        "",
        (2, 48, 8, 27),
        "nn.Linear(in_features=10368, out_features=36)",
        "x = x.view(-1, 48 * 6 * 27)",
        fix_kind="code",
        origin="https://github.com/skyduy/CNN_keras/issues/20",
    ),
    "geekycodes_dense_after_conv": Broken(
        GeekyDense,
        (2, 1, 28, 28),
        "linear_in_features",
        "dense_layer",
        (2, 12544),
        "in_features=12544",
        "return self.dense_layer(x)",
        origin="https://geekycodes.in/machine-learning/pytorch-cnn-shape-mismatch-error-fixing-mat1-and-mat2-shapes-cannot-be-multiplied/",
    ),
    "flatten_without_start_dim": Broken(
        FlattenAll,
        (2, 3, 16, 16),
        "flatten_batch",
        "classifier",
        (256,),
        "x = torch.flatten(x, 1)",
        "return self.classifier(x)",
        fix_kind="code",
        origin="https://scientyficworld.org/fix-hidden-layer-shape-mismatches-in-pytorch/",
    ),
    "resnet_head_without_flatten": Broken(
        ResNetHeadNoFlatten,
        (2, 3, 32, 32),
        "linear_unflattened",
        "fc",
        (2, 32, 1, 1),
        "self.fc(torch.flatten(self.avgpool(self.body(x)), 1))",
        "return self.fc(self.avgpool(self.body(x)))",
        fix_kind="code",
        alternative="layer",
        origin="https://github.com/lucidrains/vit-pytorch/issues/54",
    ),
    "sngan_spectral_norm_linear": Broken(
        SNDiscriminator,
        (2, 3, 48, 48),
        "linear_in_features",
        "fc",
        (2, 2304),
        "nn.utils.parametrizations.spectral_norm(nn.Linear(in_features=2304, out_features=1))",
        facts={"in_features": 2304},
        origin="https://github.com/christiancosgrove/pytorch-spectral-normalization-gan/issues/19",
    ),
    "mimicry_old_spectral_norm": Broken(
        OldSNDiscriminator,
        (2, 3, 128, 128),
        "linear_in_features",
        "fc",
        (2, 16384),
        "nn.utils.spectral_norm(nn.Linear(in_features=16384, out_features=1))",
        origin="https://github.com/kwotsin/mimicry/issues/47",
    ),
    # convolution channels and layouts
    "vit_pytorch_grayscale_resnet": Broken(
        ResNetStem,
        (4, 1, 32, 32),
        "conv_in_channels",
        "conv1",
        (4, 1, 32, 32),
        "in_channels=1",
        "x = F.relu(self.bn1(self.conv1(x)))",
        alternative="input",
        origin="https://github.com/lucidrains/vit-pytorch/issues/54",
    ),
    "cut_generator_rgb_into_gray": Broken(
        ResnetGenerator,
        (1, 3, 32, 32),
        "conv_in_channels",
        "model.1",
        (1, 3, 38, 38),
        "nn.Conv2d(in_channels=3, out_channels=16, kernel_size=7)",
        origin="https://github.com/taesungp/contrastive-unpaired-translation/issues/158",
    ),
    "yolov12_depthwise_on_grayscale": Broken(
        DepthwiseFirst,
        (1, 1, 16, 24),
        "conv_in_channels",
        "dw",
        (1, 1, 16, 24),
        # one cause at two sites: the gray channel reaches the depthwise conv, then the pointwise
        "nn.Conv2d(in_channels=1, out_channels=1, kernel_size=5, padding=2, groups=1), and "
        "pw: nn.Conv2d(in_channels=1, out_channels=32, kernel_size=1)",
        "return self.bn(self.pw(self.dw(x)))",
        fix_kind="layer",
        origin="https://github.com/sunsmarterjie/yolov12/issues/161",
    ),
    "segan_latent_batch": Broken(
        SeganGenerator,
        [(4, 1, 1024), (3, 64, 4)],
        "combine_mismatch",
        "",
        (4, 64, 4),
        None,
        "encoded = torch.cat((c, z), dim=1)",
        fix_kind=None,
        origin="https://github.com/dansuh17/segan-pytorch/issues/27",
    ),
    "torchintegral_grouped_conv": Broken(
        integral_grouped,
        (1, 3, 8, 8),
        "conv_in_channels",
        "2",
        (1, 64, 8, 8),
        "nn.Conv2d(in_channels=64, out_channels=64, kernel_size=3, padding=1, groups=64)",
        origin="https://github.com/TheStageAI/TorchIntegral/issues/31",
    ),
    "midas_opencv_hwc": Broken(
        MiDaSInput,
        (1, 32, 48, 3),
        "channels_last",
        "encoder.0",
        (1, 32, 48, 3),
        "x = x.permute(0, 3, 1, 2)",
        fix_kind="input",
        origin="https://github.com/isl-org/MiDaS/issues/79",
    ),
    "aiaiart_pil_image_unbatched": Broken(
        diffusion_unet_stub,
        (16, 16, 3),
        "channels_last",
        "0",
        (16, 16, 3),
        "x = x.permute(2, 0, 1).unsqueeze(0)",
        fix_kind="input",
        origin="https://github.com/johnowhitaker/aiaiart/issues/2",
    ),
    "text_cnn_embedding_into_conv1d": Broken(
        TextCNN,
        torch.zeros(4, 20, dtype=torch.long),
        "channels_last",
        "conv",
        (4, 20, 32),
        "out = F.relu(self.conv(embeds.transpose(1, 2)))",
        "out = F.relu(self.conv(embeds))",
        fix_kind="code",
        origin="https://github.com/ZephyrChenzf/text-classification-pytorch/issues/1",
    ),
    "tcn_given_batch_time_features": Broken(
        tcn,
        (2, 50, 6),
        "channels_last",
        "0",
        (2, 50, 6),
        "x = x.transpose(1, 2)",
        fix_kind="input",
        origin="https://github.com/locuslab/TCN/issues/35",
    ),
    "eeg_tcn_weight_norm_inputs": Broken(
        TemporalBlock,
        (2, 4, 30),
        "conv_in_channels",
        "conv1",
        (2, 4, 30),
        "nn.utils.weight_norm(nn.Conv1d(in_channels=4, out_channels=16, kernel_size=3, padding=1), dim=0)",
        origin="https://github.com/shonaka/EEG-neural-decoding/issues/2",
    ),
    "c3d_clip_batch_frames_first": Broken(
        c3d,
        (2, 8, 3, 16, 16),
        "clip_layout",
        "0",
        (2, 8, 3, 16, 16),
        "x = x.permute(0, 2, 1, 3, 4)",
        fix_kind="input",
        origin="https://github.com/lucidrains/perceiver-pytorch/issues/18",
    ),
    "tsm_frames_into_2d_backbone": Broken(
        frame_cnn,
        (1, 8, 3, 32, 32),
        "conv_extra_axis",
        "0",
        (1, 8, 3, 32, 32),
        "x = x.flatten(0, 1)",
        fix_kind="input",
        origin="https://github.com/mit-han-lab/temporal-shift-module/issues/212",
    ),
    "gap_sdk_image_without_axes": Broken(
        gap_classifier,
        (24, 32),
        "missing_batch_and_channel",
        "0",
        (24, 32),
        "x = x[None, None]",
        fix_kind="input",
        origin="https://github.com/GreenWaves-Technologies/gap_sdk/issues/375",
    ),
    "opencv_transforms_gray_batch": Broken(
        gray_batch_model,
        (8, 24, 24),
        "missing_channel_axis",
        "0",
        (8, 24, 24),
        "x = x.unsqueeze(1)",
        fix_kind="input",
        origin="https://github.com/jbohnslav/opencv_transforms/issues/6",
    ),
    # dtypes
    "pytorch_2552_double_conv": Broken(
        gap_classifier,
        double_input(),
        "dtype_mismatch",
        "0",
        (2, 1, 12, 12),
        "x = x.float()",
        fix_kind="input",
        origin="https://github.com/pytorch/pytorch/issues/2552",
    ),
    "oucml_double_linear": Broken(
        lambda: nn.Sequential(nn.Linear(15, 4), nn.ReLU(), nn.Linear(4, 1)),
        double_features(),
        "dtype_mismatch",
        "0",
        (4, 15),
        "x = x.float()",
        fix_kind="input",
        origin="https://github.com/OUCMachineLearning/OUCML/issues/24",
    ),
    "detectron2_numpy_mean_std": Broken(
        Normalised,
        (2, 3, 8, 8),
        "dtype_mismatch",
        "conv",
        (2, 3, 8, 8),
        "return self.conv(x.float())",
        "return self.conv(x)",
        fix_kind="code",
        origin="https://github.com/facebookresearch/detectron2/issues/5026",
    ),
    # normalisation
    "pytorch_9076_dcgan_batchnorm": Broken(
        dcgan_discriminator,
        (2, 1, 28, 28),
        "norm_num_features",
        "3",
        (2, 256, 7, 7),
        "nn.BatchNorm2d(num_features=256)",
        origin="https://github.com/pytorch/pytorch/issues/9076",
    ),
    "semseg_pspnet_batch_of_one": Broken(
        PyramidPooling,
        (1, 16, 8, 8),
        "batchnorm_single_value",
        "conv.1",
        (1, 8, 1, 1),
        "a batch of at least 2: an input of 2x16x8x8",
        fix_kind="input",
        train=True,
        origin="https://github.com/meetps/pytorch-semseg/issues/214",
    ),
    "pointnet_batch_of_one": Broken(
        pointnet_head,
        (1, 3, 64),
        "batchnorm_single_value",
        "4",
        (1, 8),
        "an input of 2x3x64",
        fix_kind="input",
        train=True,
        origin="https://github.com/nikitakaraevv/pointnet/issues/18",
    ),
    "self_critical_bn1d_regions": Broken(
        att_embed,
        (4, 36, 64),
        "batchnorm_channels_last",
        "0",
        (4, 36, 64),
        "nn.LayerNorm(64)",
        origin="https://github.com/ruotianluo/self-critical.pytorch/issues/44",
    ),
    # inputs too small
    "cnn_finetune_alexnet_on_32": Broken(
        alexnet_features,
        (1, 3, 32, 32),
        "input_too_small",
        "10",
        (1, 32, 1, 1),
        "an input of at least 1x3x63x63",
        fix_kind="input",
        origin="https://github.com/creafz/pytorch-cnn-finetune/issues/4",
    ),
    "sknet_avgpool8_on_cifar": Broken(
        SKNetCifar,
        (2, 3, 32, 32),
        "input_too_small",
        "pool",
        (2, 64, 4, 4),
        "nn.AvgPool2d(kernel_size=4)",
        "fea = self.pool(self.stages(x))",
        alternative="input",
        origin="https://github.com/pppLang/SKNet/issues/15",
    ),
    "facenet_avgpool_kernel_5": Broken(
        InceptionResNetTail,
        (1, 3, 48, 48),
        "input_too_small",
        "avgpool_1a",
        (1, 48, 5, 5),
        "nn.AvgPool2d(kernel_size=5)",
        "x = self.avgpool_1a(self.features(x))",
        alternative="input",
        origin="https://github.com/tamerthamoqa/facenet-pytorch-glint360k/issues/6",
    ),
    "long_tailed_avgpool_on_1x1": Broken(
        cifar_resnet_tail,
        (2, 3, 8, 8),
        "input_too_small",
        "6",
        (2, 64, 1, 1),
        "nn.AdaptiveAvgPool2d(1)",
        alternative="input",
        origin="https://github.com/KaihuaTang/Long-Tailed-Recognition.pytorch/issues/29",
    ),
    "urfc_functional_avg_pool_width": Broken(
        VisitNet,
        (2, 7, 8, 6),
        "input_too_small",
        "",
        (2, 7, 8, 6),
        "an input of 2x7x8x8",  # W up to 15 only: the Linear after the pooling takes 16 features
        "out = F.avg_pool2d(out, 4)",
        {"op": "avg_pool2d"},
        fix_kind="input",
        origin="https://github.com/ABadCandy/BaiDuBigData19-URFC/issues/4",
    ),
    "pytorch_unet_thin_image": Broken(
        UNetEncoder,
        (1, 1, 64, 12),
        "input_too_small",
        "down4.maxpool_conv.0",
        (1, 64, 8, 1),
        "an input of at least 1x1x64x16",
        fix_kind="input",
        origin="https://github.com/milesial/Pytorch-UNet/issues/134",
    ),
    "autokeras_signal_as_image": Broken(
        image_classifier,
        (4, 2, 128, 1),
        "input_too_small",
        "2",
        (4, 16, 128, 1),
        "an input of at least 4x2x128x4",
        fix_kind="input",
        origin="https://github.com/keras-team/autokeras/issues/393",
    ),
    "poolnet_short_wide_image": Broken(
        ppm_branch,
        (1, 3, 20, 200),
        "input_too_small",
        "4",
        (1, 16, 5, 50),
        "an input of at least 1x3x29x200",
        fix_kind="input",
        origin="https://github.com/backseason/PoolNet/issues/53",
    ),
    "c3d_pytorch_short_clip": Broken(
        c3d_temporal,
        (1, 3, 10, 32, 32),
        "input_too_small",
        "9",
        (1, 32, 1, 2, 2),
        "an input of at least 1x3x16x32x32",
        fix_kind="input",
        origin="https://github.com/DavideA/c3d-pytorch/issues/10",
    ),
    "pytorch_1190_inception_stem": Broken(
        inception_stem,
        (1, 3, 64, 64),
        "input_too_small",
        "8",
        (1, 48, 1, 1),
        "an input of at least 1x3x107x107",
        fix_kind="input",
        origin="https://github.com/pytorch/pytorch/issues/1190",
    ),
    "pytorch_examples_dcgan_32": Broken(
        dcgan_d_32,
        (2, 3, 32, 32),
        "input_too_small",
        "11",
        (2, 64, 2, 2),
        "an input of at least 2x3x64x64",
        fix_kind="input",
        alternative="layer",
        origin="https://github.com/pytorch/examples/issues/486",
    ),
    "functional_max_pool_unet": Broken(
        FunctionalUNet,
        (1, 1, 12, 12),
        "input_too_small",
        "",
        (1, 1, 12, 12),
        "an input of at least 1x1x16x16",
        "x = F.max_pool2d(self.bottom(x), 2)",
        {"op": "max_pool2d"},
        fix_kind="input",
        origin="https://github.com/fepegar/unet/issues/28",
    ),
    # joins
    "unet_scag_not_divisible": Broken(
        UNet3,
        (1, 1, 76, 54),
        "combine_mismatch",
        "",
        (1, 8, 19, 13),
        "multiples of 8, e.g. 1x1x80x56",
        "d3 = self.d3(torch.cat((e3, self.u3(m)), dim=1))",
        {"multiple": 8},
        fix_kind="input",
        origin="https://github.com/lbktrinh/UNet_scAG/issues/1",
    ),
    "pytorch_misc_unet_222": Broken(
        UNet3,
        (1, 1, 222, 222),
        "combine_mismatch",
        "",
        (1, 8, 55, 55),
        "multiples of 8, e.g. 1x1x224x224",
        fix_kind="input",
        origin="https://github.com/ptrblck/pytorch_misc/issues/2",
    ),
    "fepegar_unet3d_not_divisible": Broken(
        unet3d,
        (1, 1, 20, 20, 18),
        "combine_mismatch",
        "",
        (1, 8, 5, 5, 4),
        "multiples of 8, e.g. 1x1x24x24x24",
        fix_kind="input",
        origin="https://github.com/fepegar/unet/issues/28",
    ),
    "keon_basicblock_double_stride": Broken(
        BasicBlock,
        (2, 16, 16, 16),
        "residual_double_downsample",
        "",
        (2, 32, 4, 4),
        "stride=1",
        "out += self.shortcut(x)",
        {"stride": 2},
        origin="https://github.com/keon/3-min-pytorch/issues/29",
    ),
    "cifar10_block_without_projection": Broken(
        CifarBlock,
        (2, 16, 16, 16),
        "combine_mismatch",
        "",
        (2, 32, 8, 8),
        "self.downsample(residual)",
        "return F.relu(out + residual)",
        {"stride": 2, "channels": [16, 32]},
        fix_kind="code",
        origin="https://github.com/soapisnotfat/pytorch-cifar10/pull/8",
    ),
    "glasses_resnet_d_odd_map": Broken(
        resnet_d,
        (1, 3, 60, 60),
        "combine_mismatch",
        "2",
        (1, 16, 8, 8),
        "multiples of",
        "return F.relu(self.conv(x) + self.shortcut(x))",
        fix_kind="input",
        origin="https://github.com/FrancescoSaverioZuppichini/glasses/issues/236",
    ),
    "styletts_shortcut_odd_length": Broken(
        StyleEncoderBlock,
        (1, 1, 16, 69),
        "combine_mismatch",
        "",
        (1, 8, 8, 34),
        "multiples of 2, e.g. 1x1x16x70",
        "return self._shortcut(x) + self._residual(x)",
        fix_kind="input",
        origin="https://github.com/yl4579/StyleTTS2/issues/208",
    ),
    # upsampling
    "espcn_pixel_shuffle_channels": Broken(
        ESPCN,
        (1, 3, 12, 12),
        "pixel_shuffle_channels",
        "pixel_shuffle",
        (1, 6, 12, 12),
        "nn.Conv2d(in_channels=8, out_channels=12, kernel_size=3, padding=1)",
        origin="https://github.com/Snowfallingplum/SHMT/issues/1",
    ),
    "segnet_unpool_odd_map": Broken(
        SegNet,
        (1, 3, 30, 30),
        "max_unpool_size",
        "unpool",
        (1, 8, 7, 7),
        "self.unpool(x, id2, output_size=id2_input.shape)",
        "x = F.relu(self.dec2(self.unpool(x, id2)))",
        fix_kind="code",
        origin="https://github.com/delta-onera/segnet_pytorch/issues/3",
        alternative="input",
    ),
    "pytorch_580_unpool_chain": Broken(
        UnpoolChain,
        (1, 3, 54, 96),
        "max_unpool_size",
        "unpool",
        (1, 3, 12, 24),
        "out = self.unpool(out, indices2, output_size=indices2_input.shape)",
        "out = self.unpool(out, indices2)",
        fix_kind="code",
        origin="https://github.com/pytorch/pytorch/issues/580",
        alternative="input",
    ),
    "t2t_vit_384_position_table": Broken(
        ViT,
        (1, 3, 384, 384),
        "position_table_size",
        "",
        (1, 577, 24),
        "an input of 1x3x224x224",
        "x = x + self.pos_embed",
        {"tokens": 197},
        fix_kind="input",
        origin="https://github.com/yitu-opensource/T2T-ViT/issues/53",
    ),
    "pretrained_vit_positional_module": Broken(
        PretrainedViT,
        (2, 3, 192, 192),
        "position_table_size",
        "positional_embedding",
        (2, 36, 16),
        "an input of 2x3x128x128",
        "return x + self.pos_embedding",
        fix_kind="input",
        origin="https://github.com/lukemelas/PyTorch-Pretrained-ViT/issues/14",
    ),
    # recurrent heads
    "crnn_height_not_one": Broken(
        CRNN,
        (2, 1, 64, 100),
        "rnn_input_size",
        "rnn",
        (26, 2, 192),
        "nn.LSTM(input_size=192, hidden_size=32, bidirectional=True)",
        "recurrent, _ = self.rnn(conv)",
        {"input_size": 192, "map": [2, 64, 3, 26]},
        origin="https://github.com/meijieru/crnn.pytorch/issues/84",
    ),
    "crnn_lstm_built_for_512": Broken(
        CRNNSmallCNN,
        (2, 1, 32, 100),
        "rnn_input_size",
        "rnn",
        (26, 2, 64),
        "nn.LSTM(input_size=64, hidden_size=32, bidirectional=True)",
        facts={"input_size": 64},
        origin="https://github.com/Holmeyoung/crnn-pytorch/issues/71",
    ),
    "video_crnn_map_into_lstm": Broken(
        CRNNNoReshape,
        (2, 1, 16, 20),
        "rnn_input_size",
        "rnn",
        (2, 8, 4, 10),
        "x = x.permute(0, 3, 1, 2).flatten(2)",
        "out, _ = self.rnn(self.cnn(x))",
        fix_kind="code",
        origin="https://github.com/HHTseng/video-classification/issues/15",
    ),
}
