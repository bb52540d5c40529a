"""What the fixtures do: ``cnn_shapes``, ``cnn_model``, ``cnn_trace``.

Every model traced through them becomes a ModelEntry in the test item's stash; the
plugin ships a test's entries on its teardown report to the session report.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import pytest

from ..baseline.record import BaselineOptions
from ..errors import MarkerError
from .baseline_check import verify
from .checks import CheckResult, input_text, note_picture, run_check
from .entries import FAILED, XFAILED, ModelEntry
from .keys import ENTRIES_KEY, MARKER, MARKER_KEY, RESULT_KEY
from .markers import check_from_marker
from .options import settings
from .schema import ModelCheck, fixture_place, parse_check

if TYPE_CHECKING:
    import torch
    from torch import nn

    from ..inspection.findings import Findings
    from ..tracing.records import ShapeTrace


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


class CnnShapes:
    """The ``cnn_shapes`` fixture: trace and assert models; each lands in the report."""

    def __init__(self, item: pytest.Item) -> None:
        self._item = item
        self._run = settings(item.config).run_options()
        self.traces: list[ShapeTrace] = []

    def trace(
        self,
        model: nn.Module,
        inputs: Any,
        *,
        name: str | None = None,
        device: str | None = None,
        dtype: torch.dtype | str | None = None,
        train: bool = False,
    ) -> ShapeTrace:
        """``pytest_cnnshape.trace`` that also records the model for ``--cnn-shapes``."""
        __tracebackhide__ = True
        from ..diagnostics.explain import traced
        from ..errors import ShapeMismatchError
        from ..inspection.collect import record_inspection, record_memory, report_trace
        from ..tracing.records import inputs_text
        from ..tracing.request import TraceRequest

        request = TraceRequest.of(model, inputs, device=device or self._run.device, dtype=dtype, train=train)
        entry = ModelEntry(
            name=name or type(model).__name__,
            nodeid=self._item.nodeid,
            source="fixture",
            input=input_text(inputs),
        )
        item_entries(self._item).append(entry)
        observation: Any = None
        try:
            if self._run.inspect:  # the inspection observes this very trace
                result, observation = report_trace(
                    request, flow=self._run.flow, ignore=self._run.lint_ignore, memory=True
                )
            else:
                result = traced(request, (), flow=self._run.flow)
        except ShapeMismatchError as err:
            entry.status, entry.failure = FAILED, err.diagnosis.headline
            entry.error, entry.trace = err.diagnosis.to_dict(), err.trace.to_dict()
            note_picture(self._run, entry, request.model, err)
            raise
        except Exception:
            item_entries(self._item).remove(entry)
            raise
        entry.trace = result.to_dict()
        entry.input = inputs_text(entry.trace, entry.input)
        note_picture(self._run, entry, request.model)
        if self._run.inspect:
            record_inspection(
                entry.extras,
                request,
                ignore=self._run.lint_ignore,
                batch_dim=self._run.lint_batch_dim,
                observation=observation,
            )
            record_memory(entry.extras, request, observation=observation)
        self.traces.append(result)
        return result

    def assert_output(
        self,
        model: nn.Module,
        inputs: Any,
        expected: Any,
        *,
        dims: Mapping[str, int] | None = None,
        name: str | None = None,
        device: str | None = None,
        train: bool = False,
        max_params: int | None = None,
        max_memory: int | str | None = None,
        batch: int | None = None,
        optimizer: Any = None,
        dtype: str | None = None,
    ) -> ShapeTrace:
        """Trace and assert the output shape (symbolic ``expected`` allowed); return the trace.

        ``max_memory="6 GiB"`` also fails the test when the estimated peak memory of a
        training step (at ``batch``, with ``optimizer``'s state) is larger.

        ``dtype``: of the inputs made from shapes (``"long"`` for token ids), unless an
        input names its own (``"B x 50:long"``).
        """
        __tracebackhide__ = True
        check = parse_check(
            {
                "input": inputs,
                "output": expected,
                "dims": dims,
                "name": name,
                "device": device,
                "train": train,
                "max_params": max_params,
                "max_memory": max_memory,
                "batch": batch,
                "optimizer": optimizer,
                "dtype": dtype,
            },
            fixture_place("assert_output"),
            model=model,
        )
        return self._run_check(check)

    def assert_baseline(
        self,
        model: nn.Module,
        inputs: Any,
        *,
        name: str | None = None,
        output_only: bool = False,
        dims: Mapping[str, int] | None = None,
        device: str | None = None,
        train: bool = False,
        dtype: str | None = None,
    ) -> ShapeTrace:
        """Trace and compare every layer's output shape and parameter count with the committed
        baseline, ``__cnnshapes__/<test file>/<name>-<input>.json`` next to the test file.

        A missing or different baseline fails the test with a diff; ``pytest
        --cnn-shapes-update`` writes it. ``output_only=True`` compares only the output shape
        and the parameter totals. Returns the trace.
        """
        __tracebackhide__ = True
        check = parse_check(
            {"input": inputs, "dims": dims, "name": name, "device": device, "train": train, "dtype": dtype},
            fixture_place("assert_baseline"),
            model=model,
        )
        return self._run_check(check, BaselineOptions(enabled=True, output_only=output_only))

    def _run_check(self, check: ModelCheck, baseline: BaselineOptions | None = None) -> ShapeTrace:
        """Run a check in this test: record its entry, compare its baseline, raise its failure."""
        __tracebackhide__ = True
        result = run_check(check, self._run, nodeid=self._item.nodeid, source="fixture")
        if result.trace is not None or (result.entry.status == FAILED and result.entry.trace):
            item_entries(self._item).append(result.entry)
        if result.error is None and baseline is not None:
            result.error = verify(self._item, result.entry, baseline)
        if result.error is not None:
            raise result.error
        assert result.trace is not None
        self.traces.append(result.trace)
        return result.trace

    def assert_no_lint(
        self,
        model: nn.Module,
        inputs: Any = None,
        optimizer: torch.optim.Optimizer | None = None,
        *,
        loss: Any = None,
        ignore: tuple[str, ...] | list[str] = (),
        device: str | None = None,
        batch_dim: int | None = None,
    ) -> Findings:
        """``pytest_cnnshape.assert_no_lint`` with the project's ``[tool.cnnshape] lint`` settings.

        ``ignore`` adds rules to switch off for this call; ``batch_dim`` overrides the
        project's ``lint.batch_dim``. Returns the (empty) findings.
        """
        __tracebackhide__ = True
        from ..inspection.lint import assert_no_lint

        return assert_no_lint(
            model,
            inputs,
            optimizer,
            loss=loss,
            ignore=(*self._run.lint_ignore, *ignore),
            device=device or self._run.device,
            batch_dim=self._run.lint_batch_dim if batch_dim is None else batch_dim,
        )


def marker_check(item: pytest.Item) -> ModelCheck | None:
    """The item's cnn_model contract, parsed once; MarkerError when written wrongly."""
    if MARKER_KEY in item.stash:
        return item.stash[MARKER_KEY]
    marker = item.get_closest_marker(MARKER)
    if marker is None:
        return None
    check = item.stash[MARKER_KEY] = check_from_marker(marker)
    return check


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
    check = marker_check(item)
    if check is None:
        return None
    run = settings(item.config).run_options()
    # the test body gets the model itself only through the cnn_model fixture: then it is
    # built with its weights; otherwise it may be built on meta, as declared models are
    wants_model = "cnn_model" in getattr(item, "fixturenames", ())
    result = run_check(check, run, nodeid=item.nodeid, source="marker", real=wants_model)
    if result.error is None:
        options = BaselineOptions(check.baseline, check.baseline_output_only)
        result.error = verify(item, result.entry, options)
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
            f"@pytest.mark.{MARKER}(factory, input='1x3x32x32', output='B x 10')",
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
