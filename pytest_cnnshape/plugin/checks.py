"""One model contract, run: build, trace, compare; the result as a report entry.

Declared models, ``cnn_model`` markers and the ``cnn_shapes`` fixture all go
through ``run_check`` so a contract reads and fails the same way wherever it is
written.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..contracts.domain import HypothesisOptions
from ..defaults import DEFAULT_DEVICE
from ..errors import ContractFailure
from .entries import FAILED, PASSED, ModelEntry
from .schema import ModelCheck

if TYPE_CHECKING:
    from torch import nn

    from ..errors import ShapeMismatchError
    from ..tracing.inputs import InputSpec
    from ..tracing.records import ShapeTrace
    from ..tracing.request import TraceRequest


@dataclass(frozen=True)
class RunOptions:
    """How the session runs checks: its device, whether the report inspects, hypothesis."""

    device: str = DEFAULT_DEVICE
    #: Compute the inspection data (params, regularization, FLOPs, lint) for the report.
    inspect: bool = False
    #: The report draws pictures: record each trace's data flow and what the picture shows.
    flow: bool = False
    #: Lint rules the project switched off (``[tool.cnnshape] lint.ignore``).
    lint_ignore: tuple[str, ...] = ()
    #: The output axis that holds the batch (``[tool.cnnshape] lint.batch_dim``).
    lint_batch_dim: int = 0
    hypothesis: HypothesisOptions = field(default_factory=HypothesisOptions)
    #: Where relative factory paths are resolved from when the check does not say.
    root: Path | None = None


@dataclass
class CheckResult:
    """The entry for the report, the trace (partial on failure) and the error to raise."""

    entry: ModelEntry
    trace: ShapeTrace | None
    error: BaseException | None
    model: nn.Module | None


def input_text(value: Any) -> str:
    """Short text of an input spec as written: ``1x3x32x32`` or ``N x 3 x H x W``."""
    if isinstance(value, str):
        return value.replace(" ", "")
    if isinstance(value, (tuple, list)) and all(isinstance(v, int) for v in value):
        return "x".join(str(v) for v in value)
    if isinstance(value, (tuple, list)):
        return ", ".join(input_text(v) for v in value)
    if isinstance(value, Mapping):
        return ", ".join(f"{k}={input_text(v)}" for k, v in value.items())
    shape = getattr(value, "shape", None)
    return "x".join(str(d) for d in shape) if shape is not None else repr(value)


def check_inputs(check: ModelCheck, concrete: Any) -> InputSpec:
    """The inputs a check traces with: its concrete inputs, its dtype, its forward keywords."""
    from ..tracing.inputs import parse_inputs

    return parse_inputs(concrete).typed(check.dtype).with_kwargs(check.forward_kwargs)


def build(check: ModelCheck, device: str | None = None) -> nn.Module:
    """The model of a check: given, or built from its factory (seeded; ``device="meta"``:
    under ``torch.device("meta")``)."""
    from ..tracing.factory import build_model

    if check.model is not None:
        return check.model
    if check.factory is None:
        raise ContractFailure(f"{check.name}: no model and no factory to build one")
    return build_model(check.factory, check.kwargs, root=check.root, device=device)


@dataclass
class Traced:
    """A check's trace: the request, its result (partial when the forward failed, with the
    error), and what the inspection observed of it."""

    request: TraceRequest
    result: ShapeTrace
    observation: Any = None
    error: ShapeMismatchError | None = None


def _observe(request: TraceRequest, run: RunOptions, check: ModelCheck) -> Traced:
    from ..diagnostics.explain import traced
    from ..errors import ShapeMismatchError
    from ..inspection.collect import report_trace

    try:
        if run.inspect or check.lint:  # the inspection (and memory estimate) observe this very trace
            memory = run.inspect or check.max_memory is not None
            result, observation = report_trace(request, flow=run.flow, ignore=run.lint_ignore, memory=memory)
            return Traced(request, result, observation)
        return Traced(request, traced(request, (), flow=run.flow))
    except ShapeMismatchError as err:
        return Traced(request, err.trace, error=err)


def build_and_trace(check: ModelCheck, run: RunOptions, inputs: Any, *, real: bool) -> Traced:
    """Build the check's model and trace it (observed for the report when it has one).

    A factory's model is built on meta (``torch.device("meta")``: no memory, no
    initialisation) when it will be traced on meta anyway and nobody needs its weights
    (``real``: the test asks for it with the ``cnn_model`` fixture). Built on the CPU,
    as the factory itself says, when the model is small enough for a real forward to be
    the cheaper trace, and, with a note, when the factory or the forward cannot run on
    meta (weights loaded, ``.item()``, a tensor made on the CPU).
    """
    from ..errors import FactoryError, TraceError
    from ..tracing.devices import meta_first, meta_limitation, short_reason
    from ..tracing.request import TraceRequest
    from ..tracing.tracer import holding

    device = check.device or run.device
    spec = check_inputs(check, inputs)

    def on_cpu() -> TraceRequest:
        return TraceRequest.of(build(check), spec, device=device, train=check.train)

    if real or check.model is not None or device not in ("auto", "meta"):
        return _observe(on_cpu(), run, check)
    try:
        request = TraceRequest.of(build(check, "meta"), spec, device=device, train=check.train)
    except FactoryError as exc:
        note = f"built on the CPU: its factory fails under torch.device('meta') ({short_reason(exc)})"
    else:
        with holding(request):  # the room a deep model's walk needs, as for the trace
            cheaper_on_cpu = not meta_first(request.view, request.inputs, request.device)
        if cheaper_on_cpu:  # a small model: a real forward is the cheaper trace
            return _observe(on_cpu(), run, check)
        try:
            return _observe(request, run, check)
        except TraceError as exc:
            if exc.__cause__ is None or not meta_limitation(exc.__cause__):
                raise
            note = f"built on the CPU: its forward needs real weights ({short_reason(exc.__cause__)})"
    traced = _observe(on_cpu(), run, check)
    traced.result.note = "; ".join(n for n in (note, traced.result.note) if n)
    return traced


def note_picture(
    run: RunOptions, entry: ModelEntry, model: nn.Module | None, err: ShapeMismatchError | None = None
) -> None:
    """What the HTML picture shows beyond the trace, noted while the model is at hand:
    each module's settings and, for a failed forward, the whole diagnostic text
    (``extras["picture"]``; only sessions that draw pictures, ``run.flow``, pay for it)."""
    if not run.flow:
        return
    from ..picture.flow import EXTRAS_KEY

    data: dict[str, Any] = entry.extras.setdefault(EXTRAS_KEY, {})
    if model is not None:
        from ..inspection.settings import module_settings

        data["modules"] = module_settings(model)
    if err is not None:
        data["diagnostic"] = err.diagnosis.render()


def params_failure(name: str, total: int, limit: int) -> str:
    """Text of a parameter budget overrun."""
    return (
        f"{name} has {total:,} parameters, more than max_params={limit:,} "
        f"(+{total - limit:,}, {total / limit:.2f}x the budget)"
    )


def run_contract(check: ModelCheck, run: RunOptions, request: TraceRequest, entry: ModelEntry) -> str | None:
    """Check the model's contract over its input domain; the failure text, or None.

    What ran is noted on the entry (``extras["contract"]``) for the report.
    """
    from ..contracts.properties import assert_shape_contract
    from ..errors import ShapeContractError

    contract, options = check.contract, run.hypothesis
    assert contract is not None
    examples = contract.max_examples or options.max_examples
    note: dict[str, Any] = {
        "input": contract.input,
        "output": contract.output,
        "examples": examples,
        "status": PASSED,
    }
    entry.extras["contract"] = note
    try:
        result = assert_shape_contract(
            request.model,
            contract.input,
            contract.output,
            dims=contract.dims,
            device=check.device or run.device,
            max_examples=examples,
            derandomize=options.derandomize,
            seed=options.seed,
            **contract.strategy_options(),
        )
    except ShapeContractError as err:
        note.update(
            status=FAILED, smallest_failing=list(err.shape), method=err.method, failing_where=err.where
        )
        return f"{check.name}: {err}"
    note.update(method=result.method, checked=result.checked, why=result.why)
    return None


def inspection_problems(
    check: ModelCheck,
    run: RunOptions,
    request: TraceRequest,
    *,
    entry: ModelEntry,
    observation: Any = None,
) -> list[str]:
    """Inspect and estimate the memory for the report (or because the check asks); the
    failure texts of ``lint = true`` and ``max_memory``. ``observation``: what
    ``report_trace`` observed in the check's own trace."""
    from ..inspection.collect import lint_problem, memory_problem, record_inspection, record_memory

    problems: list[str] = []
    if run.inspect or check.lint:
        batch_dim = check.batch_dim if check.batch_dim is not None else run.lint_batch_dim
        data = record_inspection(
            entry.extras, request, ignore=run.lint_ignore, batch_dim=batch_dim, observation=observation
        )
        lint_text = lint_problem(check.name, data) if check.lint else None
        if lint_text:
            problems.append(lint_text)
    if run.inspect or check.max_memory is not None:
        memory = record_memory(
            entry.extras,
            request,
            batch=check.batch,
            optimizer=check.optimizer,
            budget=check.max_memory,
            observation=observation,
        )
        memory_text = memory_problem(check.name, memory) if check.max_memory is not None else None
        if memory_text:
            problems.append(memory_text)
    return problems


def run_check(
    check: ModelCheck, run: RunOptions, *, nodeid: str, source: str, real: bool = False
) -> CheckResult:
    """Run a check without raising; the caller decides how to fail. ``real``: the caller needs
    the model's weights (the ``cnn_model`` fixture), so a factory is never built on meta."""
    from ..contracts.assertions import output_failure_text
    from ..shapes.expected import bind_inputs, compare_output, parse_expected
    from ..tracing.records import inputs_text

    if check.root is None and run.root is not None:
        check = replace(check, root=run.root)
    entry = ModelEntry(
        name=check.name,
        nodeid=nodeid,
        source=source,
        input=input_text(check.traced_input),
        max_params=check.max_params,
        expected=None if check.output is None else input_text(check.output),
    )
    try:
        bound = bind_inputs(check.traced_input, check.dims)
        expected = parse_expected(check.output) if check.output is not None else None
        done = build_and_trace(check, run, bound.inputs, real=real)
    except Exception as err:  # factory, spec or trace argument problems
        entry.status, entry.failure = FAILED, f"{type(err).__name__}: {err}"
        failure = ContractFailure(f"{check.name}: {err}")
        failure.__cause__ = err
        return CheckResult(entry, None, failure, check.model)
    request, result, model = done.request, done.result, done.request.model
    failed = done.error
    if failed is not None:
        entry.status, entry.failure = FAILED, failed.diagnosis.headline
        entry.error = failed.diagnosis.to_dict()
        entry.trace = failed.trace.to_dict()
        note_picture(run, entry, model, failed)
        return CheckResult(entry, failed.trace, failed, model)
    entry.trace = result.to_dict()
    entry.input = inputs_text(entry.trace, entry.input)
    note_picture(run, entry, model)
    problems = inspection_problems(check, run, request, entry=entry, observation=done.observation)
    if expected is not None:
        mismatches = compare_output(expected, result.output_shape, bound.bindings)
        if mismatches:
            problems.append(output_failure_text(result, mismatches, bound.bindings, request))
    if check.max_params is not None and result.total_params > check.max_params:
        problems.insert(0, params_failure(check.name, result.total_params, check.max_params))
    if check.contract is not None and not problems:
        contract_text = run_contract(check, run, request, entry)
        if contract_text:
            problems.append(contract_text)
    if problems:
        entry.status = FAILED
        entry.failure = problems[0].splitlines()[0]
        return CheckResult(entry, result, ContractFailure("\n".join(problems)), model)
    entry.status = PASSED
    return CheckResult(entry, result, None, model)
