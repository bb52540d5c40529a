"""Symbolic shapes: one forward whose sizes are the user's names, on torch's own engine.

The input is a fake tensor (``FakeTensorMode`` with a ``ShapeEnv``) whose sizes
are symbols named as the user named them (``B x 3 x H x W``); parameters and
buffers are swapped for fake twins for the forward (no weights copied, the
model's own objects put back); the project's hooks record one row per module
call, so each row's output comes out as torch's symbolic size and is written as
a formula in the spec syntax (``formulas``).

Every decision torch takes on a size leaves a guard: a check it makes (a pooling
window fits, ``torch.cat``'s maps agree, a Linear's in_features) or a branch
(the forward's own ``if``, or one inside torch). Their conjunction is the input
domain (``input_domain``). Three settings keep it faithful: no duck sizing (H and
W of equal example sizes stay two names), no 0/1 specialisation and torch's
size-oblivious reasoning (a size of 1 takes the general path, as at any other
size, so no guard says "H//16 is not 1"), and torch's Python decompositions
(``enable_python_dispatcher``: ``F.interpolate`` and ``F.pad`` then keep their
sizes symbolic instead of fixing them to the example). ``max_pool1d``, whose
C++ kernel fixes the length, runs as ``max_pool1d_with_indices``.

A guard torch makes inside its own code that is neither a check nor the
forward's branch (memory layout, a fast path for size 1) says nothing about the
sizes a model takes; each such guard is tested: a plain meta forward at the
nearest sizes that break it. If that forward fails, the guard is a check; if it
runs with the same shapes the formulas give, it is dropped; if it runs with
other shapes, it is a branch. A guard that fixes a name to one number and is
no check means torch or the model turned that size into a plain int: the engine
cannot follow it, and says so.

Where the engine cannot follow a model (sizes that depend on tensor values, an
op without a symbolic size rule, TorchScript, uninitialised lazy layers) a
``SymbolicError`` says so in one line; ``trace(..., symbolic=True)`` then gives
the concrete trace with that note.

Imported only when a symbolic trace is asked for (it imports torch's symbolic
shapes, which import sympy and ``torch._dynamo``).
"""

from __future__ import annotations

import logging
import math
import os
import sys
import sysconfig
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

import sympy
import torch
import torch.fx.experimental._config as fx_config
from torch import nn
from torch._dispatch.python import enable_python_dispatcher
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.fx.experimental.symbolic_shapes import DimDynamic, ShapeEnv
from torch.overrides import TorchFunctionMode
from torch.utils._sympy import functions as tf
from torch.utils._sympy.numbers import int_oo
from torch.utils._sympy.value_ranges import ValueRanges

from ..errors import ArgumentTypeError, SpecError, SymbolicError
from ..shapes.spec import CONVENTIONAL_NAMES, is_shape_text, looks_like_shape, parse_shape
from ..shapes.tree import ShapeTree
from .devices import model_device, model_dtype, parse_dtype
from .formulas import Unwritable, Writer, compile_expr, factored, normalised, shortest, tidy, under_domain, write_relation
from .guard import exclusive, guarded
from .input_domain import Condition, InputDomain
from .inputs import Arg, InputSpec, ShapeLeaf, parse_inputs, rebuild
from .modelview import ModelView
from .recorder import Recorder
from .records import LayerRecord, ShapeTrace
from .state import meta_weights, preserved
from .wrappers import is_script_module, type_name, unwrap

#: Example sizes by position in an input when nothing gives one: a batch of 2 (0 and 1 are
#: special to torch), 3 channels, and sides by the number of sides.
_BATCH, _CHANNELS = 2, 3
_SIDES = {1: 1024, 2: 224, 3: 32}
#: How many times the example search moves to sizes that pass the check that failed.
_SEARCH_STEPS = 10

_TORCH_DIR = os.path.dirname(torch.__file__) + os.sep
_OUR_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
_SYMPY_DIR = os.path.dirname(sympy.__file__) + os.sep
_STDLIB_DIR = sysconfig.get_paths()["stdlib"] + os.sep
#: torch's own machinery between a size's use and its guard (not where the size was used).
_ENGINE = tuple(
    _TORCH_DIR + p
    for p in (
        "fx/experimental/",
        "__init__.py",
        "_subclasses/",
        "utils/_sympy/",
        "utils/_python_dispatch.py",
        "utils/_stats.py",
        "_ops.py",
        "_prims_common/wrappers.py",
        "_compile.py",
        "_dynamo/",
        "overrides.py",
        "_logging/",
    )
)
#: Functions whose guards are checks: a False condition raises.
_CHECKS = frozenset({"_check_with", "_check", "_check_is_size", "check"})
#: Engine errors that mean a size depends on tensor values, or an op has no symbolic rule.
_DATA_DEPENDENT = frozenset(
    {
        "GuardOnDataDependentSymNode",
        "DataDependentOutputException",
        "DynamicOutputShapeException",
        "PendingUnbackedSymbolNotFound",
    }
)
_UNSUPPORTED = frozenset({"UnsupportedOperatorException", "UnsupportedFakeTensorException"})
#: Functions whose C++ kernels fix their sizes to the example: run as torch's Python decompositions.
_DECOMPOSED = frozenset(
    {
        torch.nn.functional.interpolate,
        torch.nn.functional.pad,
        torch._C._nn.pad,
        torch.nn.functional.unfold,
        torch.nn.functional.fold,
    }
)
#: ``F.max_pool1d``: without indices its kernel fixes the length (run with indices instead).
_MAX_POOL1D = (torch.nn.functional.max_pool1d, getattr(torch.nn.functional, "_max_pool1d", None))
#: torch loggers that print the engine's own tracebacks when an op refuses its sizes.
_NOISY_LOGGERS = (
    "torch._subclasses.fake_tensor",
    "torch.fx.experimental.symbolic_shapes",
    "torch._dynamo",
    "torch.__trace",
)


# -- the inputs, named ------------------------------------------------------------------------


@dataclass(frozen=True)
class NamedInput:
    """One input tensor given as a spec: each dimension a number (kept) or a name (a symbol)."""

    dims: tuple[int | str, ...]
    dtype: str | None
    text: str


@dataclass
class SymbolicInputs:
    """The inputs of a symbolic trace: their structure, their names and the example sizes given."""

    structure: Any
    names: tuple[str, ...]
    #: Example sizes the caller gave: from a concrete input or ``dims=``.
    given: dict[str, int]
    #: Sizes for the names nothing gave one, by their position in an input.
    defaults: dict[str, int]
    #: Names that are sides of an input (position 2 on): compared in "with H = W".
    sides: tuple[str, ...]
    texts: tuple[str, ...]
    #: Tensors the user passed whose dimensions stay as they are.
    leaves: list[NamedInput] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """True when the caller gave an example size for every name."""
        return all(n in self.given for n in self.names)

    def start(self) -> dict[str, int]:
        """The example sizes to start from: the given ones, defaults for the others."""
        return {n: self.given.get(n, self.defaults[n]) for n in self.names}

    def concrete(self, sizes: Mapping[str, int]) -> InputSpec:
        """The inputs at these sizes, as ``trace`` takes them."""

        def fill(value: Any) -> Any:
            if isinstance(value, NamedInput):
                shape = "x".join(str(sizes[d] if isinstance(d, str) else d) for d in value.dims)
                return f"{shape}:{value.dtype}" if value.dtype else shape
            if isinstance(value, Arg):
                return value
            if isinstance(value, (tuple, list)) and not _is_tensor(value):
                return rebuild(value, [fill(v) for v in value])
            if isinstance(value, Mapping):
                return {k: fill(v) for k, v in value.items()}
            return value

        if isinstance(self.structure, InputSpec):  # positional and keyword inputs (the CLI's)
            args = parse_inputs([fill(a) for a in self.structure.args]).args if self.structure.args else ()
            kwargs = {k: fill(v) for k, v in self.structure.kwargs.items()}
            return InputSpec(args, parse_inputs(kwargs).kwargs if kwargs else {})
        return parse_inputs(fill(self.structure))


def _is_tensor(value: Any) -> bool:
    return isinstance(value, torch.Tensor)


def _dims_of(spec_value: Any, what: str) -> tuple[tuple[int | str, ...], str | None, str]:
    spec = parse_shape(spec_value, what)
    dims: list[int | str] = []
    for d in spec.dims:
        if d.kind == "int":
            assert d.value is not None
            if d.value < 1:
                raise SpecError(f"{what} {spec.text!r}: {d.text} is not a size; every size is at least 1")
            dims.append(d.value)
        elif d.kind == "name":
            dims.append(d.text)
        else:
            raise SpecError(
                f"{what} {spec.text!r}: {d.text!r} is not a name or a number; a symbolic input names "
                "each size it leaves free, e.g. 'B x 3 x H x W' (formulas such as 'H//2' come out, "
                "they do not go in)"
            )
    return tuple(dims), spec.dtype, spec.text


def parse_symbolic(inputs: Any, dims: Mapping[str, Any] | None = None) -> SymbolicInputs:
    """The inputs of a symbolic trace: every shape becomes a ``NamedInput``.

    Names are the ones written (``"B x 3 x H x W"``); the first input given as
    numbers or as a tensor takes the conventional names of its rank (B, C, L /
    B, C, H, W / B, C, D, H, W) and gives their example sizes; ``dims=`` gives
    example sizes by name. Other shapes of numbers and tensors stay as they are.
    """
    given: dict[str, int] = {}
    named: list[NamedInput] = []
    first = [True]

    def conventional(shape: Sequence[int], dtype: str | None, what: str) -> NamedInput:
        names = CONVENTIONAL_NAMES.get(len(shape))
        if names is None:
            raise SpecError(
                f"{what}: a {len(shape)}-d input has no conventional names; name its sizes, e.g. "
                "'B x 3 x T x H x W'"
            )
        given.update(zip(names, (int(s) for s in shape), strict=True))
        leaf = NamedInput(tuple(names), dtype, " x ".join(names))
        named.append(leaf)
        return leaf

    def walk(value: Any, what: str) -> Any:
        if isinstance(value, Arg):
            return value
        if _is_tensor(value):
            if first[0]:
                first[0] = False
                return conventional(tuple(value.shape), str(value.dtype).removeprefix("torch."), what)
            return value
        if is_shape_text(value) or (isinstance(value, (tuple, list)) and value and looks_like_shape(value)):
            shape, dtype, text = _dims_of(value, what)
            is_first, first[0] = first[0], False
            if is_first and all(isinstance(d, int) for d in shape):
                return conventional([int(d) for d in shape], dtype, what)
            leaf = NamedInput(shape, dtype, text)
            named.append(leaf)
            return leaf
        if isinstance(value, (tuple, list)):
            return rebuild(value, [walk(v, f"{what}[{i}]") for i, v in enumerate(value)])
        if isinstance(value, Mapping):
            return {str(k): walk(v, f"{what}[{k!r}]") for k, v in value.items()}
        return value

    if isinstance(inputs, InputSpec):
        structure: Any = InputSpec(
            tuple(walk(a, f"inputs[{i}]") for i, a in enumerate(inputs.args)),
            {k: walk(v, f"inputs[{k!r}]") for k, v in inputs.kwargs.items()},
        )
    else:
        structure = walk(inputs, "inputs")
    names: list[str] = []
    defaults: dict[str, int] = {}
    sides: list[str] = []
    for leaf in named:
        spatial = max(len(leaf.dims) - 2, 0)
        for position, d in enumerate(leaf.dims):
            if not isinstance(d, str):
                continue
            if d not in names:
                names.append(d)
                defaults[d] = _BATCH if position == 0 else _CHANNELS if position == 1 else _SIDES.get(spatial, 64)
            if position >= 2 and d not in sides:
                sides.append(d)
    if not names:
        raise SpecError(
            "inputs: a symbolic trace needs named sizes, e.g. trace(model, 'B x 3 x H x W', symbolic=True)"
        )
    for key, value in (dims or {}).items():
        if key not in names:
            raise SpecError(
                f"dims names {key!r}, which the input does not ({', '.join(names)}); give example sizes of "
                "the names the input spec uses"
            )
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise SpecError(f"dims[{key!r}] = {value!r}: an example size is a whole number of at least 1")
        if key in given and given[key] != value:
            raise SpecError(
                f"dims[{key!r}] = {value} but the input gives {key} = {given[key]}; give the size once"
            )
        given[key] = value
    texts = tuple(leaf.text for leaf in named)
    return SymbolicInputs(structure, tuple(names), given, defaults, tuple(sides), texts, named)


# -- where a guard comes from -------------------------------------------------------------------


@dataclass(frozen=True)
class GuardOrigin:
    """Who made a guard: a ``check`` of torch's, the model's own ``branch`` or ``torch`` code."""

    kind: str
    #: ``file.py:LINE`` of the model's code, or torch's function for torch code.
    where: str
    #: The module call running then (its label).
    layer: str


def _location(frame: FrameType) -> str:
    path = frame.f_code.co_filename
    try:
        rel = os.path.relpath(path)
        path = path if rel.startswith("..") else rel
    except ValueError:  # pragma: no cover  (another drive on Windows)
        pass
    return f"{path}:{frame.f_lineno}"


def guard_origin(frame: FrameType | None, layer: str) -> GuardOrigin:
    """Walk out from torch's guard to the code that used the size."""
    check = False
    library = ""
    while frame is not None:
        filename = frame.f_code.co_filename
        if filename.startswith(_TORCH_DIR):
            name = frame.f_code.co_name
            if name in _CHECKS or (name.startswith("_verify") and filename.endswith("nn/functional.py")):
                check = True
            if not library and not filename.startswith(_ENGINE):
                module = filename[len(_TORCH_DIR) :].removesuffix(".py").replace(os.sep, ".")
                library = f"torch.{module.removesuffix('.__init__')}.{name}"
        elif not filename.startswith((_OUR_DIR, _SYMPY_DIR, _STDLIB_DIR)) and not filename.startswith("<"):
            if check:
                return GuardOrigin("check", library or _location(frame), layer)
            return GuardOrigin("torch" if library else "branch", library or _location(frame), layer)
        frame = frame.f_back
    return GuardOrigin("check" if check else "torch", library or "torch", layer)


class _GuardLog(list):  # type: ignore[type-arg]  (ShapeEnv appends its ShapeGuards here)
    """ShapeEnv's list of guards, noting for each who made it and in which layer."""

    def __init__(self, recorder: Recorder) -> None:
        super().__init__()
        self.recorder = recorder
        self.origins: list[GuardOrigin] = []

    def append(self, guard: Any) -> None:
        stack = self.recorder.stack
        layer = f"{stack[-1].record.label} ({stack[-1].record.type})" if stack else "forward()"
        self.origins.append(guard_origin(sys._getframe(1), layer))
        super().append(guard)


class _Watch(TorchFunctionMode):
    """Notes which guard a failing op made (the check that failed), and routes ``max_pool1d``
    (whose C++ kernel fixes the length to the example) through ``max_pool1d_with_indices``."""

    def __init__(self, log: _GuardLog) -> None:
        super().__init__()
        self.log = log
        self.failed: int | None = None

    def __torch_function__(
        self, func: Any, types: Any, args: Sequence[Any] = (), kwargs: Mapping[str, Any] | None = None
    ) -> Any:
        kwargs = dict(kwargs or {})
        before = len(self.log)
        try:
            if func is torch.max_pool1d:
                return torch.max_pool1d_with_indices(*args, **kwargs)[0]
            if func in _MAX_POOL1D:
                return _max_pool1d(*args, **kwargs)
            if func is torch.nn.functional.batch_norm:
                answer = _batch_norm(*args, **kwargs)
                if answer is not NotImplemented:
                    return answer
            if func in _DECOMPOSED:
                with enable_python_dispatcher():
                    return func(*args, **kwargs)
            return func(*args, **kwargs)
        except Exception:
            if self.failed is None and len(self.log) > before:
                self.failed = len(self.log) - 1
            raise


def _max_pool1d(  # noqa: PLR0917  (mirrors F.max_pool1d)
    input: Any,
    kernel_size: Any,
    stride: Any = None,
    padding: Any = 0,
    dilation: Any = 1,
    ceil_mode: bool = False,
    return_indices: bool = False,
) -> Any:
    """``F.max_pool1d`` through the kernel with indices, which keeps the length symbolic."""
    pooled = torch.nn.functional.max_pool1d_with_indices(
        input, kernel_size, stride, padding, dilation, ceil_mode=ceil_mode, return_indices=True
    )
    return pooled if return_indices else pooled[0]


def _batch_norm(  # noqa: PLR0917  (mirrors F.batch_norm)
    input: Any,
    running_mean: Any = None,
    running_var: Any = None,
    weight: Any = None,
    bias: Any = None,
    training: bool = False,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> Any:
    """Batch norm's output is its input's shape: answered after torch's own checks of the sizes
    (one value per channel in each statistic and parameter, more than one value per channel
    when training), without torch's Python decomposition (a third of a ResNet's symbolic forward).
    Anything unusual goes to torch (NotImplemented)."""
    if not isinstance(input, torch.Tensor) or input.dim() < 2 or not input.is_floating_point() or eps <= 0:
        return NotImplemented
    given = [t for t in (running_mean, running_var, weight, bias) if t is not None]
    if any(not isinstance(t, torch.Tensor) or t.dim() != 1 or t.dtype != input.dtype for t in given):
        return NotImplemented
    if not training and (running_mean is None or running_var is None):
        return NotImplemented
    if training:
        torch.nn.functional._verify_batch_size(input.size())  # type: ignore[attr-defined]
    channels = input.shape[1]
    for t in given:
        torch._check(t.shape[0] == channels, lambda: "batch norm: a statistic or parameter per channel")
    return torch.empty_like(input, memory_format=torch.contiguous_format)


@contextmanager
def _quiet() -> Iterator[None]:
    """torch's engine logs its own tracebacks when an op refuses a size; not for users."""
    loggers = [logging.getLogger(name) for name in _NOISY_LOGGERS]
    saved = [lg.disabled for lg in loggers]
    for lg in loggers:
        lg.disabled = True
    try:
        yield
    finally:
        for lg, was in zip(loggers, saved, strict=True):
            lg.disabled = was


# -- one symbolic forward --------------------------------------------------------------------------


@dataclass
class SymbolicRun:
    """What one forward on fake tensors with named sizes left behind."""

    records: list[LayerRecord]
    output: Any
    env: ShapeEnv
    #: torch's symbol of each name, and back.
    symbols: dict[str, sympy.Symbol]
    names: dict[sympy.Symbol, str]
    guards: list[sympy.Basic]
    origins: list[GuardOrigin]
    example: dict[str, int]
    failure: BaseException | None = None
    #: The index of the guard the failing op made (the check that failed, as it held).
    failed: int | None = None

    def simplified(self, expr: Any) -> Any:
        """``expr`` with what the engine learned (a name it found fixed: C = 3) substituted."""
        if isinstance(expr, int):
            return expr
        return self.env.simplify(expr)


def _new_symbol(env: ShapeEnv, name: str, value: int) -> tuple[sympy.Symbol, torch.SymInt]:
    from torch._dynamo.source import ConstantSource

    source = ConstantSource(name)
    symbol = env.create_symbol(value, source, dynamic_dim=DimDynamic.DYNAMIC, do_not_specialize_zero_one=True)
    env.var_to_range[symbol] = ValueRanges(1, int_oo)  # sizes are positive: nothing to guard below 1
    return symbol, env.create_symintnode(symbol, hint=value, source=source)


def _fake_inputs(
    inputs: SymbolicInputs, spec: InputSpec, sizes: Mapping[str, torch.SymInt], mode: FakeTensorMode,
    dtype: torch.dtype, device: torch.device,
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """The inputs as fake tensors: each named dimension the name's symbol, numbers as written."""
    leaves = iter(inputs.leaves)

    def make(value: Any) -> Any:
        if isinstance(value, ShapeLeaf):
            leaf = next(leaves)
            shape = [sizes[d] if isinstance(d, str) else d for d in leaf.dims]
            with mode:
                return torch.empty(shape, dtype=value.dtype or dtype, device=device)
        if isinstance(value, Arg):
            return value.value
        if isinstance(value, torch.Tensor):
            return mode.from_tensor(torch.empty_like(value, device="meta"), static_shapes=True)
        if isinstance(value, (tuple, list)):
            return rebuild(value, [make(v) for v in value])
        if isinstance(value, Mapping):
            return {k: make(v) for k, v in value.items()}
        return value

    return tuple(make(a) for a in spec.args), {k: make(v) for k, v in spec.kwargs.items()}


def _fake_twin(mode: FakeTensorMode) -> Callable[[torch.Tensor], torch.Tensor]:
    """Fake twins on meta: torch's meta kernels (on CPU, FakeTensor runs some ops, such as
    batch norm, as slow Python decompositions)."""

    def twin(t: torch.Tensor) -> torch.Tensor:
        fake = mode.from_tensor(torch.empty_like(t, device="meta"), static_shapes=True)
        if isinstance(t, nn.Parameter):
            return nn.Parameter(fake, requires_grad=t.requires_grad)
        return fake

    return twin


def _refuse(view: ModelView) -> None:
    """Models the engine cannot follow at all, said before anything runs."""
    if is_script_module(view.root) or view.scripted:
        raise SymbolicError(
            f"{type_name(view.root)} is (or holds) TorchScript, whose sizes torch's symbolic shapes cannot "
            "follow; trace the eager model"
        )
    if view.has_lazy():
        raise SymbolicError(
            f"{type_name(view.root)} has lazy layers that are not initialised yet: their sizes are fixed by "
            "the first forward, so no formula holds for other sizes; run the model once first"
        )


def run_symbolic(
    view: ModelView, inputs: SymbolicInputs, example: Mapping[str, int], *, dtype: torch.dtype, train: bool
) -> SymbolicRun:
    """One forward with every named size a symbol (example sizes as hints). Never raises for
    the model's own failure (it is in ``.failure``); SymbolicError when the engine cannot follow."""
    spec = inputs.concrete(example)
    device = torch.device("meta")
    with fx_config.patch(backed_size_oblivious=True), _quiet():
        env = ShapeEnv(duck_shape=False)
        mode = FakeTensorMode(shape_env=env, allow_non_fake_inputs=True)
        made = {n: _new_symbol(env, n, example[n]) for n in inputs.names}
        symbols = {n: symint for n, (_, symint) in made.items()}
        recorder = Recorder(view)
        log = _GuardLog(recorder)
        env.guards = log
        args, kwargs = _fake_inputs(inputs, spec, symbols, mode, dtype, device)
        watch = _Watch(log)
        output = None
        failure: BaseException | None = None
        with (
            exclusive(view.modules),
            preserved(view, real_run=False, train=train),
            meta_weights(view, twin=_fake_twin(mode)),
        ):
            recorder.attach()
            try:
                with recorder.active(), mode, watch, torch.no_grad():
                    output = view.root(*args, **kwargs)
            except Exception as exc:  # the model's failure at these sizes, or the engine's limit
                _engine_limit(exc, recorder)
                failure = exc
            finally:
                recorder.detach()
        records = recorder.finish()
    return SymbolicRun(
        records=records,
        output=output,
        env=env,
        symbols={n: symbol for n, (symbol, _) in made.items()},
        names={symbol: n for n, (symbol, _) in made.items()},
        guards=[g.expr for g in log],
        origins=list(log.origins),
        example=dict(example),
        failure=failure,
        failed=watch.failed,
    )


def _engine_limit(exc: BaseException, recorder: Recorder) -> None:
    """Raise SymbolicError when ``exc`` is the engine's limit, not the model's failure."""
    kinds = {cls.__name__ for cls in type(exc).__mro__}
    running = recorder.stack[-1].record if recorder.stack else None
    where = f"{running.label} ({running.type})" if running is not None else "the forward"
    if kinds & _DATA_DEPENDENT:
        raise SymbolicError(
            f"{where} makes a size that depends on the values of a tensor (nonzero, .item(), a boolean "
            "mask...): such a size has no formula of the input sizes"
        ) from None
    if kinds & _UNSUPPORTED:
        op = getattr(exc, "func", None)
        raise SymbolicError(
            f"{where} calls {op or 'an op'}, which torch's symbolic shapes have no size rule for"
        ) from None


# -- the formulas of one run -------------------------------------------------------------------------


def _is_size(value: Any) -> bool:
    return isinstance(value, (int, torch.SymInt)) and not isinstance(value, bool)


def _leaf(value: Any) -> bool:
    return isinstance(value, tuple) and not hasattr(value, "_fields") and all(_is_size(v) for v in value)


def map_shapes(tree: Any, fn: Callable[[tuple[Any, ...]], Any]) -> Any:
    """Apply ``fn`` to every shape (tuple of sizes) of a shape tree, keeping the structure."""
    if tree is None:
        return None
    if _leaf(tree):
        return fn(tree)
    if isinstance(tree, tuple):
        items = [map_shapes(v, fn) for v in tree]
        if hasattr(tree, "_fields"):
            try:
                return type(tree)(*items)
            except TypeError:
                return tuple(items)
        return tuple(items)
    if isinstance(tree, list):
        return [map_shapes(v, fn) for v in tree]
    if isinstance(tree, Mapping):
        return {k: map_shapes(v, fn) for k, v in tree.items()}
    return None


def size_expr(value: Any) -> Any:
    """torch's expression of one size (an int stays an int)."""
    if isinstance(value, torch.SymInt):
        return value.node.expr
    return int(value)


def _divisors(expr: sympy.Basic) -> tuple[int, int]:
    """The least common multiple of the divisors in ``expr``, and its largest added constant.

    Together they bound where the condition settles into repeating: a threshold such as
    ``H//16 >= 3`` or ``(H//4 - 3)*(W//4 - 3) = 25`` lies below (constant + 2) * period.
    Multiplying coefficients (``16*(H//4) = H``) set no threshold.
    """
    period = 1
    reach = 0
    for node in sympy.preorder_traversal(expr):
        if isinstance(node, (tf.FloorDiv, tf.CleanDiv, tf.CeilDiv, sympy.Mod, tf.PythonMod, tf.Mod)):
            divisor = node.args[1]
            if isinstance(divisor, sympy.Integer) and int(divisor) > 0:
                period = math.lcm(period, int(divisor))
        elif isinstance(node, sympy.Rational) and not isinstance(node, sympy.Integer):
            period = math.lcm(period, int(node.q))
        elif isinstance(node, sympy.Add):
            constant = node.as_coeff_Add()[0]
            if constant.is_Integer:
                reach = max(reach, abs(int(constant)))
        elif isinstance(node, sympy.core.relational.Relational):
            for side in (node.lhs, node.rhs):
                if side.is_Integer:
                    reach = max(reach, abs(int(side)))
    return min(period, 1 << 22), min(reach, 1 << 22)


def conditions(
    expr: sympy.Basic, run: SymbolicRun, origin: GuardOrigin, kind: str, *, words: bool = True
) -> list[Condition]:
    """A guard as conditions of the domain, one per part of a conjunction (``H//2 >= 1 and
    W//2 >= 1`` is a condition on H and one on W)."""
    parts = expr.args if isinstance(expr, sympy.And) else (expr,)
    return [condition(part, run, origin, kind, words=words) for part in parts]


def condition(
    expr: sympy.Basic, run: SymbolicRun, origin: GuardOrigin, kind: str, *, words: bool = True
) -> Condition:
    """A guard as a condition of the domain: compiled, in words (unless ``words`` is False: a
    condition only searched with), in the user's names."""
    if not words:
        period, reach = _divisors(expr)
        names = frozenset(run.names[s] for s in expr.free_symbols if s in run.names)
        return Condition("", compile_expr(expr, run.names), names, period, reach, kind, origin.layer, origin.where)
    writer = Writer(run.names)
    expr = normalised(expr, frozenset(run.names))
    period, reach = _divisors(expr)
    try:
        text = write_relation(expr, writer)
    except Unwritable as exc:  # said by what it involves and where torch made it
        text = f"a condition {origin.layer} makes on {', '.join(sorted(run.names[s] for s in expr.free_symbols if s in run.names))} ({exc})"
    return Condition(
        text=text,
        holds=compile_expr(expr, run.names),
        names=frozenset(run.names[s] for s in expr.free_symbols if s in run.names),
        period=period,
        reach=reach,
        kind=kind,
        layer=origin.layer,
        where=origin.where,
    )


# -- following a model -----------------------------------------------------------------------------


#: Runs the model on inputs at other sizes, undiagnosed: a trace, or None when it fails.
Probe = Callable[[InputSpec], "ShapeTrace | None"]


@dataclass
class Followed:
    """A model followed symbolically at an example: the run and its domain."""

    run: SymbolicRun
    domain: InputDomain
    inputs: SymbolicInputs


def _prior(run: SymbolicRun, upto: int) -> list[Condition]:
    """The guards before ``upto`` as conditions (the path to a failure, as it went)."""
    out = []
    for expr, origin in zip(run.guards[:upto], run.origins[:upto], strict=True):
        if expr.free_symbols and expr.free_symbols <= set(run.names):
            out.extend(conditions(expr, run, origin, "check", words=False))
    return out


def _roundest(domain: InputDomain, point: dict[str, int], start: Mapping[str, int]) -> dict[str, int]:
    """``point`` moved, name by name, to the size with the most factors of 2 among the allowed
    sizes next to it (within a quarter of it): 28 rather than 31 for a LeNet, 320 rather than
    300 for a model that needs 300, as long as the domain still holds."""
    out = dict(point)
    for name in domain.names:
        if out[name] == start[name]:
            continue
        allowed = domain.own_set(name).allowed
        value = out[name]
        reach = max(1, value // 4)
        low = high = value
        while low > max(1, value - reach) and bool(allowed[low - 2]):
            low -= 1
        while high < min(allowed.numel(), value + reach) and bool(allowed[high]):
            high += 1
        sizes = torch.arange(low, high + 1, dtype=torch.int64)
        grid = {n: sizes if n == name else torch.full_like(sizes, out[n]) for n in domain.names}
        inside = domain.mask(grid)
        fits = [int(v) for v in sizes[inside].tolist()]
        if fits:
            out[name] = min(fits, key=lambda v: (-_twos(v), abs(v - value)))
    return out


def _twos(value: int) -> int:
    return (value & -value).bit_length()


def find_example(
    view: ModelView, inputs: SymbolicInputs, *, dtype: torch.dtype, train: bool, round_sizes: bool = True
) -> tuple[dict[str, int], SymbolicRun]:
    """Sizes the model runs at, starting from the given and default ones: where a check fails,
    the nearest sizes that pass it and every check before it (each step one symbolic forward);
    moved to round sizes (``round_sizes``) for a readable example."""
    start = inputs.start()
    example = dict(start)
    seen: set[tuple[int, ...]] = {tuple(example.values())}
    run = run_symbolic(view, inputs, example, dtype=dtype, train=train)
    for _ in range(_SEARCH_STEPS):
        if run.failure is None or run.failed is None:
            break
        failed = run.guards[run.failed]
        if not failed.free_symbols <= set(run.names):
            break
        needed = condition(sympy.Not(failed), run, run.origins[run.failed], "check", words=False)
        domain = InputDomain(inputs.names, (*_prior(run, run.failed), needed), example)
        point = domain.nearest(start)
        if point is None:
            break
        if round_sizes:
            point = _roundest(domain, point, start)
        key = tuple(point.values())
        if key in seen:
            break
        seen.add(key)
        example = point
        run = run_symbolic(view, inputs, example, dtype=dtype, train=train)
    return example, run


def engine_example(inputs: SymbolicInputs, example: Mapping[str, int]) -> dict[str, int]:
    """The example the engine runs at: sizes of 0 or 1 become 2 (torch treats those apart)."""
    return dict(example)


@dataclass
class SymbolicPlan:
    """A symbolic trace, planned: the model, its named inputs and the example sizes chosen.

    Split from the symbolic forward so that a caller traces the example concretely
    (and diagnoses a failure there) first; ``follow`` then runs the engine.
    """

    module: nn.Module
    view: ModelView
    inputs: SymbolicInputs
    example: dict[str, int]
    dtype: torch.dtype
    train: bool
    #: Why the engine cannot follow this model at all (it is then traced at the example only).
    refused: SymbolicError | None = None
    #: The symbolic forward the example search ended with (reused when it ran at the example).
    run: SymbolicRun | None = None

    def concrete(self) -> InputSpec:
        """The inputs at the example sizes."""
        return self.inputs.concrete(self.example)

    def follow(self, probe: Probe) -> Followed:
        """The symbolic forward at the example, and its domain (``probe`` tests torch's guards)."""
        if self.refused is not None:
            raise self.refused
        with guarded(self.module, type_name(self.module)):
            at = engine_example(self.inputs, self.example)
            run = self.run
            if run is None or run.example != at or run.failure is not None:
                run = run_symbolic(self.view, self.inputs, at, dtype=self.dtype, train=self.train)
            if run.failure is not None:
                raise SymbolicError(
                    f"torch's symbolic shapes cannot run {type_name(self.module)} at {_sizes(at)}, where a "
                    f"plain forward runs ({_short(run.failure)})"
                )
            domain = build_domain(run, self.inputs, probe)
        if not domain.contains(self.example):
            raise SymbolicError(
                f"the example {_sizes(self.example)} takes another branch than {_sizes(at)}, where the engine "
                "ran (sizes of 1 run as 2); give example sizes of at least 2"
            )
        return Followed(run, domain, self.inputs)


def plan_symbolic(
    model: Any,
    inputs: Any,
    *,
    dims: Mapping[str, Any] | None = None,
    dtype: torch.dtype | str | None = None,
    train: bool = False,
) -> SymbolicPlan:
    """Parse the named inputs and choose the example: the sizes given, or found by the engine
    from defaults (a batch of 2, 3 channels, sides of 224) where a check fails."""
    if not isinstance(model, nn.Module):
        raise ArgumentTypeError(f"model must be a torch.nn.Module instance, got {type(model).__name__}")
    module = unwrap(model).module
    parsed = parse_symbolic(inputs, dims)
    view = ModelView.of(module)
    kind = parse_dtype(dtype) or model_dtype(module)
    plan = SymbolicPlan(module, view, parsed, parsed.start(), kind, train)
    try:
        _refuse(view)
        if not parsed.complete:
            with guarded(module, type_name(module)):
                plan.example, plan.run = find_example(view, parsed, dtype=kind, train=train)
    except SymbolicError as exc:
        plan.refused = exc
    return plan


def _sizes(sizes: Mapping[str, int]) -> str:
    return ", ".join(f"{n}={v}" for n, v in sizes.items())


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    first = text[0] if text else type(exc).__name__
    return first if len(first) <= 160 else first[:157] + "..."


def build_domain(run: SymbolicRun, inputs: SymbolicInputs, probe: Probe) -> InputDomain:
    """The domain of a run: its checks and branches; torch's other guards tested by plain runs.

    A guard under test is broken at the nearest sizes where every check (of the whole
    run) and every branch kept so far still holds, so a failing plain forward there
    fails because of that guard.
    """
    names = set(run.names)
    guards = [
        (expr, origin)
        for expr, origin in zip(run.guards, run.origins, strict=True)
        if expr.free_symbols and expr.free_symbols <= names
    ]
    checks = [c for expr, origin in guards if origin.kind == "check" for c in conditions(expr, run, origin, "check")]
    kept: list[Condition] = []
    branches: list[str] = []
    formulas = _record_evaluators(run)
    for expr, origin in guards:
        if origin.kind == "check":
            continue
        verdict = _test_guard(expr, origin, run, inputs, [*checks, *kept], probe, formulas)
        if verdict != "drop":
            kept.extend(conditions(expr, run, origin, verdict))
        if verdict == "branch":
            branches.append(origin.where)
    return InputDomain(
        names=inputs.names,
        conditions=tuple(_dedupe([*checks, *kept])),
        example=dict(run.example),
        inputs=inputs.texts,
        branches=tuple(branches),
        sides=inputs.sides,
    )


def _dedupe(conditions: list[Condition]) -> list[Condition]:
    seen: set[str] = set()
    out = []
    for c in conditions:
        if c.text not in seen:
            seen.add(c.text)
            out.append(c)
    return out


def _pins(expr: sympy.Basic, run: SymbolicRun) -> str | None:
    """The name a guard fixes to one number (``Eq(H, 224)``), if it does."""
    if isinstance(expr, sympy.Eq):
        sides = (expr.lhs, expr.rhs)
        for a, b in (sides, sides[::-1]):
            if isinstance(a, sympy.Symbol) and a in run.names and isinstance(b, sympy.Integer):
                return run.names[a]
    return None


def _test_guard(
    expr: sympy.Basic,
    origin: GuardOrigin,
    run: SymbolicRun,
    inputs: SymbolicInputs,
    kept: list[Condition],
    probe: Probe,
    formulas: list[Callable[[Mapping[str, int]], Any]],
) -> str:
    """``check``, ``branch`` or ``drop``: what a plain forward at the nearest sizes breaking the
    guard shows (SymbolicError when the guard fixes a size that is free)."""
    broken = condition(sympy.Not(expr), run, origin, "check", words=False)
    trial = InputDomain(inputs.names, (*kept, broken), run.example)
    point = trial.nearest(run.example, budget=1 << 16)
    if point is None:
        return "drop"  # implied by the checks already kept
    traced = probe(inputs.concrete(point))
    if traced is None:
        return "check"
    pinned = _pins(expr, run)
    if pinned is not None:
        raise SymbolicError(
            f"{origin.where} in {origin.layer} turns {pinned} into the number {run.example[pinned]} "
            f"(a plain forward also runs at {pinned}={point[pinned]}): its formulas would hold for that "
            "size only"
        )
    if origin.kind == "branch":
        return "branch"
    same = len(traced.layers) == len(run.records) and all(
        _shapes_equal(r.output_shape, f(point)) for r, f in zip(traced.layers, formulas, strict=False)
    )
    return "drop" if same else "branch"


def _shapes_equal(actual: ShapeTree, expected: Any) -> bool:
    return _plain(actual) == _plain(expected)


def _plain(tree: Any) -> Any:
    """A shape tree with namedtuples as tuples (for comparing values only)."""
    if isinstance(tree, tuple):
        return tuple(_plain(v) for v in tree)
    if isinstance(tree, list):
        return [_plain(v) for v in tree]
    if isinstance(tree, Mapping):
        return {k: _plain(v) for k, v in tree.items()}
    return tree


def _record_evaluators(run: SymbolicRun) -> list[Callable[[Mapping[str, int]], Any]]:
    """Per record, a function of the sizes giving its output shape tree."""
    cache: dict[Any, Callable[[Mapping[str, Any]], Any]] = {}

    def compiled(value: Any) -> Callable[[Mapping[str, Any]], Any]:
        expr = run.simplified(size_expr(value))
        if expr not in cache:
            cache[expr] = compile_expr(expr, run.names)
        return cache[expr]

    out = []
    for record in run.records:
        tree = map_shapes(record.output_shape, lambda shape: [compiled(v) for v in shape])

        def evaluate(sizes: Mapping[str, int], tree: Any = tree) -> Any:
            return map_shapes_compiled(tree, sizes)

        out.append(evaluate)
    return out


def map_shapes_compiled(tree: Any, sizes: Mapping[str, int]) -> Any:
    """A tree of lists of compiled sizes evaluated at ``sizes`` (lists become shape tuples)."""
    if tree is None:
        return None
    if isinstance(tree, list) and all(callable(f) for f in tree):
        return tuple(int(f(sizes)) for f in tree)
    if isinstance(tree, tuple):
        items = [map_shapes_compiled(v, sizes) for v in tree]
        return type(tree)(*items) if hasattr(tree, "_fields") else tuple(items)
    if isinstance(tree, list):
        return [map_shapes_compiled(v, sizes) for v in tree]
    if isinstance(tree, Mapping):
        return {k: map_shapes_compiled(v, sizes) for k, v in tree.items()}
    return None


# -- formulas on a concrete trace -----------------------------------------------------------------


def fixed_values(run: SymbolicRun) -> dict[sympy.Expr, int]:
    """Sizes a check pins to one number on the whole domain (a flatten feeding a Linear:
    ``16*(H//4 - 2)*(W//4 - 2)`` is 400 wherever the model runs), by their expanded form."""
    out: dict[sympy.Expr, int] = {}
    for expr, origin in zip(run.guards, run.origins, strict=True):
        if origin.kind != "check" or not isinstance(expr, sympy.Eq):
            continue
        for side, other in ((expr.lhs, expr.rhs), (expr.rhs, expr.lhs)):
            if other.is_Integer and not side.is_Integer:
                out[sympy.expand(side)] = int(other)
    return out


def formula_text(
    shape: Sequence[Any],
    run: SymbolicRun,
    writer: Writer,
    residues: Mapping[sympy.Symbol, Any],
    fixed: Mapping[sympy.Expr, int],
) -> str:
    """One shape as a spec: ``B x 64 x H//4 x W//4``; each size in its shortest exact form."""
    if not shape:
        return "()"
    parts = []
    for value in shape:
        expr = run.simplified(size_expr(value))
        if not isinstance(expr, int) and sympy.expand(expr) in fixed:
            parts.append(str(fixed[sympy.expand(expr)]))
            continue
        known = under_domain(expr, residues)
        parts.append(shortest(writer, known, tidy(known), factored(known), expr, tidy(expr)))
    return " x ".join(parts)


def attach(result: ShapeTrace, followed: Followed, example: Mapping[str, int]) -> ShapeTrace:
    """Give each row of the concrete ``result`` its output formula, and the trace its domain.

    The formulas evaluated at the example must be the concrete sizes, row by row;
    a SymbolicError says where they are not.
    """
    run, domain = followed.run, followed.domain
    if len(run.records) != len(result.layers) or any(
        (a.name, a.call) != (b.name, b.call) for a, b in zip(run.records, result.layers, strict=True)
    ):
        raise SymbolicError("the symbolic forward called other modules than the plain one at the example")
    writer = Writer(run.names)
    residues = {run.symbols[n]: r for n, r in domain.residues().items()}
    evaluators = _record_evaluators(run)
    fixed = fixed_values(run)
    for symbolic, concrete, evaluate in zip(run.records, result.layers, evaluators, strict=True):
        if not _shapes_equal(concrete.output_shape, evaluate(example)):
            raise SymbolicError(
                f"the formula of {concrete.label} ({concrete.type}) does not give the size torch "
                "computes at the example"
            )
        try:
            concrete.output_formula = map_shapes(
                symbolic.output_shape, lambda shape: formula_text(shape, run, writer, residues, fixed)
            )
        except Unwritable as exc:
            raise SymbolicError(f"the output size of {concrete.label} ({concrete.type}) is {exc}") from None
    result.domain = domain
    result.symbolic = {
        "inputs": list(followed.inputs.texts),
        "example": dict(example),
        "domain": domain.words(),
    }
    return result


# -- the domain around a failing input (for the diagnostics' size fixes) -------------------------


@dataclass(frozen=True)
class NearbyDomain:
    """The input domain found from a failing input: its sides named, where the model runs."""

    domain: InputDomain
    #: The first input's sides, named (``H``, ``W``), and their sizes in the failing input.
    sides: tuple[str, ...]
    given: dict[str, int]
    #: The first input's shape at given sizes of the sides (batch and channels kept).
    head: tuple[int, ...]

    def shape(self, sizes: Mapping[str, int]) -> tuple[int, ...]:
        return (*self.head, *(sizes[n] for n in self.sides))


def _named_first(inputs: InputSpec, text: str) -> InputSpec:
    """The inputs with the first shape written as ``text`` (named sides), the others as text."""
    done = False

    def swap(value: Any) -> Any:
        nonlocal done
        if isinstance(value, ShapeLeaf):
            dtype = f":{str(value.dtype).removeprefix('torch.')}" if value.dtype is not None else ""
            if not done:
                done = True
                return f"{text}{dtype}"
            return "x".join(map(str, value.shape)) + dtype
        if isinstance(value, (tuple, list)):
            return rebuild(value, [swap(v) for v in value])
        if isinstance(value, Mapping):
            return {k: swap(v) for k, v in value.items()}
        return value

    return InputSpec(tuple(swap(a) for a in inputs.args), {k: swap(v) for k, v in inputs.kwargs.items()})


def domain_near(view: ModelView, inputs: InputSpec, *, dtype: torch.dtype, train: bool, probe: Probe) -> NearbyDomain | None:
    """The domain of the sizes the model runs at, found from ``inputs`` where it fails: the
    first input's sides named, the nearest sizes where it runs found by the engine (fewest
    sides changed), the domain there. None where the engine cannot follow the model or finds
    no such sizes."""
    shape = inputs.first_shape()
    names = CONVENTIONAL_NAMES.get(len(shape)) if shape is not None else None
    if shape is None or names is None or len(shape) < 3 or any(isinstance(v, torch.Tensor) for v in inputs.tensors()):
        return None
    sides = tuple(names[2:])
    try:
        _refuse(view)
        parsed = parse_symbolic(_named_first(inputs, " x ".join([str(shape[0]), str(shape[1]), *sides])))
        given = dict(zip(sides, shape[2:], strict=True))
        parsed.defaults.update(given)
        with guarded(view.root, type_name(view.root)):
            example, run = find_example(view, parsed, dtype=dtype, train=train, round_sizes=False)
            if run.failure is not None:
                return None
            domain = build_domain(run, parsed, probe)
    except (SymbolicError, SpecError):
        return None
    return NearbyDomain(domain, sides, given, tuple(shape[:2]))
