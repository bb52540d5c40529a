"""Shape contracts over a model's whole input domain, tested by hypothesis.

A meta trace costs milliseconds, so hypothesis can try a hundred input sizes per
test; when one breaks the contract it shrinks to the smallest such input and the
error shows that input with the full diagnostic::

    assert_shape_contract(Net(), image_shapes(min_side=16, max_side=256), "B x 10")
    ShapeContractError: Net breaks "B x 10" for input [1, 3, 27, 27] (B=1, C=3, H=W=27), ...
      4 (MaxPool2d) runs out of pixels: ...

Runs are deterministic by default: ``derandomize=True`` (the same examples on
every run, every machine) and no example database (nothing written to
``.hypothesis/``). Pass ``settings=`` to explore with fresh randomness instead.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .errors import SpecError
from .shapes import Shape, format_shape

if TYPE_CHECKING:
    import torch
    from hypothesis import settings as Settings
    from hypothesis import strategies as st
    from torch import nn

    from .records import ShapeTrace

__tracebackhide__ = True

#: What a contract run uses unless told otherwise.
DEFAULT_EXAMPLES = 100


class ShapeContractError(AssertionError):
    """A model broke its shape contract; the message has the smallest failing input."""

    def __init__(self, message: str, shape: Shape, cause: BaseException | None = None) -> None:
        super().__init__(message)
        #: The smallest failing input hypothesis found.
        self.shape = shape
        #: The ShapeMismatchError of the failing trace, when the forward failed.
        self.error = cause


class _Violation(Exception):
    """Raised inside the hypothesis run so that it shrinks; the explanation comes after."""

    def __init__(self, shape: Shape, names: dict[str, int]) -> None:
        super().__init__(format_shape(shape))
        self.shape, self.names = shape, names


def named_sizes(shape: Shape) -> str:
    """``B=1, C=3, H=W=27``: a concrete input by the conventional dimension names."""
    from .spec import CONVENTIONAL_NAMES

    names = CONVENTIONAL_NAMES.get(len(shape))
    if names is None:
        return format_shape(shape)
    parts: list[tuple[list[str], int]] = []
    for name, size in zip(names, shape, strict=True):
        spatial = name in ("D", "H", "W", "L")
        if spatial and parts and parts[-1][1] == size and parts[-1][0][0] in ("D", "H", "W"):
            parts[-1][0].append(name)
        else:
            parts.append(([name], size))
    return ", ".join("=".join(names_) + f"={size}" for names_, size in parts)


def shape_strategy(inputs: Any, dims: Mapping[str, Any] | None = None, *, min_side: int = 1,
                   max_side: int = 64, batch: int | tuple[int, int] = (1, 4), square: bool = False,
                   multiple_of: int = 1) -> st.SearchStrategy[tuple[Shape, dict[str, int]]]:
    """Concrete input shapes, with the size each name stands for.

    ``inputs`` is a hypothesis strategy of shapes, or a symbolic shape such as
    ``"B x 3 x H x W"``; each name takes its value from ``dims`` (an int, a
    ``(min, max)`` pair or a strategy) or, for the conventional names, from
    ``batch`` (B, N) and ``min_side``/``max_side``/``multiple_of`` (D, H, W, L;
    one shared value with ``square``).
    """
    from hypothesis import strategies as st

    from .domain import BATCH_NAMES, SIDE_NAMES, check_names
    from .spec import conventional_bindings, parse_shape

    if isinstance(inputs, st.SearchStrategy):
        return inputs.map(lambda s: (tuple(s), conventional_bindings(tuple(s))))
    if isinstance(min_side, bool) or not isinstance(min_side, int) or not 1 <= min_side <= max_side:
        raise ValueError(f"min_side={min_side!r}, max_side={max_side!r}: need whole numbers with "
                         "1 <= min_side <= max_side, e.g. min_side=16, max_side=256")
    if multiple_of < 1 or min_side > max_side // multiple_of * multiple_of:
        raise ValueError(f"no side in [{min_side}, {max_side}] is a multiple of {multiple_of}; widen "
                         "the range or lower multiple_of")
    spec = parse_shape(inputs, "contract input")
    given = dict(dims or {})
    check_names(spec, given)
    side = st.integers(-(-min_side // multiple_of), max_side // multiple_of).map(lambda n: n * multiple_of)
    draws: dict[str, st.SearchStrategy[int]] = {}
    shared_side = side if square else None
    for name in sorted(spec.names):
        value = given.get(name)
        if isinstance(value, st.SearchStrategy):
            draws[name] = value
        elif isinstance(value, int) and not isinstance(value, bool):
            draws[name] = st.just(value)
        elif isinstance(value, (tuple, list)) and len(value) == 2:
            draws[name] = st.integers(int(value[0]), int(value[1]))
        elif value is not None:
            raise SpecError(f"dims[{name!r}] = {value!r}: give an int, a (min, max) pair or a "
                            "hypothesis strategy")
        elif name in BATCH_NAMES:
            low, high = (batch, batch) if isinstance(batch, int) else batch
            draws[name] = st.integers(low, high)
        else:
            draws[name] = side

    @st.composite
    def shapes(draw: st.DrawFn) -> tuple[Shape, dict[str, int]]:
        values = {name: draw(strategy) for name, strategy in draws.items()
                  if not (shared_side is not None and name in SIDE_NAMES and name not in given)}
        if shared_side is not None:
            common = draw(shared_side)
            values.update({n: common for n in spec.names if n in SIDE_NAMES and n not in given})
        return spec.concrete(values, "contract input"), values

    return shapes()


def _settings(max_examples: int, derandomize: bool, settings: Settings | None) -> Settings:
    from hypothesis import HealthCheck
    from hypothesis import settings as hypothesis_settings

    if settings is not None:
        return settings
    return hypothesis_settings(
        max_examples=max_examples, derandomize=derandomize, database=None, deadline=None,
        report_multiple_bugs=False,  # one smallest failing input, not one per failure site
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


def assert_shape_contract(
    model: nn.Module,
    shapes: Any,
    output: Any,
    *,
    dims: Mapping[str, Any] | None = None,
    device: str | torch.device = "auto",
    max_examples: int = DEFAULT_EXAMPLES,
    derandomize: bool = True,
    seed: int | None = None,
    settings: Settings | None = None,
    **strategy_options: Any,
) -> None:
    """Check that ``model`` maps every input ``shapes`` can draw to ``output``.

    ``shapes``: a hypothesis strategy of input shapes (``image_shapes(...)``) or a
    symbolic shape (``"B x 3 x H x W"``, sizes from ``dims`` and ``min_side``,
    ``max_side``, ``batch``, ``square``, ``multiple_of``). ``output``: a symbolic
    spec (``"B x 10"``, ``"B x C x H//8 x W//8"``) or a callable of the input
    shape returning the expected shape. Raises ShapeContractError with the
    smallest failing input and its diagnostic.

    ``derandomize=True`` (default) draws the same examples on every run;
    ``derandomize=False, seed=1234`` draws random ones, reproducibly; ``settings=``
    (a ``hypothesis.settings``) replaces all of that.
    """
    from hypothesis import given

    from .contract import compare_output, parse_expected
    from .records import ShapeTrace
    from .tracer import check_model, prober

    model = check_model(model)
    strategy = shape_strategy(shapes, dims, **strategy_options)
    expected_fn: Callable[[Shape], Any] | None = output if callable(output) else None
    expected = None if expected_fn is not None else parse_expected(output, "contract output")
    # The search only needs pass/fail: undiagnosed meta runs. The smallest failing
    # input is traced once more at the end, for the full diagnostic.
    probe = prober(model) if str(device) in ("auto", "meta") else None

    def expectation(shape: Shape) -> Any:
        return parse_expected(expected_fn(shape), "contract output") if expected_fn else expected

    def check(drawn: tuple[Shape, dict[str, int]]) -> None:
        shape, names = drawn
        if probe is not None:
            result = probe(shape)
            if not isinstance(result, ShapeTrace):
                raise _Violation(shape, names)
        else:
            result = _traced(model, shape, device, names)
        if compare_output(expectation(shape), result.output_shape, {**_bindings(shape), **names}):
            raise _Violation(shape, names)

    run = _settings(max_examples, derandomize, settings)(given(strategy)(check))
    if seed is not None:
        from hypothesis import seed as fixed_seed

        run = fixed_seed(seed)(run)
    try:
        run()
    except _Violation as violation:
        raise _contract_error(model, output, violation, expectation(violation.shape), device) from None


def _traced(model: nn.Module, shape: Shape, device: str | torch.device,
            names: dict[str, int]) -> ShapeTrace:
    from .errors import ShapeMismatchError
    from .tracer import trace

    try:
        return trace(model, shape, device=device)
    except ShapeMismatchError:
        raise _Violation(shape, names) from None


def _bindings(shape: Shape) -> dict[str, int]:
    from .spec import conventional_bindings

    return conventional_bindings(shape)


def _contract_error(model: nn.Module, output: Any, violation: _Violation, expected: Any,
                    device: str | torch.device) -> ShapeContractError:
    """Trace the smallest failing input again, fully diagnosed, for the message."""
    from .assertions import output_failure_text
    from .contract import compare_output
    from .errors import ShapeMismatchError
    from .tracer import trace

    shape = violation.shape
    cause: ShapeMismatchError | None = None
    try:
        result = trace(model, shape, device=device)
    except ShapeMismatchError as err:
        cause = err
        text = f"ShapeMismatchError: {err}"
    else:
        bindings = {**_bindings(shape), **violation.names}
        text = output_failure_text(result, compare_output(expected, result.output_shape, bindings),
                                   bindings, model)
    promise = output if isinstance(output, str) else getattr(output, "__name__", repr(output))
    lines = [f"{type(model).__name__} breaks its shape contract {promise!r} for input "
             f"{format_shape(shape)} ({named_sizes(shape)}), the smallest failing input "
             "hypothesis found", ""]
    lines.extend("  " + line if line else "" for line in text.splitlines())
    facts = cause.diagnosis.facts if cause is not None else {}
    if "min_side" in facts:
        lines.append(f"  minimum input side: {facts['min_side']}")
    return ShapeContractError("\n".join(lines), shape, cause)


def assert_batch_invariant(model: nn.Module, inputs: Any,
                           batches: Sequence[int] = (1, 2, 3, 8), *,
                           device: str | torch.device = "auto") -> list[ShapeTrace]:
    """Trace ``inputs`` with each batch size; the output batch must follow the input's.

    Catches ``view(-1, K)`` folding features into the batch, BatchNorm in train
    mode on one sample, and batch-dependent reshapes. Returns the traces.
    """
    from .attribution import last_change
    from .inputs import parse_inputs
    from .shapes import first_shape
    from .tracer import trace

    spec = parse_inputs(inputs)
    shape = spec.first_shape()
    if shape is None or len(shape) < 1:
        raise SpecError(f"inputs {inputs!r}: give a shape with a batch axis, e.g. (1, 3, 32, 32)")
    traces = []
    for batch in batches:
        result = trace(model, spec.with_first_shape((batch, *shape[1:])), device=device)
        out = first_shape(result.output_shape)
        if out is None or not out or out[0] != batch:
            change = last_change(result, 0) if out else None
            where = ""
            if change is not None:
                where = (f"; forward code after {change.around[0].label if change.around[0] else 'the input'}"
                         f" changed it" if change.record is None else
                         f"; {change.record.label} ({change.record.type}) changed it")
            raise AssertionError(
                f"{type(model).__name__}: a batch of {batch} gives output "
                f"{format_shape(result.output_shape)}, whose batch is not {batch}{where}; a "
                "view(-1, K) folding features into the batch does this: use torch.flatten(x, 1)"
                f"\n\n{result.table()}"
            )
        traces.append(result)
    return traces


def min_input_size(model: nn.Module, channels: int, *, ndim: int = 2, batch: int = 1,
                   max_side: int = 8192) -> int:
    """The smallest square (cube, length) input side ``model`` runs on.

    Found by tracing on meta (a doubling search and bisection: O(log side)
    traces). A model whose head fits one input size only (a fixed Linear after
    the flatten) has no "minimum": that is an error naming the layer, with the
    side from which no layer runs out of pixels.
    """
    from .diagnostics.sizes import smallest_fitting_input
    from .inputs import parse_inputs
    from .records import ShapeTrace
    from .tracer import prober

    if ndim not in (1, 2, 3):
        raise ValueError(f"ndim={ndim!r}: give 1 (signals), 2 (images) or 3 (volumes)")
    if channels < 1 or batch < 1:
        raise ValueError(f"channels={channels!r} and batch={batch!r} must be at least 1")
    start = (batch, channels, *(1,) * ndim)
    probe = prober(model)
    found, run = smallest_fitting_input(probe, parse_inputs(start), start, limit=max_side)
    if found is None:
        raise ValueError(f"{type(model).__name__}: no input side up to {max_side} lets every layer "
                         "fit; its strides and pooling shrink every map to nothing")
    if not isinstance(run, ShapeTrace):
        from .diagnostics import diagnose

        assert run is not None
        reason = diagnose(run).headline
        raise ValueError(
            f"{type(model).__name__}: from side {found[-1]} on no layer runs out of pixels, but at "
            f"that size the model fails: {reason}. A model whose head fits only one input size "
            "has no minimum; make the head size-independent (nn.AdaptiveAvgPool2d, nn.LazyLinear)"
        )
    return int(found[-1])
