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

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import ArgumentError, ContractViolation, ShapeContractError, SpecError
from ..shapes.tree import Shape, format_shape

if TYPE_CHECKING:
    import torch
    from hypothesis import settings as Settings
    from hypothesis import strategies as st
    from torch import nn

    from ..tracing.records import ShapeTrace
    from ..tracing.request import TraceRequest
    from .proof import Proof

__tracebackhide__ = True

#: What a contract run uses unless told otherwise.
DEFAULT_EXAMPLES = 100


def named_sizes(shape: Shape) -> str:
    """``B=1, C=3, H=W=27``: a concrete input by the conventional dimension names."""
    from ..shapes.spec import CONVENTIONAL_NAMES

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


def shape_strategy(
    inputs: Any,
    dims: Mapping[str, Any] | None = None,
    *,
    min_side: int = 1,
    max_side: int = 64,
    batch: int | tuple[int, int] = (1, 4),
    square: bool = False,
    multiple_of: int = 1,
) -> st.SearchStrategy[tuple[Shape, dict[str, int]]]:
    """Concrete input shapes, with the size each name stands for.

    ``inputs`` is a hypothesis strategy of shapes, or a symbolic shape such as
    ``"B x 3 x H x W"``; each name takes its value from ``dims`` (an int, a
    ``(min, max)`` pair or a strategy) or, for the conventional names, from
    ``batch`` (B, N) and ``min_side``/``max_side``/``multiple_of`` (D, H, W, L;
    one shared value with ``square``).
    """
    from hypothesis import strategies as st

    from ..shapes.spec import conventional_bindings, parse_shape
    from .domain import BATCH_NAMES, SIDE_NAMES, check_names

    if isinstance(inputs, st.SearchStrategy):
        return inputs.map(lambda s: (tuple(s), conventional_bindings(tuple(s))))
    if isinstance(min_side, bool) or not isinstance(min_side, int) or not 1 <= min_side <= max_side:
        raise ArgumentError(
            f"min_side={min_side!r}, max_side={max_side!r}: need whole numbers with "
            "1 <= min_side <= max_side, e.g. min_side=16, max_side=256"
        )
    if multiple_of < 1 or min_side > max_side // multiple_of * multiple_of:
        raise ArgumentError(
            f"no side in [{min_side}, {max_side}] is a multiple of {multiple_of}; widen "
            "the range or lower multiple_of"
        )
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
            raise SpecError(
                f"dims[{name!r}] = {value!r}: give an int, a (min, max) pair or a hypothesis strategy"
            )
        elif name in BATCH_NAMES:
            low, high = (batch, batch) if isinstance(batch, int) else batch
            draws[name] = st.integers(low, high)
        else:
            draws[name] = side

    @st.composite
    def shapes(draw: st.DrawFn) -> tuple[Shape, dict[str, int]]:
        values = {
            name: draw(strategy)
            for name, strategy in draws.items()
            if not (shared_side is not None and name in SIDE_NAMES and name not in given)
        }
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
        max_examples=max_examples,
        derandomize=derandomize,
        database=None,
        deadline=None,
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
    symbolic: bool = True,
    **strategy_options: Any,
) -> ContractResult:
    """Check that ``model`` maps every input ``shapes`` can draw to ``output``.

    Proven, not sampled, where it can be: for a symbolic input (``"B x 3 x H x W"``)
    and an expected spec, torch's symbolic shapes give the output as a formula of
    the names and the sizes the model runs at, and both are checked at every input
    of the domain (``contracts.proof``). Hypothesis is the fallback (a strategy of
    shapes, a callable output, a model the engine cannot follow, ``symbolic=False``);
    the returned ``ContractResult`` says which was used and why.

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

    from ..shapes.expected import compare_output, parse_expected
    from ..tracing.inputs import InputSpec
    from ..tracing.records import ShapeTrace
    from ..tracing.request import TraceRequest
    from ..tracing.tracer import Prober

    strategy = shape_strategy(shapes, dims, **strategy_options)
    request = TraceRequest.of(model, InputSpec((), {}), device=device)  # inputs: each drawn shape
    expected_fn: Callable[[Shape], Any] | None = output if callable(output) else None
    expected = None if expected_fn is not None else parse_expected(output, "contract output")
    fallback = "symbolic=False" if not symbolic else None
    if symbolic:
        proof, fallback = _proven(request, shapes, expected, dims=dims, options=strategy_options)
        if proof is not None and proof.holds:
            return ContractResult("symbolic", proof.inputs)
        if proof is not None:
            error = _proof_error(request, shapes, output, proof, expected=expected)
            if error is not None:
                raise error
            fallback = "the symbolic check named a failing input where a plain forward fits the contract"
    # The search only needs pass/fail: undiagnosed meta runs. The smallest failing
    # input is traced once more at the end, for the full diagnostic.
    probe = Prober.of(request) if str(request.device) in ("auto", "meta") else None

    def expectation(shape: Shape) -> Any:
        return parse_expected(expected_fn(shape), "contract output") if expected_fn else expected

    def check(drawn: tuple[Shape, dict[str, int]]) -> None:
        shape, names = drawn
        if probe is not None:
            result = probe(shape)
            if not isinstance(result, ShapeTrace):
                raise ContractViolation(shape, names)
        else:
            result = _traced(request, shape, names)
        if compare_output(expectation(shape), result.output_shape, {**_bindings(shape), **names}):
            raise ContractViolation(shape, names)

    run = _settings(max_examples, derandomize, settings)(given(strategy)(check))
    if seed is not None:
        from hypothesis import seed as fixed_seed

        run = fixed_seed(seed)(run)
    try:
        run()
    except ContractViolation as violation:
        raise _contract_error(request, output, violation, expectation(violation.shape)) from None
    return ContractResult("hypothesis", max_examples if settings is None else settings.max_examples, fallback)


@dataclass(frozen=True)
class ContractResult:
    """How a shape contract was checked: ``symbolic`` (proven at every input of its domain) or
    ``hypothesis`` (sampled), how many inputs, and why hypothesis when the engine could not."""

    method: str
    #: Inputs proven (symbolic) or examples tried (hypothesis).
    checked: int
    #: Why the symbolic check was not used (one line), for a hypothesis run.
    why: str | None = None

    def __str__(self) -> str:
        if self.method == "symbolic":
            return f"proven with torch's symbolic shapes at all {self.checked:,} inputs of its domain"
        text = f"tested on {self.checked:,} hypothesis examples"
        return f"{text} (not proven symbolically: {self.why})" if self.why else text


def _proven(
    request: TraceRequest,
    shapes: Any,
    expected: Any,
    *,
    dims: Mapping[str, Any] | None,
    options: Mapping[str, Any],
) -> tuple[Proof | None, str | None]:
    """The symbolic proof, or None and why it cannot be made."""
    from ..shapes.spec import ShapeSpec, parse_shape
    from .proof import Unproven, prove

    if not isinstance(shapes, (str, tuple, list)):
        return None, "the input shapes come from a hypothesis strategy"
    if not isinstance(expected, ShapeSpec):
        return None, "the expected output is a callable or a structure"
    if str(request.device) not in ("auto", "meta"):
        return None, f"device={str(request.device)!r} asks for real forwards"
    try:
        proof = prove(
            request.model,
            parse_shape(shapes, "contract input"),
            expected,
            dict(dims or {}),
            probe=_probe(request),
            square=bool(options.get("square", False)),
            min_side=options.get("min_side", 1),
            max_side=options.get("max_side", 64),
            batch=options.get("batch", (1, 4)),
            multiple_of=options.get("multiple_of", 1),
        )
    except Unproven as why:
        return None, str(why)
    return proof, None


def _probe(request: TraceRequest) -> Callable[[Any], Any]:
    """Plain meta forwards of the request's model at other inputs: a trace, or None when it fails."""
    from ..tracing.records import ShapeTrace
    from ..tracing.tracer import Prober

    probe = Prober.of(request)

    def run(inputs: Any) -> ShapeTrace | None:
        result = probe(inputs)
        return result if isinstance(result, ShapeTrace) else None

    return run


def _proof_error(
    request: TraceRequest, shapes: Any, output: Any, proof: Proof, *, expected: Any
) -> ShapeContractError | None:
    """The contract error for the smallest failing input the proof found, diagnosed; None when
    a plain forward there fits the contract after all (the proof is then not trusted)."""
    from ..shapes.spec import parse_shape

    shape = proof.failing[0]
    names = parse_shape(shapes, "contract input").bind(shape)
    error, fails = _diagnosed(
        request,
        output,
        ContractViolation(shape, names),
        expected,
        found=_found(proof),
        domain=proof.domain,
        where=proof.where,
        method="symbolic",
    )
    return error if fails else None


def _found(proof: Proof) -> str:
    return (
        f"the smallest of {proof.failures:,} failing inputs among all {proof.inputs:,} of its domain "
        "(proven with torch's symbolic shapes)"
    )


def _traced(request: TraceRequest, shape: Shape, names: dict[str, int]) -> ShapeTrace:
    from ..diagnostics.explain import traced
    from ..errors import ShapeMismatchError

    try:
        return traced(request.with_inputs(shape), ())
    except ShapeMismatchError:
        raise ContractViolation(shape, names) from None


def _bindings(shape: Shape) -> dict[str, int]:
    from ..shapes.spec import conventional_bindings

    return conventional_bindings(shape)


def _contract_error(
    request: TraceRequest,
    output: Any,
    violation: ContractViolation,
    expected: Any,
    *,
    found: str = "the smallest failing input hypothesis found",
    domain: str = "",
) -> ShapeContractError:
    """Trace the smallest failing input again, fully diagnosed, for the message."""
    error, _ = _diagnosed(request, output, violation, expected, found=found, domain=domain)
    return error


def _diagnosed(
    request: TraceRequest,
    output: Any,
    violation: ContractViolation,
    expected: Any,
    *,
    found: str,
    domain: str,
    where: str = "",
    method: str = "hypothesis",
) -> tuple[ShapeContractError, bool]:
    """The contract error at the violation's input, and whether it really fails there."""
    from ..diagnostics.explain import traced
    from ..errors import ShapeMismatchError
    from ..shapes.expected import compare_output
    from .assertions import output_failure_text

    shape = violation.shape
    model = request.model
    cause: ShapeMismatchError | None = None
    fails = True
    failing = request.with_inputs(shape)
    try:
        result = traced(failing, ())
    except ShapeMismatchError as err:
        cause = err
        text = f"ShapeMismatchError: {err}"
    else:
        bindings = {**_bindings(shape), **violation.names}
        mismatches = compare_output(expected, result.output_shape, bindings)
        fails = bool(mismatches)
        text = output_failure_text(result, mismatches, bindings, failing)
    promise = output if isinstance(output, str) else getattr(output, "__name__", repr(output))
    lines = [
        f"{type(model).__name__} breaks its shape contract {promise!r} for input "
        f"{format_shape(shape)} ({named_sizes(shape)}), {found}",
        "",
    ]
    lines.extend("  " + line if line else "" for line in text.splitlines())
    facts = cause.diagnosis.facts if cause is not None else {}
    if "min_side" in facts:
        lines.append(f"  minimum input side: {facts['min_side']}")
    if where:
        lines.append(f"  the contract fails for: {where}")
    if domain:
        lines.append(f"  the model runs for: {domain}")
    return ShapeContractError("\n".join(lines), shape, cause, method, where), fails
