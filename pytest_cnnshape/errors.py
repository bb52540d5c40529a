"""Every error pytest-cnnshape raises, in one hierarchy.

``CnnShapeError`` is the base; catch it to catch anything of ours. Under it two
kinds users handle differently:

* ``UsageError``: how pytest-cnnshape was called or configured (a shape spec, a
  setting, a marker argument, an API argument). The message names the thing, the
  value and an accepted example; the CLI exits 2 and pytest shows one line.
* the model's own failures: ``ShapeMismatchError`` (its forward fails),
  ``ContractFailure`` and its kinds (it runs, but breaks what a test asked of it),
  ``TraceError`` (it cannot be traced where asked), ``FactoryError`` (its factory
  raised).

Each public class keeps the builtin base it always had (``ShapeMismatchError``
is a ``RuntimeError``, ``LintError`` an ``AssertionError``, ``SpecError`` a
``ValueError``), so code that catches those keeps working. Torch-free; the
message helpers at the end give every surface the same wording.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .diagnostics.report import Diagnosis
    from .inspection.findings import Findings
    from .shapes.tree import Shape, ShapeTree
    from .tracing.failure import FailureContext
    from .tracing.records import ShapeTrace


class CnnShapeError(Exception):
    """Base of every error pytest-cnnshape raises."""


# -- how we were called ---------------------------------------------------------------


class UsageError(CnnShapeError):
    """A mistake in how pytest-cnnshape was called or configured: fix the call, not the model."""


class SpecError(UsageError, ValueError):
    """A shape, input or model spec that cannot be understood; says how to write it."""


class SizeLimitError(SpecError):
    """An input larger than any tensor can be: the shape is understood, only too big."""


class ConfigError(UsageError, ValueError):
    """A setting (pyproject, marker, command line) with a wrong key or value."""


class MarkerError(ConfigError):
    """A ``cnn_model`` marker written wrongly; the test fails at setup with this one line."""


class ArgumentError(UsageError, ValueError):
    """An argument of the Python API with a value it cannot take."""


class ArgumentTypeError(UsageError, TypeError):
    """An argument of the Python API of a type it cannot take."""


# -- the model's failures -------------------------------------------------------------


class FactoryError(CnnShapeError, RuntimeError):
    """A model factory that raised, or returned something other than an nn.Module."""


class TraceError(CnnShapeError, RuntimeError):
    """The model could not be traced (not a shape error): one line naming the layer and the reason.

    Meta cannot run it and no fallback was allowed, no device here has a kernel
    for one of its ops (a C++ extension, an op that needs CUDA), or it raised an
    exception of its own (a ``raise`` or ``assert`` in its code). ``.layer`` is
    the innermost module running then (``""``: the root's forward), ``.trace`` the
    partial trace, when there is one; ``__cause__`` the original exception.
    """

    def __init__(self, message: str, *, layer: str | None = None, trace: ShapeTrace | None = None) -> None:
        super().__init__(message)
        self.layer = layer
        self.trace = trace


class SymbolicError(TraceError):
    """torch's symbolic shapes cannot follow the model: one line naming what and why.

    A size that depends on tensor values, an op without a symbolic size rule,
    TorchScript, lazy layers not initialised yet. ``trace(..., symbolic=True)``
    says so in its note and gives the concrete trace; ``input_domain`` raises it.
    """


class ShapeMismatchError(CnnShapeError, RuntimeError):
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
        return (_rebuild_shape_error, (str(self), self.diagnosis, self.trace))


def _rebuild_shape_error(message: str, diagnosis: Diagnosis, trace: ShapeTrace) -> ShapeMismatchError:
    err = ShapeMismatchError.__new__(ShapeMismatchError)
    err.diagnosis = diagnosis
    err.trace = trace
    RuntimeError.__init__(err, message)
    return err


class UnverifiedFixError(CnnShapeError, AssertionError):
    """Debug mode (``CNNSHAPE_DEBUG=1``) only: a diagnostic rule showed a fix it did not verify."""


class ContractFailure(CnnShapeError, AssertionError):
    """A model that runs but breaks what a test asked of it; the message explains it whole."""


class OutputShapeError(ContractFailure):
    """``assert_output_shape``: the output differs from the expected shape."""


class ShapeContractError(ContractFailure):
    """A model broke its shape contract; the message has the smallest failing input."""

    def __init__(
        self,
        message: str,
        shape: Shape,
        cause: BaseException | None = None,
        method: str = "hypothesis",
        where: str = "",
    ) -> None:
        super().__init__(message)
        #: The smallest failing input (found by hypothesis, or by the symbolic proof).
        self.shape = shape
        #: The ShapeMismatchError of the failing trace, when the forward failed.
        self.error = cause
        #: ``"symbolic"`` (proven at every input of the domain) or ``"hypothesis"`` (sampled).
        self.method = method
        #: Every failing input, in words ("H or W not a multiple of 4"), where the symbolic
        #: proof can say it exactly; "" otherwise.
        self.where = where


class LintError(ContractFailure):
    """``assert_no_lint`` found something; the message lists every finding with its fix."""

    def __init__(self, model: str, findings: Findings) -> None:
        self.findings = findings
        count = f"{len(findings)} lint finding{'s' if len(findings) != 1 else ''}"
        head = (
            f"{model}: {count} (to accept one, switch its rule off: ignore=['rule-id'] "
            "or [tool.cnnshape] lint.ignore)"
        )
        super().__init__(head + "\n" + findings.text())


class BatchInvarianceError(ContractFailure):
    """``assert_batch_invariant``: an output batch that does not follow the input's."""


class SizeSearchError(CnnShapeError, ValueError):
    """A size search by tracing (``min_input_size``) found no size the model runs on."""


class BaselineFailure(ContractFailure):
    """A model whose shapes differ from its committed baseline, or whose baseline is unusable."""


class BaselineFileError(CnnShapeError):
    """A baseline file that exists but cannot be used; ``str()`` says why, in words."""

    def __init__(self, problem: str, *, newer: bool = False, conflicted: bool = False) -> None:
        super().__init__(problem)
        #: True when the file is from a newer format (upgrading helps, not restoring).
        self.newer = newer
        #: True when the file holds git merge-conflict markers (re-running the merged code helps).
        self.conflicted = conflicted


# -- control flow that never leaves the package ---------------------------------------


class ForwardFailed(Exception):
    """Internal: a traced forward raised; carries the moment of failure to be explained."""

    def __init__(self, context: FailureContext, note: str | None = None) -> None:
        super().__init__(str(context.exc))
        self.context = context
        #: Why the trace ran where it did (meta fell back to a real forward), if it moved.
        self.note = note
        #: What was traced of a wrapped model (``ShapeTrace.wrapper``), if it was wrapped.
        self.wrapper: str | None = None


class ContractViolation(Exception):
    """Internal: raised inside a hypothesis run so that it shrinks; explained afterwards."""

    def __init__(self, shape: Shape, names: dict[str, int]) -> None:
        super().__init__(str(list(shape)))
        self.shape, self.names = shape, names


# -- wording shared by every surface --------------------------------------------------


def unknown(
    name: str,
    known: Iterable[str],
    *,
    noun: str = "key",
    examples: Mapping[str, str] | None = None,
    listing: str | None = None,
) -> str:
    """``unknown key 'inptu' (did you mean 'input'? e.g. ...); known keys: a, b``.

    ``examples`` maps a name to how it is written (shown with the suggestion);
    ``listing`` replaces ``known <noun>s`` as the label of the list.
    """
    import difflib

    names = list(known)
    close = difflib.get_close_matches(str(name), names, n=1)
    hint = ""
    if close:
        example = (examples or {}).get(close[0])
        hint = f" (did you mean {close[0]!r}?" + (f" e.g. {example})" if example else ")")
    label = listing or f"known {noun}s:"
    return f"unknown {noun} {name!r}{hint}; {label} {', '.join(names)}"


def unknown_key(where: str, key: str, examples: Mapping[str, str]) -> ConfigError:
    """``[tool.cnnshape] has an unknown key 'devcie' (did you mean 'device'? e.g. ...)``.

    ``examples`` maps every known key to how it is written, in the order to list them.
    """
    return ConfigError(f"{where} has an " + unknown(key, examples, examples=examples))
