"""What a shape baseline holds, and so exactly what is compared.

A snapshot is built from ``ShapeTrace.to_dict()`` and keeps:

- the model's name and input (``"lenet5"``, ``"8x1x28x28"``);
- per module call, in call order: qualified name, class name, call number, output
  shape and parameter count (the module's own and its children's); a row of a
  lazy layer the model has not initialised (or of a block holding one) counts
  the parameters it will have after its first call and says ``"lazy": true``
  (only such rows carry the key, so baselines of other models are unchanged);
- the model's output shape, total and trainable parameter counts.

With ``output_only`` the per-call rows are left out, for models whose internals
churn while their interface must not. Nothing else is kept, so nothing else can
fail a run: not the torch version, the device or dtype the trace ran on, the
train/eval flag, input shapes per layer, nesting depth, timing or dict key order.
Two snapshots are equal when these values are equal, whatever the file looked like.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

#: The ``compare`` value of a snapshot with per-call rows, and of an output-only one.
LAYERS, OUTPUT = "layers", "output"


def shape_key(shape: Any) -> str:
    """A shape (JSON form: list, nested list, dict or None) as a comparable string."""
    return json.dumps(shape, sort_keys=True)


@dataclass(frozen=True)
class Row:
    """One module call of the model, as recorded in a baseline."""

    name: str
    type: str
    call: int
    output: Any
    params: int
    #: The layer is lazy and uninitialised: ``params`` is its count after the first call.
    lazy: bool = False

    @property
    def key(self) -> tuple[str, int]:
        """Which call of which module this is."""
        return (self.name, self.call)

    @property
    def content(self) -> tuple[str, int, str, int, bool]:
        """Everything but the name: equal contents under two names read as a rename."""
        return (self.type, self.call, shape_key(self.output), self.params, self.lazy)

    @property
    def identity(self) -> tuple[str, str, int, str, int, bool]:
        """Everything compared about the row."""
        return (self.name, *self.content)

    @property
    def label(self) -> str:
        """The name as the layer tables show it: ``(root)``, ``block (call 2)``."""
        base = self.name or "(root)"
        return f"{base} (call {self.call + 1})" if self.call else base

    def to_data(self) -> dict[str, Any]:
        """The row as stored in the file."""
        data: dict[str, Any] = {
            "name": self.name,
            "type": self.type,
            "call": self.call,
            "output": self.output,
            "params": self.params,
        }
        if self.lazy:
            data["lazy"] = True
        return data


@dataclass(frozen=True)
class Snapshot:
    """A model's baseline: identity, per-call rows (unless output-only), output, totals."""

    model: str
    input: str
    output: Any
    total_params: int
    trainable_params: int
    layers: tuple[Row, ...] | None = None

    @property
    def output_only(self) -> bool:
        """True when only the output and the totals are compared."""
        return self.layers is None

    @property
    def compare(self) -> str:
        """``"layers"`` or ``"output"``: what this snapshot compares."""
        return OUTPUT if self.output_only else LAYERS

    @classmethod
    def from_trace(
        cls, trace: dict[str, Any], *, model: str, input: str, output_only: bool = False
    ) -> Snapshot:
        """The snapshot of a complete trace (``ShapeTrace.to_dict()``)."""
        rows = (
            None
            if output_only
            else tuple(
                Row(
                    name=r["name"],
                    type=r["type"],
                    call=r["call"],
                    output=r["output_shape"],
                    params=r["num_params"],
                    lazy=r.get("lazy", False),
                )
                for r in trace["layers"]
            )
        )
        return cls(
            model=model,
            input=input,
            output=trace["output_shape"],
            total_params=trace["total_params"],
            trainable_params=trace["trainable_params"],
            layers=rows,
        )

    def to_data(self) -> dict[str, Any]:
        """The snapshot as stored in the file (the serializer adds schema and version)."""
        data: dict[str, Any] = {
            "model": self.model,
            "input": self.input,
            "compare": self.compare,
            "output": self.output,
            "total_params": self.total_params,
            "trainable_params": self.trainable_params,
        }
        if self.layers is not None:
            data["layers"] = [row.to_data() for row in self.layers]
        return data
