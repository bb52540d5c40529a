"""The symbolic engine: one forward whose sizes are the user's names, on torch's own shapes.

The inputs are fake tensors (``FakeTensorMode`` with a ``ShapeEnv``) whose sizes
are symbols named as the user named them (``B x 3 x H x W``, ``named_inputs``);
parameters and buffers are swapped for fake twins for the forward (on meta, no
weights copied, the model's own objects put back: ``state.meta_weights``), under
``state.preserved``; the project's recorder hooks record one row per module call,
so each row's output comes out as torch's symbolic sizes.

Every decision torch takes on a size leaves a guard: a check it makes (a pooling
window fits, ``torch.cat``'s maps agree, a Linear's in_features) or a branch (the
forward's own ``if``, or one inside torch). ``guard_origin`` tells them apart by
walking the stack when torch records the guard (``symbolic_follow`` turns them
into the input domain). The settings that keep the sizes faithful: no duck sizing
(H and W of equal example sizes stay two names), no 0/1 specialisation and torch's
size-oblivious reasoning (a size of 1 takes the general path, as at any other
size), and, for the few functions whose C++ kernels fix sizes to the example
(``F.interpolate``, ``F.pad``, ``F.unfold``), torch's Python decompositions
(``enable_python_dispatcher``); ``max_pool1d`` runs as ``max_pool1d_with_indices``.
Batch norm, whose output is its input's shape, is answered after torch's own
checks of its sizes (its Python decomposition is a third of a ResNet's forward).

Where the engine cannot follow a model (sizes that depend on tensor values, an op
without a symbolic size rule, TorchScript, lazy layers not initialised) a
``SymbolicError`` says so in one line. torch's own logs of refused ops are muted.

Imported only when a symbolic trace is asked for: it imports torch's symbolic
shapes, sympy and ``torch._dynamo`` (about a second on a cold start).
"""

from __future__ import annotations

import logging
import os
import sys
import sysconfig
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
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
from torch.utils._sympy.numbers import int_oo
from torch.utils._sympy.value_ranges import ValueRanges

from ..errors import SymbolicError
from .formulas import compile_expr
from .guard import exclusive
from .inputs import Arg, InputSpec, ShapeLeaf, rebuild
from .modelview import ModelView
from .named_inputs import SymbolicInputs
from .recorder import Recorder
from .records import LayerRecord
from .state import meta_weights, preserved
from .wrappers import is_script_module, type_name

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
_TORCH_INIT = _TORCH_DIR + "__init__.py"
_ENGINE_LOCK = threading.RLock()
#: A size used as a bool or a number in Python: how the model's own ``if`` reaches a guard.
_CONVERSIONS = frozenset({"__bool__", "__int__", "__index__", "__float__"})
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
    """Walk out from torch's guard to the code that used the size.

    A check runs inside ``torch._check`` (or nn.functional's ``_verify_*``); the model's
    own branch reaches the guard from its code through a size used as a bool or an int
    (``SymBool.__bool__``, ``SymInt.__int__``); anything else is torch's: its Python
    code, or a C++ op the model called (``x.reshape`` deciding on strides).
    """
    check = converted = False
    library = ""
    while frame is not None:
        filename = frame.f_code.co_filename
        if filename.startswith(_TORCH_DIR):
            name = frame.f_code.co_name
            if name in _CHECKS or (name.startswith("_verify") and filename.endswith("nn/functional.py")):
                check = True
            if name in _CONVERSIONS and filename == _TORCH_INIT:
                converted = True
            if not library and not filename.startswith(_ENGINE):
                module = filename[len(_TORCH_DIR) :].removesuffix(".py").replace(os.sep, ".")
                library = f"torch.{module.removesuffix('.__init__')}.{name}"
        elif not filename.startswith((_OUR_DIR, _SYMPY_DIR, _STDLIB_DIR)) and not filename.startswith("<"):
            if check:
                return GuardOrigin("check", library or _location(frame), layer)
            if library:
                return GuardOrigin("torch", library, layer)
            if converted:
                return GuardOrigin("branch", _location(frame), layer)
            return GuardOrigin("torch", f"a tensor op at {_location(frame)}", layer)
        frame = frame.f_back
    return GuardOrigin("check" if check else "torch", library or "torch", layer)


class _GuardLog(list[Any]):  # ShapeEnv appends its ShapeGuards here
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


class _EngineMode(TorchFunctionMode):
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
        torch._check(  # type: ignore[no-untyped-call]
            t.shape[0] == channels, lambda: "batch norm: a statistic or parameter per channel"
        )
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
    symint = env.create_symintnode(symbol, hint=value, source=source)
    assert isinstance(symint, torch.SymInt)
    return symbol, symint


def _fake_inputs(
    inputs: SymbolicInputs,
    spec: InputSpec,
    sizes: Mapping[str, torch.SymInt],
    *,
    mode: FakeTensorMode,
    dtype: torch.dtype,
    device: torch.device,
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
        with mode:  # made by the mode itself: the same fake tensor as converting one, cheaper
            fake = torch.empty_strided(t.shape, t.stride(), dtype=t.dtype, device="meta")
        if isinstance(t, nn.Parameter):
            return nn.Parameter(fake, requires_grad=t.requires_grad)
        return fake

    return twin


def refuse(view: ModelView) -> None:
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
    # torch's config and loggers are global: one symbolic forward at a time, in any thread
    # (the model's own locks first, as every trace takes them, then the engine's)
    with (
        exclusive(view.modules),
        _ENGINE_LOCK,
        fx_config.patch(backed_size_oblivious=True),  # type: ignore[attr-defined]
        _quiet(),
    ):
        env = ShapeEnv(duck_shape=False)
        mode = FakeTensorMode(shape_env=env, allow_non_fake_inputs=True)
        made = {n: _new_symbol(env, n, example[n]) for n in inputs.names}
        symbols = {n: symint for n, (_, symint) in made.items()}
        recorder = Recorder(view)
        log = _GuardLog(recorder)
        env.guards = log
        args, kwargs = _fake_inputs(inputs, spec, symbols, mode=mode, dtype=dtype, device=device)
        watch = _EngineMode(log)
        output = None
        failure: BaseException | None = None
        with preserved(view, real_run=False, train=train), meta_weights(view, twin=_fake_twin(mode)):
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
    if failure is None:
        _sizes_from_values(records, {symbol for symbol, _ in made.values()})
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


def _sizes_from_values(records: Sequence[LayerRecord], names: set[sympy.Symbol]) -> None:
    """SymbolicError when a row's output has a size that is no formula of the names (torch's
    ``nonzero``, a boolean mask: it depends on the values)."""

    def unnamed(shape: tuple[Any, ...]) -> bool:
        return any(isinstance(v, torch.SymInt) and not v.node.expr.free_symbols <= names for v in shape)

    for record in records:
        found: list[bool] = []
        map_shapes(record.output_shape, _collect(found, unnamed))
        if any(found):
            raise SymbolicError(
                f"{record.label} ({record.type}) makes a size that depends on the values of a tensor "
                "(nonzero, .item(), a boolean mask...): such a size has no formula of the input sizes"
            )


def _collect(found: list[bool], test: Callable[[tuple[Any, ...]], bool]) -> Callable[[tuple[Any, ...]], None]:
    """``test`` of each shape, appended to ``found``."""

    def collect(shape: tuple[Any, ...]) -> None:
        found.append(test(shape))

    return collect


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


# -- sizes of a run's records ------------------------------------------------------------


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


def shapes_equal(actual: Any, expected: Any) -> bool:
    """The same sizes in the same structure (namedtuples and tuples alike)."""
    return bool(_plain(actual) == _plain(expected))


def _plain(tree: Any) -> Any:
    """A shape tree with namedtuples as tuples (for comparing values only)."""
    if isinstance(tree, tuple):
        return tuple(_plain(v) for v in tree)
    if isinstance(tree, list):
        return [_plain(v) for v in tree]
    if isinstance(tree, Mapping):
        return {k: _plain(v) for k, v in tree.items()}
    return tree


def record_evaluators(run: SymbolicRun) -> list[Callable[[Mapping[str, int]], Any]]:
    """Per record, a function of the sizes giving its output shape tree."""
    cache: dict[Any, Callable[[Mapping[str, Any]], Any]] = {}

    def compiled(value: Any) -> Callable[[Mapping[str, Any]], Any]:
        expr = run.simplified(size_expr(value))
        if expr not in cache:
            cache[expr] = compile_expr(expr, run.names)
        return cache[expr]

    out: list[Callable[[Mapping[str, int]], Any]] = []
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
