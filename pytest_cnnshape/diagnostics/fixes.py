"""How a fix reads: the layer's constructor call with the right number in it.

``layer_call(fc, in_features=800)`` gives ``nn.Linear(in_features=800,
out_features=10)``: the user's own layer, written out from its settings, with
only the wrong argument changed, so the fix can be pasted over the old line.
Arguments at their defaults are left out, as people write them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import nn
from torch.nn.modules.lazy import LazyModuleMixin

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
)


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
    name = type(module).__name__
    prefix = "nn." if type(module).__module__.startswith("torch.nn") else ""
    spec = next((s for cls, s in _SPECS if isinstance(module, cls)), None)
    if spec is None:
        args = ", ".join(f"{k}={_literal(v)}" for k, v in changes.items())
        return f"{prefix}{name}({args or '...'})"
    if isinstance(module, LazyModuleMixin):  # the input size is inferred: never written
        spec = [entry for entry in spec if entry[0] not in ("in_features", "in_channels", "num_features")]
    parts = []
    for arg, read, default in spec:
        value = (
            changes[arg]
            if arg in changes
            else (read(module) if callable(read) else getattr(module, read, None))
        )
        usual = getattr(module, "kernel_size", None) if default == "kernel" else default
        if arg in changes or usual is None or not _same(value, usual):
            parts.append(f"{arg}={_literal(value)}")
    return f"{prefix}{name}({', '.join(parts)})"


def product(sizes: Sequence[int]) -> str:
    """``32 * 5 * 5`` (a single size stays as it is)."""
    return " * ".join(str(s) for s in sizes)
