"""A shape contract's input domain as plain data: what pyproject.toml and markers write.

    [tool.cnnshape.models.resnet]
    factory = "resnet.py:ResNet"
    input = "2x3x32x32"
    contract = { input = "B x 3 x H x W", output = "B x 10", min_side = 1, max_side = 256 }

    @pytest.mark.cnn_model(ResNet, input="2x3x32x32",
                           contract={"input": "B x 3 x H x W", "output": "B x 10"})

and ``[tool.cnnshape] hypothesis = { max_examples = 50, derandomize = true }`` for
how hard hypothesis looks. Validated when the session starts (a wrong key is a
usage error naming it); nothing here imports torch or hypothesis.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import ConfigError, SpecError

if TYPE_CHECKING:
    from .spec import ShapeSpec

CONTRACT_KEYS: dict[str, str] = {
    "input": 'input = "B x 3 x H x W"',
    "output": 'output = "B x 10"',
    "dims": "dims = { H = [32, 256], W = 64 }",
    "min_side": "min_side = 32",
    "max_side": "max_side = 256",
    "batch": "batch = [1, 8]",
    "square": "square = true",
    "multiple_of": "multiple_of = 16",
    "max_examples": "max_examples = 100",
}
HYPOTHESIS_KEYS: dict[str, str] = {
    "max_examples": "max_examples = 50",
    "derandomize": "derandomize = true   # the same examples on every run (the default)",
    "seed": "seed = 1234   # with derandomize = false: random, but reproducible",
}


def _unknown(key: str, known: Mapping[str, str], where: str) -> ConfigError:
    import difflib

    close = difflib.get_close_matches(key, list(known), n=1)
    hint = f" (did you mean {close[0]!r}? e.g. {known[close[0]]})" if close else ""
    return ConfigError(f"{where} has an unknown key {key!r}{hint}; known keys: {', '.join(known)}")


def _whole(value: Any, where: str, example: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{where} = {value!r} must be a whole number >= {minimum}, e.g. {example}")
    return value


def _range(value: Any, where: str, example: str) -> int | tuple[int, int]:
    if isinstance(value, (list, tuple)) and len(value) == 2:
        low, high = (_whole(v, where, example) for v in value)
        if low > high:
            raise ConfigError(f"{where} = {list(value)!r}: the first number is the smallest, e.g. {example}")
        return low, high
    return _whole(value, where, example)


@dataclass(frozen=True)
class HypothesisOptions:
    """How hard hypothesis looks, and whether its choices repeat between runs."""

    max_examples: int = 100
    #: The same examples every run, on every machine; no database involved.
    derandomize: bool = True
    #: With ``derandomize = false``: random examples, reproducible from this seed.
    seed: int | None = None


@dataclass(frozen=True)
class ContractSpec:
    """The domain a contract covers and what it promises there."""

    input: str
    output: str
    dims: Mapping[str, int | tuple[int, int]] = field(default_factory=dict)
    min_side: int = 1
    max_side: int = 64
    batch: int | tuple[int, int] = (1, 4)
    square: bool = False
    multiple_of: int = 1
    max_examples: int | None = None

    def strategy_options(self) -> dict[str, Any]:
        """Keyword arguments of ``properties.shape_strategy``."""
        return {"min_side": self.min_side, "max_side": self.max_side, "batch": self.batch,
                "square": self.square, "multiple_of": self.multiple_of}

    def smallest(self) -> tuple[int, ...]:
        """The domain's smallest input: every size at its minimum (what the report traces)."""
        from .spec import parse_shape

        spec = parse_shape(self.input, "contract input")
        side = -(-self.min_side // self.multiple_of) * self.multiple_of
        values: dict[str, int] = {}
        for name in spec.names:
            given = self.dims.get(name)
            if given is not None:
                values[name] = given if isinstance(given, int) else given[0]
            elif name in BATCH_NAMES:
                values[name] = self.batch if isinstance(self.batch, int) else self.batch[0]
            else:
                values[name] = side
        return spec.concrete(values, "contract input")


#: Names that take their sizes from ``batch`` and ``min_side``/``max_side`` unless ``dims`` says.
BATCH_NAMES = ("B", "N")
SIDE_NAMES = ("D", "H", "W", "L")


def check_names(spec: ShapeSpec, dims: Mapping[str, Any]) -> None:
    """Every name of a contract input must get its sizes from somewhere; no wildcards."""
    if spec.has_wildcards:
        raise SpecError(f"contract input {spec.text!r}: name the free sizes instead of '*', "
                        "e.g. 'B x 3 x H x W'")
    for name in sorted(spec.names):
        if name not in dims and name not in BATCH_NAMES + SIDE_NAMES:
            raise SpecError(f"contract input {spec.text!r}: nothing gives {name} its sizes; "
                            f"pass dims={{{name!r}: (1, 64)}}")


def parse_contract(data: Any, where: str) -> ContractSpec:
    """Validate a contract table or dict; ConfigError naming the key otherwise."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where} must be a table, e.g. contract = {{ {CONTRACT_KEYS['input']}, "
                          f"{CONTRACT_KEYS['output']} }}")
    for key in data:
        if key not in CONTRACT_KEYS:
            raise _unknown(str(key), CONTRACT_KEYS, where)
    for key in ("input", "output"):
        if not isinstance(data.get(key), str):
            raise ConfigError(f"{where} needs {key} as a symbolic shape, e.g. {CONTRACT_KEYS[key]}")
    values: dict[str, Any] = {"input": data["input"], "output": data["output"]}
    dims = data.get("dims", {})
    if not isinstance(dims, Mapping):
        raise ConfigError(f"{where} dims = {dims!r} must be a table, e.g. {CONTRACT_KEYS['dims']}")
    values["dims"] = {str(k): _range(v, f"{where} dims.{k}", CONTRACT_KEYS["dims"]) for k, v in dims.items()}
    for key in ("min_side", "max_side", "multiple_of", "max_examples"):
        if key in data:
            values[key] = _whole(data[key], f"{where} {key}", CONTRACT_KEYS[key])
    if "batch" in data:
        values["batch"] = _range(data["batch"], f"{where} batch", CONTRACT_KEYS["batch"])
    if "square" in data:
        if not isinstance(data["square"], bool):
            raise ConfigError(f"{where} square = {data['square']!r} must be true or false")
        values["square"] = data["square"]
    contract = ContractSpec(**values)
    if contract.min_side > contract.max_side:
        raise ConfigError(f"{where}: min_side = {contract.min_side} is above max_side = {contract.max_side}")
    if contract.min_side > contract.max_side // contract.multiple_of * contract.multiple_of:
        raise ConfigError(f"{where}: no side in [{contract.min_side}, {contract.max_side}] is a multiple "
                          f"of multiple_of = {contract.multiple_of}; widen the range")
    try:
        from .contract import parse_expected
        from .spec import parse_shape

        check_names(parse_shape(contract.input, "contract input"), contract.dims)
        parse_expected(contract.output, f"{where} output")
    except SpecError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    return contract


def parse_hypothesis(data: Any, where: str = "[tool.cnnshape] hypothesis") -> HypothesisOptions:
    """Validate ``[tool.cnnshape] hypothesis``."""
    if not isinstance(data, Mapping):
        raise ConfigError(
            f"{where} must be a table, e.g. hypothesis = {{ {HYPOTHESIS_KEYS['max_examples']} }}")
    for key in data:
        if key not in HYPOTHESIS_KEYS:
            raise _unknown(str(key), HYPOTHESIS_KEYS, where)
    values: dict[str, Any] = {}
    if "max_examples" in data:
        values["max_examples"] = _whole(data["max_examples"], f"{where} max_examples",
                                        HYPOTHESIS_KEYS["max_examples"])
    if "derandomize" in data:
        if not isinstance(data["derandomize"], bool):
            raise ConfigError(f"{where} derandomize = {data['derandomize']!r} must be true or false")
        values["derandomize"] = data["derandomize"]
    if "seed" in data:
        values["seed"] = _whole(data["seed"], f"{where} seed", HYPOTHESIS_KEYS["seed"], minimum=0)
    options = HypothesisOptions(**values)
    if options.seed is not None and options.derandomize:
        raise ConfigError(f"{where}: seed = {options.seed} only matters with derandomize = false "
                          "(derandomized runs already repeat exactly)")
    return options
