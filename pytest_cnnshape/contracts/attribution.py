"""Which layer made a wrong output dimension, by which formula, and the setting that fixes it.

When ``assert_output_shape`` finds dimension 2 is 129 where 128 was expected, the
useful answer is the layer that last changed dimension 2 — say a ConvTranspose2d
— with its size formula filled in, ``(64 - 1)*2 - 2*0 + 1*(3 - 1) + 0 + 1 = 129``,
and the padding/output_padding that give 128, found by trying the settings
near the current ones with the same formulas (``arith``). A dimension changed by
forward code between two layers (``view(-1, K)`` changing the batch) is named by
the two layers around it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..shapes.tree import Shape, first_shape

if TYPE_CHECKING:
    from torch import nn

    from ..shapes.expected import OutputMismatch
    from ..tracing.modelview import ModelView
    from ..tracing.records import LayerRecord, ShapeTrace


@dataclass(frozen=True)
class Change:
    """The last place a dimension of the output got its (wrong) size."""

    dim: int
    before: int | None  # None: the dimension came into being here (a flatten)
    after: int
    #: The layer that changed it; None when forward code between two layers did.
    record: LayerRecord | None
    around: tuple[LayerRecord | None, LayerRecord | None] = (None, None)


def _steps(
    trace: ShapeTrace,
) -> Iterator[
    tuple[Shape | None, Shape | None, LayerRecord | None, tuple[LayerRecord | None, LayerRecord | None]]
]:
    """(shape before, shape after, layer or None, layers around) along the leaf calls."""
    previous: LayerRecord | None = None
    current = first_shape(tuple(trace.input_shapes))
    for r in trace.layers:
        if not (r.is_leaf and r.finished):
            continue
        got, made = first_shape(r.input_shapes), first_shape(r.output_shape)
        yield current, got, None, (previous, r)
        yield got, made, r, (None, None)
        previous, current = r, made
    yield current, first_shape(trace.output_shape), None, (previous, None)


def last_change(trace: ShapeTrace, dim: int) -> Change | None:
    """The last step that set dimension ``dim`` of the final output."""
    final = first_shape(trace.output_shape)
    if final is None or dim >= len(final):
        return None
    found = None
    for before, after, record, around in _steps(trace):
        if after is None or len(after) != len(final):
            continue
        if before is None or len(before) != len(after):
            found = Change(dim, None, after[dim], record, around)
        elif before[dim] != after[dim]:
            found = Change(dim, before[dim], after[dim], record, around)
    return found


def _name(record: LayerRecord | None) -> str:
    return "the model input" if record is None else f"{record.label} ({record.type})"


def _setting(module: nn.Module, name: str, axis: int, default: int = 1) -> int:
    """A layer setting on one spatial axis: ``kernel_size=(3, 5)`` on axis 1 is 5."""
    from ..arith import per_dim

    value = getattr(module, name, None)
    return int(per_dim(default if value is None else value, axis + 1)[axis])


def formula(module: nn.Module, change: Change, axis: int) -> str | None:
    """``(64 - 1)*2 - 2*0 + 1*(3 - 1) + 0 + 1 = 129``: the layer's size rule on one axis."""
    from torch import nn

    size, out = change.before, change.after
    if size is None:
        return None
    if isinstance(module, nn.Linear):
        return f"out_features = {module.out_features}"
    if isinstance(
        module, nn.modules.conv._ConvNd | nn.modules.pooling._MaxPoolNd | nn.modules.pooling._AvgPoolNd
    ) and module.padding not in ("same", "valid"):
        k, p = _setting(module, "kernel_size", axis), _setting(module, "padding", axis, 0)
        d, s = _setting(module, "dilation", axis), _setting(module, "stride", axis, k)
        if isinstance(module, nn.modules.conv._ConvTransposeNd):
            op = _setting(module, "output_padding", axis, 0)
            return f"({size} - 1)*{s} - 2*{p} + {d}*({k} - 1) + {op} + 1 = {out}"
        rounding = "ceil" if getattr(module, "ceil_mode", False) else "floor"
        return f"{rounding}(({size} + 2*{p} - {d}*({k} - 1) - 1) / {s}) + 1 = {out}"
    if isinstance(module, nn.Upsample) and module.scale_factor is not None:
        return f"floor({size} * {_scale(module, axis)}) = {out}"
    return None


def _scale(module: nn.Module, axis: int) -> float:
    from ..arith import per_dim

    return float(per_dim(module.scale_factor, axis + 1)[axis])


def _settings(module: nn.Module, axis: int, size: int, want: int) -> dict[str, Any] | None:
    """The smallest change of the layer's settings that makes ``size`` come out as ``want``."""
    from torch import nn

    from .. import arith

    if isinstance(module, nn.Linear):
        return {"out_features": want}
    if isinstance(module, nn.modules.pooling._AdaptiveAvgPoolNd | nn.modules.pooling._AdaptiveMaxPoolNd):
        return {"output_size": want}
    if isinstance(module, nn.Upsample):
        return {"scale_factor": want // size} if size and want % size == 0 else None
    k = _setting(module, "kernel_size", axis) if hasattr(module, "kernel_size") else 0
    candidates: list[dict[str, Any]] = []
    if isinstance(module, nn.modules.conv._ConvTransposeNd):
        s, d = _setting(module, "stride", axis), _setting(module, "dilation", axis)
        candidates = [
            {"padding": p, "output_padding": op}
            for p in range(k * d + 1)
            for op in range(max(s, d))
            if arith.conv_transpose_output_size(size, k, stride=s, padding=p, output_padding=op, dilation=d)
            == want
        ]
    elif isinstance(module, nn.modules.conv._ConvNd) and module.padding not in ("same", "valid"):
        s, d = _setting(module, "stride", axis), _setting(module, "dilation", axis)
        candidates = [
            {"padding": p}
            for p in range(k * d + 1)
            if arith.conv_output_size(size, k, stride=s, padding=p, dilation=d) == want
        ]
    elif isinstance(module, nn.modules.pooling._MaxPoolNd | nn.modules.pooling._AvgPoolNd):
        s = _setting(module, "stride", axis, k)
        d = _setting(module, "dilation", axis) if isinstance(module, nn.modules.pooling._MaxPoolNd) else 1
        candidates = [
            {"padding": p, "ceil_mode": ceil}
            for ceil in (False, True)
            for p in range(k // 2 + 1)
            if arith.pool_output_size(size, k, stride=s, padding=p, dilation=d, ceil_mode=ceil) == want
        ]

    def changed(option: dict[str, Any]) -> dict[str, Any]:
        return {
            key: v
            for key, v in option.items()
            if (_setting(module, key, axis, 0) if key != "ceil_mode" else bool(module.ceil_mode)) != v
        }

    if not candidates:
        return None
    # fewest changed settings, then the least padding (ceil_mode before padding for pools)
    best = min(
        candidates, key=lambda o: (len(changed(o)), sum(v for v in o.values() if not isinstance(v, bool)))
    )
    return changed(best)


def explain(trace: ShapeTrace, mismatch: OutputMismatch, model: nn.Module | None = None) -> list[str]:
    """Lines naming, for each wrong dimension, the last layer that changed it and the fix."""
    from ..tracing.modelview import ModelView

    if mismatch.path or not mismatch.checks:
        return []
    view = ModelView.of(model) if model is not None else None
    final = first_shape(trace.output_shape)
    found: dict[tuple[str, ...], list[int]] = {}  # explanation lines -> the dims they explain
    for check in mismatch.checks:
        if check.ok or check.actual is None or check.expected_value is None or final is None:
            continue
        change = last_change(trace, check.index)
        if change is not None:
            found.setdefault(_explanation(change, check.expected_value, view), []).append(check.index)
    lines = []
    for text, dims in found.items():
        label = (
            f"dim {dims[0]}"
            if len(dims) == 1
            else "dims " + ", ".join(map(str, dims[:-1])) + f" and {dims[-1]}"
        )
        lines.append(f"  {label}: {text[0]}")
        lines.extend(f"    {more}" for more in text[1:])
    return lines


def _explanation(change: Change, want: int, view: ModelView | None) -> tuple[str, ...]:
    """What changed a dimension and, where a setting can be found, the fix."""
    from ..diagnostics.fixes import layer_call

    if change.record is None:
        before, after = change.around
        what = (
            f"changed it from {change.before} to {change.after}"
            if change.before is not None
            else f"reshaped the tensor, making it {change.after}"
        )
        batch = (
            (" (a view(-1, K) folds features into the batch; keep it with torch.flatten(x, 1))")
            if change.dim == 0
            else ""
        )
        return (
            f"forward code between {_name(before)} and "
            f"{_name(after) if after else 'the output'} {what}{batch}",
        )
    module = view.module(change.record.name) if view is not None else None
    axis = max(change.dim - 2, 0)
    rule = formula(module, change, axis) if module is not None else None
    first = f"last changed by {_name(change.record)}" + (
        f": {rule}" if rule else f", from {change.before} to {change.after}"
    )
    if module is None or change.before is None:
        return (first,)
    settings = _settings(module, axis, change.before, want)
    if not settings:
        return (first,)
    return first, f"fix: {layer_call(module, **settings)} gives {want}"
