"""Sizes found by tracing: the smallest input, a Linear's in_features, the batch kept.

Each runs the model on meta (milliseconds, no memory) as many times as a search
needs: ``min_input_size`` bisects the input side, ``linear_in_features`` traces a
feature extractor once, ``assert_batch_invariant`` traces a few batch sizes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..arith import flatten_size
from ..errors import ArgumentError, BatchInvarianceError, SizeSearchError, SpecError
from ..shapes.tree import format_shape, is_shape

if TYPE_CHECKING:
    import torch
    from torch import nn

    from ..tracing.records import ShapeTrace


def assert_batch_invariant(
    model: nn.Module,
    inputs: Any,
    batches: Sequence[int] = (1, 2, 3, 8),
    *,
    device: str | torch.device = "auto",
) -> list[ShapeTrace]:
    """Trace ``inputs`` with each batch size; the output batch must follow the input's.

    Catches ``view(-1, K)`` folding features into the batch, BatchNorm in train
    mode on one sample, and batch-dependent reshapes. Returns the traces.
    """
    from ..diagnostics.explain import traced
    from ..shapes.tree import first_shape
    from ..tracing.request import TraceRequest
    from .attribution import last_change

    request = TraceRequest.of(model, inputs, device=device)
    spec = request.inputs
    shape = spec.first_shape()
    if shape is None or len(shape) < 1:
        raise SpecError(f"inputs {inputs!r}: give a shape with a batch axis, e.g. (1, 3, 32, 32)")
    traces = []
    for batch in batches:
        result = traced(request.with_inputs(spec.with_first_shape((batch, *shape[1:]))), ())
        out = first_shape(result.output_shape)
        if out is None or not out or out[0] != batch:
            change = last_change(result, 0) if out else None
            where = ""
            if change is not None:
                where = (
                    f"; forward code after {change.around[0].label if change.around[0] else 'the input'}"
                    f" changed it"
                    if change.record is None
                    else f"; {change.record.label} ({change.record.type}) changed it"
                )
            raise BatchInvarianceError(
                f"{type(model).__name__}: a batch of {batch} gives output "
                f"{format_shape(result.output_shape)}, whose batch is not {batch}{where}; a "
                "view(-1, K) folding features into the batch does this: use torch.flatten(x, 1)"
                f"\n\n{result.table()}"
            )
        traces.append(result)
    return traces


def min_input_size(
    model: nn.Module, channels: int, *, ndim: int = 2, batch: int = 1, max_side: int = 8192
) -> int:
    """The smallest square (cube, length) input side ``model`` runs on.

    Found by tracing on meta (a doubling search and bisection: O(log side)
    traces). A model whose head fits one input size only (a fixed Linear after
    the flatten) has no "minimum": that is an error naming the layer, with the
    side from which no layer runs out of pixels.
    """
    from ..diagnostics.rules.sizes import smallest_fitting_input
    from ..tracing.records import ShapeTrace
    from ..tracing.request import TraceRequest
    from ..tracing.tracer import Prober

    if ndim not in (1, 2, 3):
        raise ArgumentError(f"ndim={ndim!r}: give 1 (signals), 2 (images) or 3 (volumes)")
    if channels < 1 or batch < 1:
        raise ArgumentError(f"channels={channels!r} and batch={batch!r} must be at least 1")
    start = (batch, channels, *(1,) * ndim)
    request = TraceRequest.of(model, start)
    found, run = smallest_fitting_input(Prober.of(request), request.inputs, start, limit=max_side)
    if found is None:
        raise SizeSearchError(
            f"{type(model).__name__}: no input side up to {max_side} lets every layer "
            "fit; its strides and pooling shrink every map to nothing"
        )
    if not isinstance(run, ShapeTrace):
        from ..diagnostics import diagnose

        assert run is not None
        reason = diagnose(run).headline
        raise SizeSearchError(
            f"{type(model).__name__}: from side {found[-1]} on no layer runs out of pixels, but at "
            f"that size the model fails: {reason}. A model whose head fits only one input size "
            "has no minimum; make the head size-independent (nn.AdaptiveAvgPool2d, nn.LazyLinear)"
        )
    return int(found[-1])


def linear_in_features(features: nn.Module, input_shape: Any) -> int:
    """The ``in_features`` of a Linear placed after ``features`` (and a flatten), for one input.

    ``input_shape`` is any input ``trace`` takes (``(1, 3, 32, 32)``, ``"1x3x32x32"``).
    Traces the feature extractor on meta — no weights copied, no compute — and
    flattens what it returns per sample: ``linear_in_features(model.features,
    (1, 3, 32, 32)) == 32 * 5 * 5`` for a LeNet-style extractor.
    """
    from ..diagnostics.explain import trace

    out = trace(features, input_shape, device="meta").output_shape
    if not is_shape(out) or len(out) < 2:
        raise ArgumentError(
            f"the feature extractor returns {out!r}, not one (N, C, ...) tensor; pass the part "
            "of the model that ends right before the flatten"
        )
    return flatten_size(out, 1)
