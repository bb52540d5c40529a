"""``[tool.cnnshape]`` in pyproject.toml: project settings and declared models.

Read once per session, validated up front: an unknown key, a wrong type or a
spec that does not parse is a ConfigError naming the key, the value and an
example, which the plugin turns into a one-line usage error. Nothing here imports
torch.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..contracts.domain import HypothesisOptions, parse_hypothesis
from ..defaults import DEFAULT_BASELINE_DIR, DEFAULT_DEPTH, DEFAULT_DEVICE, DEVICES
from ..errors import ConfigError, unknown_key
from .schema import ModelCheck, parse_check, pyproject_place

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib  # type: ignore[import-not-found,no-redef,unused-ignore]


PROJECT_KEYS: dict[str, str] = {
    "device": 'device = "auto"   # auto | meta | cpu | cuda',
    "depth": "depth = 2",
    "report": 'report = "cnnshape-report.json"',
    "models": "[tool.cnnshape.models.lenet]",
    "baselines": "baselines = true",
    "baseline_dir": 'baseline_dir = "__cnnshapes__"',
    "update_missing": "update_missing = true   # write missing baselines on the first run",
    "github_annotations": "github_annotations = false",
    "lint": 'lint = { ignore = ["dropout-after-conv"], batch_dim = 0 }',
    "hypothesis": "hypothesis = { max_examples = 50, derandomize = true }",
}


@dataclass(frozen=True)
class ProjectConfig:
    """Validated ``[tool.cnnshape]``; ``path`` is the pyproject.toml it came from."""

    path: Path | None = None
    device: str = DEFAULT_DEVICE
    depth: int = DEFAULT_DEPTH
    report: str | None = None
    baselines: bool = False
    baseline_dir: str = DEFAULT_BASELINE_DIR
    update_missing: bool = False
    github_annotations: bool = True
    lint_ignore: tuple[str, ...] = ()
    #: The output axis that holds the batch (``lint.batch_dim``; 1: sequence-first models).
    lint_batch_dim: int = 0
    hypothesis: HypothesisOptions = field(default_factory=HypothesisOptions)
    models: tuple[ModelCheck, ...] = ()

    @property
    def root(self) -> Path:
        """The directory relative paths in the config are resolved against."""
        return self.path.parent if self.path is not None else Path.cwd()


def _expect(value: Any, kind: type | tuple[type, ...], key: str, example: str) -> Any:
    if isinstance(value, bool) and kind is int:
        raise ConfigError(f"{key} = {value!r} must be a whole number, e.g. {example}")
    if not isinstance(value, kind):
        raise ConfigError(f"{key} = {value!r} has the wrong type; e.g. {example}")
    return value


def _device(value: Any, key: str) -> str:
    if value not in DEVICES:
        raise ConfigError(f'{key} = {value!r} is not one of {", ".join(DEVICES)}; e.g. device = "meta"')
    return str(value)


def _model(name: str, table: Any) -> ModelCheck:
    place = pyproject_place(name)
    if not isinstance(table, Mapping):
        raise place.error(f"must be a table, e.g. {place.example('factory')}")
    return parse_check(table, place, name=name)


def _depth(value: Any, key: str) -> int:
    depth: int = _expect(value, int, key, PROJECT_KEYS["depth"])
    if depth < 0:
        raise ConfigError(f"{key} = {depth} must be 0 or more")
    return depth


def _text(value: Any, key: str) -> str:
    text: str = _expect(value, str, key, PROJECT_KEYS[key.rpartition(" ")[2]])
    return text


def _folder(value: Any, key: str) -> str:
    folder = _text(value, key)
    if folder.strip(". ") == "" or any(c in folder for c in "/\\:"):
        raise ConfigError(
            f"{key} = {folder!r} must be a folder name, not a path: it is made next to each test "
            f"file (and pyproject.toml); e.g. {PROJECT_KEYS['baseline_dir']}"
        )
    return folder


def _flag(value: Any, key: str) -> bool:
    flag: bool = _expect(value, bool, key, PROJECT_KEYS[key.rpartition(" ")[2]])
    return flag


def _lint(value: Any, key: str) -> dict[str, Any]:
    from ..inspection.catalog import check_rule_ids

    lint = _expect(value, Mapping, key, PROJECT_KEYS["lint"])
    for name in lint:
        if name not in ("ignore", "batch_dim"):
            raise unknown_key(
                "[tool.cnnshape.lint]", name, {"ignore": PROJECT_KEYS["lint"], "batch_dim": "batch_dim = 1"}
            )
    ignore = _expect(lint.get("ignore", []), list, f"{key}.ignore", PROJECT_KEYS["lint"])
    batch_dim = _expect(lint.get("batch_dim", 0), int, f"{key}.batch_dim", "lint = { batch_dim = 1 }")
    if batch_dim < 0:
        raise ConfigError(f"{key}.batch_dim = {batch_dim} must be 0 or more; e.g. lint = {{ batch_dim = 1 }}")
    try:
        return {"lint_ignore": check_rule_ids(ignore, f"{key}.ignore"), "lint_batch_dim": batch_dim}
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def _models(value: Any, key: str) -> tuple[ModelCheck, ...]:
    models = _expect(value, Mapping, key, PROJECT_KEYS["models"])
    return tuple(_model(str(name), table) for name, table in sorted(models.items()))


#: Each key of ``[tool.cnnshape]``: the ProjectConfig field it sets and its validator (None:
#: the validator returns several fields by name).
_SETTINGS: dict[str, tuple[str | None, Callable[[Any, str], Any]]] = {
    "device": ("device", _device),
    "depth": ("depth", _depth),
    "report": ("report", _text),
    "models": ("models", _models),
    "baselines": ("baselines", _flag),
    "baseline_dir": ("baseline_dir", _folder),
    "update_missing": ("update_missing", _flag),
    "github_annotations": ("github_annotations", _flag),
    "lint": (None, _lint),
    "hypothesis": ("hypothesis", parse_hypothesis),
}


def parse_project(data: Mapping[str, Any], path: Path | None = None) -> ProjectConfig:
    """Validate the ``[tool.cnnshape]`` table."""
    values: dict[str, Any] = {}
    for key, value in data.items():
        if key not in _SETTINGS:
            raise unknown_key("[tool.cnnshape]", key, dict(sorted(PROJECT_KEYS.items())))
        target, check = _SETTINGS[key]
        checked = check(value, f"[tool.cnnshape] {key}")
        if target is None:
            values.update(checked)
        else:
            values[target] = checked
    return ProjectConfig(path=path, **values)


def load_project(path: Path | None) -> ProjectConfig:
    """Read ``[tool.cnnshape]`` from a pyproject.toml (defaults when absent)."""
    if path is None or not path.is_file():
        return ProjectConfig()
    try:
        with path.open("rb") as handle:
            document = tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start}); TOML "
            "files must be UTF-8: re-save it with that encoding"
        ) from None
    table = document.get("tool", {}).get("cnnshape")
    if table is None:
        return ProjectConfig(path=path)
    if not isinstance(table, Mapping):
        raise ConfigError(f"{path}: [tool.cnnshape] must be a table")
    return parse_project(table, path)
