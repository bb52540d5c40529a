"""GitHub Actions annotations for failed baselines (``::error file=...,line=...::``).

A workflow command printed on stdout puts the message on the test's line in the
pull request's "Files changed" view. On when ``$GITHUB_ACTIONS`` is ``true``;
``[tool.cnnshape] github_annotations = false`` turns it off.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

TITLE = "cnnshape: shape baseline"


def enabled(setting: bool) -> bool:
    """True on GitHub Actions unless the project turned annotations off."""
    return setting and os.environ.get("GITHUB_ACTIONS") == "true"


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def error(file: str, line: int | None, title: str, message: str) -> str:
    """An ``::error`` workflow command (values escaped as the Actions toolkit does)."""
    props = [f"file={_escape_property(file)}"]
    if line is not None:
        props.append(f"line={line}")
    props.append(f"title={_escape_property(title)}")
    return f"::error {','.join(props)}::{_escape_data(message)}"


def declared_line(pyproject: Path, name: str) -> int | None:
    """The line of ``[tool.cnnshape.models.<name>]`` in pyproject.toml, if it is there."""
    header = re.compile(
        rf"^\s*\[\s*tool\s*\.\s*cnnshape\s*\.\s*models\s*\.\s*(\"{re.escape(name)}\"|{re.escape(name)})\s*\]"
    )
    try:
        lines = pyproject.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return None
    return next((n for n, text in enumerate(lines, 1) if header.match(text)), None)
