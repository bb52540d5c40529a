"""Where each tensor of a traced forward came from: the data flow, not only the call order.

A module call's input is the model's input, another call's output, or the result
of forward code (``x.view(...)``, ``torch.cat([a, b])``, ``out + identity``) on
those. ``Lineage`` watches a trace (a recorder observer and an op watcher) and
gives each tensor an ``Origin`` by identity:

* ``input``: the model's i-th input (positional first, then keyword);
* ``layer``: the output of the call ``trace.layers[index]``;
* ``op``: the result of a torch function of several tensors (``cat``, ``add``), with
  the origins of its operands.

Ops of a single tensor (``view``, ``permute``, ``relu``, ``flatten``) keep the
origin they were applied to and add their name to ``Origin.ops``, so a diagnosis can
tell a map a conv produced from one a reshape in forward made, and a picture can
draw a residual add or a U-Net skip as the join it is. Opt-in: a trace without it
pays nothing; tensors are held weakly, so a real forward frees its activations as
usual.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch

from .recorder import RunningCall
from .records import LayerRecord

INPUT, LAYER, OP = "input", "layer", "op"


@dataclass(frozen=True)
class Origin:
    """Where a tensor came from (see the module docstring for the kinds)."""

    kind: str
    #: The input's position, or the producing call's index in ``trace.layers``; -1 for ops.
    index: int = -1
    #: For ``op``: the torch function's name and its tensor operands' origins.
    name: str = ""
    parents: tuple[Origin, ...] = ()
    #: Single-tensor ops applied since (``("view", "permute")``), oldest first.
    ops: tuple[str, ...] = ()

    def then(self, op: str) -> Origin:
        """The same origin, one single-tensor op further."""
        return Origin(self.kind, self.index, self.name, self.parents, (*self.ops, op))

    @property
    def reshaped(self) -> bool:
        """True when forward code reshaped or re-ordered the axes on the way here."""
        return any(op in RESHAPES for op in self.ops)

    def layers(self) -> Iterator[int]:
        """Indices of the calls whose outputs flow into this tensor (through ops)."""
        if self.kind == LAYER:
            yield self.index
        for parent in self.parents:
            yield from parent.layers()

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        out: dict[str, Any] = {"kind": self.kind}
        if self.kind != OP:
            out["index"] = self.index
        else:
            out["name"] = self.name
            out["parents"] = [p.to_dict() for p in self.parents]
        if self.ops:
            out["ops"] = list(self.ops)
        return out


#: Single-tensor ops that change which element sits on which axis.
RESHAPES = frozenset(
    {
        "view",
        "reshape",
        "permute",
        "transpose",
        "flatten",
        "unflatten",
        "squeeze",
        "unsqueeze",
        "movedim",
        "moveaxis",
        "swapaxes",
        "swapdims",
        "t",
        "contiguous",
        "expand",
        "repeat",
        "view_as",
        "reshape_as",
        "narrow",
        "unfold",
        "getitem",
    }
)

_ARITHMETIC = frozenset({"add", "sub", "mul", "truediv", "floordiv", "matmul", "pow", "mod", "and", "or"})


def _op_name(func: Any) -> str:
    """``cat``, ``view``; operators and in-place ops by their verb: ``__add__``, ``__iadd__``,
    ``__radd__``, ``add_`` -> ``add``."""
    name = str(getattr(func, "__name__", None) or func)
    if name.startswith("__") and name.endswith("__"):
        name = name[2:-2]
        if name[:1] in ("i", "r") and name[1:] in _ARITHMETIC:
            name = name[1:]
        return name
    return name.rstrip("_") or name


def _tensors(value: Any) -> Iterator[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _tensors(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _tensors(item)


@dataclass
class Lineage:
    """The origin of every tensor seen in one run, and of every call's inputs."""

    #: ``trace.layers[index]`` -> the origins of that call's positional tensor inputs.
    sources: dict[int, tuple[Origin | None, ...]] = field(default_factory=dict)
    #: ``trace.layers[index]`` -> where the tensors that call returned came from inside it
    #: (its last layer's output, an op of its forward code), in the order of the output's
    #: leaves: the root's entry says where each of the model's outputs was made.
    returned: dict[int, tuple[Origin | None, ...]] = field(default_factory=dict)
    _known: dict[int, tuple[weakref.ref[torch.Tensor], Origin]] = field(default_factory=dict)

    def origin(self, tensor: Any) -> Origin | None:
        """The origin of a tensor seen in this run, or None."""
        if not isinstance(tensor, torch.Tensor):
            return None
        entry = self._known.get(id(tensor))
        if entry is None or entry[0]() is not tensor:
            return None
        return entry[1]

    def note(self, tensor: torch.Tensor, origin: Origin) -> None:
        """Record where ``tensor`` came from (forgotten when the tensor is freed)."""
        key = id(tensor)
        known = self._known

        def forget(_: object, key: int = key) -> None:
            entry = known.get(key)
            if entry is not None and entry[0]() is None:
                del known[key]

        known[key] = (weakref.ref(tensor, forget), origin)

    def note_inputs(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        """The model's own inputs: positional first, then keyword, in order."""
        for index, value in enumerate((*args, *kwargs.values())):
            for tensor in _tensors(value):
                self.note(tensor, Origin(INPUT, index))

    # -- recorder observer ---------------------------------------------------------

    def started(self) -> None:
        """A forward begins: forget what an earlier attempt saw."""
        self.sources.clear()
        self.returned.clear()
        self._known.clear()

    def entered(self, call: RunningCall) -> None:
        if call.index == 0:  # the root: what it receives are the model's inputs
            self.note_inputs(call.args, call.kwargs)
        self.sources[call.index] = tuple(
            self.origin(a) if isinstance(a, torch.Tensor) else None for a in call.args
        )

    def left(self, call: RunningCall, output: Any) -> None:
        tensors = list(_tensors(output))
        self.returned[call.index] = tuple(self.origin(t) for t in tensors)
        origin = Origin(LAYER, call.index)
        for tensor in tensors:
            self.note(tensor, origin)

    def annotate(self, records: list[LayerRecord]) -> None:
        """Write what was seen onto the trace's records (``LayerRecord.sources``, ``.returns``)."""
        for index, record in enumerate(records):
            origins = self.sources.get(index)
            if origins is not None:
                record.sources = tuple(None if o is None else o.to_dict() for o in origins)
            made = self.returned.get(index, ())
            if record.is_leaf is False and made and made[0] is not None:  # a container's output
                record.returns = made[0].to_dict()

    # -- op watcher ----------------------------------------------------------------

    def op(self, func: Any, args: tuple[Any, ...], kwargs: dict[str, Any], result: Any) -> None:
        outputs = list(_tensors(result))
        if not outputs:
            return
        operands = [t for t in _tensors((args, kwargs)) if not isinstance(t, torch.nn.Parameter)]
        origins = [o for o in (self.origin(t) for t in operands) if o is not None]
        if not origins:
            return
        name = _op_name(func)
        unique = list(dict.fromkeys(origins))
        origin = unique[0].then(name) if len(unique) == 1 else Origin(OP, name=name, parents=tuple(unique))
        for tensor in outputs:  # an in-place op (out += identity) re-labels its operand
            self.note(tensor, origin)
