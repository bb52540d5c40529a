"""Which layer made a wrong output dimension, and how (filled in by the diagnostics)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .contract import OutputMismatch
    from .records import ShapeTrace


def explain(trace: ShapeTrace, mismatch: OutputMismatch, bindings: Mapping[str, int]) -> list[str]:
    """Lines naming, for each wrong dimension, the last layer that changed it."""
    return []
