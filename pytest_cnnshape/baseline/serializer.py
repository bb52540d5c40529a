"""The baseline file: versioned JSON, sorted keys, one layer per line.

    {
      "compare": "layers",
      "input": "8x1x28x28",
      "layers": [
        {"call": 0, "name": "", "output": [8, 10], "params": 61706, "type": "Sequential"},
        {"call": 0, "name": "0", "output": [8, 6, 28, 28], "params": 156, "type": "Conv2d"},
        ...
      ],
      "model": "lenet5",
      "output": [8, 10],
      "schema": "pytest-cnnshape/baseline",
      "total_params": 61706,
      "trainable_params": 61706,
      "version": 1
    }

A changed layer is a changed line in ``git diff``. Reading is strict about what it
needs and says what is wrong in words (never pickle, never ``torch.load``): a
truncated file, one that is not ours, or one from a newer format raise
BaselineFileError, which the caller turns into advice naming the file.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from ..errors import BaselineFileError
from .snapshot import LAYERS, OUTPUT, Row, Snapshot

SCHEMA = "pytest-cnnshape/baseline"
#: The format this version writes and reads; bump it when the layout changes.
FORMAT = 1
#: Nesting no baseline comes near (an output structure nests a few levels): deeper is
#: damage or not ours, refused before the parser recurses into it.
MAX_DEPTH = 100
#: Digits of the largest integer a baseline holds (parameter counts, shape sizes).
MAX_DIGITS = 30
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
#: A line git writes into a file it could not merge: ``<<<<<<< ours``, ``=======``,
#: ``||||||| base`` (diff3 style), ``>>>>>>> theirs``. No line of a JSON document starts so.
_CONFLICT_MARKER = re.compile(r"^(?:<{7}|>{7}|\|{7})(?: .*)?$|^={7}$", re.MULTILINE)
_BRACKETS = re.compile(r"[\[\]{}]")


def _compact(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(", ", ": "))


def dumps(snapshot: Snapshot) -> str:
    """The file's text: the same snapshot always gives the same bytes."""
    data: dict[str, Any] = {**snapshot.to_data(), "schema": SCHEMA, "version": FORMAT}
    items = sorted(data.items())
    lines = ["{"]
    for index, (key, value) in enumerate(items):
        comma = "," if index < len(items) - 1 else ""
        if key == "layers" and value:
            lines.append(f"  {_compact(key)}: [")
            lines += [f"    {_compact(row)}," for row in value[:-1]]
            lines += [f"    {_compact(value[-1])}", f"  ]{comma}"]
        else:
            lines.append(f"  {_compact(key)}: {_compact(value)}{comma}")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _field(data: dict[str, Any], key: str, kind: type, where: str = "") -> Any:
    if key not in data:
        raise BaselineFileError(f"has no {key!r}{where}: the file is incomplete")
    value = data[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise BaselineFileError(
            f"has {key!r}{where} = {value!r}, which is not a {kind.__name__}: the file is damaged"
        )
    return value


def _row(data: Any, index: int) -> Row:
    where = f" in layers[{index}]"
    if not isinstance(data, dict):
        raise BaselineFileError(f"has layers[{index}] = {data!r}, which is not an object")
    if "output" not in data:
        raise BaselineFileError(f"has no 'output'{where}: the file is incomplete")
    return Row(
        name=_field(data, "name", str, where),
        type=_field(data, "type", str, where),
        call=_field(data, "call", int, where),
        output=data["output"],
        params=_field(data, "params", int, where),
        lazy=_field(data, "lazy", bool, where) if "lazy" in data else False,
    )


def from_data(data: Any) -> Snapshot:
    """A snapshot from parsed JSON; BaselineFileError when it is not a baseline we can read."""
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise BaselineFileError(
            f'is not a pytest-cnnshape baseline (it has no "schema": "{SCHEMA}"): another '
            "tool's file, or a file put into the baseline folder by mistake"
        )
    version = _field(data, "version", int)
    if version > FORMAT:
        raise BaselineFileError(
            f"is in baseline format {version}, written by a newer pytest-cnnshape; this one reads "
            f"format {FORMAT}",
            newer=True,
        )
    if version < 1:
        raise BaselineFileError(f'has "version": {version}, which no pytest-cnnshape writes')
    compare = _field(data, "compare", str)
    if compare not in (LAYERS, OUTPUT):
        raise BaselineFileError(f'has "compare": {compare!r}; expected {LAYERS!r} or {OUTPUT!r}')
    if "output" not in data:
        raise BaselineFileError("has no 'output': the file is incomplete")
    layers = None
    if compare == LAYERS:
        rows = _field(data, "layers", list)
        layers = tuple(_row(row, i) for i, row in enumerate(rows))
    return Snapshot(
        model=_field(data, "model", str),
        input=_field(data, "input", str),
        output=data["output"],
        total_params=_field(data, "total_params", int),
        trainable_params=_field(data, "trainable_params", int),
        layers=layers,
    )


def _depth(text: str) -> int:
    """The deepest bracket nesting of JSON text, strings left out: linear, no recursion."""
    deepest = depth = 0
    for match in _BRACKETS.finditer(_STRING.sub("", text)):
        depth += 1 if match.group() in "[{" else -1
        deepest = max(deepest, depth)
    return deepest


def _integer(digits: str) -> int:
    if len(digits.lstrip("-")) > MAX_DIGITS:
        raise BaselineFileError(
            f"holds an integer of {len(digits.lstrip('-'))} digits (a baseline's have at most "
            f"{MAX_DIGITS}): it is damaged or not a baseline"
        )
    return int(digits)


def conflict_line(text: str) -> int | None:
    """The line (1-based) of the first git merge-conflict marker in ``text``; None without one."""
    found = _CONFLICT_MARKER.search(text)
    return None if found is None else text.count("\n", 0, found.start()) + 1


def parse(text: str) -> Any:
    """The JSON data of a baseline file's text, bounded: no deep nesting, no huge numbers."""
    if not text.strip():
        raise BaselineFileError("is empty")
    if (line := conflict_line(text)) is not None:
        # two branches changed the model and git merged the file by lines: neither side's
        # snapshot is the merged model's, so the fix is a new trace, not picking a side
        raise BaselineFileError(f"has merge-conflict markers (line {line})", conflicted=True)
    if (depth := _depth(text)) > MAX_DEPTH:
        raise BaselineFileError(
            f"nests {depth} levels deep (a baseline nests at most {MAX_DEPTH}): it is damaged or not "
            "a baseline"
        )
    try:
        return json.loads(text, parse_int=_integer)
    except json.JSONDecodeError as exc:
        raise BaselineFileError(
            f"is not valid JSON ({exc.msg}: line {exc.lineno}, column {exc.colno}): it is "
            "truncated or damaged"
        ) from None
    except (RecursionError, ValueError) as exc:  # the parser's own limits, whatever slipped past ours
        raise BaselineFileError(f"cannot be parsed ({exc}): it is damaged or not a baseline") from None


def loads(text: str) -> Snapshot:
    """Parse a baseline file's text."""
    return from_data(parse(text))


def is_ours(path: Path) -> bool:
    """Whether ``path`` holds a baseline this version writes: our schema, our format version.

    What prune may delete: anything else in a baseline folder (hand-written JSON,
    another tool's file, a damaged file) is not provably ours and stays.
    """
    try:
        data = parse(path.read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError, BaselineFileError):
        return False
    return (
        isinstance(data, dict)
        and data.get("schema") == SCHEMA
        and type(data.get("version")) is int
        and data["version"] == FORMAT
    )


def read(path: Path) -> Snapshot | None:
    """The baseline stored at ``path``; None when there is none yet."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise BaselineFileError(f"cannot be read ({exc.strerror or exc})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BaselineFileError("is not UTF-8 text: it is damaged or not a baseline") from None
    return loads(text)
