"""The bytes an optimizer's state takes: the tensors its ``step()`` creates, per parameter.

Read from the source of torch.optim (2.13) and checked against a real ``step()``
of each class in ``tests/inspection/test_optimizer_state.py``:

- every class but SGD and Muon keeps a ``step`` count per parameter as a 0-d tensor
  (float32; float64 when the default dtype is float64 and the group is not fused).
  It lives on the CPU unless ``capturable`` or ``fused`` is set: a few bytes either way;
- Adam and AdamW: ``exp_avg`` and ``exp_avg_sq``, one copy of the parameter each;
  ``amsgrad=True`` adds ``max_exp_avg_sq``, a third;
- NAdam: the same two copies and a second 0-d tensor, ``mu_product``; RAdam and
  Adamax (``exp_inf``): two copies; Adadelta (``square_avg``, ``acc_delta``): two;
- SGD: ``momentum_buffer`` with momentum, nothing without; Muon: ``momentum_buffer``;
- RMSprop: ``square_avg``, plus ``momentum_buffer`` with momentum and ``grad_avg``
  when centered (one to three copies);
- Adagrad: ``sum`` (one copy), made when the optimizer is constructed, for every
  parameter in its groups whether or not it ever gets a gradient;
- Rprop: ``prev`` and ``step_size`` (two copies); ASGD: ``ax`` (one copy) and three
  0-d tensors (``step``, ``eta``, ``mu``);
- Adafactor: a row and a column factor (the parameter's shape with the last, or
  the second-to-last, size set to 1) for parameters of two or more dimensions, a
  full ``variance`` copy for the others.

``foreach`` and ``fused`` change how the update runs, not what is kept. Copies take
the parameter's dtype. State is made only for parameters that receive a gradient
(Adagrad excepted), which a memory pass knows from the autograd graph. An
optimizer that has already stepped is measured from its ``state`` instead. LBFGS
(flat history buffers whose number depends on the run) and classes outside
torch.optim are not counted, and the report says so.
"""

from __future__ import annotations

import ast
import inspect
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import ArgumentTypeError, SpecError

if TYPE_CHECKING:
    import torch

Shape = tuple[int, ...]
#: ``rule(group, shape)`` -> (copies of the parameter, 0-d tensors, other shapes in its dtype).
StateRule = Callable[[Mapping[str, Any], Shape], tuple[int, int, tuple[Shape, ...]]]


def _sgd(group: Mapping[str, Any], shape: Shape) -> tuple[int, int, tuple[Shape, ...]]:
    return (1 if group.get("momentum", 0) != 0 else 0), 0, ()


def _adam(group: Mapping[str, Any], shape: Shape) -> tuple[int, int, tuple[Shape, ...]]:
    return 3 if group.get("amsgrad") else 2, 1, ()


def _rmsprop(group: Mapping[str, Any], shape: Shape) -> tuple[int, int, tuple[Shape, ...]]:
    return 1 + (group.get("momentum", 0) > 0) + bool(group.get("centered")), 1, ()


def _adafactor(group: Mapping[str, Any], shape: Shape) -> tuple[int, int, tuple[Shape, ...]]:
    if len(shape) < 2:
        return 1, 1, ()
    return 0, 1, ((*shape[:-1], 1), (*shape[:-2], 1, shape[-1]))


def _fixed(copies: int, scalars: int) -> StateRule:
    return lambda group, shape: (copies, scalars, ())


#: torch.optim class name -> what its state holds per parameter.
RULES: dict[str, StateRule] = {
    "SGD": _sgd,
    "Adam": _adam,
    "AdamW": _adam,
    "NAdam": _fixed(2, 2),
    "RAdam": _fixed(2, 1),
    "Adamax": _fixed(2, 1),
    "Adadelta": _fixed(2, 1),
    "Adagrad": _fixed(1, 1),
    "RMSprop": _rmsprop,
    "Rprop": _fixed(2, 1),
    "ASGD": _fixed(1, 3),
    "Muon": _fixed(1, 0),
    "Adafactor": _adafactor,
}
#: Classes whose state exists for every parameter of their groups from construction on.
_EAGER = frozenset({"Adagrad"})
NOT_COUNTED = "not counted"


@dataclass(frozen=True)
class OptimizerSpec:
    """An optimizer named in text: ``"AdamW"``, ``"SGD(momentum=0.9)"``."""

    name: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)


def parse_optimizer(text: str, what: str | None = None) -> OptimizerSpec:
    """``"SGD(momentum=0.9, nesterov=True)"`` -> OptimizerSpec; torch-free (checks the syntax only).

    Errors start with ``what``, how the value was written (``optimizer='SGD('``).
    """
    what = what or f"optimizer={text!r}"
    example = "e.g. 'AdamW' or 'SGD(momentum=0.9)'"
    source = text.strip().removeprefix("torch.optim.")
    try:
        node = ast.parse(source, mode="eval").body
    except SyntaxError:
        raise SpecError(f"{what} is not an optimizer name; {example}") from None
    kwargs: dict[str, Any] = {}
    if isinstance(node, ast.Call):
        if node.args:
            raise SpecError(f"{what}: give settings by name, {example}")
        try:
            kwargs = {k.arg: ast.literal_eval(k.value) for k in node.keywords if k.arg}
        except ValueError:
            raise SpecError(f"{what}: settings must be literals (numbers, True/False); {example}") from None
        node = node.func
    if not isinstance(node, ast.Name):
        raise SpecError(f"{what} is not a torch.optim class name; {example}")
    return OptimizerSpec(node.id, kwargs)


@dataclass(frozen=True)
class ParamInfo:
    """A parameter as a memory pass saw it."""

    name: str
    shape: Shape
    dtype: torch.dtype
    #: ``requires_grad``.
    trainable: bool
    #: Trainable and reached by the forward's autograd graph: it gets a gradient.
    gets_grad: bool

    @property
    def bytes(self) -> int:
        import math

        return math.prod(self.shape) * self.dtype.itemsize


@dataclass(frozen=True)
class OptimizerState:
    """What an optimizer keeps, or why it is not counted."""

    #: Class name; None when no optimizer was given.
    name: str | None
    #: None: not counted (see ``note``).
    bytes: int | None
    #: ``"estimated"`` (from the class and its param groups), ``"measured"`` (its state), ``"not counted"``.
    how: str
    note: str
    tensors: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _scalar_itemsize(group: Mapping[str, Any]) -> int:
    import torch

    if group.get("fused"):
        return 4
    return 8 if torch.get_default_dtype() == torch.float64 else 4


def _tensor_bytes(value: Any, seen: set[int]) -> tuple[int, int]:
    """Bytes and count of the tensors in a state entry (lists and dicts walked), each once."""
    import torch

    if isinstance(value, torch.Tensor):
        if id(value) in seen:
            return 0, 0
        seen.add(id(value))
        return value.numel() * value.element_size(), 1
    items: Iterable[Any] = ()
    if isinstance(value, Mapping):
        items = value.values()
    elif isinstance(value, (list, tuple)):
        items = value
    total = count = 0
    for item in items:
        b, c = _tensor_bytes(item, seen)
        total, count = total + b, count + c
    return total, count


def _known_class(cls: type) -> str | None:
    """The torch.optim class ``cls`` is (or derives from) that the rules know."""
    for base in cls.__mro__:
        if base.__name__ in RULES and base.__module__.startswith("torch.optim"):
            return base.__name__
    return None


def _resolve(optimizer: Any) -> tuple[type, list[Mapping[str, Any]] | None, Any]:
    """(class, param groups or None for "all trainable parameters", the instance or None)."""
    import torch

    if isinstance(optimizer, torch.optim.Optimizer):
        return type(optimizer), list(optimizer.param_groups), optimizer
    spec: OptimizerSpec | None = None
    if isinstance(optimizer, str):
        spec = parse_optimizer(optimizer)
    elif isinstance(optimizer, OptimizerSpec):
        spec = optimizer
    if spec is not None:
        classes = {n.lower(): getattr(torch.optim, n) for n in dir(torch.optim) if n[:1].isupper()}
        cls = classes.get(spec.name.lower())
        if not (isinstance(cls, type) and issubclass(cls, torch.optim.Optimizer)):
            known = ", ".join(sorted(RULES))
            raise SpecError(f"optimizer={spec.name!r} is not a torch.optim optimizer; one of {known}")
        return cls, [_defaults(cls, spec.kwargs)], None
    if isinstance(optimizer, type) and issubclass(optimizer, torch.optim.Optimizer):
        return optimizer, [_defaults(optimizer, {})], None
    raise ArgumentTypeError(
        f"optimizer={optimizer!r} ({type(optimizer).__name__}) is not an optimizer; pass a "
        "torch.optim.Optimizer, its class, or a name such as 'AdamW' or 'SGD(momentum=0.9)'"
    )


def _defaults(cls: type, kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """A param group as ``cls(params, **kwargs)`` would make it."""
    group = {
        name: p.default
        for name, p in inspect.signature(cls).parameters.items()
        if p.default is not inspect.Parameter.empty
    }
    unknown = sorted(set(kwargs) - set(group))
    if unknown:
        raise SpecError(
            f"optimizer {cls.__name__} has no setting {unknown[0]!r}; "
            f"its settings: {', '.join(sorted(group))}"
        )
    group.update(kwargs)
    return group


def optimizer_state(
    optimizer: Any, by_id: Mapping[int, ParamInfo], params: list[ParamInfo]
) -> OptimizerState:
    """The state ``optimizer`` keeps for the parameters a memory pass saw.

    ``by_id`` maps ``id()`` of the model's own parameters (the objects an optimizer
    holds) to what the pass learnt of them; ``params`` are all of them, of which an
    optimizer given as a class or a name holds the trainable ones.
    """
    if optimizer is None:
        return OptimizerState(None, None, NOT_COUNTED, "no optimizer given")
    cls, groups, instance = _resolve(optimizer)
    name = cls.__name__
    if instance is not None and any(instance.state.values()):
        found: set[int] = set()
        total = count = 0
        for state in instance.state.values():
            b, c = _tensor_bytes(state, found)
            total, count = total + b, count + c
        return OptimizerState(name, total, "measured", f"{name}: the {count} tensors of its state", count)
    known = _known_class(cls)
    if known is None:
        why = (
            "its history buffers depend on the run"
            if name == "LBFGS"
            else "pytest-cnnshape does not know what it keeps"
        )
        return OptimizerState(
            name, None, NOT_COUNTED, f"{name}: {why}; after one step() its state is measured"
        )
    rule = RULES[known]
    eager = known in _EAGER
    total = count = 0
    seen: set[Any] = set()
    for group in groups or ():
        members = (
            [(id(p), by_id.get(id(p)) or _info_of(p)) for p in group["params"]]
            if instance is not None
            else [(info.name, info) for info in params if info.trainable]
        )
        scalar = _scalar_itemsize(group)
        for key, info in members:
            if key in seen or not (info.gets_grad or eager):
                continue
            seen.add(key)
            copies, scalars, shapes = rule(group, info.shape)
            extra = sum(_numel(s) for s in shapes) * info.dtype.itemsize
            total += copies * info.bytes + scalars * scalar + extra
            count += copies + scalars + len(shapes)
    label = name if known == name else f"{name} (as {known})"
    return OptimizerState(
        name, total, "estimated", f"{label}: {count} state tensors for {len(seen)} parameters", count
    )


def _numel(shape: Shape) -> int:
    import math

    return math.prod(shape)


def _info_of(p: Any) -> ParamInfo:
    """A parameter the optimizer holds that is not the model's: as it is."""
    return ParamInfo("?", tuple(p.shape), p.dtype, bool(p.requires_grad), bool(p.requires_grad))
