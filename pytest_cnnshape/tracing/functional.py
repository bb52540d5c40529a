"""Sized functional ops in forward code: ``F.conv2d``, ``F.max_pool2d``, ``F.interpolate``...

A torch layer's size rule is read from the module's settings
(``arith.spatial_output_of``); a functional call has no module, so its sizes are
invisible to the hooks. ``FunctionalOps`` (a recorder observer and an op watcher,
like ``Lineage``) notes each sized op that forward code calls — not the ones a
torch layer runs inside its own forward — with its settings, its input and output
shapes and its place among the module calls, and the one that raised. Size
diagnostics put them on the size path, the size search knows when one ran out of
pixels, and fixes can name them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from .. import arith
from .recorder import RunningCall

Shape = tuple[int, ...]

#: The positional parameters of each family, as torch.nn.functional declares them.
_PARAMETERS: dict[str, tuple[str, ...]] = {
    "conv": ("input", "weight", "bias", "stride", "padding", "dilation", "groups"),
    "conv_transpose": (
        "input",
        "weight",
        "bias",
        "stride",
        "padding",
        "output_padding",
        "groups",
        "dilation",
    ),
    "max_pool": ("input", "kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices"),
    "avg_pool": ("input", "kernel_size", "stride", "padding", "ceil_mode", "count_include_pad"),
    "adaptive_avg_pool": ("input", "output_size"),
    "adaptive_max_pool": ("input", "output_size", "return_indices"),
    "max_unpool": ("input", "indices", "kernel_size", "stride", "padding", "output_size"),
    "interpolate": ("input", "size", "scale_factor", "mode", "align_corners"),
    "pad": ("input", "pad", "mode", "value"),
    "pixel_shuffle": ("input", "upscale_factor"),
    "pixel_unshuffle": ("input", "downscale_factor"),
}
_NAME = re.compile(
    r"^(conv_transpose|conv|max_pool|avg_pool|adaptive_avg_pool|adaptive_max_pool|max_unpool)([123])d"
    r"(?:_with_indices)?$"
)
#: Settings worth showing, with the defaults that are left out (as people write the call).
_SHOWN: dict[str, Any] = {
    "kernel_size": None,
    "stride": None,
    "padding": 0,
    "output_padding": 0,
    "dilation": 1,
    "output_size": None,
    "size": None,
    "scale_factor": None,
    "pad": None,
    "upscale_factor": None,
    "downscale_factor": None,
    "ceil_mode": False,
}


def family(func: Any) -> tuple[str, int | None] | None:
    """``("max_pool", 2)`` for ``F.max_pool2d``; None for an op that is not sized."""
    name = str(getattr(func, "__name__", ""))
    found = _NAME.match(name)
    if found is not None:
        return found.group(1), int(found.group(2))
    if name in ("interpolate", "upsample", "pad", "pixel_shuffle", "pixel_unshuffle"):
        return ("interpolate" if name == "upsample" else name), None
    return None


@dataclass(frozen=True)
class FunctionalCall:
    """One sized functional op of forward code."""

    #: ``max_pool2d``, ``interpolate``...
    name: str
    family: str
    #: Spatial dimensions it works on.
    dims: int
    input_shape: Shape
    #: None: this op raised.
    output_shape: Shape | None
    #: Its arguments beyond the input (tensors by their shapes).
    settings: dict[str, Any] = field(default_factory=dict)
    #: Module calls entered before it: it ran between ``trace.layers[position - 1]`` and
    #: ``trace.layers[position]``.
    position: int = 0

    @property
    def label(self) -> str:
        """``F.max_pool2d(kernel_size=2)``: the call as code, its settings as given."""
        shown = ", ".join(
            f"{k}={self.settings[k]!r}"
            for k, usual in _SHOWN.items()
            if self.settings.get(k) is not None and self.settings.get(k) != usual
        )
        return f"F.{self.name}({shown})"

    def spatial_output(self, sides: Sequence[int]) -> tuple[int, ...] | None:
        """The output sides for input sides ``sides``, from its settings (None: unknown)."""
        rule = _RULES.get(self.family)
        if rule is None:
            return None
        try:
            out: tuple[int, ...] | None = rule(self, tuple(sides))
        except (KeyError, TypeError, ValueError, IndexError):
            return None
        return out

    def runs_out(self) -> bool:
        """True when its window no longer fits its input (a conv or pooling that raised)."""
        if self.family not in ("conv", "max_pool", "avg_pool") or len(self.input_shape) < self.dims + 1:
            return False
        out = self.spatial_output(self.input_shape[-self.dims :])
        return out is not None and min(out) < 1


Sides = tuple[int, ...]


def _conv(call: FunctionalCall, sides: Sides) -> Sides:
    s, dims, per = call.settings, len(sides), arith.per_dim
    kernel = tuple(s["weight"][2:])
    stride, dilation = per(s.get("stride", 1), dims), per(s.get("dilation", 1), dims)
    padding = s.get("padding", 0)
    if padding == "same":
        return sides
    padding = per(0 if padding == "valid" else padding, dims)
    return tuple(
        arith.conv_output_size(n, k, stride=st, padding=p, dilation=d)
        for n, k, st, p, d in zip(sides, kernel, stride, padding, dilation, strict=True)
    )


def _conv_transpose(call: FunctionalCall, sides: Sides) -> Sides:
    s, dims, per = call.settings, len(sides), arith.per_dim
    kernel = tuple(s["weight"][2:])
    return tuple(
        arith.conv_transpose_output_size(n, k, stride=st, padding=p, output_padding=op, dilation=d)
        for n, k, st, p, op, d in zip(
            sides,
            kernel,
            per(s.get("stride", 1), dims),
            per(s.get("padding", 0), dims),
            per(s.get("output_padding", 0), dims),
            per(s.get("dilation", 1), dims),
            strict=True,
        )
    )


def _pool(call: FunctionalCall, sides: Sides) -> Sides | None:
    from torch import nn

    maximum = call.family == "max_pool"
    cls = (
        (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d) if maximum else (nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d)
    )[call.dims - 1]
    keys = ("kernel_size", "stride", "padding", "ceil_mode") + (("dilation",) if maximum else ())
    pool = cls(**{k: call.settings[k] for k in keys if call.settings.get(k) is not None})
    return arith.spatial_output_of(pool, sides)


def _adaptive(call: FunctionalCall, sides: Sides) -> Sides:
    sizes = arith.per_dim(call.settings["output_size"], len(sides))
    return tuple(n if o is None else int(o) for n, o in zip(sides, sizes, strict=True))


def _unpool(call: FunctionalCall, sides: Sides) -> Sides:
    s, dims, per = call.settings, len(sides), arith.per_dim
    if s.get("output_size") is not None:
        return tuple(int(v) for v in tuple(s["output_size"])[-dims:])
    kernel = per(s["kernel_size"], dims)
    stride = per(s.get("stride") or s["kernel_size"], dims)
    padding = per(s.get("padding", 0), dims)
    return tuple((n - 1) * st - 2 * p + k for n, k, st, p in zip(sides, kernel, stride, padding, strict=True))


def _interpolate(call: FunctionalCall, sides: Sides) -> Sides:
    import math

    s, dims = call.settings, len(sides)
    if s.get("size") is not None:
        return tuple(int(v) for v in arith.per_dim(s["size"], dims))
    return tuple(
        math.floor(n * f) for n, f in zip(sides, arith.per_dim(s["scale_factor"], dims), strict=True)
    )


def _pad(call: FunctionalCall, sides: Sides) -> Sides:
    pad = tuple(call.settings["pad"])
    out = list(sides)
    for i in range(len(pad) // 2):  # pairs from the last dimension backwards
        axis = len(sides) - 1 - i
        if axis >= 0:
            out[axis] += pad[2 * i] + pad[2 * i + 1]
    return tuple(out)


#: The size rule of each family, from its settings.
_RULES: dict[str, Any] = {
    "conv": _conv,
    "conv_transpose": _conv_transpose,
    "max_pool": _pool,
    "avg_pool": _pool,
    "adaptive_avg_pool": _adaptive,
    "adaptive_max_pool": _adaptive,
    "max_unpool": _unpool,
    "interpolate": _interpolate,
    "pad": _pad,
    "pixel_shuffle": lambda call, sides: tuple(n * int(call.settings["upscale_factor"]) for n in sides),
    "pixel_unshuffle": lambda call, sides: tuple(n // int(call.settings["downscale_factor"]) for n in sides),
}


def _shape_of(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return tuple(value.shape)
    if isinstance(value, (list, tuple)) and all(isinstance(v, (int, float, bool, type(None))) for v in value):
        return tuple(value)
    if isinstance(value, (int, float, bool, str)) or value is None:
        return value
    return repr(value)


def _call(
    func: Any, args: tuple[Any, ...], kwargs: dict[str, Any], result: Any, position: int
) -> FunctionalCall | None:
    found = family(func)
    if found is None or not args or not isinstance(args[0], torch.Tensor):
        return None
    kind, dims = found
    x = args[0]
    dims = dims if dims is not None else max(x.dim() - 2, 1)
    given = dict(zip(_PARAMETERS[kind], args, strict=False)) | kwargs
    settings = {k: _shape_of(v) for k, v in given.items() if k != "input"}
    out = result[0] if isinstance(result, tuple) and result else result
    return FunctionalCall(
        name=str(getattr(func, "__name__", kind)).removesuffix("_with_indices"),
        family=kind,
        dims=dims,
        input_shape=tuple(x.shape),
        output_shape=tuple(out.shape) if isinstance(out, torch.Tensor) else None,
        settings=settings,
        position=position,
    )


def _tensors(value: Any) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in _tensors(v)]
    if isinstance(value, dict):
        return [t for v in value.values() for t in _tensors(v)]
    return []


def _in_torch_layer(module: Any) -> bool:
    return type(module).__module__.startswith("torch.nn.modules.")


@dataclass
class FunctionalOps:
    """The sized functional ops forward code ran, in order, and the one that raised."""

    calls: list[FunctionalCall] = field(default_factory=list)
    #: The sized op that raised, if the forward failed in one.
    failed_call: FunctionalCall | None = None
    #: The tensors the op of forward code that raised was given (any op: ``a + b``,
    #: ``torch.cat([a, b])``), in order, for their shapes and data flow (``Lineage.origin``),
    #: and the op's name.
    failed_tensors: tuple[torch.Tensor, ...] = ()
    failed_name: str = ""
    _entered: int = 0
    _stack: list[bool] = field(default_factory=list)

    @property
    def failed_shapes(self) -> tuple[Shape, ...]:
        """The shapes of ``failed_tensors``."""
        return tuple(tuple(t.shape) for t in self.failed_tensors)

    # -- recorder observer ---------------------------------------------------------

    def started(self) -> None:
        """A forward begins: forget an earlier attempt."""
        self.calls.clear()
        self.failed_call = None
        self.failed_tensors = ()
        self.failed_name = ""
        self._entered = 0
        self._stack.clear()

    def entered(self, call: RunningCall) -> None:
        self._entered = call.index + 1
        self._stack.append(_in_torch_layer(call.module))

    def left(self, call: RunningCall, output: Any) -> None:
        if self._stack:
            self._stack.pop()

    # -- op watcher ----------------------------------------------------------------

    def _from_forward_code(self) -> bool:
        return bool(self._stack) and not self._stack[-1]

    def op(self, func: Any, args: tuple[Any, ...], kwargs: dict[str, Any], result: Any) -> None:
        if self._from_forward_code():
            found = _call(func, args, kwargs, result, self._entered)
            if found is not None:
                self.calls.append(found)

    def failed(self, func: Any, args: tuple[Any, ...], kwargs: dict[str, Any], exc: BaseException) -> None:
        if self.failed_tensors or not self._from_forward_code():
            return
        self.failed_tensors = tuple(_tensors((args, kwargs)))
        self.failed_name = str(getattr(func, "__name__", "") or "")
        self.failed_call = _call(func, args, kwargs, None, self._entered)
