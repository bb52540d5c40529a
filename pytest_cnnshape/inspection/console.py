"""What ``cnnshape summary --params --flops --lint --memory`` prints after the layer table."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import nn


@dataclass
class Sections:
    """The text to print, the same as JSON, and how many lint findings there were."""

    lines: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    findings: int = 0


def inspection_sections(
    model: nn.Module,
    inputs: Any,
    *,
    params: bool = False,
    flops: bool = False,
    lint: bool = False,
    memory: bool = False,
    optimizer: str | None = None,
    ignore: tuple[str, ...] = (),
    device: str = "auto",
    depth: int | None = None,
    batch_dim: int = 0,
) -> Sections:
    """Parameter breakdown and regularization, FLOPs per layer, lint findings, the memory
    estimate (with ``optimizer``'s state): as asked."""
    from .flops import count_flops
    from .lint import lint as run_lint
    from .parameters import parameter_breakdown
    from .regularization import regularization
    from .render import lint_count, memory_text

    out = Sections()
    if params:
        breakdown = parameter_breakdown(model)
        report = regularization(model)
        out.lines += ["", breakdown.table(), report.line()]
        out.data["parameters"] = breakdown.to_dict()
        out.data["regularization"] = report.to_dict()
    if flops:
        counted = count_flops(model, inputs, device=device)
        out.lines += ["", counted.table(max_depth=depth)]
        out.data["flops"] = counted.to_dict()
    if lint:
        findings = run_lint(model, inputs, ignore=ignore, device=device, batch_dim=batch_dim)
        out.lines.append("")
        if findings:
            out.lines.append(f"Lint: {lint_count(findings.to_dict())}")
        out.lines.append(findings.text())
        out.data["lint"] = findings.to_dict()
        out.findings = len(findings)
    if memory:
        from .memory import estimate_memory
        from .render import largest_consumers

        estimate = estimate_memory(model, inputs, optimizer, device=device).to_dict()
        out.lines += ["", memory_text(estimate, depth), "", "Largest consumers (saved for backward):"]
        out.lines += largest_consumers(estimate)
        out.data["memory"] = estimate
    return out
