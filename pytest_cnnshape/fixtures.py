"""What the fixtures do: ``cnn_shapes``, ``cnn_model``, ``cnn_trace``.

Every model traced through them becomes a ModelEntry in the test item's stash; the
plugin ships a test's entries on its teardown report to the session report.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import pytest

from .checks import CheckResult, ModelCheck, run_check
from .entries import FAILED, ModelEntry, describe_inputs
from .markers import MARKER, MarkerError, check_from_marker
from .options import settings

if TYPE_CHECKING:
    import torch
    from torch import nn

    from .records import ShapeTrace

ENTRIES_KEY = pytest.StashKey[list[ModelEntry]]()
MARKER_KEY = pytest.StashKey[tuple[ModelCheck, dict[str, Any]]]()
RESULT_KEY = pytest.StashKey[CheckResult]()


def item_entries(item: pytest.Item) -> list[ModelEntry]:
    """The entries recorded so far by this test."""
    return item.stash.setdefault(ENTRIES_KEY, [])


class CnnShapes:
    """The ``cnn_shapes`` fixture: trace and assert models; each lands in the report."""

    def __init__(self, item: pytest.Item) -> None:
        self._item = item
        self._device = settings(item.config).device
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
        result = run_check(check, nodeid=self._item.nodeid, source="fixture", model=model)
        if result.trace is not None or (result.entry.status == FAILED and result.entry.trace):
            item_entries(self._item).append(result.entry)
        if result.error is not None:
            raise result.error
        assert result.trace is not None
        self.traces.append(result.trace)
        return result.trace


def marker_check(item: pytest.Item) -> tuple[ModelCheck, dict[str, Any]] | None:
    """The item's cnn_model contract, parsed once; MarkerError when written wrongly."""
    if MARKER_KEY in item.stash:
        return item.stash[MARKER_KEY]
    marker = item.get_closest_marker(MARKER)
    if marker is None:
        return None
    parsed = check_from_marker(marker, settings(item.config).device, item.nodeid)
    parsed[0].root = item.config.rootpath
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
