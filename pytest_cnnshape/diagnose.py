"""Rules that recognise a failed forward and derive the fix (see diagnosis.py)."""

from __future__ import annotations

from .diagnosis import Diagnosis, FailureContext, generic


def diagnose(ctx: FailureContext) -> Diagnosis:
    """The most specific diagnosis a rule can make; the generic one otherwise."""
    diagnosis = generic(ctx)
    diagnosis.original = str(ctx.exc)
    return diagnosis
