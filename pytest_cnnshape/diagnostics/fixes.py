"""How a fix reads: the layer's constructor call with the right number in it.

``layer_call(fc, in_features=800)`` gives ``nn.Linear(in_features=800,
out_features=10)``: the user's own layer, written out from its settings, with
only the wrong argument changed, so the fix can be pasted over the old line.
Arguments at their defaults are left out, as people write them. A layer with a
spectral or weight norm is written with it (``nn.utils.parametrizations
.spectral_norm(nn.Linear(...))``): torch's generated class names
(``ParametrizedLinear``) name nothing a user can construct.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import nn
from torch.nn.modules.lazy import LazyModuleMixin

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

_SPECS: tuple[tuple[type, _Spec], ...] = (
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


def layer_class(module: nn.Module) -> type[nn.Module]:
    """The class a user writes: a parametrized layer's own (``Linear``, not
    ``ParametrizedLinear``)."""
    cls = type(module)
    if cls.__module__ == "torch.nn.utils.parametrize" and cls.__bases__:
        return cls.__bases__[0]
    return cls


def _norm_wrappers(module: nn.Module) -> list[str]:
    """How the layer's weight reparametrizations are written, innermost first, each with
    ``{}`` for the layer: ``nn.utils.parametrizations.spectral_norm({})``."""
    out: list[str] = []
    holder: Any = module._modules.get("parametrizations")
    if holder is not None:
        for tensor, chain in holder.items():
            named = "" if tensor == "weight" else f", name={tensor!r}"
            for p in list(chain):
                func = {
                    "_SpectralNorm": "spectral_norm",
                    "_WeightNorm": "weight_norm",
                    "_Orthogonal": "orthogonal",
                }.get(type(p).__name__)
                if func is not None:
                    out.append(f"nn.utils.parametrizations.{func}({{}}{named})")
    hooks: list[Any] = list(module._forward_pre_hooks.values())
    for hook in hooks:
        kind = type(hook)
        if kind.__module__ == "torch.nn.utils.spectral_norm" and kind.__name__ == "SpectralNorm":
            named = "" if hook.name == "weight" else f", name={hook.name!r}"
            out.append(f"nn.utils.spectral_norm({{}}{named})")
        elif kind.__module__ == "torch.nn.utils.weight_norm" and kind.__name__ == "WeightNorm":
            named = "" if hook.name == "weight" else f", name={hook.name!r}"
            out.append(f"nn.utils.weight_norm({{}}{named}, dim={hook.dim})")
    return out


def _literal(value: Any) -> str:
    """A setting as code: ``3`` for ``(3, 3)``, ``64`` for ``(64,)``, strings quoted."""
    if isinstance(value, (tuple, list)) and value and all(v == value[0] for v in value):
        return _literal(value[0])
    if isinstance(value, tuple):
        return "(" + ", ".join(_literal(v) for v in value) + ")"
    if isinstance(value, list):
        return "[" + ", ".join(_literal(v) for v in value) + "]"
    return repr(value)


def _same(a: Any, b: Any) -> bool:
    return _literal(a) == _literal(b)


def layer_call(module: nn.Module, **changes: Any) -> str:
    """``nn.Conv2d(in_channels=3, out_channels=16, kernel_size=3)`` with ``changes`` applied.

    Layers outside the known families fall back to ``nn.Type(...)``.
    """
    cls = layer_class(module)
    name = cls.__name__
    prefix = "nn." if cls.__module__.startswith("torch.nn") else ""
    spec = next((s for family, s in _SPECS if issubclass(cls, family)), None)
    if spec is None:
        args = ", ".join(f"{k}={_literal(v)}" for k, v in changes.items())
        return f"{prefix}{name}({args or '...'})"
    if isinstance(module, LazyModuleMixin):  # the input size is inferred: never written
        spec = [entry for entry in spec if entry[0] not in ("in_features", "in_channels", "num_features")]
    parts = []
    for arg, read, default in spec:
        if not (arg in changes or callable(read) or hasattr(module, read)):
            continue  # a setting this class does not have (proj_size of a GRU)
        value = (
            changes[arg]
            if arg in changes
            else (read(module) if callable(read) else getattr(module, read, None))
        )
        usual = getattr(module, "kernel_size", None) if default == "kernel" else default
        if arg in changes or usual is None or not _same(value, usual):
            parts.append(f"{arg}={_literal(value)}")
    text = f"{prefix}{name}({', '.join(parts)})"
    for wrapper in _norm_wrappers(module):
        text = wrapper.format(text)
    return text


def product(sizes: Sequence[int]) -> str:
    """``32 * 5 * 5`` (a single size stays as it is)."""
    return " * ".join(str(s) for s in sizes)


def layer_fix(name: str, module: nn.Module, **changes: Any) -> ReplaceLayer:
    """The patch that puts ``layer_call(module, **changes)`` at ``name``."""
    text = layer_call(module, **changes)
    return ReplaceLayer(text, name=name, code=text)
