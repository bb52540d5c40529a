"""pytest entry point of pytest-cnnshape (plugin name ``cnnshape``).

Thin by design: each hook hands over to a module that does the work. Importing
this module imports only the standard library and pytest, never torch: a session
that traces no model pays nothing. ``-p no:cnnshape`` disables all of it.
"""

from __future__ import annotations

from collections.abc import Generator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from . import declared, fixtures, markers, options
from .baseline.gate import BaselineGate
from .entries import REPORT_ATTRIBUTE, encode
from .session import SESSION_KEY, CnnShapeSession, is_xdist_worker

if TYPE_CHECKING:
    from torch import nn

    from .records import ShapeTrace


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add the cnnshape option group."""
    options.add_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    """Register markers, resolve settings, start the session report."""
    config.addinivalue_line("markers", markers.MARKER_HELP)
    config.addinivalue_line("markers", "cnn_declared: a model declared in [tool.cnnshape.models]")
    settings = options.resolve_settings(config)
    config.stash[options.SETTINGS_KEY] = settings
    if settings.project.models and config.args_source != pytest.Config.ArgsSource.ARGS:
        pyproject = str(settings.project.path)
        if not any(Path(pyproject).is_relative_to(Path(arg).resolve()) for arg in config.args):
            config.args.append(pyproject)
    if not is_xdist_worker(config):
        session = CnnShapeSession(config, settings)
        config.stash[SESSION_KEY] = session
        config.pluginmanager.register(session, "cnnshape-session")
        config.pluginmanager.register(BaselineGate(config, settings, session.models), "cnnshape-baselines")


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    """Collect declared models from the pyproject.toml that declares them."""
    if file_path.name == "pyproject.toml" and declared.is_declaring_pyproject(file_path, parent.config):
        return declared.DeclaredModels.from_parent(parent, path=file_path)
    return None


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Fail a test whose cnn_model marker is written wrongly, naming the argument."""
    fixtures.validate_marker(item)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_call(item: pytest.Item) -> None:
    """Check a cnn_model marker's contract before the test body runs."""
    fixtures.enforce_marker_contract(item)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, None]:
    """Shorten our failures to the diagnostic; ship the test's model entries."""
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    excinfo = call.excinfo
    if excinfo is not None and report.failed:
        from .failures import FULL_STYLES, is_ours, short_repr

        if (isinstance(item, pytest.Function) and is_ours(excinfo.value)
                and item.config.getoption("tbstyle") not in FULL_STYLES):
            report.longrepr = short_repr(excinfo, item)  # type: ignore[assignment]
    fixtures.note_outcome(item, report)
    if call.when == "teardown":
        entries = item.stash.get(fixtures.ENTRIES_KEY, None)
        if entries:
            setattr(report, REPORT_ATTRIBUTE, encode(entries))


@pytest.fixture
def cnn_shapes(request: pytest.FixtureRequest) -> fixtures.CnnShapes:
    """Trace and assert CNN shapes; every model traced lands in the --cnn-shapes report."""
    return fixtures.CnnShapes(request.node)


@pytest.fixture
def cnn_model(request: pytest.FixtureRequest) -> nn.Module:
    """The model of the test's @pytest.mark.cnn_model contract, built with a fixed seed."""
    return fixtures.model_fixture(request.node)


@pytest.fixture
def cnn_trace(request: pytest.FixtureRequest) -> ShapeTrace:
    """The trace of the test's @pytest.mark.cnn_model model with the marker's input."""
    return fixtures.trace_fixture(request.node)
