"""Broken CNNs for the fixes that must generalize, re-created from public reports.

One or more cases per cause the search was built for: the producer's side, several
sites, blocks in installed packages (``site-packages/minilib``, read as a library),
layer classes from outside torch rebuilt from their settings, depthwise convs,
assertions in a library's forward, shapes in forward code, verification of fx and
CPU-fallback models, claims checked, facts instead of filler. ``test_generalize``
pins each one's exact fix text and runs the fixed model in plain torch.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .broken_zoo import Broken

LIBRARY = Path(__file__).parent / "site-packages"
if str(LIBRARY) not in sys.path:  # the stand-in for an installed package (torchvision, timm)
    sys.path.append(str(LIBRARY))

from minilib import blocks  # noqa: E402

# -- 1. the producer's side -------------------------------------------------------------------


class DcganDiscriminator(nn.Module):
    """pytorch/pytorch#9076: a DCGAN discriminator whose second conv gives 256 channels to a
    BatchNorm2d(128): "running_mean should contain 256 elements not 128". Resizing the norm only
    moves the failure to the conv after it; the conv's out_channels is the slip."""

    def __init__(self) -> None:
        super().__init__()
        self.main = nn.Sequential(
            nn.Conv2d(1, 64, 4, 2, 1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(64, 256, 4, 2, 1),
            nn.BatchNorm2d(128),
            nn.LeakyReLU(0.2),
            nn.Conv2d(128, 1, 7, 1, 0),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x)


# -- 2. several sites ---------------------------------------------------------------------------


class SqueezeExcite(nn.Module):
    """braindecode/braindecode#955: fc2 built for ``reduction_rate`` input channels where fc1
    gives ``in_channels // reduction_rate``; every block has it."""

    def __init__(self, in_channels: int, reduction_rate: int = 4) -> None:
        super().__init__()
        squeezed = in_channels // reduction_rate
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(in_channels, squeezed, 1)
        self.fc2 = nn.Conv2d(reduction_rate, in_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(self.fc2(F.relu(self.fc1(self.pool(x)))))


class SEBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)
        self.bn = nn.BatchNorm2d(channels)
        self.se = SqueezeExcite(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.se(F.relu(self.bn(self.conv(x))))


def se_net() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), SEBlock(32), SEBlock(32), SEBlock(32))


class Res2Block(nn.Module):
    """4uiiurz1/pytorch-res2net#1: "18w x 4s": 18 channels chunked into 4 scales are 5, 5, 5
    and 3, while the scale convs are built for 18 // 4 = 4."""

    def __init__(self, planes: int = 18, scales: int = 4) -> None:
        super().__init__()
        self.scales = scales
        width = planes // scales
        self.conv1 = nn.Conv2d(planes, planes, 1)
        self.convs = nn.ModuleList(nn.Conv2d(width, width, 3, padding=1) for _ in range(scales - 1))
        self.conv3 = nn.Conv2d(planes, planes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xs = torch.chunk(self.conv1(x), self.scales, dim=1)
        ys = [xs[0]]
        for i, conv in enumerate(self.convs):
            y = xs[i + 1] if i == 0 else xs[i + 1] + ys[-1]
            ys.append(conv(y))
        return self.conv3(torch.cat(ys, 1)) + x


# -- 3, 4, 6. installed packages' blocks and classes -----------------------------------------------


def resnet_conv1_unstrided() -> nn.Module:
    """kuangliu/pytorch-cifar#53, quark0/darts#51: a stride changed by hand on one conv of a
    library's residual block; its shortcut still downsamples: "The size of tensor a (16) must
    match the size of tensor b (8) at non-singleton dimension 3", raised in the library's
    ``out += identity``."""
    model = blocks.SmallResNet()
    model.layer2[0].conv1.stride = (1, 1)
    return model


def efficientnet_four_channels() -> nn.Module:
    """rwightman/gen-efficientnet-pytorch#48: four-channel images (RGB + depth) into a stem
    built for three; the stem is the library's own conv class, rebuilt from its settings."""
    return blocks.EfficientStem()


def convnext_stem_wider_than_its_norm() -> nn.Module:
    """facebookresearch/ConvNeXt#112 (a channels-first LayerNorm class, as timm's and
    torchvision's ``LayerNorm2d``): a patchify stem written for 64 channels before a stage of
    96; the library norm after it refuses the map, and the stem is what is off."""
    return nn.Sequential(
        nn.Conv2d(3, 64, kernel_size=4, stride=4),
        blocks.LayerNorm2d(96),
        nn.Conv2d(96, 96, kernel_size=7, padding=3, groups=96),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(96, 10),
    )


class LayerScaleBlock(nn.Module):
    """ConvNeXt's block (facebookresearch/ConvNeXt, models/convnext.py): an MLP block of 1x1
    convs, then a learned per-channel scale ``gamma``; the MLP's last conv built one channel
    wide of the block's width. The width is made inside the MLP (a block of its own)."""

    def __init__(self, dim: int = 32, out: int = 33) -> None:
        super().__init__()
        self.dw = nn.Conv2d(dim, dim, 7, padding=3, groups=dim)
        self.mlp = nn.Sequential(
            nn.Conv2d(dim, 4 * dim, 1), nn.GELU(), nn.Conv2d(4 * dim, out, 1), nn.Dropout()
        )
        self.gamma = nn.Parameter(torch.full((dim,), 1e-6))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.mlp(self.dw(x))
        return x + y.mul(self.gamma.reshape(1, -1, 1, 1))


def reid_unbatched() -> nn.Module:
    """michuanhaohao/reid-strong-baseline#6: one image tested without its batch axis; the conv
    takes it as unbatched and the library norm after it asserts "expected 4D input"."""
    return blocks.EfficientStem()


def vit_built_for_32() -> nn.Module:
    """facebookresearch/mae#160: a ViT built for one image size given another: the library's
    patch embedding asserts "Input height (48) doesn't match model (32)"."""
    return blocks.TinyViT(img_size=32)


# -- 5. depthwise ----------------------------------------------------------------------------------


def depthwise_multiplier() -> nn.Module:
    """BGU-CS-VIL/WTConv#34: a depthwise conv with four filters per channel (multiplier 4),
    built for 32 channels and given the image's 3."""
    return nn.Sequential(nn.Conv2d(32, 128, 3, padding=1, groups=32), nn.ReLU(), nn.Conv2d(128, 16, 1))


# -- 7. shapes in forward code -------------------------------------------------------------------


class YoloHead(nn.Module):
    """ultralytics/yolov3#120: the head's conv left at COCO's 255 filters for 12 classes; the
    view asks for 3 * (12 + 5) = 51: "shape '[1, 3, 17, 8, 8]' is invalid for input of size
    16320"."""

    def __init__(self, in_channels: int = 16, num_classes: int = 12, anchors: int = 3) -> None:
        super().__init__()
        self.na, self.no = anchors, num_classes + 5
        self.conv = nn.Conv2d(in_channels, 255, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.conv(x)
        b, _, ny, nx = p.shape
        return p.view(b, self.na, self.no, ny, nx).permute(0, 1, 3, 4, 2).contiguous()


class SpatialAttention(nn.Module):
    """landskape-ai/triplet-attention#19 (CBAM's spatial gate): the channel max taken without
    ``keepdim=True`` is [N, H, W] beside the mean's [N, 1, H, W]."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 1, 7, padding=3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        avg = torch.mean(x, dim=1, keepdim=True)
        mx, _ = torch.max(x, dim=1)
        return x * torch.sigmoid(self.conv(torch.cat([avg, mx], dim=1)))


class TokenHead(nn.Module):
    """sergeywong/cp-vton#30: ``view`` of a transposed tensor: "view size is not compatible
    with input tensor's size and stride"."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 4, 4)
        self.fc = nn.Linear(8 * 16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.conv(x).flatten(2).transpose(1, 2)
        return self.fc(t.view(t.size(0), -1))


class NonLocal(nn.Module):
    """heykeetae/Self-Attention-GAN#11: the value's permute missing in the attention product;
    with pooled keys and values (the non-local paper's) the shapes no longer meet."""

    def __init__(self, c: int = 8, inner: int = 4) -> None:
        super().__init__()
        self.theta = nn.Conv2d(c, inner, 1)
        self.phi = nn.Conv2d(c, inner, 1)
        self.g = nn.Conv2d(c, inner, 1)
        self.out = nn.Conv2d(inner, c, 1)
        self.pool = nn.MaxPool2d(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        q = self.theta(x).view(b, -1, h * w).permute(0, 2, 1)
        k = self.pool(self.phi(x)).view(b, -1, h * w // 4)
        v = self.pool(self.g(x)).view(b, -1, h * w // 4)
        attn = torch.softmax(torch.bmm(q, k), -1)
        y = torch.bmm(attn, v)
        return x + self.out(y.permute(0, 2, 1).reshape(b, -1, h, w))


def pixel_unshuffle_stem() -> nn.Module:
    """eduardzamfir/RT4KSR#4: a pixel-unshuffle stem given an odd side: "pixel_unshuffle
    expects height to be divisible by downscale_factor"."""
    return nn.Sequential(nn.PixelUnshuffle(2), nn.Conv2d(12, 16, 3, padding=1))


class WindowAttention(nn.Module):
    """microsoft/Swin-Transformer#96: 7x7 windows over a map whose side is not a multiple of 7."""

    def __init__(self, window: int = 7, dim: int = 16) -> None:
        super().__init__()
        self.window = window
        self.embed = nn.Conv2d(3, dim, 4, stride=4)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.embed(x).permute(0, 2, 3, 1)
        b, h, w, c = x.shape
        ws = self.window
        windows = x.view(b, h // ws, ws, w // ws, ws, c).permute(0, 1, 3, 2, 4, 5).reshape(-1, ws * ws, c)
        windows = self.proj(windows)
        x = windows.view(b, h // ws, w // ws, ws, ws, c).permute(0, 1, 3, 2, 4, 5).reshape(b, h, w, c)
        return x.permute(0, 3, 1, 2)


class MiniSegNet(nn.Module):
    """pytorch/pytorch#580: unpooling an odd-sized map without ``output_size=``."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.pool = nn.MaxPool2d(2, 2, return_indices=True)
        self.unpool = nn.MaxUnpool2d(2, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1, i1 = self.pool(self.conv(x))
        x2, i2 = self.pool(x1)
        y = self.unpool(x2, i2)
        return self.unpool(y, i1)


class PatchMix(nn.Module):
    """An ``nn.Fold`` built for 32x32 behind an Unfold of 64x64 images: the number of blocks
    differs (the constraint torch's documentation of Fold states)."""

    def __init__(self) -> None:
        super().__init__()
        self.unfold = nn.Unfold(kernel_size=4, stride=4)
        self.fold = nn.Fold(output_size=(32, 32), kernel_size=4, stride=4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fold(self.unfold(x))


# -- 8. verification on fx and CPU-fallback models ----------------------------------------------


class SmallNet(nn.Module):
    """pytorch/pytorch#90527, huggingface/transformers#27169: a shape error in a GraphModule
    made by ``torch.fx.symbolic_trace``; here a Linear sized for 16x16 inputs given 32x32."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, 2, 1)
        self.fc = nn.Linear(8 * 8 * 8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.conv(x))
        return self.fc(x.view(x.size(0), -1))


def fx_small_net() -> nn.Module:
    return torch.fx.symbolic_trace(SmallNet())


class Backbone(nn.Module):
    """A two-stage CNN backbone whose stages a feature extractor returns."""

    def __init__(self, layer2_in: int = 16) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1), nn.BatchNorm2d(16), nn.ReLU())
        self.layer1 = nn.Sequential(nn.Conv2d(16, 16, 3, 1, 1), nn.ReLU())
        self.layer2 = nn.Sequential(nn.Conv2d(layer2_in, 32, 3, 2, 1), nn.ReLU())
        self.fc = nn.Linear(32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer2(self.layer1(self.stem(x)))
        return self.fc(x.mean((2, 3)))


def feature_extractor(model: nn.Module, returns: dict[str, str]) -> torch.fx.GraphModule:
    """A GraphModule giving ``{name: output of module}``, built as torchvision's
    ``create_feature_extractor`` builds one: the model traced by ``torch.fx``, its output node
    replaced by a dict of the chosen modules' outputs, the rest of the graph dropped."""
    graph_module = torch.fx.symbolic_trace(model)
    graph = graph_module.graph
    nodes = {str(n.target): n for n in graph.nodes if n.op == "call_module"}
    output = next(n for n in graph.nodes if n.op == "output")
    with graph.inserting_before(output):
        graph.output({key: nodes[f"{module}.1"] for module, key in returns.items()})
    graph.erase_node(output)
    graph.eliminate_dead_code()
    graph_module.recompile()
    return graph_module


def features_of_grayscale() -> nn.Module:
    return feature_extractor(Backbone(), {"layer1": "feat1", "layer2": "feat2"})


def features_with_a_planted_width() -> nn.Module:
    return feature_extractor(Backbone(layer2_in=24), {"layer1": "feat1", "layer2": "feat2"})


class ScaledInput(SmallNet):
    """The same Linear, behind a forward that reads a value (inputs in 0..255 scaled down), which
    meta tensors cannot give: the trace runs on the CPU, and so must the fix's twin."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if float(x.max()) > 1.0:
            x = x / 255.0
        return super().forward(x)


# -- 9, 10. claims and facts -----------------------------------------------------------------------


class AsMlpBlock(nn.Module):
    """svip-lab/AS-MLP#6: ``nn.LayerNorm(C)`` on an NCHW map: "Given normalized_shape=[16],
    expected input with shape [*, 16], but got input of size[2, 16, 8, 8]"."""

    def __init__(self, c: int = 16) -> None:
        super().__init__()
        self.dw = nn.Conv2d(c, c, 7, padding=3, groups=c)
        self.norm = nn.LayerNorm(c)
        self.pw1 = nn.Conv2d(c, 4 * c, 1)
        self.pw2 = nn.Conv2d(4 * c, c, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.norm(self.dw(x))
        return x + self.pw2(F.gelu(self.pw1(y)))


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    b, c, h, w = x.shape
    x = x.view(b, groups, c // groups, h, w)
    return x.transpose(1, 2).contiguous().view(b, -1, h, w)


class ShuffleUnit(nn.Module):
    """wofmanaf/SA-Net#16: a channel shuffle of 116 channels into 3 groups."""

    def __init__(self, c: int = 116, groups: int = 3) -> None:
        super().__init__()
        self.groups = groups
        self.conv = nn.Conv2d(c, c, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return channel_shuffle(self.conv(x), self.groups)


# -- 1. the producer's side, continued: the odd one out of the layers joined by a cat ---


class DenseLayer(nn.Module):
    """A DenseNet layer: BN-ReLU-conv1x1-BN-ReLU-conv3x3 over the concatenation of every
    earlier layer's features; its 3x3 conv adds ``growth`` channels."""

    def __init__(self, channels: int, growth: int) -> None:
        super().__init__()
        self.norm1 = nn.BatchNorm2d(channels)
        self.conv1 = nn.Conv2d(channels, 4 * 8, 1, bias=False)
        self.norm2 = nn.BatchNorm2d(4 * 8)
        self.conv2 = nn.Conv2d(4 * 8, growth, 3, padding=1, bias=False)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        x = torch.cat(features, 1)
        return self.conv2(F.relu(self.norm2(self.conv1(F.relu(self.norm1(x))))))


class DenseBlock(nn.Module):
    """tdeboissiere/DeepLearningImplementations#72: a dense block's layer given the running
    filter count where the growth rate belongs. Layer 2 adds 16 channels, not 8; the layer
    after it gets 16 + 8 + 8 + 16 = 48 where it is built for 40, and no single layer made
    the 48: the siblings say which of the joined ones is the odd one out."""

    def __init__(self, channels: int = 16, growth: int = 8, layers: int = 4) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            DenseLayer(channels + i * growth, 2 * growth if i == 2 else growth) for i in range(layers)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [x]
        for layer in self.layers:
            features.append(layer(features))
        return torch.cat(features, 1)


class PatchEmbed(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, width, 4, stride=4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class TinyViT(nn.Module):
    """NiuTrans/Vision-LLM-Alignment#10: tokens of two widths concatenated ("Sizes of tensors
    must match except in dimension 1"). Here the patch embedding gives 48 features where the
    class token and every layer after it have 32; the list is built by an expression, so
    the line does not say the operands: the op's own tensors do."""

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        self.patch = PatchEmbed(48)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, width))
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch(x)
        to_cat = [self.cls_token.expand(x.shape[0], -1, -1)]
        x = torch.cat(to_cat + [x], dim=1)  # noqa: RUF005  (as timm writes it)
        return self.head(self.norm(x)[:, 0])


class ConvPosEnc(nn.Module):
    """huggingface/pytorch-image-models#354: a depthwise conv given a depth multiplier
    (out_channels = 2 * in_channels) where its output is added to its input: the sum's
    operands are read from the line, the conv's tensor from the op."""

    def __init__(self, channels: int = 16) -> None:
        super().__init__()
        self.proj = nn.Conv2d(channels, 2 * channels, 3, padding=1, groups=channels)

    def forward(self, feat: torch.Tensor) -> torch.Tensor:
        return self.proj(feat) + feat


class MixedConv(nn.Module):
    """huggingface/pytorch-image-models#241: a mixed conv, its channels split equally among
    kernel sizes and each split's output concatenated; one split built with the block's
    whole output width (32) where its share is 16."""

    def __init__(self, channels: int = 16, out: int = 32) -> None:
        super().__init__()
        half = channels // 2
        self.convs = nn.ModuleList(
            [nn.Conv2d(half, out // 2, 3, padding=1), nn.Conv2d(half, out, 5, padding=2)]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = torch.split(x, x.shape[1] // 2, dim=1)
        return torch.cat([conv(p) for conv, p in zip(self.convs, parts, strict=True)], dim=1)


def mixed_conv_net() -> nn.Module:
    return nn.Sequential(MixedConv(), nn.BatchNorm2d(32), nn.ReLU())


def library_token_norm() -> nn.Module:
    """Comfy-Org/ComfyUI#7022: a library's LayerNorm class (its own forward, over the last
    axis) built for 1280 features where its tokens have 1024 ("Given normalized_shape=[1280],
    expected input with shape [*, 1280], but got input of size [1, 257, 1024]")."""
    return nn.Sequential(blocks.PatchEmbed(32, 8, 3, 32), blocks.LayerNorm(40), nn.Linear(40, 10))


class Permute(nn.Module):
    """An axis order as a layer (torchvision's ConvNeXt block writes one)."""

    def __init__(self, dims: list[int]) -> None:
        super().__init__()
        self.dims = dims

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.permute(x, self.dims)


def convnext_block_depthwise_doubled(dw_out: int = 32, fc_in: int = 16) -> nn.Module:
    """facebookresearch/ConvNeXt#112, the block's channels-last half: a depthwise conv given
    twice its channels, then moved last for torch's LayerNorm and the MLP's Linear."""
    return nn.Sequential(
        nn.Conv2d(16, dw_out, 7, padding=3, groups=16),
        Permute([0, 2, 3, 1]),
        nn.LayerNorm(16),
        nn.Linear(fc_in, 64),
        nn.GELU(),
        nn.Linear(64, 16),
        Permute([0, 3, 1, 2]),
    )


GENERALIZE: dict[str, Broken] = {
    # 1. the producer's side
    "dcgan_conv_gives_the_norm_too_many": Broken(
        DcganDiscriminator,
        (2, 1, 28, 28),
        "norm_num_features",
        "main.3",
        (2, 256, 7, 7),
        "main.2: nn.Conv2d(in_channels=64, out_channels=128, kernel_size=4, stride=2, padding=1)",
        "return self.main(x)",
        origin="https://github.com/pytorch/pytorch/issues/9076",
    ),
    # ... and the odd one out of the layers whose outputs were concatenated
    "dense_layer_given_the_filter_count": Broken(
        DenseBlock,
        (1, 16, 8, 8),
        "norm_num_features",
        "layers.3.norm1",
        (1, 48, 8, 8),
        "layers.2.conv2: nn.Conv2d(in_channels=32, out_channels=8, kernel_size=3, padding=1, bias=False)",
        origin="https://github.com/tdeboissiere/DeepLearningImplementations/issues/72",
    ),
    # ... the operands of a cat whose list is built by an expression: the op's own tensors
    "tokens_wider_than_the_class_token": Broken(
        TinyViT,
        (1, 3, 16, 16),
        "combine_mismatch",
        "",
        (1, 1, 32),
        "patch.proj: nn.Conv2d(in_channels=3, out_channels=32, kernel_size=4, stride=4)",
        "torch.cat(to_cat + [x], dim=1)",
        origin="https://github.com/NiuTrans/Vision-LLM-Alignment/issues/10",
    ),
    # ... a depthwise conv given a multiplier, its output added to its input
    "depthwise_position_conv_with_a_multiplier": Broken(
        ConvPosEnc,
        (1, 16, 8, 8),
        "combine_mismatch",
        "",
        (1, 32, 8, 8),
        "proj: nn.Conv2d(in_channels=16, out_channels=16, kernel_size=3, padding=1, groups=16)",
        "self.proj(feat) + feat",
        origin="https://github.com/huggingface/pytorch-image-models/issues/354",
    ),
    # ... the odd part of a block's own join (a mixed conv's equal splits)
    "mixed_conv_split_given_the_whole_width": Broken(
        mixed_conv_net,
        (1, 16, 8, 8),
        "norm_num_features",
        "1",
        (1, 48, 8, 8),
        "0.convs.1: nn.Conv2d(in_channels=8, out_channels=16, kernel_size=5, padding=2)",
        origin="https://github.com/huggingface/pytorch-image-models/issues/241",
    ),
    # ... a library's token LayerNorm (its own forward, over the last axis): the producer
    "library_token_norm_built_for_another_width": Broken(
        library_token_norm,
        (1, 3, 32, 32),
        "layernorm_shape",
        "1",
        (1, 16, 32),
        "0.proj: nn.Conv2d(in_channels=3, out_channels=40, kernel_size=8, stride=8)",
        origin="https://github.com/Comfy-Org/ComfyUI/issues/7022",
    ),
    # ... back through a Permute layer to the conv that made the channels
    "convnext_depthwise_doubled_before_its_norm": Broken(
        convnext_block_depthwise_doubled,
        (1, 16, 8, 8),
        "layernorm_shape",
        "2",
        (1, 8, 8, 32),
        "0: nn.Conv2d(in_channels=16, out_channels=16, kernel_size=7, padding=3, groups=16)",
        origin="https://github.com/facebookresearch/ConvNeXt/issues/112",
    ),
    # ... a Linear on a channels-last map after torch's LayerNorm: its last axis, not a flatten
    "convnext_mlp_in_features_on_channels_last": Broken(
        lambda: convnext_block_depthwise_doubled(16, 17),
        (1, 16, 8, 8),
        "linear_in_features",
        "3",
        (1, 8, 8, 16),
        "nn.Linear(in_features=16, out_features=64)",
        origin="https://github.com/facebookresearch/ConvNeXt/issues/112",
    ),
    # 2. several sites: the same change in every block, a chunk's root cause
    "se_fc2_in_every_block": Broken(
        se_net,
        (1, 3, 32, 32),
        "conv_in_channels",
        "1.se.fc2",
        (1, 8, 1, 1),
        "fc2 of every SqueezeExcite (3): nn.Conv2d(in_channels=8, out_channels=32, kernel_size=1)",
        "self.fc2(F.relu(self.fc1(self.pool(x))))",
        origin="https://github.com/braindecode/braindecode/pull/955",
    ),
    "res2net_18_channels_in_4_scales": Broken(
        Res2Block,
        (1, 18, 16, 16),
        "conv_in_channels",
        "convs.0",
        (1, 5, 16, 16),
        "conv1: nn.Conv2d(in_channels=18, out_channels=16, kernel_size=1), and "
        "conv3: nn.Conv2d(in_channels=16, out_channels=18, kernel_size=1)",
        "ys.append(conv(y))",
        origin="https://github.com/4uiiurz1/pytorch-res2net/issues/1",
    ),
    # 3, 4, 6. installed packages
    "library_block_stride_changed_by_hand": Broken(
        resnet_conv1_unstrided,
        (1, 3, 32, 32),
        "combine_mismatch",
        "layer2.0",
        (1, 16, 32, 32),
        "layer2.0.downsample.0: nn.Conv2d(in_channels=8, out_channels=16, kernel_size=1, stride=1, "
        "bias=False)",
        origin="https://github.com/kuangliu/pytorch-cifar/issues/53",
    ),
    "library_conv_class_four_channels": Broken(
        efficientnet_four_channels,
        (1, 4, 32, 32),
        "conv_in_channels",
        "conv_stem",
        (1, 4, 32, 32),
        "Conv2dSame(in_channels=4, out_channels=16, kernel_size=3, stride=2, bias=False)",
        origin="https://github.com/rwightman/gen-efficientnet-pytorch/issues/48",
        alternative="input",
    ),
    "convnext_stem_wider_than_its_norm": Broken(
        convnext_stem_wider_than_its_norm,
        (1, 3, 32, 32),
        "norm_num_features",
        "1",
        (1, 64, 8, 8),
        "0: nn.Conv2d(in_channels=3, out_channels=96, kernel_size=4, stride=4)",
        origin="https://github.com/facebookresearch/ConvNeXt/issues/112",
    ),
    "layer_scale_after_an_mlp_block": Broken(
        LayerScaleBlock,
        (1, 32, 8, 8),
        "combine_mismatch",
        "",
        (1, 33, 8, 8),
        "mlp.2: nn.Conv2d(in_channels=128, out_channels=32, kernel_size=1)",
        "return x + y.mul(self.gamma.reshape(1, -1, 1, 1))",
        origin="https://github.com/facebookresearch/ConvNeXt/blob/main/models/convnext.py",
    ),
    "library_assertion_no_batch_axis": Broken(
        reid_unbatched,
        (3, 32, 32),
        "missing_batch_axis",
        "bn1",
        (16, 16, 16),
        "x = x.unsqueeze(0)",
        fix_kind="input",
        origin="https://github.com/michuanhaohao/reid-strong-baseline/issues/6",
    ),
    "library_assertion_image_size": Broken(
        vit_built_for_32,
        (1, 3, 48, 48),
        "declared_input_size",
        "patch_embed",
        (1, 3, 48, 48),
        "an input of 1x3x32x32",
        fix_kind="input",
        origin="https://github.com/facebookresearch/mae/issues/160",
    ),
    # ... the same assertion met by a channels-last batch (an image loader's (N, H, W, C)):
    # the channels moved, not the size
    "library_assertion_channels_last_batch": Broken(
        vit_built_for_32,
        (1, 32, 32, 3),
        "channels_last",
        "patch_embed",
        (1, 32, 32, 3),
        "x = x.permute(0, 3, 1, 2)",
        fix_kind="input",
        origin="https://github.com/facebookresearch/mae/issues/160",
    ),
    # 5. depthwise
    "depthwise_multiplier_for_other_channels": Broken(
        depthwise_multiplier,
        (1, 3, 16, 16),
        "conv_in_channels",
        "0",
        (1, 3, 16, 16),
        "0: nn.Conv2d(in_channels=3, out_channels=12, kernel_size=3, padding=1, groups=3), and "
        "2: nn.Conv2d(in_channels=12, out_channels=16, kernel_size=1)",
        origin="https://github.com/BGU-CS-VIL/WTConv/issues/34",
    ),
    # 7. forward code
    "yolo_head_255_filters_for_12_classes": Broken(
        YoloHead,
        (1, 16, 8, 8),
        "view_size",
        "",
        (1, 255, 8, 8),
        "conv: nn.Conv2d(in_channels=16, out_channels=51, kernel_size=1)",
        "p.view(b, self.na, self.no, ny, nx)",
        origin="https://github.com/ultralytics/yolov3/issues/120",
    ),
    "cbam_max_without_keepdim": Broken(
        SpatialAttention,
        (2, 8, 16, 16),
        "concat_rank",
        "",
        (2, 1, 16, 16),
        "mx, _ = torch.max(x, dim=1, keepdim=True)",
        "torch.cat([avg, mx], dim=1)",
        fix_kind="code",
        origin="https://github.com/landskape-ai/triplet-attention/issues/19",
    ),
    "view_after_transpose": Broken(
        TokenHead,
        (2, 3, 16, 16),
        "view_not_contiguous",
        "",
        (2, 16, 8),
        "return self.fc(t.reshape(t.size(0), -1))",
        "t.view(t.size(0), -1)",
        fix_kind="code",
        origin="https://github.com/sergeywong/cp-vton/issues/30",
    ),
    "non_local_value_not_transposed": Broken(
        NonLocal,
        (1, 8, 8, 8),
        "matmul_shapes",
        "",
        (1, 64, 16),
        "y = torch.bmm(attn, v.transpose(-2, -1))",
        "y = torch.bmm(attn, v)",
        fix_kind="code",
        origin="https://github.com/heykeetae/Self-Attention-GAN/issues/11",
    ),
    "pixel_unshuffle_odd_side": Broken(
        pixel_unshuffle_stem,
        (1, 3, 63, 64),
        "input_not_divisible",
        "0",
        (1, 3, 63, 64),
        "an input of 1x3x64x64",
        fix_kind="input",
        origin="https://github.com/eduardzamfir/RT4KSR/issues/4",
    ),
    "swin_windows_of_7_over_12": Broken(
        WindowAttention,
        (1, 3, 48, 48),
        "view_size",
        "",
        (1, 12, 12, 16),
        "an input of 1x3x56x56",
        "x.view(b, h // ws, ws, w // ws, ws, c)",
        fix_kind="input",
        origin="https://github.com/microsoft/Swin-Transformer/issues/96",
    ),
    "fold_built_for_another_size": Broken(
        PatchMix,
        (1, 3, 64, 64),
        "fold_output_size",
        "fold",
        (1, 48, 256),
        "nn.Fold(output_size=64, kernel_size=4, stride=4)",
        "return self.fold(self.unfold(x))",
        origin="https://docs.pytorch.org/docs/main/generated/torch.nn.modules.fold.Fold.html",
        alternative="input",
    ),
    # 8. verification on an fx GraphModule
    "fx_graph_module_linear": Broken(
        fx_small_net,
        (1, 3, 32, 32),
        "linear_in_features",
        "fc",
        (1, 2048),
        "nn.Linear(in_features=2048, out_features=10)",
        origin="https://github.com/pytorch/pytorch/issues/90527",
    ),
    "fx_feature_extractor_grayscale": Broken(
        features_of_grayscale,
        (1, 1, 64, 48),
        "conv_in_channels",
        "stem.0",
        (1, 1, 64, 48),
        "nn.Conv2d(in_channels=1, out_channels=16, kernel_size=3, stride=2, padding=1)",
        origin="https://github.com/lancedb/yoloexplorer/pull/43",
        alternative="input",
    ),
    "fx_feature_extractor_planted_width": Broken(
        features_with_a_planted_width,
        (1, 3, 64, 48),
        "conv_in_channels",
        "layer2.0",
        (1, 16, 32, 24),
        "nn.Conv2d(in_channels=16, out_channels=32, kernel_size=3, stride=2, padding=1)",
        origin="https://pytorch.org/vision/stable/feature_extraction.html",
    ),
    # 9. a true claim, 10. facts instead of filler
    "as_mlp_layer_norm_on_channels_first": Broken(
        AsMlpBlock,
        (2, 16, 8, 8),
        "layernorm_channels",
        "norm",
        (2, 16, 8, 8),
        "y = self.norm(self.dw(x).permute(0, 2, 3, 1)).permute(0, 3, 1, 2)",
        "y = self.norm(self.dw(x))",
        fix_kind="code",
        origin="https://github.com/svip-lab/AS-MLP/issues/6",
        alternative="layer",
    ),
    "channel_shuffle_116_in_3_groups": Broken(
        ShuffleUnit,
        (1, 116, 8, 8),
        "view_size",
        "",
        (1, 116, 8, 8),
        None,
        "x = x.view(b, groups, c // groups, h, w)",
        fix_kind=None,
        origin="https://github.com/wofmanaf/SA-Net/issues/16",
    ),
}
