"""pytest entry point of pytest-cnnshape (plugin name ``cnnshape``).

Thin by design: each hook hands over to a module that does the work, imported
when the hook finds work to do. Loading this module imports only pytest and two
small modules (``keys``, ``options``), never torch: a session that traces no model
pays next to nothing (``benchmarks/plugin_overhead.py`` measures it).
``-p no:cnnshape`` disables all of it.
"""

from __future__ import annotations

from collections.abc import Generator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from . import options
from .keys import DECLARED_HELP, ENTRIES_KEY, MARKER, MARKER_HELP, REPORT_ATTRIBUTE, SESSION_KEY, SETTINGS_KEY

if TYPE_CHECKING:
    from torch import nn

    from ..tracing.records import ShapeTrace
    from .fixtures import CnnShapes


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add the cnnshape option group."""
    options.add_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    """Register markers, resolve settings, start the session report on the controller."""
    config.addinivalue_line("markers", MARKER_HELP)
    config.addinivalue_line("markers", DECLARED_HELP)
    settings = options.resolve_settings(config)
    config.stash[SETTINGS_KEY] = settings
    if settings.declares() and config.args_source != pytest.Config.ArgsSource.ARGS:
        pyproject = str(settings.project.path)
        if not any(Path(pyproject).is_relative_to(Path(arg).resolve()) for arg in config.args):
            config.args.append(pyproject)
    from .session import CnnShapeSession, CollectionWatch

    if not hasattr(config, "workerinput"):  # xdist workers send; the controller reports
        session = CnnShapeSession(config, settings)
        config.stash[SESSION_KEY] = session
        config.pluginmanager.register(session, "cnnshape-session")
    config.pluginmanager.register(CollectionWatch(config), "cnnshape-collection")


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    """Collect declared models from the pyproject.toml that declares them."""
    if file_path.name != "pyproject.toml":
        return None
    if not parent.config.stash[SETTINGS_KEY].declares(file_path):
        return None
    from .declared import DeclaredModels

    return DeclaredModels.from_parent(parent, path=file_path)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Fail a test whose cnn_model marker is written wrongly, naming the argument."""
    if item.get_closest_marker(MARKER) is not None:
        from .fixtures import validate_marker

        validate_marker(item)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_call(item: pytest.Item) -> None:
    """Check a cnn_model marker's contract before the test body runs."""
    if item.get_closest_marker(MARKER) is not None:
        from .fixtures import enforce_marker_contract

        enforce_marker_contract(item)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, None]:
    """Shorten our failures to the diagnostic; ship the test's model entries."""
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    excinfo = call.excinfo
    if excinfo is not None and report.failed and isinstance(item, pytest.Function):
        from .failures import FULL_STYLES, is_ours, short_repr

        if is_ours(excinfo.value) and item.config.getoption("tbstyle") not in FULL_STYLES:
            report.longrepr = short_repr(excinfo, item)  # type: ignore[assignment]
    entries = item.stash.get(ENTRIES_KEY, None)
    if entries:
        from .entries import encode
        from .fixtures import note_outcome

        note_outcome(item, report)
        if call.when == "teardown":
            setattr(report, REPORT_ATTRIBUTE, encode(entries))


@pytest.fixture
def cnn_shapes(request: pytest.FixtureRequest) -> CnnShapes:
    """Trace and assert CNN shapes; every model traced lands in the --cnn-shapes report."""
    from .fixtures import CnnShapes

    return CnnShapes(request.node)


@pytest.fixture
def cnn_model(request: pytest.FixtureRequest) -> nn.Module:
    """The model of the test's @pytest.mark.cnn_model contract, built with a fixed seed."""
    from .fixtures import model_fixture

    return model_fixture(request.node)


@pytest.fixture
def cnn_trace(request: pytest.FixtureRequest) -> ShapeTrace:
    """The trace of the test's @pytest.mark.cnn_model model with the marker's input."""
    from .fixtures import trace_fixture

    return trace_fixture(request.node)
