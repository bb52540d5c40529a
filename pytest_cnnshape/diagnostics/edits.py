"""What a fix changes, as data: a layer with its settings changed, a new layer, a transform.

A fix is never text evaluated back. A patch holds one of these, and its text is
rendered from it:

* ``LayerEdit``: the model's own layer, one or more of its settings changed
  (``in_channels``, ``stride``, ``num_features``...). Any class from any package: for
  torch's own layers the constructor call is written from their documented settings
  (``fixes.SPECS``); for any other class the settings are read off its ``__init__``
  signature and attributes, and used only when building the class with them gives
  back the very layer (same repr, same parameter and buffer shapes, same children).
  Otherwise the twin is the layer itself, copied, with the settings changed and the
  tensors they size made anew (``_restructured``): timm's ``BatchNormAct2d`` keeps its
  activation, ``ScaledStdConv2d`` its gain. A depthwise conv keeps one group per
  channel and its channel multiplier.
* ``NewLayer``: a layer of another class (``nn.AdaptiveAvgPool2d(1)``,
  ``nn.Sequential(nn.Flatten(), nn.Linear(...))``), built from its class and arguments.
* ``Transform``: what forward code does to a tensor, step by step
  (``x.permute(0, 3, 1, 2)``, ``torch.flatten(x, 1)``, ``x[:, :3]``): applied by calling
  those very methods, written as the code a user pastes.
"""

from __future__ import annotations

import copy
import functools
import inspect
import math
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn


class Unbuildable(Exception):
    """Internal: a layer this module cannot build like the model's; its fix is not verified."""


def literal(value: Any) -> str:
    """A setting as code: ``3`` for ``(3, 3)``, ``64`` for ``(64,)``, strings quoted."""
    if isinstance(value, (tuple, list)) and value and all(v == value[0] for v in value):
        return literal(value[0])
    if isinstance(value, tuple):
        return "(" + ", ".join(literal(v) for v in value) + ")"
    if isinstance(value, list):
        return "[" + ", ".join(literal(v) for v in value) + "]"
    if isinstance(value, torch.dtype):
        return str(value)
    if isinstance(value, type):
        return _class_text(value)
    return repr(value)


def same(a: Any, b: Any) -> bool:
    """Two settings are the same as code (``3`` and ``(3, 3)`` are)."""
    return literal(a) == literal(b)


def _class_text(cls: type) -> str:
    """How a class is written: ``nn.Conv2d`` for torch's layers, the bare name otherwise."""
    if cls.__module__.startswith("torch.nn.modules"):
        return f"nn.{cls.__name__}"
    return cls.__name__


def layer_class(module: nn.Module) -> type[nn.Module]:
    """The class a user writes: a parametrized layer's own (``Linear``, not ``ParametrizedLinear``)."""
    cls = type(module)
    if cls.__module__ == "torch.nn.utils.parametrize" and cls.__bases__:
        return cls.__bases__[0]
    return cls


# -- reading a layer's settings ------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    """How a layer is built: its class and constructor keywords, and which are shown."""

    cls: type[nn.Module]
    #: Every keyword the constructor needs to build this very layer.
    kwargs: dict[str, Any]
    #: Keywords at their defaults, left out of the text as people write them.
    defaults: frozenset[str] = frozenset()
    #: The weight reparametrizations to put back (``spectral_norm``...), innermost first.
    wrappers: tuple[Wrapper, ...] = ()

    def text(self, changes: dict[str, Any]) -> str:
        kwargs = {**self.kwargs, **changes}
        parts = [f"{k}={literal(v)}" for k, v in kwargs.items() if k in changes or k not in self.defaults]
        text = f"{_class_text(self.cls)}({', '.join(parts)})"
        for wrapper in self.wrappers:
            text = wrapper.text.format(text)
        return text

    def build(self, changes: dict[str, Any]) -> nn.Module:
        module = self.cls(**{**self.kwargs, **changes})
        for wrapper in self.wrappers:
            module = wrapper.apply(module)
        return module


@dataclass(frozen=True)
class Wrapper:
    """A weight reparametrization of a layer, as code (``{}`` for the layer) and as a call."""

    text: str
    apply: Callable[[nn.Module], nn.Module]


def _torch_settings(module: nn.Module) -> Settings | None:
    """A torch layer's settings from its documented constructor arguments (``fixes.SPECS``)."""
    from torch.nn.modules.lazy import LazyModuleMixin

    from .fixes import SPECS

    cls = layer_class(module)
    spec = next((s for family, s in SPECS if issubclass(cls, family)), None)
    if spec is None or not cls.__module__.startswith("torch.nn"):
        return None
    if isinstance(module, LazyModuleMixin):  # the input size is inferred: never written
        spec = [entry for entry in spec if entry[0] not in ("in_features", "in_channels", "num_features")]
    kwargs: dict[str, Any] = {}
    defaults: set[str] = set()
    for arg, read, default in spec:
        if not (callable(read) or hasattr(module, read)):
            continue  # a setting this class does not have (proj_size of a GRU)
        value = read(module) if callable(read) else getattr(module, read)
        usual = getattr(module, "kernel_size", None) if default == "kernel" else default
        if default == "kernel":
            if usual is not None and same(value, usual):
                defaults.add(arg)
                continue  # stride=None means "the kernel": leave it so
        elif usual is not None and same(value, usual):
            defaults.add(arg)
        kwargs[arg] = value
    return Settings(cls, kwargs, frozenset(defaults), _wrappers(module))


def _wrappers(module: nn.Module) -> tuple[Wrapper, ...]:
    """The layer's spectral, weight or orthogonal reparametrizations, innermost first."""
    out: list[Wrapper] = []
    holder: Any = module._modules.get("parametrizations")
    if holder is not None:
        funcs = {"_SpectralNorm": "spectral_norm", "_WeightNorm": "weight_norm", "_Orthogonal": "orthogonal"}
        for tensor, chain_ in holder.items():
            named = "" if tensor == "weight" else f", name={tensor!r}"
            for p in list(chain_):
                func = funcs.get(type(p).__name__)
                if func is not None:
                    apply = functools.partial(getattr(nn.utils.parametrizations, func), name=tensor)
                    out.append(Wrapper(f"nn.utils.parametrizations.{func}({{}}{named})", apply))
    hooks: list[Any] = list(module._forward_pre_hooks.values())
    for hook in hooks:
        kind = type(hook)
        named = "" if getattr(hook, "name", "weight") == "weight" else f", name={hook.name!r}"
        if kind.__module__ == "torch.nn.utils.spectral_norm" and kind.__name__ == "SpectralNorm":
            apply = functools.partial(nn.utils.spectral_norm, name=hook.name)
            out.append(Wrapper(f"nn.utils.spectral_norm({{}}{named})", apply))
        elif kind.__module__ == "torch.nn.utils.weight_norm" and kind.__name__ == "WeightNorm":
            apply = functools.partial(nn.utils.weight_norm, name=hook.name, dim=hook.dim)
            out.append(Wrapper(f"nn.utils.weight_norm({{}}{named}, dim={hook.dim})", apply))
    return tuple(out)


#: Constructor arguments a class names differently from the attribute that holds them.
_ALIASES: dict[str, Callable[[nn.Module], Any]] = {
    "num_channels": lambda m: m.normalized_shape[0] if isinstance(m, nn.LayerNorm) else m.num_channels,
    "in_chs": lambda m: m.in_channels,
    "out_chs": lambda m: m.out_channels,
    "affine": lambda m: m.elementwise_affine if isinstance(m, nn.LayerNorm) else m.affine,
}

_MISSING = object()


def _read(module: nn.Module, name: str, default: Any) -> Any:
    """The value of constructor argument ``name`` as the layer holds it, or ``_MISSING``."""
    if name in module._parameters or name in module._buffers:
        tensor = getattr(module, name)
        return tensor is not None if isinstance(default, bool) else _MISSING  # bias=True/False
    if name in module._modules:
        return _MISSING  # a submodule is built by the layer, not passed
    if name in vars(module) or hasattr(type(module), name):
        value = getattr(module, name, _MISSING)
        if isinstance(value, (nn.Module, torch.Tensor)) or callable(value):
            return _MISSING
        return value
    alias = _ALIASES.get(name)
    if alias is not None:
        try:
            return alias(module)
        except AttributeError:
            return _MISSING
    return _MISSING


def _signature_settings(module: nn.Module) -> Settings | None:
    """Any class's settings from its ``__init__`` signature and attributes, when building the
    class with them gives back the very layer (checked on meta)."""
    cls = layer_class(module)
    try:
        parameters = list(inspect.signature(cls.__init__).parameters.values())[1:]
    except (TypeError, ValueError):
        return None
    kwargs: dict[str, Any] = {}
    defaults: set[str] = set()
    for p in parameters:
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) or p.name in ("device", "dtype"):
            continue
        value = _read(module, p.name, p.default)
        if value is _MISSING:
            if p.default is p.empty:
                return None  # a required argument the layer does not keep
            continue
        if p.default is not p.empty and same(value, p.default):
            defaults.add(p.name)
        kwargs[p.name] = value
    settings = Settings(cls, kwargs, frozenset(defaults))
    try:
        with torch.device("meta"):
            rebuilt = settings.build({})
    except Exception:  # an argument the class checks differently: not this way
        return None
    return settings if _alike(rebuilt, module) else None


def _alike(a: nn.Module, b: nn.Module) -> bool:
    """Two layers built alike: class, repr, the shapes of every tensor, the tree of children."""
    if type(a) is not type(b) or repr(a) != repr(b):
        return False
    shapes = [
        [(name, tuple(t.shape)) for name, t in (*m.named_parameters(), *m.named_buffers())] for m in (a, b)
    ]
    return shapes[0] == shapes[1]


_SETTINGS: weakref.WeakKeyDictionary[nn.Module, Settings | None] = weakref.WeakKeyDictionary()


def settings_of(module: nn.Module) -> Settings | None:
    """How to build ``module`` with its constructor (None: only a copy of it can stand for it)."""
    if module in _SETTINGS:
        return _SETTINGS[module]
    found = _torch_settings(module) or _signature_settings(module)
    _SETTINGS[module] = found
    return found


# -- building ---------------------------------------------------------------------------------


def _like(module: nn.Module, built: nn.Module, device: torch.device) -> nn.Module:
    """``built`` in ``module``'s floating dtype and mode, on ``device``."""
    dtype = next((t.dtype for t in (*module.parameters(), *module.buffers()) if t.is_floating_point()), None)
    if dtype is not None and dtype != torch.float32:
        built = built.to(dtype)
    built.train(module.training)
    return built


def _sized(module: nn.Module, changes: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    """The new shape of each of the layer's own tensors that ``changes`` resize (by its family)."""
    new = {**{k: getattr(module, k, None) for k in changes}, **changes}
    shapes: dict[str, tuple[int, ...]] = {}
    if isinstance(module, nn.modules.conv._ConvNd):
        cin = new.get("in_channels", module.in_channels)
        cout = new.get("out_channels", module.out_channels)
        groups = new.get("groups", module.groups)
        dims = len(module.kernel_size)
        kernel = new.get("kernel_size", module.kernel_size)
        kernel = tuple(kernel) if isinstance(kernel, (tuple, list)) else (kernel,) * dims
        first, second = (cin, cout // groups) if module.transposed else (cout, cin // groups)
        shapes["weight"] = (first, second, *kernel)
        if module.bias is not None:
            shapes["bias"] = (cout,)
    elif isinstance(module, nn.Linear):
        cin = new.get("in_features", module.in_features)
        cout = new.get("out_features", module.out_features)
        shapes["weight"] = (cout, cin)
        if module.bias is not None:
            shapes["bias"] = (cout,)
    elif isinstance(module, nn.modules.batchnorm._NormBase):
        size = (new.get("num_features", module.num_features),)
        shapes.update(weight=size, bias=size, running_mean=size, running_var=size)
    elif isinstance(module, nn.GroupNorm):
        size = (new.get("num_channels", module.num_channels),)
        shapes.update(weight=size, bias=size)
    elif isinstance(module, nn.LayerNorm):
        size = new.get("normalized_shape", module.normalized_shape)
        size = tuple(size) if isinstance(size, (tuple, list, torch.Size)) else (size,)
        shapes.update(weight=size, bias=size)
    return shapes


def _restructured(module: nn.Module, changes: dict[str, Any], device: torch.device) -> nn.Module:
    """The layer itself, copied, with ``changes`` set and the tensors they size made anew.

    Tensors of another name whose first size is what a changed channel count was (timm's
    ``ScaledStdConv2d.gain``) follow it.
    """
    twin = copy.copy(module)
    for key, value in vars(module).items():  # own registries and hook tables, shared contents
        if type(value) in (dict, OrderedDict):
            twin.__dict__[key] = type(value)(value)
    for key, value in changes.items():
        if not (hasattr(module, key) or key in vars(module)):
            raise Unbuildable(f"{type(module).__name__} has no setting {key}")
        held = getattr(module, key)
        new = (
            torch.Size(value) if isinstance(value, (list, tuple)) and isinstance(held, torch.Size) else value
        )
        object.__setattr__(twin, key, _as_held(held, new))
    shapes = _sized(module, changes)
    widths = {
        getattr(module, k): v
        for k, v in changes.items()
        if k in ("out_channels", "num_features", "num_channels", "out_features") and isinstance(v, int)
    }
    for registry in ("_parameters", "_buffers"):
        tensors: dict[str, Any] = twin.__dict__[registry]
        for name, t in list(tensors.items()):
            if t is None:
                continue
            shape = shapes.get(name)
            if shape is None and t.dim() and t.shape[0] in widths:
                shape = (widths[t.shape[0]], *t.shape[1:])
            if shape is None or tuple(shape) == tuple(t.shape):
                continue
            made = torch.zeros(shape, dtype=t.dtype, device=device)
            tensors[name] = (
                nn.Parameter(made, requires_grad=t.requires_grad) if isinstance(t, nn.Parameter) else made
            )
    return twin


def _as_held(old: Any, value: Any) -> Any:
    """A new setting in the form the layer holds the old one (a tuple for a conv's stride)."""
    if isinstance(old, tuple) and not isinstance(value, tuple):
        return (value,) * len(old)
    return value


@dataclass(frozen=True, eq=False)
class LayerEdit:
    """The model's layer ``original`` with ``changes`` to its settings.

    Changes that leave a setting as it is are dropped; a change of a size the class's
    constructor names differently (timm's ``LayerNorm2d(num_channels)`` holds it as
    ``normalized_shape``) is made under the constructor's name.
    """

    original: nn.Module
    changes: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        settings = settings_of(self.original)
        changes = {}
        for key, value in self.changes.items():
            if key in vars(self.original) and same(getattr(self.original, key), value):
                continue
            changes[_constructor_name(settings, key)] = _constructor_value(settings, key, value)
        object.__setattr__(self, "changes", changes)

    @property
    def settings(self) -> Settings | None:
        return settings_of(self.original)

    def text(self) -> str:
        """The constructor call with the new settings, or, for a layer no call rebuilds, the
        class with what changes (``BatchNormAct2d with num_features=64 (was 65)``)."""
        settings = self.settings
        if settings is not None:
            return settings.text(self.changes)
        was = ", ".join(
            f"{k}={literal(v)} (was {literal(getattr(self.original, k, None))})"
            for k, v in self.changes.items()
        )
        return f"{type(self.original).__name__} as it is, with {was}"

    def build(self, device: torch.device) -> nn.Module:
        settings = self.settings
        if settings is None:
            return _like(self.original, _restructured(self.original, self.changes, device), device)
        try:
            with torch.device(device):
                built = settings.build(self.changes)
        except Exception as exc:  # settings the class refuses: this fix is not one
            raise Unbuildable(f"{self.text()} does not build: {exc}") from exc
        return _like(self.original, built, device)

    def resized(self) -> dict[str, Any]:
        """The widths this edit changes (``out_channels``...): what the layer gives the next."""
        return {k: v for k, v in self.changes.items() if k in WIDTHS}


def _constructor_name(settings: Settings | None, key: str) -> str:
    """The constructor's name for the setting ``key`` (``num_channels`` for a LayerNorm2d's size)."""
    if settings is None or key in settings.kwargs:
        return key
    if key == "normalized_shape" and "num_channels" in settings.kwargs:
        return "num_channels"
    return key


def _constructor_value(settings: Settings | None, key: str, value: Any) -> Any:
    if settings is not None and key == "normalized_shape" and "num_channels" in settings.kwargs:
        return value[0] if isinstance(value, (tuple, list)) else value
    return value


#: Settings that change what a layer gives the next one.
WIDTHS = ("out_channels", "out_features", "num_features", "hidden_size", "normalized_shape", "num_channels")


@dataclass(frozen=True, eq=False)
class NewLayer:
    """A layer of ``cls`` built from ``args`` and ``kwargs`` (which may hold layers themselves)."""

    cls: type[nn.Module]
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)

    def text(self) -> str:
        parts = [_arg_text(a) for a in self.args] + [f"{k}={_arg_text(v)}" for k, v in self.kwargs.items()]
        return f"{_class_text(self.cls)}({', '.join(parts)})"

    def build(self, device: torch.device, like: nn.Module | None = None) -> nn.Module:
        args = [_built(a, device) for a in self.args]
        kwargs = {k: _built(v, device) for k, v in self.kwargs.items()}
        try:
            with torch.device(device):
                built = self.cls(*args, **kwargs)
        except Exception as exc:  # arguments the class refuses
            raise Unbuildable(f"{self.text()} does not build: {exc}") from exc
        return _like(like, built, device) if like is not None else built


Recipe = LayerEdit | NewLayer


def _arg_text(value: Any) -> str:
    return value.text() if isinstance(value, (LayerEdit, NewLayer)) else literal(value)


def _built(value: Any, device: torch.device) -> Any:
    if isinstance(value, LayerEdit):
        return value.build(device)
    if isinstance(value, NewLayer):
        return value.build(device)
    return value


# -- transforms of a tensor -----------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """One operation on a tensor: a method (``permute``), a torch function (``flatten``) or an
    index (``[:, :3]``), with literal arguments."""

    kind: str  # "method", "function" or "index"
    name: str = ""
    args: tuple[Any, ...] = ()
    kwargs: tuple[tuple[str, Any], ...] = ()

    def apply(self, x: torch.Tensor) -> Any:
        kwargs = dict(self.kwargs)
        if self.kind == "method":
            return getattr(x, self.name)(*self.args, **kwargs)
        if self.kind == "function":
            return getattr(torch, self.name)(x, *self.args, **kwargs)
        return x[self.args]

    def text(self, x: str) -> str:
        args = ", ".join([*(_index_text(a) for a in self.args)] if self.kind == "index" else [])
        if self.kind == "index":
            return f"{x}[{args}]"
        parts = [literal(a) for a in self.args] + [f"{k}={literal(v)}" for k, v in self.kwargs]
        if self.kind == "function":
            return f"torch.{self.name}({', '.join([x, *parts])})"
        return f"{x}.{self.name}({', '.join(parts)})"


def _index_text(item: Any) -> str:
    if item is None:
        return "None"
    if item is Ellipsis:
        return "..."
    if isinstance(item, slice):
        start = "" if item.start is None else str(item.start)
        stop = "" if item.stop is None else str(item.stop)
        return f"{start}:{stop}" + ("" if item.step is None else f":{item.step}")
    return repr(item)


@dataclass(frozen=True)
class Transform:
    """What forward code does to one tensor: steps applied in order."""

    steps: tuple[Step, ...]

    def apply(self, x: Any) -> Any:
        for step in self.steps:
            x = step.apply(x)
        return x

    def expression(self, x: str = "x") -> str:
        """``x.permute(0, 3, 1, 2)``, ``torch.flatten(x, 1)``: the transform of the expression ``x``."""
        for step in self.steps:
            x = step.text(x)
        return x

    def statement(self, x: str = "x") -> str:
        """``x = x.permute(0, 3, 1, 2)``."""
        return f"{x} = {self.expression(x)}"

    def __iter__(self) -> Iterator[Step]:
        return iter(self.steps)


def method(name: str, *args: Any, **kwargs: Any) -> Transform:
    """``x.name(*args, **kwargs)`` as a transform."""
    return Transform((Step("method", name, args, tuple(kwargs.items())),))


def function(name: str, *args: Any, **kwargs: Any) -> Transform:
    """``torch.name(x, *args, **kwargs)`` as a transform."""
    return Transform((Step("function", name, args, tuple(kwargs.items())),))


def index(*items: Any) -> Transform:
    """``x[items]`` as a transform."""
    return Transform((Step("index", "", items),))


def chain(*transforms: Transform) -> Transform:
    """The transforms one after the other."""
    return Transform(tuple(step for t in transforms for step in t.steps))


def depthwise_changes(conv: nn.modules.conv._ConvNd, in_channels: int) -> dict[str, int]:
    """A depthwise conv given another channel count keeps one group per channel and its
    multiplier (``out_channels = in_channels * multiplier``)."""
    multiplier = conv.out_channels // conv.in_channels
    return {"in_channels": in_channels, "groups": in_channels, "out_channels": in_channels * multiplier}


def is_depthwise(module: nn.Module) -> bool:
    return (
        isinstance(module, nn.modules.conv._ConvNd)
        and module.groups > 1
        and module.groups == module.in_channels
    )


def product(sizes: Sequence[int]) -> str:
    """``32 * 5 * 5`` (a single size stays as it is)."""
    return " * ".join(str(s) for s in sizes)


def elements(shape: Sequence[int]) -> int:
    return math.prod(shape)
