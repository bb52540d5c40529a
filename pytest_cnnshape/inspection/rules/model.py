"""Lint rules about the model as a whole: dropout rates, the batch, dead layers, input size."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from torch import nn

from ...shapes.tree import first_shape
from ..context import LintContext
from ..findings import Finding
from ..parameters import tensor_names

if TYPE_CHECKING:
    from ...tracing.inputs import InputSpec

DROPOUT_FIX = "set the rate you mean, e.g. nn.Dropout(p=0.5) (0.1 to 0.5 is usual), or remove the layer"


def dropout_probability(ctx: LintContext) -> Iterator[Finding]:
    for layer in ctx.regularization.dropouts:
        p = layer.p
        if p is None:
            problem = "p is not a number"
        elif p == 0:
            problem = "p=0: the layer does nothing"
        elif p == 1:
            problem = "p=1: it zeroes every activation in training"
        elif not 0 < p < 1:
            problem = f"p={p} is outside [0, 1]: the forward raises"
        else:
            continue
        yield ctx.finding(
            "dropout-probability", layer.name, f"{layer.name} ({layer.type}) has {problem}", DROPOUT_FIX
        )


def _sequence_first(module: nn.Module) -> bool:
    seq = (nn.RNNBase, nn.MultiheadAttention, nn.TransformerEncoderLayer, nn.TransformerDecoderLayer)
    return isinstance(module, seq) and not getattr(module, "batch_first", False)


def batch_dimension_changed(ctx: LintContext) -> Iterator[Finding]:
    observation = ctx.observation
    if observation is None:
        return
    trace = observation.trace
    first_input = first_shape((*trace.input_shapes, *trace.input_kwargs.values()))
    output = first_shape(trace.output_shape)
    axis = ctx.batch_dim
    if not first_input or not output or axis >= len(output):
        return
    batch = first_input[0]
    # batch_dim: the output's batch axis (and a sequence-first input's, when it has one there)
    if output[axis] == batch or (axis < len(first_input) and output[axis] == first_input[axis]):
        return
    time_major = any(_sequence_first(m) for m in ctx.view.modules) or observation.permuted
    if axis == 0 and len(output) >= 3 and output[1] == batch and time_major:
        return  # (T, B, ...) by design: an LSTM with batch_first=False, a CRNN's CTC output
    culprit = next((r for r in trace.layers[1:] if r.input_shape and r.input_shape[0] != batch), None)
    where = ""
    if culprit is not None:
        where = (
            f"; {culprit.name} ({culprit.type}) is the first layer to receive a tensor "
            f"whose first dimension is not {batch}: {list(culprit.input_shape or ())}"
        )
    yield ctx.finding(
        "batch-dimension-changed",
        culprit.name if culprit is not None else "",
        f"the input has a batch of {batch} but the output {list(output)} has {output[axis]} "
        f"{'rows' if axis == 0 else f'on axis {axis}'}{where}",
        "keep the batch when reshaping: x.flatten(1) or x.view(x.size(0), -1) instead of "
        "x.view(-1, N); squeeze a named dimension (x.squeeze(-1)), not all of them; a model "
        "whose output is sequence-first by design: batch_dim=1",
    )


def _owner(name: str) -> str:
    return name.rpartition(".")[0]


def unused_parameters(ctx: LintContext) -> Iterator[Finding]:
    observation = ctx.observation
    if observation is None:
        return
    view = ctx.view
    called = {r.name for r in observation.trace.layers}
    called.update(alias for r in observation.trace.layers for alias in r.aliases)
    used = observation.used_parameters or frozenset()
    holders = (m for m in view.modules if m._parameters)
    if all(
        view.names[id(m)] in called or not called.isdisjoint(view.aliases.get(id(m), ())) for m in holders
    ):
        return  # every module holding parameters was called: none can be unused
    names = tensor_names(view, "_parameters")
    dead = {key for key, found in names.items() if not any(_owner(n) in called or n in used for n in found)}
    if not dead:
        return
    reported: list[str] = []
    for module in view.modules[1:]:
        name = view.name_of(module)
        if any(name.startswith(prefix + ".") for prefix in reported):
            continue
        params = list(module.parameters())
        if not params or not all(id(p) in dead for p in params):
            continue
        reported.append(name)
        count = sum(0 if nn.parameter.is_lazy(p) else p.numel() for p in params)
        yield ctx.finding(
            "unused-parameters",
            name,
            f"{name} ({type(module).__name__}, {count:,} parameters) is never called in the "
            "forward and none of its parameters is used",
            f"call {name} in forward() or delete it; if it runs only in training mode or for "
            "other inputs, lint with those inputs or ignore the rule for this model",
        )


def _doubled(spec: InputSpec) -> InputSpec | None:
    """The inputs with every spatial side doubled (inputs of 3+ dims); None if none has any."""
    import torch

    from ...tracing.inputs import InputSpec, ShapeLeaf, rebuild

    changed = False

    def scale(value: Any) -> Any:
        nonlocal changed
        shape = None
        if isinstance(value, ShapeLeaf):
            shape = value.shape
        elif isinstance(value, torch.Tensor) and value.is_floating_point():
            shape = tuple(value.shape)
        if shape is not None and len(shape) >= 3:
            changed = True
            return ShapeLeaf((*shape[:2], *(2 * side for side in shape[2:])))
        if isinstance(value, (tuple, list)):
            return rebuild(value, [scale(v) for v in value])
        if isinstance(value, dict):
            return {k: scale(v) for k, v in value.items()}
        return value

    doubled = InputSpec(tuple(scale(a) for a in spec.args), {k: scale(v) for k, v in spec.kwargs.items()})
    return doubled if changed else None


def _pooled_sides(features: int, feature_map: tuple[int, ...]) -> tuple[int, ...] | None:
    """Sides an adaptive pool must give ``feature_map`` (N, C, *sides) for ``features`` after
    the flatten, keeping its aspect ratio; None when no such sides exist."""
    channels, sides = feature_map[1], feature_map[2:]
    if channels <= 0 or features % channels:
        return None
    area = features // channels
    if math.prod(sides) == area:
        return tuple(sides)
    if len(sides) == 1:
        return (area,)
    if len(sides) == 2 and sides[1]:
        height = round(math.sqrt(area * sides[0] / sides[1]))
        if height > 0 and area % height == 0:
            return (height, area // height)
    return None


def _adaptive_pool_fix(ctx: LintContext, name: str, linear: nn.Linear) -> str:
    """Which adaptive pooling keeps ``linear``'s in_features at any size, from the trace.

    The feature map is the output of the last layer before ``linear`` that returns
    one (a functional pooling in between is allowed for: the sides are solved for).
    """
    leaves = ctx.leaves
    index = next((i for i, leaf in enumerate(leaves) if leaf.name == name), 0)
    feature_map = next(
        (
            leaf.output_shape
            for leaf in reversed(leaves[:index])
            if leaf.output_shape is not None and len(leaf.output_shape) >= 3
        ),
        None,
    )
    sides = _pooled_sides(linear.in_features, feature_map) if feature_map else None
    if feature_map is None or sides is None:
        return (
            f"put an adaptive pooling layer (nn.AdaptiveAvgPool2d) before the flatten that "
            f"feeds {name}; if the model is meant for one input size, ignore the rule"
        )
    pool = f"nn.AdaptiveAvgPool{len(sides)}d"
    size = str(sides[0]) if len(set(sides)) == 1 else str(sides)
    return (
        f"add {pool}({size}) before the flatten: {name} then gets {linear.in_features:,} "
        f"features at any input size (or {pool}(1) and nn.Linear({feature_map[1]}, "
        f"{linear.out_features})); if the model is meant for one size, ignore the rule"
    )


def linear_fixed_input_size(ctx: LintContext) -> Iterator[Finding]:
    from ...diagnostics.explain import traced
    from ...errors import ShapeMismatchError
    from ...tracing.records import inputs_text

    request = ctx.request
    if ctx.observation is None or request is None or not ctx.observation.linear_may_be_locked:
        return  # every Linear's input has one shape at any size: no second trace needed
    doubled = _doubled(request.inputs)
    if doubled is None:
        return
    try:
        traced(request.with_inputs(doubled), ())
    except ShapeMismatchError as err:
        try:
            module = ctx.model.get_submodule(err.layer)
        except AttributeError:
            return
        if not isinstance(module, nn.Linear):
            return
        received = first_shape(err.received_shapes)
        got = f" it receives {received[-1]:,} features" if received else " it does not fit"
        first = inputs_text(ctx.observation.trace.to_dict(), "the traced size")
        second = inputs_text(err.trace.to_dict(), "double the size")
        yield ctx.finding(
            "linear-fixed-input-size",
            err.layer,
            f"{err.layer} (Linear, in_features={module.in_features:,}) fits only {first}: at {second}{got}",
            _adaptive_pool_fix(ctx, err.layer, module),
        )
    except Exception:  # the doubled size fails for another reason: no verdict
        return
