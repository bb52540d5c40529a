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

from .baseline.check import verify
from .baseline.record import BaselineOptions
from .checks import ContractFailure, ModelCheck, run_check
from .config import DeclaredModel
from .fixtures import inspection_options, item_entries
from .options import settings


class DeclaredModels(pytest.File):
    """The pyproject.toml, seen as a file of model contracts."""

    def collect(self) -> Iterator[pytest.Item]:
        for model in settings(self.config).project.models:
            yield DeclaredModelItem.from_parent(self, name=model.name, declared=model)


class DeclaredModelItem(pytest.Item):
    """One declared model: build, trace, check; fail with the diagnostic."""

    def __init__(self, *, declared: DeclaredModel, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.declared = declared
        self.add_marker("cnn_declared")

    def runtest(self) -> None:
        __tracebackhide__ = True
        s = settings(self.config)
        d = self.declared
        check = ModelCheck(
            name=d.name, factory=d.factory, kwargs=d.kwargs,
            input=d.input if d.input is not None or d.contract is None else d.contract.smallest(),
            output=d.output, dims=d.dims, max_params=d.max_params, device=d.device or s.device,
            train=d.train, root=s.project.root, lint=d.lint, contract=d.contract,
            hypothesis=s.project.hypothesis,
        )
        check.inspect, check.lint_ignore = inspection_options(self.config)
        result = run_check(check, nodeid=self.nodeid, source="declared")
        item_entries(self).append(result.entry)
        if result.error is None:
            result.error = verify(self, result.entry, BaselineOptions(d.baseline, d.baseline_output_only))
        if result.error is not None:
            raise result.error

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException],
                     style: Any = None) -> str:
        """The diagnostic or contract text, not a traceback into pytest-cnnshape."""
        from .errors import ShapeMismatchError

        if isinstance(excinfo.value, ShapeMismatchError):
            return f"ShapeMismatchError: {excinfo.value}"
        if isinstance(excinfo.value, ContractFailure):
            return str(excinfo.value)
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, f"cnnshape model {self.name}"

