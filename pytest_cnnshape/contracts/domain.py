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

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, SpecError, unknown_key

if TYPE_CHECKING:
    from ..shapes.spec import ShapeSpec

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
        return {
            "min_side": self.min_side,
            "max_side": self.max_side,
            "batch": self.batch,
            "square": self.square,
            "multiple_of": self.multiple_of,
        }

    def smallest(self) -> tuple[int, ...]:
        """The domain's smallest input: every size at its minimum (what the report traces)."""
        from ..shapes.spec import parse_shape

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
        raise SpecError(
            f"contract input {spec.text!r}: name the free sizes instead of '*', e.g. 'B x 3 x H x W'"
        )
    for name in sorted(spec.names):
        if name not in dims and name not in BATCH_NAMES + SIDE_NAMES:
            raise SpecError(
                f"contract input {spec.text!r}: nothing gives {name} its sizes; "
                f"pass dims={{{name!r}: (1, 64)}}"
            )


def _flag(value: Any, where: str, example: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{where} = {value!r} must be true or false")
    return value


def _dims(value: Any, where: str, example: str) -> dict[str, int | tuple[int, int]]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where} = {value!r} must be a table, e.g. {example}")
    return {str(k): _range(v, f"{where}.{k}", example) for k, v in value.items()}


#: How each optional key of a contract is checked.
_CONTRACT_CHECKS: dict[str, Callable[[Any, str, str], Any]] = {
    "dims": _dims,
    "min_side": _whole,
    "max_side": _whole,
    "multiple_of": _whole,
    "max_examples": _whole,
    "batch": _range,
    "square": _flag,
}


def parse_contract(data: Any, where: str) -> ContractSpec:
    """Validate a contract table or dict; ConfigError naming the key otherwise."""
    if not isinstance(data, Mapping):
        raise ConfigError(
            f"{where} must be a table, e.g. contract = {{ {CONTRACT_KEYS['input']}, "
            f"{CONTRACT_KEYS['output']} }}"
        )
    for key in data:
        if key not in CONTRACT_KEYS:
            raise unknown_key(where, str(key), CONTRACT_KEYS)
    for key in ("input", "output"):
        if not isinstance(data.get(key), str):
            raise ConfigError(f"{where} needs {key} as a symbolic shape, e.g. {CONTRACT_KEYS[key]}")
    values: dict[str, Any] = {"input": data["input"], "output": data["output"]}
    for key, check in _CONTRACT_CHECKS.items():
        if key in data:
            values[key] = check(data[key], f"{where} {key}", CONTRACT_KEYS[key])
    contract = ContractSpec(**values)
    _check_domain(contract, where)
    return contract


def _check_domain(contract: ContractSpec, where: str) -> None:
    """The sizes must leave some input, and the shapes must parse and name their sizes."""
    if contract.min_side > contract.max_side:
        raise ConfigError(f"{where}: min_side = {contract.min_side} is above max_side = {contract.max_side}")
    if contract.min_side > contract.max_side // contract.multiple_of * contract.multiple_of:
        raise ConfigError(
            f"{where}: no side in [{contract.min_side}, {contract.max_side}] is a multiple "
            f"of multiple_of = {contract.multiple_of}; widen the range"
        )
    try:
        from ..shapes.expected import parse_expected
        from ..shapes.spec import parse_shape

        check_names(parse_shape(contract.input, "contract input"), contract.dims)
        parse_expected(contract.output, f"{where} output")
    except SpecError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def parse_hypothesis(data: Any, where: str = "[tool.cnnshape] hypothesis") -> HypothesisOptions:
    """Validate ``[tool.cnnshape] hypothesis``."""
    if not isinstance(data, Mapping):
        raise ConfigError(
            f"{where} must be a table, e.g. hypothesis = {{ {HYPOTHESIS_KEYS['max_examples']} }}"
        )
    for key in data:
        if key not in HYPOTHESIS_KEYS:
            raise unknown_key(where, str(key), HYPOTHESIS_KEYS)
    values: dict[str, Any] = {}
    if "max_examples" in data:
        values["max_examples"] = _whole(
            data["max_examples"], f"{where} max_examples", HYPOTHESIS_KEYS["max_examples"]
        )
    if "derandomize" in data:
        if not isinstance(data["derandomize"], bool):
            raise ConfigError(f"{where} derandomize = {data['derandomize']!r} must be true or false")
        values["derandomize"] = data["derandomize"]
    if "seed" in data:
        values["seed"] = _whole(data["seed"], f"{where} seed", HYPOTHESIS_KEYS["seed"], minimum=0)
    options = HypothesisOptions(**values)
    if options.seed is not None and options.derandomize:
        raise ConfigError(
            f"{where}: seed = {options.seed} only matters with derandomize = false "
            "(derandomized runs already repeat exactly)"
        )
    return options
