"""``count_flops(model, inputs)``: multiply-accumulates and FLOPs, per layer and in total.

Counted during a trace (on meta by default: no weights copied, no compute) by an
op watcher with ``torch.utils.flop_counter``'s formulas (``flop_counting``), or by
torch's ``FlopCounterMode`` itself for ops that hide matrix products inside one
call (attention, recurrent layers). 2 FLOPs per multiply-accumulate; element-wise
work (BatchNorm, activations, pooling, additions) counts nothing, the convention of
published figures such as ResNet-50's 4.1 GMACs at 224x224.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..tracing.table import grid, indent
from .plain import fields_dict
from .render import flops_line

if TYPE_CHECKING:
    import torch
    from torch import nn

    from .observe import Observation


@dataclass(frozen=True)
class LayerFlops:
    """One module's FLOPs over all its calls, its children's included."""

    name: str
    type: str
    depth: int
    calls: int
    flops: int
    is_leaf: bool

    @property
    def macs(self) -> int:
        """Multiply-accumulates: half the FLOPs."""
        return self.flops // 2


@dataclass(frozen=True)
class FlopReport:
    """FLOPs of one forward: in total and per module (qualified name -> LayerFlops)."""

    model: str
    total_flops: int
    #: Every module called, in the order first entered (``""`` is the root).
    by_layer: dict[str, LayerFlops]
    #: Shapes the model was run with, e.g. ``"1x3x224x224"``.
    input: str
    device: str

    @property
    def total_macs(self) -> int:
        """Multiply-accumulates of the whole forward: half the FLOPs."""
        return self.total_flops // 2

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form; ``layers`` lists the modules with any FLOPs, in call order."""
        return {
            "model": self.model,
            "input": self.input,
            "device": self.device,
            "total_flops": self.total_flops,
            "total_macs": self.total_macs,
            "layers": [
                {**fields_dict(layer), "macs": layer.macs} for layer in self.by_layer.values() if layer.flops
            ],
        }

    def table(self, max_depth: int | None = None) -> str:
        """Modules with FLOPs, indented by depth, with their share of the total."""
        rows = [
            [
                indent(layer.depth) + (layer.name or "(root)"),
                layer.type,
                f"{layer.macs:,}",
                f"{layer.flops:,}",
                f"{100 * layer.flops / self.total_flops:.1f}%",
            ]
            for layer in self.by_layer.values()
            if layer.flops and (max_depth is None or layer.depth <= max_depth)
        ]
        body = grid(rows, ("Layer", "Type", "MACs", "FLOPs", "Share"))
        return body + "\n" + flops_line(self.total_macs, self.total_flops)


def flop_report(observation: Observation) -> FlopReport:
    """The FlopReport of an ``observed_trace(..., flops=True)``."""
    from ..tracing.records import inputs_text

    trace = observation.trace
    by_layer: dict[str, LayerFlops] = {}
    calls = observation.calls  # a TorchScript trace observes its root call only
    for index, record in enumerate(trace.layers):
        flops = calls[index].flops if index < len(calls) else 0
        seen = by_layer.get(record.name)
        by_layer[record.name] = LayerFlops(
            name=record.name,
            type=record.type,
            depth=record.depth if seen is None else seen.depth,
            calls=1 if seen is None else seen.calls + 1,
            flops=flops + (0 if seen is None else seen.flops),
            is_leaf=record.is_leaf,
        )
    total = by_layer[""].flops if "" in by_layer else 0
    data = {"input_shapes": trace.input_shapes, "input_kwargs": trace.input_kwargs}
    return FlopReport(
        model=trace.model_type,
        total_flops=total,
        by_layer=by_layer,
        input=inputs_text(data, "-"),
        device=trace.device,
    )


def count_flops(model: nn.Module, inputs: Any, *, device: str | torch.device = "auto") -> FlopReport:
    """Multiply-accumulates and FLOPs of one forward, per layer and in total.

    ``inputs`` as for ``trace``. ``.total_macs``, ``.total_flops``, ``.by_layer``
    (qualified name -> LayerFlops with ``.macs``, ``.flops``, ``.calls``). Counted as
    ``torch.utils.flop_counter`` counts: only matrix products, convolutions and
    attention (not BatchNorm, activations or pooling).
    The model is left as it was; a failing forward raises ShapeMismatchError.
    """
    from ..tracing.request import TraceRequest
    from .observe import observed_trace

    return flop_report(observed_trace(TraceRequest.of(model, inputs, device=device), flops=True))
