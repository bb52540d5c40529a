"""The session-wide part of the plugin, registered as an object per pytest run.

It receives every test report (on the controller only, under xdist), keeps the
model entries the reports carry, and at the end hands them to the report writers
and the baseline gate. A run that traced no model, asked for no report and keeps
no baselines ends here without importing any of them: this object is what every
test of every project with the plugin installed passes through, so it stays
light. Problems are reported through ``session.exitstatus``, never by raising
from a summary hook.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from .keys import NOTHING_WRITTEN, REPORT_ATTRIBUTE, SESSION_KEY

if TYPE_CHECKING:
    from .baseline_gate import BaselineGate
    from .options import Settings
    from .report.gather import SessionModels


#: ``workeroutput`` key of what an xdist worker's collection left out.
LEFT_OUT_KEY = "cnnshape_left_out"


class CollectionWatch:
    """Notices collected tests that do not run, whoever left them out, in every process.

    ``pytest_deselected`` tells of ``-k``, ``-m`` and well-behaved plugins; a
    ``pytest_collection_modifyitems`` that just drops items from the list tells
    nobody, so the items collected are counted against the items that remain. A
    test left out looks as if its baselines were unused: prune must not judge them.
    """

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.collected = 0
        self.reason: str | None = None

    def pytest_itemcollected(self, item: pytest.Item) -> None:
        """Count a collected test."""
        self.collected += 1

    def pytest_deselected(self, items: Sequence[pytest.Item]) -> None:
        """Note tests deselected by -k, -m or a plugin."""
        if items:
            self.reason = self.reason or "deselected tests"

    @pytest.hookimpl(trylast=True)
    def pytest_collection_finish(self, session: pytest.Session) -> None:
        """Compare what was collected with what will run; tell the controller."""
        if len(session.items) < self.collected:
            self.reason = self.reason or "tests a pytest_collection_modifyitems hook left out"
        if self.reason is None:
            return
        workeroutput = getattr(self.config, "workeroutput", None)
        if workeroutput is not None:
            workeroutput[LEFT_OUT_KEY] = self.reason
        elif (cnn := self.config.stash.get(SESSION_KEY, None)) is not None:
            cnn.left_out(self.reason)


class CnnShapeSession:
    """Gathers model entries and reports them at the end of the session."""

    def __init__(self, config: pytest.Config, settings: Settings) -> None:
        self.config = config
        self.settings = settings
        #: Entries as the reports carried them, decoded only if the session reports.
        self.payloads: list[str] = []
        #: Test file (rootdir-relative, as in node ids) -> every test in it passed.
        self.files_passed: dict[str, bool] = {}
        #: What left collected tests out of the run (None: nothing did).
        self.deselected: str | None = None
        self.problems: list[str] = []
        self.gate: BaselineGate | None = None
        self._models: SessionModels | None = None

    @property
    def models(self) -> SessionModels:
        """Every entry of the session, decoded on first use."""
        if self._models is None:
            from .entries import decode
            from .report.gather import SessionModels

            self._models = SessionModels()
            for payload in self.payloads:
                self._models.add(decode(payload))
        return self._models

    def left_out(self, reason: str) -> None:
        """Note that tests were left out: unused baselines are not judged on such a run."""
        self.deselected = self.deselected or reason

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: object) -> None:
        """Take what an xdist worker's collection left out (its ``CollectionWatch``)."""
        reason = getattr(node, "workeroutput", {}).get(LEFT_OUT_KEY)
        if reason:
            self.left_out(reason)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Take the model entries a test's report carries (from any worker); note pass/fail per file."""
        payload = getattr(report, REPORT_ATTRIBUTE, None)
        if payload:
            self.payloads.append(payload)
        file = report.nodeid.split("::")[0]
        self.files_passed[file] = self.files_passed.get(file, True) and not (report.failed or report.skipped)

    def _baselines_matter(self) -> bool:
        """Whether the baseline gate has anything to do: entries, updates, or stored files."""
        s = self.settings
        if self.payloads or s.update or s.prune or s.declares():
            return True
        folders = {(s.rootpath / file).parent / s.baseline_dir for file in self.files_passed}
        return any(folder.is_dir() for folder in folders)

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        """Let the baseline gate write and judge; then write the report file."""
        if self._baselines_matter() and not self.config.getoption("collectonly", False):
            try:
                from .baseline_gate import BaselineGate

                self.gate = BaselineGate(
                    self.config, self.settings, self.models, self.files_passed, self.deselected
                )
            except KeyboardInterrupt:  # Ctrl-C before the gate began: nothing was written yet
                self.problems.append(NOTHING_WRITTEN)
                session.exitstatus = pytest.ExitCode.INTERRUPTED
                return
            self.gate.finish(session)
        from ..fileio import write_atomic

        for target in self.settings.reports:
            try:
                write_atomic(target, self.render_file(target))
            except KeyboardInterrupt:  # Ctrl-C: one line, not pytest's traceback
                self.problems.append(f"interrupted: the report {target} was not written")
                session.exitstatus = pytest.ExitCode.INTERRUPTED
                return
            except OSError as exc:
                self.problems.append(f"could not write the report {target}: {exc}")
                session.exitstatus = (
                    pytest.ExitCode.INTERNAL_ERROR if not session.exitstatus else session.exitstatus
                )

    def render_file(self, target: Path) -> str:
        """The report file's text: Markdown for ``.md``, the picture for ``.html``, JSON otherwise."""
        if target.suffix.lower() == ".html":
            from .. import __version__
            from .report import html

            return html.render(self.models, self.settings.depth, f"pytest-cnnshape {__version__}")
        if target.suffix.lower() == ".md":
            from .report import markdown

            return markdown.render(self.models, self.settings.depth)
        from .report import jsonfile

        return jsonfile.render(self.models)

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        """The ``--cnn-shapes`` section, baseline counts and problems, any problem writing files."""
        if self.settings.show:
            from .report import terminal

            terminalreporter.write_sep("=", "CNN shapes")
            for line in terminal.render(self.models, self.settings.depth):
                terminalreporter.write_line(line)
        if self.gate is not None:
            self.gate.summary(terminalreporter)
        if not self.problems:
            for target in self.settings.reports:
                terminalreporter.write_line(f"cnnshape: report written to {target}")
        for problem in self.problems:
            terminalreporter.write_line(f"cnnshape: {problem}", red=True)
