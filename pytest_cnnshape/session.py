"""The session-wide part of the plugin, registered as an object per pytest run.

It receives every test report (on the controller only, under xdist), keeps the
model entries, writes the report file and prints the terminal summary. Problems
are reported through ``session.exitstatus``, never by raising from a summary hook.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .entries import REPORT_ATTRIBUTE, decode
from .fileio import write_atomic
from .options import Settings
from .reporting.gather import SessionModels

SESSION_KEY = pytest.StashKey["CnnShapeSession"]()


def is_xdist_worker(config: pytest.Config) -> bool:
    """True inside an xdist worker (it sends reports; the controller reports)."""
    return hasattr(config, "workerinput")


class CnnShapeSession:
    """Gathers model entries and reports them at the end of the session."""

    def __init__(self, config: pytest.Config, settings: Settings) -> None:
        self.config = config
        self.settings = settings
        self.models = SessionModels()
        self.problems: list[str] = []

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Take the model entries a test's report carries (from any worker)."""
        payload = getattr(report, REPORT_ATTRIBUTE, None)
        if payload:
            self.models.add(decode(payload))

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        """Write the report file; a failure to write fails the run, with the reason."""
        target = self.settings.report
        if target is None:
            return
        try:
            write_atomic(target, self.render_file(target))
        except OSError as exc:
            self.problems.append(f"could not write the report {target}: {exc}")
            session.exitstatus = pytest.ExitCode.INTERNAL_ERROR if not session.exitstatus \
                else session.exitstatus

    def render_file(self, target: Path) -> str:
        if target.suffix.lower() == ".md":
            from .reporting import markdown

            return markdown.render(self.models, self.settings.depth)
        from .reporting import jsonfile

        return jsonfile.render(self.models)

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        """The ``--cnn-shapes`` section, and any problem writing files."""
        if self.settings.show:
            from .reporting import terminal

            terminalreporter.write_sep("=", "CNN shapes")
            for line in terminal.render(self.models, self.settings.depth):
                terminalreporter.write_line(line)
        if self.settings.report is not None and not self.problems:
            terminalreporter.write_line(f"cnnshape: report written to {self.settings.report}")
        for problem in self.problems:
            terminalreporter.write_line(f"cnnshape: {problem}", red=True)
