"""What ``cnnshape summary --params --flops --lint --memory`` prints after the layer table."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..tracing.request import TraceRequest


@dataclass
class Sections:
    """The text to print, the same as JSON, and how many lint findings there were."""

    lines: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    findings: int = 0


def inspection_sections(
    request: TraceRequest,
    *,
    params: bool = False,
    flops: bool = False,
    lint: bool = False,
    memory: bool = False,
    optimizer: str | None = None,
    ignore: tuple[str, ...] = (),
    depth: int | None = None,
    batch_dim: int = 0,
) -> Sections:
    """Parameter breakdown and regularization, FLOPs per layer, lint findings, the memory
    estimate (with ``optimizer``'s state): as asked. FLOPs and lint read one observed
    forward of the request in evaluation mode."""
    from ..tracing.wrappers import is_script_module
    from .catalog import tracks_use
    from .flops import flop_report
    from .lint import lint_model
    from .observe import observed_trace
    from .parameters import breakdown
    from .regularization import regularization_of
    from .render import lint_count, memory_text

    out = Sections()
    model = request.model
    if params:
        counted_params = breakdown(model)
        report = regularization_of(model)
        out.lines += ["", counted_params.table(), report.line()]
        out.data["parameters"] = counted_params.to_dict()
        out.data["regularization"] = report.to_dict()
    observation = None
    if flops or (lint and not is_script_module(model)):
        observation = observed_trace(
            request.with_mode(False), flops=flops, parameter_use=lint and tracks_use(ignore)
        )
    if flops:
        assert observation is not None
        counted = flop_report(observation)
        out.lines += ["", counted.table(max_depth=depth)]
        out.data["flops"] = counted.to_dict()
    if lint:
        findings = lint_model(
            model, request.with_mode(False), ignore=ignore, batch_dim=batch_dim, observation=observation
        )
        out.lines.append("")
        if findings:
            out.lines.append(f"Lint: {lint_count(findings.to_dict())}")
        out.lines.append(findings.text())
        out.data["lint"] = findings.to_dict()
        out.findings = len(findings)
    if memory:
        from .memory import memory_report
        from .render import largest_consumers

        estimate = memory_report(request.with_mode(True), optimizer).to_dict()
        out.lines += ["", memory_text(estimate, depth), "", "Largest consumers (saved for backward):"]
        out.lines += largest_consumers(estimate)
        out.data["memory"] = estimate
    return out
