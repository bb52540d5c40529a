"""Byte sizes as people write them in a budget: ``"6 GiB"``, ``"512MB"``, ``1_000_000``.

Binary units (KiB, MiB, GiB, TiB: powers of 1024) and decimal ones (KB, MB, GB,
TB: powers of 1000) are both accepted, in any letter case, because both are
common and mean different numbers; a bare ``G`` or ``M`` is refused rather than
guessed. Torch-free: the model-check schema parses ``max_memory`` with it when
pyproject.toml is read.
"""

from __future__ import annotations

import re
from fractions import Fraction
from typing import Any

from ..errors import SpecError

UNITS: dict[str, int] = {
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}
EXAMPLE = "e.g. '6 GiB', '512 MiB', '8GB' or a whole number of bytes"
_SIZE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([a-z]*)\s*$", re.IGNORECASE)


def parse_size(value: Any, what: str | None = None) -> int:
    """Bytes of ``value``: a positive int, or a number with a unit of bytes.

    Raises SpecError starting with ``what`` (how the value was written, e.g.
    ``max_memory='6G'``), saying how to write it.
    """
    what = what or f"size {value!r}"
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise SpecError(f"{what} is not a size; {EXAMPLE}")
    if isinstance(value, int):
        if value <= 0:
            raise SpecError(f"{what} must be a positive number of bytes; {EXAMPLE}")
        return value
    match = _SIZE.match(value.replace("_", ""))
    if match is None:
        raise SpecError(f"{what} is not a size; {EXAMPLE}")
    number, unit = match.groups()
    factor = UNITS.get(unit.lower() or "b")
    if factor is None:
        hint = ""
        prefix = unit[:1].upper()
        if unit.lower() in ("k", "m", "g", "t", "ki", "mi", "gi", "ti"):
            hint = f" (write '{number} {prefix}iB' for 1024-based or '{number} {prefix}B' for 1000-based)"
        raise SpecError(
            f"{what}: {unit!r} is not a unit of bytes{hint}; use B, KiB, MiB, GiB, TiB "
            f"or KB, MB, GB, TB; {EXAMPLE}"
        )
    size = int(Fraction(number) * factor)
    if size <= 0:
        raise SpecError(f"{what} must be at least one byte; {EXAMPLE}")
    return size
