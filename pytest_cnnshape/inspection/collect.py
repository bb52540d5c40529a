"""The inspection data of one model for the session report, computed where the model lives.

In the test process (an xdist worker, or the only process) the model is at hand;
the controller only ever sees JSON. So the parameter breakdown, regularization,
FLOPs and lint findings are computed here, from one observed trace, into plain
data for ``ModelEntry.extras["inspection"]``, and the memory estimate (with its
budget, when one is set) for ``ModelEntry.extras["memory"]``; ``render`` turns
them into text.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import LintError
from .catalog import tracks_use
from .findings import Findings

if TYPE_CHECKING:
    from ..tracing.records import ShapeTrace
    from ..tracing.request import TraceRequest
    from .observe import Observation


def inspect_model(
    request: TraceRequest,
    *,
    ignore: tuple[str, ...] = (),
    batch_dim: int = 0,
    observation: Observation | None = None,
) -> dict[str, Any]:
    """Parameters, regularization, FLOPs and lint of the request's model as JSON-safe data.

    ``observation``: the observed trace the report already made (``report_trace``);
    without it one is made here. Never raises for the model's sake: a model this
    cannot inspect gets ``{"error": "..."}`` instead, so the report still shows the
    model and its shapes.
    """
    from ..tracing.modelview import shared_views

    try:
        with shared_views():  # parameters, regularization and lint read one walk of the model
            return _inspected(request, ignore, batch_dim, observation)
    except Exception as exc:  # the report must not fail for an inspection
        return _failed(exc)


def _inspected(
    request: TraceRequest, ignore: tuple[str, ...], batch_dim: int, observation: Observation | None
) -> dict[str, Any]:
    from .flops import flop_report
    from .lint import run_rules
    from .observe import observed_trace
    from .parameters import breakdown
    from .regularization import regularization_of

    model = request.model
    if observation is None:
        observation = observed_trace(request, flops=True, parameter_use=tracks_use(ignore))
    regularized = regularization_of(model)
    findings = run_rules(
        model, observation, request=request, ignore=ignore, batch_dim=batch_dim, regularized=regularized
    )
    return {
        "parameters": breakdown(model).to_dict(),
        "regularization": regularized.to_dict(),
        "flops": flop_report(observation).to_dict(),
        "lint": findings.to_dict(),
    }


def _failed(exc: BaseException) -> dict[str, Any]:
    return {"error": f"{type(exc).__name__}: {exc}".splitlines()[0]}


def report_trace(
    request: TraceRequest, *, flow: bool = False, ignore: tuple[str, ...] = (), memory: bool = False
) -> tuple[ShapeTrace, Observation | dict[str, Any]]:
    """The trace a report shows and what its inspection needs, from one forward.

    The request traced with FLOPs, data flow, parameter use and (``memory``) what a
    training step would keep observed in the same pass (inspection in training mode
    would judge another forward than the one the report shows; a training-mode request
    gets the eval-mode observation of its own, as before). Returns the trace and the
    Observation, or the inspection's ``{"error": ...}`` when observing failed where the
    plain trace did not. Raises what ``trace`` raises.
    """
    from ..diagnostics.explain import traced
    from ..tracing.modelview import shared_views
    from .observe import observed_trace

    if request.train:
        result = traced(request, (), flow=flow)
        try:
            return result, observed_trace(
                request.with_mode(False), flops=True, parameter_use=tracks_use(ignore)
            )
        except Exception as exc:  # the report must not fail for an inspection
            return result, _failed(exc)
    try:
        with shared_views():  # the observer and the tracer read one walk of the model
            observation = observed_trace(
                request, flow=flow, flops=True, parameter_use=tracks_use(ignore), memory=memory
            )
    except Exception as exc:  # the model's failure (raised again below), or the observers'
        result = traced(request, (), flow=flow)  # raises the model's
        return result, _failed(exc)
    return observation.trace, observation


def record_inspection(
    extras: dict[str, Any],
    request: TraceRequest,
    *,
    ignore: tuple[str, ...] = (),
    batch_dim: int = 0,
    observation: Observation | dict[str, Any] | None = None,
) -> dict[str, Any]:
    """``inspect_model``, stored in a ModelEntry's ``extras`` under ``render.EXTRAS_KEY``;
    ``observation`` as ``report_trace`` returned it (an error is stored as it is)."""
    from .render import EXTRAS_KEY

    if isinstance(observation, dict):
        data = observation
    else:
        data = inspect_model(request, ignore=ignore, batch_dim=batch_dim, observation=observation)
    extras[EXTRAS_KEY] = data
    return data


def lint_problem(name: str, data: dict[str, Any]) -> str | None:
    """The failure text of a model declared with ``lint = true``, or None when clean."""
    if "error" in data:
        return f"{name}: could not lint the model: {data['error']}"
    findings = Findings.from_dict(data["lint"])
    return str(LintError(name, findings)) if findings else None


def record_memory(
    extras: dict[str, Any],
    request: TraceRequest,
    *,
    batch: int | None = None,
    optimizer: Any = None,
    budget: int | None = None,
    observation: Observation | dict[str, Any] | None = None,
) -> dict[str, Any]:
    """``estimate_memory`` as JSON-safe data in ``extras[render.MEMORY_KEY]``, with the budget.

    ``batch`` replaces the first size of every input. ``observation``: the report's one
    forward, whose count stands for the estimate when it counted every op and the
    model's code does not depend on its mode or on autograd. Never raises for the
    model's sake: an estimate that fails is ``{"error": ...}`` (a budget then fails the
    check).
    """
    from .memory import counted, counts_without_autograd, estimate, memory_report
    from .observe import Observation
    from .render import MEMORY_KEY

    data: dict[str, Any]
    try:
        if batch is not None:
            request = request.with_inputs(request.inputs.with_batch(batch))
        first = request.inputs.first_shape()
        seen = observation if isinstance(observation, Observation) else None
        if (
            seen is not None
            and seen.memory is not None
            and batch is None
            and counted(seen.memory)
            and counts_without_autograd(request.view)
        ):
            data = estimate(request.with_mode(True), seen.memory, seen.trace, optimizer).to_dict()
        else:
            data = memory_report(request.with_mode(True), optimizer).to_dict()
        data["batch"] = first[0] if first else None
        data["rebatched"] = batch is not None
    except Exception as exc:  # the report must not fail for an estimate
        data = {"error": f"{type(exc).__name__}: {exc}".splitlines()[0]}
    data["budget"] = budget
    extras[MEMORY_KEY] = data
    return data


def memory_problem(name: str, data: dict[str, Any]) -> str | None:
    """The failure text of a model over its ``max_memory``, or None when it fits."""
    from .render import human_bytes, largest_consumers, memory_totals

    budget = data["budget"]
    if "error" in data:
        return f"{name}: could not estimate its memory for max_memory={human_bytes(budget)}: {data['error']}"
    peak = data["peak_training_bytes"]
    if peak <= budget:
        return None
    lines = [
        f"{name} needs an estimated {human_bytes(peak)} to train at {data['input']}, more than "
        f"max_memory={human_bytes(budget)} (+{human_bytes(peak - budget)}, {peak / budget:.2f}x the budget)",
        *memory_totals(data),
        "largest consumers (saved for backward by the call itself):",
        *("  " + line for line in largest_consumers(data)),
    ]
    fits = _batch_that_fits(data)
    if fits is not None:
        lines.append(f"hint: about batch={fits} fits (activations grow with the batch; weights do not)")
    return "\n".join(lines)


def _batch_that_fits(data: dict[str, Any]) -> int | None:
    """The largest batch under the budget, assuming activations scale with the batch."""
    batch = data.get("batch")
    if not batch:
        return None
    fixed = (
        data["param_bytes"] + data["buffer_bytes"] + data["grad_bytes"] + (data["optimizer_state_bytes"] or 0)
    )
    per_sample = (data["saved_activation_bytes"] + data["backward_transient_bytes"]) / batch
    if per_sample <= 0 or data["budget"] <= fixed:
        return None
    fits = int((data["budget"] - fixed) // per_sample)
    return fits if 0 < fits < batch else None
