"""Runs the examples of README.md and docs/ as tests (``make doctest``), with Sybil.

Sybil collects every fenced example of those Markdown files; this file only says
which blocks are examples and how a console block runs:

* ``python`` blocks run in one namespace per page; a block that starts with ``>>>``
  is a doctest whose shown output must be what Python prints.
* ``console`` blocks hold ``$ command`` lines, each followed by what it prints. Each
  command runs in a shell from the repository root, with this venv's ``cnnshape``
  and ``pytest`` first on PATH, and its output (stdout and stderr together) must be
  the lines shown. Only timings (``passed in 5.70s``) and this checkout's absolute
  path are normalised, on both sides.
* ``text``, ``toml``, ``bash`` and other blocks are shown, not run (``bash`` holds
  commands for other machines: the mutation benchmark needs torchvision and timm,
  which are never dependencies of this project).

The project folders under ``examples/`` are on ``sys.path`` while a page's Python
examples run (``from lenet import lenet5``), and every module imported from them is
forgotten when the page is done, so no test sees a page's ``models``.

Sybil is imported only when a Markdown file is collected: ``pytest tests/...``
never needs it. Under pytest-xdist each page's examples must share one worker, in
order, since later examples use names earlier ones defined: ``make doctest`` runs
them with ``--dist loadfile``. (Not ``loadgroup`` with an ``xdist_group`` mark:
pytest-xdist 3.8 marks a group by rewriting the node id, which pytest 9.2 ignores,
pytest-dev/pytest-xdist#1386, so the examples of a page are silently spread.)
"""

from __future__ import annotations

import difflib
import functools
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent
EXAMPLE_PROJECTS = sorted(str(p) for p in (ROOT / "examples").iterdir() if (p / "pyproject.toml").is_file())
COMMAND_TIMEOUT_S = 600

# What differs between runs and machines, and nothing else: pytest's timing line and
# the absolute path of this checkout.
_TIMING = re.compile(r"\b\d+(\.\d+)?s( \(\d+:\d\d:\d\d\))?(?= ={3,}$|$)", re.MULTILINE)


def normalise(text: str) -> str:
    """The text with its timings and this checkout's path replaced by placeholders."""
    text = text.replace(str(ROOT), "<repo>")
    text = _TIMING.sub("<time>", text)
    lines = [line.rstrip() for line in text.splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    return "\n".join(lines)


def _command_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "COV_CORE_"))}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["COLUMNS"] = "80"  # pytest's separators are as wide as the terminal
    # On CI, pytest prints the short test summary in full instead of cut to the
    # terminal's width, and GitHub's annotations add lines: show what a person's
    # terminal shows, wherever the examples run.
    for name in ("CI", "BUILD_NUMBER", "GITHUB_ACTIONS"):
        env.pop(name, None)
    return env


def parse_console(source: str) -> list[tuple[str, str]]:
    """``$ command`` lines and the output shown under each."""
    commands: list[tuple[str, list[str]]] = []
    for line in source.splitlines():
        if line.startswith("$ "):
            commands.append((line[2:], []))
        elif commands:
            commands[-1][1].append(line)
        elif line.strip():
            raise ValueError(f"a console example starts with a '$ ' command line, not {line!r}")
    return [(command, "\n".join(output)) for command, output in commands]


def run_console(example: Any) -> str | None:
    """Runs each command of a console block; a mismatch is returned as a diff."""
    for command, shown in parse_console(example.parsed):
        result = subprocess.run(
            command,
            shell=True,
            cwd=ROOT,
            env=_command_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=COMMAND_TIMEOUT_S,
            check=False,
        )
        want, got = normalise(shown), normalise(result.stdout)
        if want != got:
            diff = difflib.unified_diff(
                want.splitlines(), got.splitlines(), "shown", "printed", lineterm="", n=2
            )
            return f"$ {command}\n(exit {result.returncode})\n" + "\n".join(diff)
    return None


def _examples_on_path(namespace: dict[str, Any]) -> None:
    namespace["__cnnshape_modules__"] = set(sys.modules)
    sys.path[:0] = EXAMPLE_PROJECTS


def _forget_examples(namespace: dict[str, Any]) -> None:
    for project in EXAMPLE_PROJECTS:
        while project in sys.path:
            sys.path.remove(project)
    before = namespace["__cnnshape_modules__"]
    for name in set(sys.modules) - before:
        origin = getattr(sys.modules[name], "__file__", None) or ""
        if origin.startswith(str(ROOT / "examples")):
            del sys.modules[name]


@functools.cache
def _sybil_collector() -> Callable[..., Any]:
    from sybil import Sybil
    from sybil.parsers.markdown import CodeBlockParser, PythonCodeBlockParser, SkipParser

    return Sybil(
        parsers=[PythonCodeBlockParser(), CodeBlockParser("console", run_console), SkipParser()],
        patterns=["README.md", "docs/*.md", "docs/*/*.md"],
        path=str(ROOT),
        setup=_examples_on_path,
        teardown=_forget_examples,
    ).pytest()


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if file_path.suffix != ".md":
        return None
    collected: pytest.Collector | None = _sybil_collector()(file_path, parent)
    return collected
