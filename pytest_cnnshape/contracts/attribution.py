"""Which layer made a wrong output dimension, by which formula, and the verified fix.

When ``assert_output_shape`` finds dimension 2 is 56 where 64 was expected, the
layer to blame is not the last one that changed it but the first one whose size
diverged from what the expected output implies. The expected size is propagated
backwards along the output's own data path (``tracing.lineage``: for a VAE's
``(recon, mu, logvar)`` each element has its own) through the layers' size
formulas (``arith``): the culprit is the earliest layer that, given the size it
received, can give the size the rest of the path turns into the expected one by
doing its regular job (a stride-2 transposed conv doubling, a stride-1 conv
keeping the size). In a DCGAN generator with one wrong padding early in the stack
that is the layer with the wrong padding, not the last ConvTranspose2d (whose
"fix" would crop the output). Its formula is shown filled in, ``(4 - 1)*2 - 2*2
+ 1*(4 - 1) + 0 + 1 = 6``, and the setting that gives the right size is applied to
a twin of the model and traced: the fix is shown only if the output then matches.
When no layer can do it regularly, the last layer that changed the dimension is
named as before. A dimension changed by forward code between two layers
(``view(-1, K)`` changing the batch) is named by the two layers around it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..shapes.tree import Shape, ShapeTree, first_shape, format_shape, is_shape

if TYPE_CHECKING:
    from torch import nn

    from ..shapes.expected import OutputMismatch
    from ..tracing.lineage import Lineage, Origin
    from ..tracing.modelview import ModelView
    from ..tracing.records import LayerRecord, ShapeTrace
    from ..tracing.request import TraceRequest
    from ..tracing.tracer import Prober


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
    trace: ShapeTrace, leaves: list[int] | None = None
) -> Iterator[
    tuple[Shape | None, Shape | None, LayerRecord | None, tuple[LayerRecord | None, LayerRecord | None]]
]:
    """(shape before, shape after, layer or None, layers around) along the leaf calls (or
    the given ones, an output's data path)."""
    previous: LayerRecord | None = None
    current = first_shape(tuple(trace.input_shapes))
    chosen = [trace.layers[i] for i in leaves] if leaves else trace.layers
    for r in chosen:
        if not (r.is_leaf and r.finished):
            continue
        got, made = first_shape(r.input_shapes), first_shape(r.output_shape)
        yield current, got, None, (previous, r)
        yield got, made, r, (None, None)
        previous, current = r, made
    if leaves:
        return
    yield current, first_shape(trace.output_shape), None, (previous, None)


def last_change(trace: ShapeTrace, dim: int, leaves: list[int] | None = None) -> Change | None:
    """The last step that set dimension ``dim`` of the final output (along ``leaves``, the
    calls on one output's data path, when given)."""
    final = first_shape(trace.output_shape)
    if leaves:
        final = first_shape(trace.layers[leaves[-1]].output_shape)
    if final is None or dim >= len(final):
        return None
    found = None
    for before, after, record, around in _steps(trace, leaves):
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


def _settings(
    module: nn.Module, axis: int, size: int, want: int, *, dim: int | None = None
) -> dict[str, Any] | None:
    """The smallest change of the layer's settings that makes ``size`` come out as ``want``
    (on spatial ``axis``; ``dim=1``: the channels)."""
    from torch import nn

    from .. import arith

    if isinstance(module, nn.Linear):
        return {"out_features": want}
    if dim == 1:
        if isinstance(module, nn.modules.conv._ConvNd) and module.groups == 1:
            return {"out_channels": want}
        return None
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


@dataclass
class Attribution:
    """What explaining wrong outputs needs once per failed assertion: the model, the data
    path of each output (a lineage-watched run on meta) and a prober for verifying fixes."""

    model: nn.Module
    view: ModelView
    probe: Prober
    inputs: Any
    bindings: Mapping[str, int]
    trace: ShapeTrace | None = None
    lineage: Lineage | None = None

    @classmethod
    def of(cls, request: TraceRequest, bindings: Mapping[str, int]) -> Attribution | None:
        """The attribution of the trace ``request`` made (None when it cannot run again)."""
        from ..tracing.lineage import Lineage
        from ..tracing.records import ShapeTrace
        from ..tracing.tracer import Prober

        try:
            probe = Prober.of(request)
            lineage = Lineage()
            watched = probe(request.inputs, observers=(lineage,))
        except Exception:  # an input we cannot run again: attribution without the data path
            return None
        if not isinstance(watched, ShapeTrace):
            return None
        return cls(request.model, request.view, probe, request.inputs, bindings, watched, lineage)

    def leaf_of(self, origin: Origin | None, element: int = 0) -> int | None:
        """The leaf call that made a tensor of this origin (through containers and ops)."""
        from ..tracing.lineage import LAYER, OP

        seen = 0
        while origin is not None and seen < 10_000:
            seen += 1
            if origin.kind == OP:
                origin = origin.parents[0] if origin.parents else None
                continue
            if origin.kind != LAYER or self.trace is None or self.lineage is None:
                return None
            record = self.trace.layers[origin.index]
            if record.is_leaf:
                return origin.index
            made = self.lineage.returned.get(origin.index, ())
            origin = made[element] if element < len(made) else (made[0] if made else None)
            element = 0
        return None

    def path(self, element: int) -> list[int]:
        """Leaf calls on the data path of the model's ``element``-th output, input first."""
        if self.lineage is None:
            return []
        made = self.lineage.returned.get(0, ())
        leaf = self.leaf_of(made[element] if element < len(made) else None)
        out: list[int] = []
        while leaf is not None and leaf not in out:
            out.append(leaf)
            sources = self.lineage.sources.get(leaf, ())
            leaf = self.leaf_of(sources[0] if sources else None)
        return out[::-1]


def _leaf_paths(tree: ShapeTree, path: str = "") -> list[str]:
    """The path (as ``compare_output`` writes it) of each leaf shape, in order."""
    if tree is None or is_shape(tree):
        return [path]
    if isinstance(tree, Mapping):
        return [p for k, v in tree.items() for p in _leaf_paths(v, f"{path}[{k!r}]")]
    return [p for i, v in enumerate(tree) for p in _leaf_paths(v, f"{path}[{i}]")]


def _at(tree: ShapeTree, path: str) -> ShapeTree:
    for index, candidate in enumerate(_leaf_paths(tree)):
        if candidate == path:
            from ..shapes.tree import leaf_shapes

            leaves = leaf_shapes(tree)
            return leaves[index] if index < len(leaves) else None
    return None


def _regular(module: nn.Module, axis: int, size: int, out: int) -> bool:
    """True when ``size -> out`` is the layer's regular job on that axis: a stride-``s``
    transposed conv multiplying by ``s``, a stride-``s`` conv or pooling dividing by it."""
    from torch import nn

    if isinstance(module, nn.modules.conv._ConvTransposeNd):
        return out == size * _setting(module, "stride", axis)
    if isinstance(
        module, nn.modules.conv._ConvNd | nn.modules.pooling._MaxPoolNd | nn.modules.pooling._AvgPoolNd
    ):
        k = _setting(module, "kernel_size", axis)
        s = _setting(module, "stride", axis, k)
        return out == size if s == 1 else out in (size // s, -(-size // s))
    return False


def _spatial(module: nn.Module | None, sides: tuple[int, ...]) -> tuple[int, ...] | None:
    from ..arith import spatial_output_of

    return spatial_output_of(module, sides) if module is not None else None


@dataclass(frozen=True)
class Blame:
    """The first layer on an output's path whose size diverged, and the setting that fixes it."""

    record: LayerRecord
    module: nn.Module
    dim: int
    before: int
    after: int
    #: The size it must give for the rest of the path to give the expected one.
    needed: int
    settings: dict[str, Any]


#: One layer on an output's path: its record, module, and the shapes it got and made.
Step = tuple["LayerRecord", "nn.Module | None", Shape, Shape]


def _stretch(trace: ShapeTrace, leaves: list[int], rank: int, view: ModelView) -> list[Step]:
    """The trailing stretch of the path whose layers keep the output's rank."""
    run: list[Step] = []
    for index in reversed(leaves):
        record = trace.layers[index]
        got, made = first_shape(record.input_shapes), first_shape(record.output_shape)
        if got is None or made is None or len(got) != rank or len(made) != rank:
            break
        run.insert(0, (record, view.module(record.name), got, made))
    return run


def _carried(later: list[Step], sides: tuple[int, ...], axis: int) -> int | None:
    """The size ``sides`` turns into on ``axis`` through the layers ``later`` (their formulas)."""
    current = sides
    for _, module, got, made in later:
        nxt = _spatial(module, current) if module is not None else None
        if nxt is None:
            if got[2:] != made[2:]:
                return None  # a layer whose size rule is unknown changes the sides
            nxt = current
        if min(nxt) < 1:
            return None
        current = nxt
    return current[axis]


def _shrinks_by_design(module: nn.Module, axis: int, same_padded: bool) -> bool:
    """A stride-1 conv or pool without padding shrinks the map on purpose (LeNet, the original
    U-Net), unless the path's other stride-1 layers keep their size."""
    stride = _setting(module, "stride", axis, _setting(module, "kernel_size", axis))
    return (
        _regular_kind(module)
        and stride == 1
        and _setting(module, "padding", axis, 0) == 0
        and not same_padded
    )


def _walk_back(trace: ShapeTrace, leaves: list[int], dim: int, want: int, view: ModelView) -> Blame | None:
    """Propagate ``want`` back along the path; the earliest layer that can give the needed
    size from what it received, doing its regular job, is where the size diverged."""
    final = first_shape(trace.layers[leaves[-1]].output_shape) if leaves else None
    if final is None or dim < 2 or dim >= len(final):
        return None
    run = _stretch(trace, leaves, len(final), view)
    axis = dim - 2
    same_padded = any(
        m is not None and _regular_kind(m) and _setting(m, "stride", axis, 1) == 1 and g[dim] == o[dim]
        for _, m, g, o in run
    )
    for k, (record, module, got, made) in enumerate(run):
        if module is None or (got[dim] == made[dim] and not _regular_kind(module)):
            continue
        if _shrinks_by_design(module, axis, same_padded):
            continue
        bound = 2 * max(want, made[dim], got[dim]) + 16
        for t in range(1, bound):
            if t == made[dim] or not _regular(module, axis, got[dim], t):
                continue
            if _carried(run[k + 1 :], _with_side(made[2:], axis, t), axis) != want:
                continue
            settings = _settings(module, axis, got[dim], t)
            if settings:
                return Blame(record, module, dim, got[dim], made[dim], t, settings)
    return None


def _with_side(sides: Shape, axis: int, size: int) -> tuple[int, ...]:
    changed = list(sides)
    changed[axis] = size
    return tuple(changed)


def _regular_kind(module: nn.Module) -> bool:
    from torch import nn

    return isinstance(
        module, nn.modules.conv._ConvNd | nn.modules.pooling._MaxPoolNd | nn.modules.pooling._AvgPoolNd
    )


def _merged(module: nn.Module, per_axis: dict[int, dict[str, Any]], dims: int) -> dict[str, Any]:
    """Settings changed on some axes merged into the layer's per-axis values."""
    from ..arith import per_dim

    out: dict[str, Any] = {}
    keys = {key for settings in per_axis.values() for key in settings}
    for key in keys:
        if key == "ceil_mode":
            out[key] = next(s[key] for s in per_axis.values() if key in s)
            continue
        current = list(per_dim(getattr(module, key, 0) or 0, dims))
        for axis, settings in per_axis.items():
            if key in settings:
                current[axis] = settings[key]
        out[key] = current[0] if len(set(current)) == 1 else tuple(current)
    return out


def _verify(
    attribution: Attribution | None,
    name: str,
    module: nn.Module,
    settings: dict[str, Any],
    mismatch: OutputMismatch,
) -> str | None:
    """Apply the setting to a twin and trace it: the text, or None when the output still
    does not match (or the twin cannot be built)."""
    from ..diagnostics.fixes import layer_fix
    from ..diagnostics.patches import Unpatchable, twin
    from ..shapes.expected import compare_output
    from ..tracing.records import ShapeTrace

    if attribution is None or mismatch.spec is None:
        return None
    import torch

    probe = attribution.probe
    try:
        root, spec = twin(
            attribution.view,
            attribution.inputs,
            layer_fix(name, module, **settings),
            torch.device("meta"),
            probe.dtype,
        )
    except Unpatchable:
        return None
    result = probe(spec, root=root, where=torch.device("meta"))
    if not isinstance(result, ShapeTrace):
        return None
    element = _at(result.output_shape, mismatch.path)
    if compare_output(mismatch.spec, element, attribution.bindings):
        return None
    return f"verified: the output is then {format_shape(element)}"


def explain(
    trace: ShapeTrace,
    mismatch: OutputMismatch,
    attribution: Attribution | None = None,
    view: ModelView | None = None,
) -> list[str]:
    """Lines naming, for each wrong dimension, the layer where it diverged and the fix
    (``view``: the traced model's, for when no attribution could be made)."""
    if not mismatch.checks:
        return []
    view = attribution.view if attribution is not None else view
    final = _at(trace.output_shape, mismatch.path) if mismatch.path else first_shape(trace.output_shape)
    if final is None:
        return []
    element = (
        _leaf_paths(trace.output_shape).index(mismatch.path)
        if mismatch.path in _leaf_paths(trace.output_shape)
        else 0
    )
    leaves = attribution.path(element) if attribution is not None else []
    if not leaves:
        leaves = (
            [i for i, r in enumerate(trace.layers) if r.is_leaf and r.finished] if not mismatch.path else []
        )
    groups: dict[str, tuple[list[int], Sequence[str]]] = {}  # key -> (dims, lines)
    walked: dict[str, tuple[LayerRecord, nn.Module, dict[int, dict[str, Any]], list[Blame]]] = {}
    for check in mismatch.checks:
        if check.ok or check.actual is None or check.expected_value is None:
            continue
        blame = (
            _walk_back(trace, leaves, check.index, check.expected_value, view)
            if view is not None and leaves
            else None
        )
        if blame is not None:
            entry = walked.setdefault(blame.record.name, (blame.record, blame.module, {}, []))
            entry[2][check.index - 2] = blame.settings
            entry[3].append(blame)
            continue
        change = last_change(trace, check.index, leaves if mismatch.path else None)
        if change is not None:
            told = _explanation(change, check.expected_value, view, attribution, mismatch)
            groups.setdefault("\n".join(told), ([], told))[0].append(check.index)
    for name, (record, module, per_axis, blames) in walked.items():
        dims = len(first_shape(record.output_shape) or ()) - 2
        settings = _merged(module, per_axis, max(dims, 1))
        changed = last_change(trace, blames[0].dim, leaves if mismatch.path else None)
        last = changed is not None and changed.record is record
        diverged = _diverged(
            record, module, blames, settings, attribution=attribution, mismatch=mismatch, last=last
        )
        groups.setdefault(name + "\n".join(diverged), ([], diverged))[0].extend(b.dim for b in blames)
    lines = []
    where = f"output{mismatch.path}: " if mismatch.path else ""
    for found_dims, text in groups.values():
        numbers = sorted(found_dims)
        label = (
            f"dim {numbers[0]}"
            if len(numbers) == 1
            else "dims " + ", ".join(map(str, numbers[:-1])) + f" and {numbers[-1]}"
        )
        lines.append(f"  {where}{label}: {text[0]}")
        lines.extend(f"    {more}" for more in text[1:])
    return lines


def _diverged(
    record: LayerRecord,
    module: nn.Module,
    blames: list[Blame],
    settings: dict[str, Any],
    *,
    attribution: Attribution | None,
    mismatch: OutputMismatch,
    last: bool,
) -> list[str]:
    """Where the size diverged (``last changed by`` when that is the last layer to change it)."""
    from ..diagnostics.fixes import layer_call

    blame = blames[0]
    change = Change(blame.dim, blame.before, blame.after, record)
    rule = formula(module, change, blame.dim - 2)
    sizes = "x".join(str(b.before) for b in blames), "x".join(str(b.after) for b in blames)
    needed = "x".join(str(b.needed) for b in blames)
    if last:
        first = f"last changed by {_name(record)}" + (
            f": {rule}" if rule else f", from {sizes[0]} to {sizes[1]}"
        )
    else:
        first = (
            f"diverged at {_name(record)}: it got {sizes[0]} and made {sizes[1]}, where {needed} leads to "
            "the expected output" + (f": {rule}" if rule else "")
        )
    call = layer_call(module, **settings)
    verified = _verify(attribution, record.name, module, settings, mismatch)
    if verified is None:
        return [first, f"no verified fix: {call} gives {needed} there, but the output still does not match"]
    return [first, f"fix: {call} gives {needed} ({verified})"]


def _explanation(
    change: Change,
    want: int,
    view: ModelView | None,
    attribution: Attribution | None,
    mismatch: OutputMismatch,
) -> tuple[str, ...]:
    """What changed a dimension and, where a setting can be found and verified, the fix."""
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
    settings = _settings(module, axis, change.before, want, dim=change.dim)
    if not settings:
        return (first,)
    call = layer_call(module, **settings)
    if attribution is None:
        return first, f"fix: {call} gives {want}"
    verified = _verify(attribution, change.record.name, module, settings, mismatch)
    if verified is None:
        return first, f"no verified fix: {call} gives {want} there, but the output still does not match"
    return first, f"fix: {call} gives {want} ({verified})"
