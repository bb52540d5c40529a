"""One model check, however it is written: the fields, their validation, their examples.

A model contract is written three ways::

    [tool.cnnshape.models.lenet]                       # pyproject.toml
    factory = "lenet.py:lenet5"
    input = "B x 1 x 28 x 28"

    @pytest.mark.cnn_model(lenet5, input="B x 1 x 28 x 28", output="B x 10")

    cnn_shapes.assert_output(model, "8x1x28x28", "B x 10", max_params=100_000)

Each builds a ``ModelCheck`` through ``parse_check``, which validates every field
with ``FIELDS`` (one entry per field: how it is written in TOML and in Python, what
it must be) and words its one-line errors for the place it was written
(``Place``): a key in a table, an argument of a marker or a fixture method.
Adding a field is one entry here and one attribute of ``ModelCheck``.

Torch-free; it runs when the session reads pyproject.toml and when a test with a
marker is set up.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..contracts.domain import ContractSpec, parse_contract
from ..defaults import DEVICES
from ..errors import ArgumentError, ConfigError, MarkerError, SpecError, UsageError, unknown
from .keys import MARKER

if TYPE_CHECKING:
    from torch import nn

#: Where a check is written.
PYPROJECT, MARKER_ARGS, FIXTURE = "pyproject", "marker", "fixture"


@dataclass(frozen=True)
class ModelCheck:
    """What to build and trace, and what to expect of it."""

    name: str
    #: A callable, or a spec string ``pkg.mod:Factory`` / ``path/file.py:Factory(k=v)``.
    factory: str | Callable[..., Any] | None = None
    #: An nn.Module the caller built (fixtures); then ``factory`` is None.
    model: nn.Module | None = None
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    input: Any = None
    output: Any = None
    dims: Mapping[str, int] = field(default_factory=dict)
    max_params: int | None = None
    #: None: the session's device (``--cnn-shapes-device``, ``[tool.cnnshape] device``).
    device: str | None = None
    train: bool = False
    #: Compare with the committed baseline: True/False as written, None: the project's default.
    baseline: bool | None = None
    baseline_output_only: bool = False
    #: Fail the check on lint findings.
    lint: bool = False
    #: The output axis that holds the batch, for a model sequence-first by design (None: the
    #: project's ``lint.batch_dim``).
    batch_dim: int | None = None
    #: A property-based contract over a whole input domain (hypothesis).
    contract: ContractSpec | None = None
    #: Budget of the estimated peak training memory, in bytes (``max_memory = "6 GiB"``).
    max_memory: int | None = None
    #: The batch size the memory is estimated at (default: the traced input's).
    batch: int | None = None
    #: The optimizer whose state the memory estimate counts: a torch.optim name
    #: (``"AdamW"``, ``"SGD(momentum=0.9)"``), a class or an instance.
    optimizer: Any = None
    #: dtype of the inputs made from shapes (``"int64"``); None: the model's. An input
    #: written with its own (``"8x50:long"``) keeps it.
    dtype: str | None = None
    #: Keyword arguments passed to the model's forward as they are (``task="seg"``).
    forward_kwargs: Mapping[str, Any] = field(default_factory=dict)
    #: Where relative factory paths are resolved from.
    root: Path | None = None

    @property
    def traced_input(self) -> Any:
        """The input the model is traced with: as given, or the contract domain's smallest."""
        if self.input is None and self.contract is not None:
            return self.contract.smallest()
        return self.input


@dataclass(frozen=True)
class Place:
    """Where a check is written: how its errors start and how values are shown there."""

    surface: str
    #: What every message starts with: ``[tool.cnnshape.models.lenet]``, ``@pytest.mark.cnn_model:``.
    where: str

    @property
    def toml(self) -> bool:
        return self.surface == PYPROJECT

    def assign(self, key: str, value: Any) -> str:
        """``key = 'x'`` in a table, ``key='x'`` in Python."""
        return f"{key} = {value!r}" if self.toml else f"{key}={value!r}"

    def example(self, key: str) -> str:
        entry = BY_NAME[key]
        return entry.toml if self.toml else entry.python

    @property
    def boolean(self) -> str:
        return "true or false" if self.toml else "True or False"

    @property
    def mapping(self) -> str:
        return "a table" if self.toml else "a dict"

    def label(self, key: str) -> str:
        """How a nested table is named in its own messages: ``[...] contract``, ``contract=``."""
        return f"{self.where} {key}" if self.toml else f"{key}="

    def error(self, text: str, sep: str = " ") -> UsageError:
        """The error to raise, worded for this place."""
        message = f"{self.where}{sep}{text}"
        if self.surface == PYPROJECT:
            return ConfigError(message)
        if self.surface == MARKER_ARGS:
            return MarkerError(message)
        return ArgumentError(message)


def pyproject_place(name: str) -> Place:
    return Place(PYPROJECT, f"[tool.cnnshape.models.{name}]")


MARKER_PLACE = Place(MARKER_ARGS, f"@pytest.mark.{MARKER}:")


def fixture_place(method: str) -> Place:
    return Place(FIXTURE, f"cnn_shapes.{method}():")


# -- one validator per kind of value --------------------------------------------------

Check = Callable[[Any, str, Place], Any]


def _factory(value: Any, key: str, place: Place) -> Any:
    if isinstance(value, str) or (callable(value) and not place.toml):
        return value
    what = "a spec like 'mypkg.models:Net'" if place.toml else "a callable or a spec like 'mypkg.models:Net'"
    raise place.error(f"{place.assign(key, value)} must be {what}, e.g. {place.example(key)}")


def _mapping(value: Any, key: str, place: Place) -> Any:
    if not isinstance(value, Mapping):
        raise place.error(f"{place.assign(key, value)} must be {place.mapping}, e.g. {place.example(key)}")
    return dict(value)


def _dims(value: Any, key: str, place: Place) -> Any:
    dims = _mapping(value, key, place)
    for name, size in dims.items():
        if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
            raise place.error(
                f"{key}: {name} = {size!r} must be a positive whole number, e.g. {place.example(key)}"
            )
    return dims


def _positive(value: Any, key: str, place: Place) -> Any:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise place.error(
            f"{place.assign(key, value)} must be a positive whole number, e.g. {place.example(key)}"
        )
    return value


def _axis(value: Any, key: str, place: Place) -> Any:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise place.error(
            f"{place.assign(key, value)} must be a whole number >= 0, e.g. {place.example(key)}"
        )
    return value


def _flag(value: Any, key: str, place: Place) -> Any:
    if not isinstance(value, bool):
        raise place.error(f"{place.assign(key, value)} must be {place.boolean}")
    return value


def _device(value: Any, key: str, place: Place) -> Any:
    if value not in DEVICES:
        raise place.error(
            f"{place.assign(key, value)} is not one of {', '.join(DEVICES)}; e.g. {place.example(key)}"
        )
    return value


def _text(value: Any, key: str, place: Place) -> Any:
    if not isinstance(value, str) or not value.strip():
        raise place.error(f"{place.assign(key, value)} must be a non-empty string, e.g. {place.example(key)}")
    return value


def _dtype(value: Any, key: str, place: Place) -> Any:
    from ..shapes.spec import DTYPES

    name = value.strip().lower().removeprefix("torch.") if isinstance(value, str) else None
    if name not in DTYPES:
        raise place.error(
            f"{place.assign(key, value)} is not a dtype; " + unknown(str(value), sorted(DTYPES), noun="dtype")
        )
    return DTYPES[name]


def _arguments(value: Any, key: str, place: Place) -> Any:
    arguments = _mapping(value, key, place)
    for name in arguments:
        if not isinstance(name, str) or not name.isidentifier():
            raise place.error(f"{key}: {name!r} is not a keyword argument name, e.g. {place.example(key)}")
    return arguments


def _shape(value: Any, key: str, place: Place) -> Any:
    return value  # checked with the other fields in _consistent (input needs dims)


def _size(value: Any, key: str, place: Place) -> Any:
    from ..inspection.sizes import parse_size

    try:
        return parse_size(value, place.assign(key, value))
    except SpecError as exc:
        raise place.error(str(exc)) from None


def _optimizer(value: Any, key: str, place: Place) -> Any:
    from ..inspection.optimizer_state import parse_optimizer

    if isinstance(value, str):
        try:
            parse_optimizer(value, place.assign(key, value))
        except SpecError as exc:
            raise place.error(str(exc)) from None
        return value
    if not place.toml and (isinstance(value, type) or hasattr(value, "param_groups")):
        return value  # an optimizer class or instance: checked when the estimate runs
    what = "a torch.optim name" if place.toml else "a torch.optim name, class or instance"
    raise place.error(f"{place.assign(key, value)} must be {what}, e.g. {place.example(key)}")


def _contract(value: Any, key: str, place: Place) -> Any:
    try:
        return parse_contract(value, place.label(key))
    except ConfigError as exc:
        if place.toml:
            raise
        raise place.error(str(exc)) from None


@dataclass(frozen=True)
class Field:
    """One field of a model check."""

    name: str
    #: How pyproject.toml writes it, and how a marker or a fixture call writes it.
    toml: str
    python: str
    check: Check
    #: Where it may be written.
    surfaces: frozenset[str] = frozenset({PYPROJECT, MARKER_ARGS})


FIELDS: tuple[Field, ...] = (
    Field(
        "factory",
        'factory = "mypkg.models:Net"   # or "path/to/file.py:Net"',
        "@pytest.mark.cnn_model(Net, input='1x3x32x32')",
        _factory,
    ),
    Field(
        "input",
        'input = "1x3x32x32"   # or a list of shapes for several inputs',
        "input='1x3x32x32'",
        _shape,
        frozenset({PYPROJECT, MARKER_ARGS, FIXTURE}),
    ),
    Field(
        "output", 'output = "B x 10"', "output='B x 10'", _shape, frozenset({PYPROJECT, MARKER_ARGS, FIXTURE})
    ),
    Field(
        "dims",
        "dims = { N = 2, H = 64, W = 64 }",
        "dims={'N': 2, 'H': 64, 'W': 64}",
        _dims,
        frozenset({PYPROJECT, MARKER_ARGS, FIXTURE}),
    ),
    Field(
        "max_params",
        "max_params = 1_000_000",
        "max_params=1_000_000",
        _positive,
        frozenset({PYPROJECT, MARKER_ARGS, FIXTURE}),
    ),
    Field(
        "device", 'device = "meta"', "device='meta'", _device, frozenset({PYPROJECT, MARKER_ARGS, FIXTURE})
    ),
    Field("kwargs", "kwargs = { width = 2 }", "kwargs={'width': 2}", _mapping),
    Field("name", 'name = "lenet5"', "name='lenet5'", _text, frozenset({MARKER_ARGS, FIXTURE})),
    Field("train", "train = false", "train=False", _flag, frozenset({PYPROJECT, MARKER_ARGS, FIXTURE})),
    Field("baseline", "baseline = true", "baseline=True", _flag),
    Field("baseline_output_only", "baseline_output_only = true", "baseline_output_only=True", _flag),
    Field("lint", "lint = true", "lint=True", _flag),
    Field(
        "contract",
        'contract = { input = "B x 3 x H x W", output = "B x 10", min_side = 32 }',
        "contract={'input': 'B x 3 x H x W', 'output': 'B x 10'}",
        _contract,
    ),
    Field(
        "dtype",
        'dtype = "long"   # of inputs made from shapes; or per input: input = "B x 50:long"',
        "dtype='long'",
        _dtype,
        frozenset({PYPROJECT, MARKER_ARGS, FIXTURE}),
    ),
    Field(
        "forward_kwargs",
        'forward_kwargs = { task = "seg" }   # passed to forward as they are, never read as shapes',
        "forward_kwargs={'task': 'seg'}",
        _arguments,
    ),
    Field(
        "batch_dim",
        "batch_dim = 1   # the output is sequence-first, (T, B, C)",
        "batch_dim=1",
        _axis,
    ),
    Field(
        "max_memory",
        'max_memory = "6 GiB"   # the estimated peak memory of one training step',
        "max_memory='6 GiB'",
        _size,
        frozenset({PYPROJECT, MARKER_ARGS, FIXTURE}),
    ),
    Field(
        "batch",
        "batch = 64   # the batch size max_memory is estimated at",
        "batch=64",
        _positive,
        frozenset({PYPROJECT, MARKER_ARGS, FIXTURE}),
    ),
    Field(
        "optimizer",
        'optimizer = "AdamW"   # or "SGD(momentum=0.9)": its state counts in max_memory',
        "optimizer='AdamW'",
        _optimizer,
        frozenset({PYPROJECT, MARKER_ARGS, FIXTURE}),
    ),
)
BY_NAME: dict[str, Field] = {f.name: f for f in FIELDS}


def names_on(surface: str) -> tuple[str, ...]:
    """The fields that may be written at ``surface``, in the order of ``FIELDS``."""
    return tuple(f.name for f in FIELDS if surface in f.surfaces)


def parse_check(
    raw: Mapping[str, Any],
    place: Place,
    *,
    name: str | None = None,
    model: nn.Module | None = None,
    root: Path | None = None,
) -> ModelCheck:
    """Validate the fields of one check as written at ``place``; a one-line UsageError if wrong.

    ``name`` is the check's name when the place gives it (a pyproject table's key, a
    fixture's model class); ``model`` a module the caller built.
    """
    known = names_on(place.surface)
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in known:
            examples = {n: place.example(n) for n in known} if place.toml else None
            listed = sorted(known) if place.toml else list(known)
            raise place.error(
                ("has an " if place.toml else "")
                + unknown(str(key), listed, noun="key" if place.toml else "argument", examples=examples)
            )
        if value is None and not place.toml:
            continue  # a keyword left at None means "not given"
        values[key] = BY_NAME[key].check(value, key, place)
    if model is None and values.get("factory") is None:
        raise place.error(f"needs a factory, e.g. {place.example('factory')}")
    if values.get("input") is None and values.get("contract") is None:
        raise place.error(f"needs an input, e.g. {place.example('input')}")
    _consistent(values, place)
    label = name or values.pop("name", None) or _factory_name(values.get("factory"), model)
    values.pop("name", None)
    return ModelCheck(name=str(label), model=model, root=root, **values)


def _consistent(values: dict[str, Any], place: Place) -> None:
    """The fields that only make sense together: inputs with dims, the factory spec."""
    from ..shapes.expected import bind_inputs, parse_expected

    given = values.get("input")
    clash = sorted(set(values.get("forward_kwargs", {})) & set(given)) if isinstance(given, Mapping) else []
    if clash:
        raise place.error(
            f"forward_kwargs {', '.join(map(repr, clash))} is also a keyword input; give each argument once"
        )
    try:
        if values.get("input") is not None:
            bind_inputs(values["input"], values.get("dims"))
        if values.get("output") is not None:
            parse_expected(values["output"])
        factory = values.get("factory")
        if isinstance(factory, str):
            from ..tracing.factory import parse_factory

            parse_factory(factory, values.get("kwargs"))
    except SpecError as exc:
        raise place.error(str(exc), sep=": " if place.toml else " ") from None


def _factory_name(factory: Any, model: Any) -> str:
    if model is not None:
        from ..tracing.wrappers import model_name

        return model_name(model)
    if isinstance(factory, str):
        return factory.rpartition(":")[2].split("(")[0]
    return str(getattr(factory, "__name__", type(factory).__name__))
