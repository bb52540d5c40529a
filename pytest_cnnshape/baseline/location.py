"""Where baseline files live and what they are called.

    tests/test_lenet.py   ->  tests/__cnnshapes__/test_lenet/<model>-<input>.json
    [tool.cnnshape.models.lenet]  ->  __cnnshapes__/lenet.json  (next to pyproject.toml)

The folder name is ``[tool.cnnshape] baseline_dir`` (default ``__cnnshapes__``).
A model traced in tests is named by its name and its concrete input, so the same
model at two batch sizes has two files; a declared model has one input and is
named by its table name. Names are a pure function of those strings, the same on
every machine, and safe on every OS: only letters, digits, ``.``, ``_`` and ``-``,
no Windows device names, at most ``MAX_STEM`` characters (longer ones end in a
hash of the full name). Paths cross from xdist workers as text relative to the
rootdir (``display``), never as Path objects.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from ..fileio import TEMP_SUFFIX

#: The command that writes and accepts baselines.
UPDATE = "pytest --cnn-shapes-update"

SUFFIX = ".json"
MAX_STEM = 100
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_WINDOWS_DEVICES = frozenset(
    {"CON", "PRN", "AUX", "NUL"} | {f"{p}{i}" for p in ("COM", "LPT") for i in range(1, 10)}
)


def safe_name(text: str) -> str:
    """``text`` as a portable file name stem (stable: same text, same stem)."""
    stem = _UNSAFE.sub("_", text).strip("._") or "_"
    if stem.split(".")[0].upper() in _WINDOWS_DEVICES:
        stem = f"_{stem}"
    if len(stem) > MAX_STEM:
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:8]
        stem = f"{stem[: MAX_STEM - 9]}-{digest}"
    return stem


def file_name(model: str, input: str | None = None) -> str:
    """``<model>-<input>.json`` (``<model>.json`` for a declared model)."""
    return safe_name(model if input is None else f"{model}-{input}") + SUFFIX


def folder_for_tests(test_file: Path, dir_name: str) -> Path:
    """The folder of one test file's baselines."""
    return test_file.parent / dir_name / safe_name(test_file.stem)


def declared_folder(project_root: Path, dir_name: str) -> Path:
    """The project-level folder of declared models' baselines."""
    return project_root / dir_name


def display(path: Path, rootpath: Path) -> str:
    """``path`` relative to the rootdir with ``/`` separators (absolute when outside)."""
    try:
        return path.relative_to(rootpath).as_posix()
    except ValueError:
        return str(path)


def resolve(text: str, rootpath: Path) -> Path:
    """The path ``display`` gave as text."""
    return rootpath / text


#: The start of every baseline file ``serializer.dumps`` writes (sorted keys: ``compare`` first).
_HEAD = '{\n  "compare": "'
#: ``write_atomic``'s temporary file for ``<name>.json``: ``.<name>.json.<mkstemp's 8 characters>.tmp``.
_TEMP = re.compile(r"\.(?P<target>[A-Za-z0-9._-]+\.json)\.[A-Za-z0-9_]{8}" + re.escape(TEMP_SUFFIX))


def stored_files(folder: Path) -> list[Path]:
    """Files directly in ``folder`` that look like baselines (``*.json``), ours or not."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.suffix == SUFFIX and p.is_file())


def leftover_writes(folder: Path) -> list[Path]:
    """Temporary files a killed baseline write left in ``folder``: our name pattern, our text.

    A SIGKILL between ``mkstemp`` and the rename leaves one behind; it is never a
    baseline, and nothing but our own write makes a file of that name holding the
    start of a baseline (or nothing, when killed before the first byte).
    """
    if not folder.is_dir():
        return []
    found = []
    for path in sorted(folder.iterdir()):
        if not _TEMP.fullmatch(path.name) or path.is_symlink() or not path.is_file():
            continue
        try:
            with path.open("rb") as handle:
                head = handle.read(len(_HEAD)).decode("utf-8", errors="replace")
        except OSError:
            continue
        if _HEAD.startswith(head):
            found.append(path)
    return found


def outside(path: Path, project: Path) -> Path | None:
    """Where ``path`` really is, when symlinks lead it out of ``project``; None when inside."""
    real = path.resolve()
    return None if real.is_relative_to(project.resolve()) else real


def remove_empty_folders(path: Path, dir_name: str) -> None:
    """Remove the folders a deleted baseline left empty, up to the baseline folder itself."""
    folder = path.parent
    while True:
        try:
            folder.rmdir()  # fails unless empty
        except OSError:
            return
        if folder.name == dir_name:
            return
        folder = folder.parent
