"""Explain a failed forward: which layer, what it got, and the exact fix.

``diagnose`` hands the moment of failure (``FailureContext``) to rules, most
specific first; the first that recognises it writes the ``Diagnosis``. Each
module of ``rules/`` covers one family of mistakes:

============  ==============================================================
``dtypes``    dtype and device mismatches (float64 input, CPU input on CUDA)
``conv``      conv in_channels, groups, channels-last and missing axes
``sizes``     inputs too small for the conv/pool stack, with the minimum that works
``linear``    Linear in_features after flatten/view, unflattened maps, Flatten start_dim
``norm``      BatchNorm/GroupNorm/LayerNorm/InstanceNorm features and ranks
``rnn``       LSTM/GRU input_size after a conv stack (the features per step)
``upsample``  PixelShuffle channels, MaxUnpool without output_size=
``combine``   torch.cat and residual adds of mismatched maps, position tables
``reshape``   view/reshape in forward(), including view(-1, N)
``generic``   anything else: still the layer, what it received and the path
============  ==============================================================

Rules take their numbers from the modules' own settings and the shapes the
hooks saw: meta and CPU word errors differently, and meta often gives no numbers.
torch's message classifies the failure; only where an operand's shape cannot be
known otherwise (a ``torch.cat`` of a list built in forward) does ``combine`` read
the mismatched axis and size from it, the one number both devices print.

A rule never shows a fix of its own: it proposes candidates (``report.Candidate``:
a patch of ``patches`` and why), and ``verify`` applies each to a twin of the model
and traces it; only a fix the twin ran with is shown, with what it ran to.

``report`` is how a diagnosis reads, ``fixes`` how a fix is written (the layer's
constructor call), ``patches`` how it is applied, ``verify`` how it is checked,
``source`` which expression of the user's forward raised, and ``explain`` the
public ``trace``: the tracer's run plus this explanation.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from ..tracing.failure import FailureContext
from .report import Diagnosis

Rule = Callable[[FailureContext], Diagnosis | None]

__all__ = ["Diagnosis", "FailureContext", "diagnose"]


def _rules() -> tuple[Rule, ...]:
    from .rules import combine, conv, dtypes, linear, norm, reshape, rnn, sizes, upsample

    # layout and channel mistakes first: with the wrong axis read as "spatial", a
    # layer would also seem to run out of pixels
    return (
        dtypes.diagnose,
        conv.diagnose,
        sizes.diagnose,
        linear.diagnose,
        norm.diagnose,
        rnn.diagnose,
        upsample.diagnose,
        combine.diagnose,
        reshape.diagnose,
    )


def diagnose(ctx: FailureContext) -> Diagnosis:
    """The most specific diagnosis a rule can make (the generic one otherwise), its fixes
    verified.

    A rule that breaks on an unforeseen model is skipped rather than allowed to
    hide the user's own error (``CNNSHAPE_DEBUG=1`` re-raises, for our tests).
    """
    from .rules.generic import with_common_notes
    from .verify import settle

    diagnosis = with_common_notes(ctx, recognise(ctx))
    return settle(ctx, diagnosis)


def recognise(ctx: FailureContext) -> Diagnosis:
    """What the rules make of a failure, before any fix is verified (how a second problem a
    fix runs into is named)."""
    from .rules.generic import generic

    found = None
    for rule in _rules():
        try:
            found = rule(ctx)
        except Exception:
            if os.environ.get("CNNSHAPE_DEBUG"):
                raise
            found = None
        if found is not None:
            break
    return found or generic(ctx)
