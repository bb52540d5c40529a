"""What the fixtures do: ``cnn_shapes``, ``cnn_model``, ``cnn_trace``.

Every model traced through them becomes a ModelEntry in the test item's stash; the
plugin ships a test's entries on its teardown report to the session report.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import pytest

from .baseline.check import verify
from .baseline.record import BaselineOptions
from .checks import CheckResult, ModelCheck, run_check
from .entries import FAILED, XFAILED, ModelEntry, describe_inputs
from .keys import ENTRIES_KEY, MARKER, MARKER_KEY, RESULT_KEY
from .markers import MarkerError, check_from_marker
from .options import settings

if TYPE_CHECKING:
    import torch
    from torch import nn

    from .inspection.findings import Findings
    from .records import ShapeTrace



def item_entries(item: pytest.Item) -> list[ModelEntry]:
    """The entries recorded so far by this test."""
    return item.stash.setdefault(ENTRIES_KEY, [])


def note_outcome(item: pytest.Item, report: pytest.TestReport) -> None:
    """After the test body: a model failure the test survived was an expected one.

    A test that catches ShapeMismatchError with pytest.raises, or a strict xfail,
    documents a broken model on purpose; the report says "xfailed", not "failed".
    """
    if report.when != "call" or not (report.passed or hasattr(report, "wasxfail")):
        return
    for entry in item.stash.get(ENTRIES_KEY, []):
        if entry.status == FAILED:
            entry.status = XFAILED


def inspection_options(config: pytest.Config) -> tuple[bool, tuple[str, ...]]:
    """Whether the session report shows inspection data, and the project's ignored lint rules.

    Inspection costs a few more traces per model, so it runs only when a report
    (``--cnn-shapes``, ``--cnn-shapes-report``) will show it.
    """
    s = settings(config)
    return s.show or s.report is not None, s.project.lint_ignore


class CnnShapes:
    """The ``cnn_shapes`` fixture: trace and assert models; each lands in the report."""

    def __init__(self, item: pytest.Item) -> None:
        self._item = item
        self._device = settings(item.config).device
        self._inspect, self._lint_ignore = inspection_options(item.config)
        self.traces: list[ShapeTrace] = []

    def trace(self, model: nn.Module, inputs: Any, *, name: str | None = None,
              device: str | None = None, dtype: torch.dtype | str | None = None,
              train: bool = False) -> ShapeTrace:
        """``pytest_cnnshape.trace`` that also records the model for ``--cnn-shapes``."""
        __tracebackhide__ = True
        from .checks import input_text
        from .errors import ShapeMismatchError
        from .tracer import trace

        label = name or type(model).__name__
        entry = ModelEntry(name=label, nodeid=self._item.nodeid, source="fixture",
                           input=input_text(inputs))
        item_entries(self._item).append(entry)
        try:
            result = trace(model, inputs, device=device or self._device, dtype=dtype, train=train)
        except ShapeMismatchError as err:
            entry.status, entry.failure = FAILED, err.diagnosis.headline
            entry.error, entry.trace = err.diagnosis.to_dict(), err.trace.to_dict()
            raise
        except Exception:
            item_entries(self._item).remove(entry)
            raise
        entry.trace = result.to_dict()
        entry.input = describe_inputs(entry.trace, entry.input)
        if self._inspect:
            from .inspection.collect import record_inspection

            record_inspection(entry.extras, model, inputs, device=device or self._device,
                              ignore=self._lint_ignore)
        self.traces.append(result)
        return result

    def assert_output(self, model: nn.Module, inputs: Any, expected: Any, *,
                      dims: Mapping[str, int] | None = None, name: str | None = None,
                      device: str | None = None, train: bool = False,
                      max_params: int | None = None) -> ShapeTrace:
        """Trace and assert the output shape (symbolic ``expected`` allowed); return the trace."""
        __tracebackhide__ = True
        check = ModelCheck(
            name=name or type(model).__name__, model=model, input=inputs, output=expected,
            dims=dict(dims or {}), max_params=max_params, device=device or self._device,
            train=train,
        )
        return self._run(check, model)

    def assert_baseline(self, model: nn.Module, inputs: Any, *, name: str | None = None,
                        output_only: bool = False, dims: Mapping[str, int] | None = None,
                        device: str | None = None, train: bool = False) -> ShapeTrace:
        """Trace and compare every layer's output shape and parameter count with the committed
        baseline, ``__cnnshapes__/<test file>/<name>-<input>.json`` next to the test file.

        A missing or different baseline fails the test with a diff; ``pytest
        --cnn-shapes-update`` writes it. ``output_only=True`` compares only the output shape
        and the parameter totals. Returns the trace.
        """
        __tracebackhide__ = True
        check = ModelCheck(
            name=name or type(model).__name__, model=model, input=inputs, dims=dict(dims or {}),
            device=device or self._device, train=train,
        )
        return self._run(check, model, BaselineOptions(enabled=True, output_only=output_only))

    def _run(self, check: ModelCheck, model: nn.Module,
             baseline: BaselineOptions | None = None) -> ShapeTrace:
        """Run a check in this test: record its entry, compare its baseline, raise its failure."""
        __tracebackhide__ = True
        check.inspect, check.lint_ignore = self._inspect, self._lint_ignore
        result = run_check(check, nodeid=self._item.nodeid, source="fixture", model=model)
        if result.trace is not None or (result.entry.status == FAILED and result.entry.trace):
            item_entries(self._item).append(result.entry)
        if result.error is None and baseline is not None:
            result.error = verify(self._item, result.entry, baseline)
        if result.error is not None:
            raise result.error
        assert result.trace is not None
        self.traces.append(result.trace)
        return result.trace

    def assert_no_lint(self, model: nn.Module, inputs: Any = None,
                       optimizer: torch.optim.Optimizer | None = None, *, loss: Any = None,
                       ignore: tuple[str, ...] | list[str] = (),
                       device: str | None = None) -> Findings:
        """``pytest_cnnshape.assert_no_lint`` with the project's ``[tool.cnnshape] lint.ignore``.

        ``ignore`` adds rules to switch off for this call. Returns the (empty) findings.
        """
        __tracebackhide__ = True
        from .inspection.lint import assert_no_lint

        return assert_no_lint(model, inputs, optimizer, loss=loss,
                              ignore=(*self._lint_ignore, *ignore), device=device or self._device)


def marker_check(item: pytest.Item) -> tuple[ModelCheck, dict[str, Any]] | None:
    """The item's cnn_model contract, parsed once; MarkerError when written wrongly."""
    if MARKER_KEY in item.stash:
        return item.stash[MARKER_KEY]
    marker = item.get_closest_marker(MARKER)
    if marker is None:
        return None
    parsed = check_from_marker(marker, settings(item.config).device, item.nodeid)
    parsed[0].root = item.config.rootpath
    parsed[0].inspect, parsed[0].lint_ignore = inspection_options(item.config)
    parsed[0].hypothesis = settings(item.config).project.hypothesis
    item.stash[MARKER_KEY] = parsed
    return parsed


def validate_marker(item: pytest.Item) -> None:
    """Fail the test's setup with one line when its cnn_model marker is wrong."""
    try:
        marker_check(item)
    except MarkerError as exc:
        message = str(exc)
    else:
        return
    pytest.fail(message, pytrace=False)


def marker_result(item: pytest.Item) -> CheckResult | None:
    """Build and trace the marker's model once per test; record its entry."""
    if RESULT_KEY in item.stash:
        return item.stash[RESULT_KEY]
    parsed = marker_check(item)
    if parsed is None:
        return None
    result = run_check(parsed[0], nodeid=item.nodeid, source="marker")
    if result.error is None:
        result.error = verify(item, result.entry, BaselineOptions.from_marker(parsed[1]))
    item.stash[RESULT_KEY] = result
    item_entries(item).append(result.entry)
    return result


def enforce_marker_contract(item: pytest.Item) -> None:
    """Before the test body runs: a broken marker contract fails the test."""
    __tracebackhide__ = True
    result = marker_result(item)
    if result is not None and result.error is not None:
        raise result.error


def _needs_marker(item: pytest.Item, fixture: str) -> CheckResult:
    result = marker_result(item)
    if result is None:
        pytest.fail(
            f"the {fixture} fixture needs a contract: decorate the test with "
            "@pytest.mark.cnn_model(factory, input='1x3x32x32', output='B x 10')",
            pytrace=False,
        )
    return result


def model_fixture(item: pytest.Item) -> nn.Module:
    """``cnn_model``: the marker's model, built with a fixed seed."""
    result = _needs_marker(item, "cnn_model")
    if result.model is None:
        assert result.error is not None
        raise result.error
    return result.model


def trace_fixture(item: pytest.Item) -> ShapeTrace:
    """``cnn_trace``: the marker's model traced with the marker's input."""
    result = _needs_marker(item, "cnn_trace")
    if result.trace is None:
        assert result.error is not None
        raise result.error
    return result.trace
