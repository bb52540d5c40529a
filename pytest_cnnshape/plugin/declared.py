"""Declared models: ``[tool.cnnshape.models.<name>]`` tables become test items.

They hang under the pyproject.toml they are declared in (nodeid
``pyproject.toml::<name>``), in name order so every xdist worker collects the
same list; ``-k``, ``--collect-only`` and ``--lf`` work on them as on any test.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ..baseline.record import BaselineOptions
from .baseline_check import verify
from .checks import run_check
from .failures import failure_text, is_ours
from .fixtures import item_entries
from .keys import DECLARED_MARKER
from .options import settings
from .schema import ModelCheck


class DeclaredModels(pytest.File):
    """The pyproject.toml, seen as a file of model contracts."""

    def collect(self) -> Iterator[pytest.Item]:
        for model in settings(self.config).project.models:
            yield DeclaredModelItem.from_parent(self, name=model.name, declared=model)


class DeclaredModelItem(pytest.Item):
    """One declared model: build, trace, check; fail with the diagnostic."""

    def __init__(self, *, declared: ModelCheck, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.declared = declared
        self.add_marker(DECLARED_MARKER)

    def runtest(self) -> None:
        __tracebackhide__ = True
        check = self.declared
        result = run_check(check, settings(self.config).run_options(), nodeid=self.nodeid, source="declared")
        item_entries(self).append(result.entry)
        if result.error is None:
            options = BaselineOptions(check.baseline, check.baseline_output_only)
            result.error = verify(self, result.entry, options)
        if result.error is not None:
            raise result.error

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        """The diagnostic or contract text, not a traceback into pytest-cnnshape."""
        if is_ours(excinfo.value):
            return failure_text(excinfo.value)
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, f"cnnshape model {self.name}"
