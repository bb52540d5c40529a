"""``[tool.cnnshape]`` in pyproject.toml: project settings and declared models.

Read once per session, validated up front: an unknown key, a wrong type or a
spec that does not parse is a ConfigError naming the key, the value and an
example, which the plugin turns into a one-line usage error. Nothing here imports
torch.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .domain import ContractSpec, HypothesisOptions, parse_contract, parse_hypothesis
from .errors import ConfigError, SpecError
from .options import DEFAULT_BASELINE_DIR, DEVICES

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib  # type: ignore[import-not-found,no-redef,unused-ignore]


PROJECT_KEYS: dict[str, str] = {
    "device": "device = \"auto\"   # auto | meta | cpu",
    "depth": "depth = 2",
    "report": "report = \"cnnshape-report.json\"",
    "models": "[tool.cnnshape.models.lenet]",
    "baselines": "baselines = true",
    "baseline_dir": "baseline_dir = \"__cnnshapes__\"",
    "update_missing": "update_missing = true   # write missing baselines on the first run",
    "github_annotations": "github_annotations = false",
    "lint": "lint = { ignore = [\"dropout-after-conv\"] }",
    "hypothesis": "hypothesis = { max_examples = 50, derandomize = true }",
}

MODEL_KEYS: dict[str, str] = {
    "factory": "factory = \"mypkg.models:Net\"   # or \"path/to/file.py:Net\"",
    "kwargs": "kwargs = { width = 2 }",
    "input": "input = \"1x3x32x32\"   # or a list of shapes for several inputs",
    "output": "output = \"B x 10\"",
    "dims": "dims = { N = 2, H = 64, W = 64 }",
    "max_params": "max_params = 1_000_000",
    "device": "device = \"meta\"",
    "train": "train = false",
    "baseline": "baseline = true",
    "baseline_output_only": "baseline_output_only = true",
    "lint": "lint = true",
    "contract": "contract = { input = \"B x 3 x H x W\", output = \"B x 10\", min_side = 32 }",
}


@dataclass(frozen=True)
class DeclaredModel:
    """A model declared in ``[tool.cnnshape.models.<name>]``."""

    name: str
    factory: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    input: Any = None
    output: Any = None
    dims: Mapping[str, int] = field(default_factory=dict)
    max_params: int | None = None
    device: str | None = None
    train: bool = False
    baseline: bool | None = None
    baseline_output_only: bool = False
    lint: bool = False
    contract: ContractSpec | None = None


@dataclass(frozen=True)
class ProjectConfig:
    """Validated ``[tool.cnnshape]``; ``path`` is the pyproject.toml it came from."""

    path: Path | None = None
    device: str = "auto"
    depth: int = 2
    report: str | None = None
    baselines: bool = False
    baseline_dir: str = DEFAULT_BASELINE_DIR
    update_missing: bool = False
    github_annotations: bool = True
    lint_ignore: tuple[str, ...] = ()
    hypothesis: HypothesisOptions = field(default_factory=HypothesisOptions)
    models: tuple[DeclaredModel, ...] = ()

    @property
    def root(self) -> Path:
        """The directory relative paths in the config are resolved against."""
        return self.path.parent if self.path is not None else Path.cwd()


def _unknown(key: str, known: Mapping[str, str], where: str) -> ConfigError:
    import difflib

    close = difflib.get_close_matches(key, list(known), n=1)
    hint = f" (did you mean {close[0]!r}? e.g. {known[close[0]]})" if close else ""
    return ConfigError(
        f"{where} has an unknown key {key!r}{hint}; known keys: {', '.join(sorted(known))}"
    )


def _expect(value: Any, kind: type | tuple[type, ...], key: str, example: str) -> Any:
    if isinstance(value, bool) and kind is int:
        raise ConfigError(f"{key} = {value!r} must be a whole number, e.g. {example}")
    if not isinstance(value, kind):
        raise ConfigError(f"{key} = {value!r} has the wrong type; e.g. {example}")
    return value


def _device(value: Any, key: str) -> str:
    if value not in DEVICES:
        raise ConfigError(f"{key} = {value!r} is not one of {', '.join(DEVICES)}; e.g. device = \"meta\"")
    return str(value)


def _model(name: str, table: Any) -> DeclaredModel:
    where = f"[tool.cnnshape.models.{name}]"
    if not isinstance(table, Mapping):
        raise ConfigError(f"{where} must be a table, e.g. {MODEL_KEYS['factory']}")
    for key in table:
        if key not in MODEL_KEYS:
            raise _unknown(key, MODEL_KEYS, where)
    if "factory" not in table:
        raise ConfigError(f"{where} needs a factory, e.g. {MODEL_KEYS['factory']}")
    factory = _expect(table["factory"], str, f"{where} factory", MODEL_KEYS["factory"])
    kwargs = _expect(table.get("kwargs", {}), Mapping, f"{where} kwargs", MODEL_KEYS["kwargs"])
    dims = _expect(table.get("dims", {}), Mapping, f"{where} dims", MODEL_KEYS["dims"])
    contract = table.get("contract")
    if "input" not in table and contract is None:
        raise ConfigError(f"{where} needs an input, e.g. {MODEL_KEYS['input']}")
    max_params = table.get("max_params")
    if max_params is not None:
        _expect(max_params, int, f"{where} max_params", MODEL_KEYS["max_params"])
    device = table.get("device")
    if device is not None:
        device = _device(device, f"{where} device")
    try:
        from .contract import bind_inputs, parse_expected
        from .factory import parse_factory

        parse_factory(factory, kwargs)
        if "input" in table:
            bind_inputs(table["input"], dims)
        if table.get("output") is not None:
            parse_expected(table["output"])
    except SpecError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    flags = {}
    for key in ("train", "baseline", "baseline_output_only", "lint"):
        if key in table:
            flags[key] = _expect(table[key], bool, f"{where} {key}", MODEL_KEYS[key])
    parsed_contract = parse_contract(contract, f"{where} contract") if contract is not None else None
    return DeclaredModel(
        name=name, factory=factory, kwargs=dict(kwargs), input=table.get("input"),
        output=table.get("output"), dims=dict(dims), max_params=max_params, device=device,
        contract=parsed_contract, **flags,
    )


def parse_project(data: Mapping[str, Any], path: Path | None = None) -> ProjectConfig:
    """Validate the ``[tool.cnnshape]`` table."""
    for key in data:
        if key not in PROJECT_KEYS:
            raise _unknown(key, PROJECT_KEYS, "[tool.cnnshape]")
    values: dict[str, Any] = {}
    if "device" in data:
        values["device"] = _device(data["device"], "[tool.cnnshape] device")
    if "depth" in data:
        depth = _expect(data["depth"], int, "[tool.cnnshape] depth", PROJECT_KEYS["depth"])
        if depth < 0:
            raise ConfigError(f"[tool.cnnshape] depth = {depth} must be 0 or more")
        values["depth"] = depth
    for key in ("report", "baseline_dir"):
        if key in data:
            values[key] = _expect(data[key], str, f"[tool.cnnshape] {key}", PROJECT_KEYS[key])
    folder = values.get("baseline_dir")
    if folder is not None and (folder.strip(". ") == "" or any(c in folder for c in "/\\:")):
        raise ConfigError(
            f"[tool.cnnshape] baseline_dir = {folder!r} must be a folder name, not a path: it is "
            f"made next to each test file (and pyproject.toml); e.g. {PROJECT_KEYS['baseline_dir']}"
        )
    for key in ("baselines", "update_missing", "github_annotations"):
        if key in data:
            values[key] = _expect(data[key], bool, f"[tool.cnnshape] {key}", PROJECT_KEYS[key])
    if "lint" in data:
        lint = _expect(data["lint"], Mapping, "[tool.cnnshape] lint", PROJECT_KEYS["lint"])
        for key in lint:
            if key != "ignore":
                raise _unknown(key, {"ignore": PROJECT_KEYS["lint"]}, "[tool.cnnshape.lint]")
        ignore = _expect(lint.get("ignore", []), list, "[tool.cnnshape] lint.ignore",
                         PROJECT_KEYS["lint"])
        from .inspection.catalog import check_rule_ids

        try:
            values["lint_ignore"] = check_rule_ids(ignore, "[tool.cnnshape] lint.ignore")
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    if "hypothesis" in data:
        values["hypothesis"] = parse_hypothesis(data["hypothesis"])
    models = _expect(data.get("models", {}), Mapping, "[tool.cnnshape] models",
                     PROJECT_KEYS["models"])
    values["models"] = tuple(_model(str(name), table) for name, table in sorted(models.items()))
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
    table = document.get("tool", {}).get("cnnshape")
    if table is None:
        return ProjectConfig(path=path)
    if not isinstance(table, Mapping):
        raise ConfigError(f"{path}: [tool.cnnshape] must be a table")
    return parse_project(table, path)
