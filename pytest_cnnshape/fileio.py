"""Writing files so that a killed run never leaves half of one behind.

Reports and shape baselines go through ``write_atomic``: the text lands in a
temporary file in the target's directory (same filesystem, so the rename is
atomic), is flushed to disk, and replaces the target in one ``os.replace``. A run
killed at any point leaves the old file or the new one, never a mix; at worst a
hidden ``.<name>.*.tmp`` file stays behind.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

#: Prefix and suffix of the temporary files ``write_atomic`` creates.
TEMP_SUFFIX = ".tmp"


def temp_prefix(path: Path) -> str:
    """Prefix of the temporary files written on the way to ``path``."""
    return f".{path.name}."


def _file_mode(path: Path) -> int:
    """The mode the file should end up with: the old file's, else 0o666 less the umask.

    ``mkstemp`` creates files readable by their owner only; a committed baseline or a
    report read by CI tooling must keep the permissions a plain ``open`` would give.
    """
    try:
        return path.stat().st_mode & 0o777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def write_atomic(path: Path, text: str) -> None:
    """Write through a temporary file in the same directory, then rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = _file_mode(path)
    fd, tmp = tempfile.mkstemp(prefix=temp_prefix(path), suffix=TEMP_SUFFIX, dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
