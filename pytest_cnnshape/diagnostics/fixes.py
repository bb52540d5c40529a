"""How a fix reads: the layer's constructor call with the right number in it.

``layer_call(fc, in_features=800)`` gives ``nn.Linear(in_features=800,
out_features=10)``: the user's own layer, written out from its settings, with
only the wrong argument changed, so the fix can be pasted over the old line.
Arguments at their defaults are left out, as people write them. A layer with a
spectral or weight norm is written with it (``nn.utils.parametrizations
.spectral_norm(nn.Linear(...))``): torch's generated class names
(``ParametrizedLinear``) name nothing a user can construct. ``SPECS`` lists torch's
layer families and how each argument is read; ``edits`` builds and writes from it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import nn

from .edits import LayerEdit, product
from .patches import ReplaceLayer

#: Per layer family: (argument, attribute or callable reading it, default or None = always shown).
_Spec = Sequence[tuple[str, Any, Any]]


def _bias(m: nn.Module) -> bool:
    return getattr(m, "bias", None) is not None


_CONV: _Spec = (
    ("in_channels", "in_channels", None),
    ("out_channels", "out_channels", None),
    ("kernel_size", "kernel_size", None),
    ("stride", "stride", 1),
    ("padding", "padding", 0),
    ("dilation", "dilation", 1),
    ("groups", "groups", 1),
    ("bias", _bias, True),
    ("padding_mode", "padding_mode", "zeros"),
)
_CONV_TRANSPOSE: _Spec = (*_CONV[:5], ("output_padding", "output_padding", 0), *_CONV[5:])
_NORM: _Spec = (
    ("num_features", "num_features", None),
    ("eps", "eps", 1e-5),
    ("momentum", "momentum", 0.1),
    ("affine", "affine", True),
    ("track_running_stats", "track_running_stats", True),
)
_INSTANCE_NORM: _Spec = (
    *_NORM[:3],
    ("affine", "affine", False),
    ("track_running_stats", "track_running_stats", False),
)
_POOL: _Spec = (
    ("kernel_size", "kernel_size", None),
    ("stride", "stride", "kernel"),
    ("padding", "padding", 0),
    ("dilation", "dilation", 1),
    ("ceil_mode", "ceil_mode", False),
)

#: Per torch layer family: its constructor arguments, how each is read, its default.
SPECS: tuple[tuple[type, _Spec], ...] = (
    (
        nn.Linear,
        (("in_features", "in_features", None), ("out_features", "out_features", None), ("bias", _bias, True)),
    ),
    (nn.modules.conv._ConvTransposeNd, _CONV_TRANSPOSE),
    (nn.modules.conv._ConvNd, _CONV),
    (nn.modules.instancenorm._InstanceNorm, _INSTANCE_NORM),
    (nn.modules.batchnorm._BatchNorm, _NORM),
    (
        nn.GroupNorm,
        (
            ("num_groups", "num_groups", None),
            ("num_channels", "num_channels", None),
            ("eps", "eps", 1e-5),
            ("affine", "affine", True),
        ),
    ),
    (
        nn.LayerNorm,
        (
            ("normalized_shape", "normalized_shape", None),
            ("eps", "eps", 1e-5),
            ("elementwise_affine", "elementwise_affine", True),
        ),
    ),
    (nn.modules.pooling._MaxPoolNd, _POOL),
    (nn.modules.pooling._AvgPoolNd, (*_POOL[:3], ("ceil_mode", "ceil_mode", False))),
    (nn.Flatten, (("start_dim", "start_dim", 1), ("end_dim", "end_dim", -1))),
    (
        nn.modules.rnn.RNNBase,
        (
            ("input_size", "input_size", None),
            ("hidden_size", "hidden_size", None),
            ("num_layers", "num_layers", 1),
            ("nonlinearity", "nonlinearity", "tanh"),
            ("bias", "bias", True),
            ("batch_first", "batch_first", False),
            ("dropout", "dropout", 0.0),
            ("bidirectional", "bidirectional", False),
            ("proj_size", "proj_size", 0),
        ),
    ),
    (nn.PixelShuffle, (("upscale_factor", "upscale_factor", None),)),
    (nn.PixelUnshuffle, (("downscale_factor", "downscale_factor", None),)),
    (nn.modules.pooling._AdaptiveAvgPoolNd, (("output_size", "output_size", None),)),
    (nn.modules.pooling._AdaptiveMaxPoolNd, (("output_size", "output_size", None),)),
    (
        nn.modules.pooling._MaxUnpoolNd,
        (("kernel_size", "kernel_size", None), ("stride", "stride", "kernel"), ("padding", "padding", 0)),
    ),
)


def layer_call(module: nn.Module, **changes: Any) -> str:
    """``nn.Conv2d(in_channels=3, out_channels=16, kernel_size=3)`` with ``changes`` applied
    (``edits.LayerEdit``: any class, torch's own written from the settings above)."""
    return LayerEdit(module, changes).text()


def layer_fix(name: str, module: nn.Module, **changes: Any) -> ReplaceLayer:
    """The patch that puts ``module`` with ``changes`` at ``name``."""
    return ReplaceLayer(name, LayerEdit(module, changes))


__all__ = ["SPECS", "layer_call", "layer_fix", "product"]
