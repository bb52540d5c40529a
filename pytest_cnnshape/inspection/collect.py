"""The inspection data of one model for the session report, computed where the model lives.

In the test process (an xdist worker, or the only process) the model is at hand;
the controller only ever sees JSON. So the parameter breakdown, regularization,
FLOPs and lint findings are computed here, from one observed trace, into plain
data for ``ModelEntry.extras["inspection"]``; ``render`` turns them into text.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import LintError
from .findings import Findings

if TYPE_CHECKING:
    import torch
    from torch import nn


def inspect_model(
    model: nn.Module,
    inputs: Any,
    *,
    device: str | torch.device = "auto",
    ignore: tuple[str, ...] = (),
    batch_dim: int = 0,
) -> dict[str, Any]:
    """Parameters, regularization, FLOPs and lint of ``model`` as JSON-safe data.

    Never raises for the model's sake: a model this cannot inspect (an op
    FlopCounterMode cannot follow, say) gets ``{"error": "..."}`` instead, so the
    report still shows the model and its shapes.
    """
    from .flops import flop_report
    from .lint import run_rules
    from .observe import observed_trace
    from .parameters import parameter_breakdown
    from .regularization import regularization

    try:
        observation = observed_trace(
            model, inputs, device=device, flops=True, parameter_use="unused-parameters" not in ignore
        )
        findings = run_rules(
            model, observation, inputs=inputs, ignore=ignore, device=device, batch_dim=batch_dim
        )
        return {
            "parameters": parameter_breakdown(model).to_dict(),
            "regularization": regularization(model).to_dict(),
            "flops": flop_report(observation).to_dict(),
            "lint": findings.to_dict(),
        }
    except Exception as exc:  # the report must not fail for an inspection
        return {"error": f"{type(exc).__name__}: {exc}".splitlines()[0]}


def record_inspection(
    extras: dict[str, Any],
    model: nn.Module,
    inputs: Any,
    *,
    device: str | torch.device = "auto",
    ignore: tuple[str, ...] = (),
    batch_dim: int = 0,
) -> dict[str, Any]:
    """``inspect_model``, stored in a ModelEntry's ``extras`` under ``render.EXTRAS_KEY``."""
    from .render import EXTRAS_KEY

    data = extras[EXTRAS_KEY] = inspect_model(
        model, inputs, device=device, ignore=ignore, batch_dim=batch_dim
    )
    return data


def lint_problem(name: str, data: dict[str, Any]) -> str | None:
    """The failure text of a model declared with ``lint = true``, or None when clean."""
    if "error" in data:
        return f"{name}: could not lint the model: {data['error']}"
    findings = Findings.from_dict(data["lint"])
    return str(LintError(name, findings)) if findings else None
