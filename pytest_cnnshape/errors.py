"""Errors users meet: shape failures of their model, and mistakes in how they call us.

``SpecError`` and ``ConfigError`` are ValueErrors whose text names the argument or
setting, the value given and an accepted example, so the plugin and CLI can show
them as one line instead of a traceback.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .diagnostics.report import Diagnosis
    from .records import ShapeTrace
    from .shapes import ShapeTree


class SpecError(ValueError):
    """A shape, input or model spec that cannot be understood; says how to write it."""


class ConfigError(ValueError):
    """A setting (pyproject, marker, command line) with a wrong key or value."""


class ShapeMismatchError(RuntimeError):
    """The model's forward failed; names the layer, what it received and the fix.

    ``str(err)`` is the full diagnostic; the attributes carry its parts for tests
    and tools. The original exception is ``__cause__``.
    """

    def __init__(self, diagnosis: Diagnosis, trace: ShapeTrace) -> None:
        self.diagnosis = diagnosis
        self.trace = trace
        super().__init__(diagnosis.render(trace))

    @property
    def layer(self) -> str:
        """Qualified name of the innermost module running at the failure (``""``: root)."""
        return self.diagnosis.layer

    @property
    def module_type(self) -> str:
        """Class name of that module."""
        return self.diagnosis.module_type

    @property
    def received_shapes(self) -> tuple[ShapeTree, ...]:
        """Shapes of the positional inputs that module received."""
        return self.diagnosis.received_shapes

    @property
    def fix(self) -> str | None:
        """A concrete change with the right number, or None when none can be derived."""
        return self.diagnosis.fix

    @property
    def source(self) -> str | None:
        """``"file.py:LINE: code"`` of the user's line that raised, when in user code."""
        return self.diagnosis.source

    @property
    def kind(self) -> str:
        """Stable id of the failure class, e.g. ``"linear_in_features"``."""
        return self.diagnosis.kind

    def __reduce__(self) -> tuple[Any, ...]:
        # Keep the readable message when pickled (xdist, multiprocessing).
        return (_rebuild_error, (str(self), self.diagnosis, self.trace))


def _rebuild_error(message: str, diagnosis: Diagnosis, trace: ShapeTrace) -> ShapeMismatchError:
    err = ShapeMismatchError.__new__(ShapeMismatchError)
    err.diagnosis = diagnosis
    err.trace = trace
    RuntimeError.__init__(err, message)
    return err
