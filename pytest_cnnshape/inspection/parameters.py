"""Where a model's parameters are: per tensor, per layer, totals; shared tensors once.

A tensor reachable under several names (a tied weight, a module registered twice)
is counted once, under its first name in ``named_parameters()`` order, and listed
with its other names. So the totals equal ``sum(p.numel() for p in
model.parameters())`` always, and torchinfo's totals on models without tied
weights; torchinfo 1.8 counts a tied weight once per module holding it, so on a
model with tied weights its total is larger by the tied tensors' size.

It reads the module tree only (one ``ModelView`` walk): no forward, no copies, and
a model on meta or with uninitialised lazy layers works too (a lazy tensor counts
0 until its first forward, as in a trace).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn.parameter import is_lazy

from ..tracing.modelview import ModelView
from ..tracing.table import grid
from .plain import fields_dict
from .render import human_bytes, params_line


@dataclass(frozen=True)
class TensorInfo:
    """One parameter or buffer tensor."""

    #: First qualified name, as ``named_parameters()`` / ``named_buffers()`` give it.
    name: str
    shape: tuple[int, ...]
    numel: int
    #: ``requires_grad`` for a parameter; always False for a buffer.
    trainable: bool
    dtype: str
    #: ``numel * element_size``: the memory the tensor takes (also on meta).
    bytes: int
    #: Other names of the very same tensor (tied weights, shared modules).
    aliases: tuple[str, ...] = ()
    #: False for a lazy parameter not yet materialised (counted as 0).
    materialized: bool = True

    @property
    def shared(self) -> bool:
        """True when the tensor is reachable under more than one name."""
        return bool(self.aliases)


@dataclass(frozen=True)
class LayerParameters:
    """The tensors a module holds itself (not its children's), each counted once."""

    name: str
    type: str
    params: int
    trainable: int
    #: Elements of the module's own buffers (BatchNorm running stats, ...).
    buffers: int
    #: Bytes of its parameters and buffers.
    bytes: int
    #: Names of tensors it holds that are counted under another layer (tied weights).
    shared: tuple[str, ...] = ()

    @property
    def frozen(self) -> int:
        return self.params - self.trainable


@dataclass(frozen=True)
class ParameterBreakdown:
    """Every parameter and buffer of a model, per tensor and per layer, with totals."""

    model: str
    parameters: tuple[TensorInfo, ...]
    buffers: tuple[TensorInfo, ...]
    #: Modules holding tensors of their own, in ``named_modules()`` order.
    layers: tuple[LayerParameters, ...]

    @property
    def total(self) -> int:
        """Parameters, each tensor once."""
        return sum(t.numel for t in self.parameters)

    @property
    def trainable(self) -> int:
        return sum(t.numel for t in self.parameters if t.trainable)

    @property
    def frozen(self) -> int:
        """Parameters with ``requires_grad=False``."""
        return self.total - self.trainable

    @property
    def buffer_elements(self) -> int:
        return sum(t.numel for t in self.buffers)

    @property
    def parameter_bytes(self) -> int:
        """Bytes of the weights (parameters), each tensor once."""
        return sum(t.bytes for t in self.parameters)

    @property
    def buffer_bytes(self) -> int:
        return sum(t.bytes for t in self.buffers)

    @property
    def shared(self) -> tuple[TensorInfo, ...]:
        """Parameters and buffers reachable under more than one name."""
        return tuple(t for t in (*self.parameters, *self.buffers) if t.shared)

    def __getitem__(self, name: str) -> TensorInfo:
        """The tensor called ``name`` (any of its names)."""
        for t in (*self.parameters, *self.buffers):
            if name == t.name or name in t.aliases:
                return t
        known = ", ".join(repr(t.name) for t in self.parameters[:6])
        raise KeyError(f"no parameter or buffer named {name!r}; names look like {known}")

    def totals(self) -> dict[str, int]:
        """The totals as plain numbers (what the report shows)."""
        return {
            "total": self.total,
            "trainable": self.trainable,
            "frozen": self.frozen,
            "buffers": self.buffer_elements,
            "parameter_bytes": self.parameter_bytes,
            "buffer_bytes": self.buffer_bytes,
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form with stable keys."""
        return {
            "model": self.model,
            "totals": self.totals(),
            "parameters": [_tensor_dict(t) for t in self.parameters],
            "buffers": [_tensor_dict(t) for t in self.buffers],
            "layers": [fields_dict(layer, "shared") for layer in self.layers],
        }

    def table(self) -> str:
        """One row per tensor, parameters then buffers, totals below."""
        kinds = [("yes" if t.trainable else "no", t) for t in self.parameters]
        kinds += [("buffer", t) for t in self.buffers]
        rows = [
            [
                t.name,
                kind,
                _shape_text(t),
                f"{t.numel:,}",
                t.dtype,
                human_bytes(t.bytes),
                ", ".join(t.aliases),
            ]
            for kind, t in kinds
        ]
        body = grid(rows, ("Tensor", "Trainable", "Shape", "Numel", "Dtype", "Bytes", "Also named"))
        return body + "\n" + params_line(self.totals())


def _tensor_dict(t: TensorInfo) -> dict[str, Any]:
    # written out: one per tensor, the bulk of a report's inspection data
    return {
        "name": t.name,
        "shape": list(t.shape),
        "numel": t.numel,
        "trainable": t.trainable,
        "dtype": t.dtype,
        "bytes": t.bytes,
        "aliases": list(t.aliases),
        "materialized": t.materialized,
    }


def _shape_text(t: TensorInfo) -> str:
    if not t.materialized:
        return "(lazy)"
    return "[" + ", ".join(str(d) for d in t.shape) + "]"


def _prefix(name: str) -> str:
    return f"{name}." if name else ""


def named_tensors(
    view: ModelView, registry: str = "_parameters"
) -> dict[int, tuple[torch.Tensor, list[str]]]:
    """``id(tensor) -> (tensor, every qualified name)``, first name first, in module order.

    ``registry`` is ``"_parameters"`` or ``"_buffers"``. The tensors are those in the
    modules' registries right now (meta twins while ``meta_weights`` is active).
    """
    found: dict[int, tuple[torch.Tensor, list[str]]] = {}
    for module in view.modules:
        key = id(module)
        module_names = (view.names[key], *view.aliases.get(key, ()))
        for attr, tensor in getattr(module, registry).items():
            if tensor is not None:
                names = found.setdefault(id(tensor), (tensor, []))[1]
                names.extend(_prefix(n) + attr for n in module_names)
    return found


def tensor_names(view: ModelView, registry: str = "_parameters") -> dict[int, list[str]]:
    """``id(tensor) -> every qualified name``, first name first (see ``named_tensors``)."""
    return {key: names for key, (_, names) in named_tensors(view, registry).items()}


def _dtype_name(dtype: torch.dtype) -> str:
    name = _DTYPE_NAMES.get(dtype)
    if name is None:
        name = _DTYPE_NAMES[dtype] = str(dtype).removeprefix("torch.")
    return name


_DTYPE_NAMES: dict[torch.dtype, str] = {}


def _info(tensor: torch.Tensor, names: list[str], trainable: bool) -> TensorInfo:
    # plain tensors and parameters are never lazy: skip the mixin check for them
    lazy = type(tensor) not in (torch.Tensor, nn.Parameter) and is_lazy(tensor)
    numel = 0 if lazy else tensor.numel()
    return TensorInfo(
        name=names[0],
        shape=() if lazy else tuple(tensor.shape),
        numel=numel,
        trainable=trainable,
        dtype=_dtype_name(tensor.dtype),
        bytes=0 if lazy else numel * tensor.element_size(),
        aliases=tuple(names[1:]),
        materialized=not lazy,
    )


def parameter_breakdown(model: nn.Module) -> ParameterBreakdown:
    """Every parameter and buffer of ``model``: per tensor, per layer, and totals.

    Tied weights and shared modules are counted once and listed with all their
    names (``.shared``). Nothing runs and nothing is copied; the model is only read.
    """
    from ..tracing.request import check_model

    return breakdown(check_model(model))


def breakdown(model: nn.Module) -> ParameterBreakdown:
    """``parameter_breakdown`` of a module already checked and unwrapped."""
    view = ModelView.of(model)
    param_names = tensor_names(view, "_parameters")
    buffer_names = tensor_names(view, "_buffers")
    params: dict[int, TensorInfo] = {}
    buffers: dict[int, TensorInfo] = {}
    layers: list[LayerParameters] = []
    for module in view.modules:
        own = [0, 0, 0, 0]  # params, trainable, buffer elements, bytes
        shared: list[str] = []
        holds = False
        for registry, seen, names in (
            ("_parameters", params, param_names),
            ("_buffers", buffers, buffer_names),
        ):
            for tensor in getattr(module, registry).values():
                if tensor is None:
                    continue
                holds = True
                if id(tensor) in seen:
                    shared.append(seen[id(tensor)].name)
                    continue
                is_param = registry == "_parameters"
                info = seen[id(tensor)] = _info(tensor, names[id(tensor)], is_param and tensor.requires_grad)
                if is_param:
                    own[0] += info.numel
                    own[1] += info.numel if info.trainable else 0
                else:
                    own[2] += info.numel
                own[3] += info.bytes
        if holds:
            layers.append(
                LayerParameters(
                    name=view.name_of(module),
                    type=type(module).__name__,
                    params=own[0],
                    trainable=own[1],
                    buffers=own[2],
                    bytes=own[3],
                    shared=tuple(shared),
                )
            )
    return ParameterBreakdown(
        model=type(model).__name__,
        parameters=tuple(params.values()),
        buffers=tuple(buffers.values()),
        layers=tuple(layers),
    )
