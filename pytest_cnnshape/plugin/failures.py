"""Short failure text for tests that fail through pytest-cnnshape.

A ShapeMismatchError chains torch's exception, whose traceback is 60 lines of
torch internals; a contract failure is already a full explanation. Such failures
show the test's own line and our diagnostic instead; ``--tb=long`` (or native)
keeps pytest's full, chained traceback.
"""

from __future__ import annotations

import linecache
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ..errors import CnnShapeError, ContractFailure

FULL_STYLES = ("long", "native")
_PACKAGE = str(Path(__file__).resolve().parent.parent)


@dataclass(frozen=True)
class Crash:
    """What pytest's short summary (-ra) reads: where, and the first line."""

    path: str
    lineno: int
    message: str


class ShortFailure:
    """A report longrepr: the test line that called us, then the diagnostic."""

    def __init__(self, location: str, code: str, text: str, crash: Crash, chained: bool = False) -> None:
        self.location, self.code, self.text = location, code, text
        self.reprcrash = crash
        #: Whether a torch exception lies behind it (then --tb=long is worth a mention).
        self.chained = chained

    def toterminal(self, tw: Any) -> None:
        if self.location:
            tw.line(self.location)
            tw.line(f"    {self.code}")
            tw.line("")
        first, *rest = self.text.splitlines() or [""]
        tw.line(first, red=True, bold=True)
        for line in rest:
            tw.line(line)
        if self.chained:
            tw.line("")
            tw.line("(the full traceback, torch's included: --tb=long)")

    def __str__(self) -> str:
        head = f"{self.location}\n    {self.code}\n\n" if self.location else ""
        return head + self.text


def is_ours(exc: BaseException) -> bool:
    """Errors of pytest-cnnshape: their message is complete, a traceback into us adds nothing."""
    return isinstance(exc, CnnShapeError)


def failure_text(exc: BaseException) -> str:
    """The text a failure shows: a contract failure's own words, others after their class name.

    A contract failure reads as a sentence about the model (``Net breaks its shape
    contract ...``); a ShapeMismatchError or a usage error is named, as Python would.
    """
    if isinstance(exc, ContractFailure):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def short_repr(excinfo: pytest.ExceptionInfo[BaseException], item: pytest.Item) -> ShortFailure:
    """The ShortFailure for an exception raised through our API in a test."""
    rootpath = item.config.rootpath
    location, code, path, lineno = "", "", "", 0
    for entry in excinfo.traceback:
        filename = str(entry.path)
        if filename.startswith(_PACKAGE) or "/_pytest/" in filename or "/pluggy/" in filename:
            continue
        path, lineno = filename, entry.lineno + 1
        code = linecache.getline(filename, lineno).strip()
        try:
            shown = str(Path(filename).relative_to(rootpath))
        except ValueError:
            shown = filename
        location = f"{shown}:{lineno}: in {entry.name}"
    if not location:  # raised before the test body ran: a cnn_model marker's contract
        file, line, _ = item.location
        location = f"{file}:{(line or 0) + 1}: the @pytest.mark.cnn_model contract of {item.name}"
        path, lineno = str(item.path), (line or 0) + 1
        code = linecache.getline(path, lineno).strip()
    exc = excinfo.value
    text = failure_text(exc)
    first = text.splitlines()[0] if text else type(exc).__name__
    return ShortFailure(location, code, text, Crash(path, lineno, first), chained=exc.__cause__ is not None)
