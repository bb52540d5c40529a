"""Inspection results as text: from the JSON-safe data, without torch.

The report renders what xdist workers sent as JSON (``ModelEntry.extras``), so
every line here is built from plain dicts: the same text in a serial run, under
xdist, in the CLI and in ``RegularizationReport.line()``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

#: Key of the inspection data in ``ModelEntry.extras``.
EXTRAS_KEY = "inspection"


def human_bytes(n: int) -> str:
    """``1.5 MiB`` style; plain bytes under 1 KiB."""
    size = float(n)
    for unit in ("B", "KiB", "MiB"):
        if size < 1024:
            return f"{int(size)} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


def si(n: int) -> str:
    """``4.09 G``, ``416.5 K``: a count at a glance."""
    for factor, unit in ((10**12, "T"), (10**9, "G"), (10**6, "M"), (10**3, "K")):
        if n >= factor:
            return f"{n / factor:.2f} {unit}" if factor >= 10**9 else f"{n / factor:.1f} {unit}"
    return str(n)


def params_line(totals: Mapping[str, int]) -> str:
    """``Params 1,234 (trainable 1,200, frozen 34) · weights 4.8 KiB · buffers 64 (256 B)``."""
    return (
        f"Params {totals['total']:,} (trainable {totals['trainable']:,}, frozen "
        f"{totals['frozen']:,}) · weights {human_bytes(totals['parameter_bytes'])} · buffers "
        f"{totals['buffers']:,} ({human_bytes(totals['buffer_bytes'])})"
    )


def flops_line(macs: int, flops: int) -> str:
    """``MACs 4.09 G (4,089,184,256) · FLOPs 8.18 G``."""
    return f"MACs {si(macs)} ({macs:,}) · FLOPs {si(flops)}"


def shared_line(parameters: Mapping[str, Any]) -> str | None:
    """``Shared: decoder.weight = out.weight (1,024)``; None when nothing is shared."""
    tensors = [*parameters.get("parameters", []), *parameters.get("buffers", [])]
    shared = [f"{' = '.join([t['name'], *t['aliases']])} ({t['numel']:,})" for t in tensors if t["aliases"]]
    return "Shared (counted once): " + "; ".join(shared) if shared else None


def _counted(items: list[str]) -> str:
    return ", ".join(f"{text} x{n}" if n > 1 else text for text, n in Counter(items).items())


def regularization_line(report: Mapping[str, Any]) -> str:
    """``Regularization: Dropout p=0.5 (active) · BatchNorm2d x2 (batch stats) · ...``."""
    parts = []
    dropouts = [
        f"{d['type']} p={'?' if d['p'] is None else format(d['p'], '.4g')} "
        f"({'active' if d['active'] else 'inactive'}, "
        f"{'train' if d['training'] else 'eval'} mode)"
        for d in report["dropouts"]
    ]
    parts.append(_counted(dropouts) if dropouts else "no dropout")
    norms = [f"{n['type']} ({n['statistics']} stats)" for n in report["norms"]]
    parts.append(_counted(norms) if norms else "no normalization")
    if report.get("optimizer") is None:
        parts.append("optimizer not given")
    else:
        groups = [
            f"group {g['index']}: weight_decay={g['weight_decay']}"
            + (f" {g['decay']}" if g["decay"] != "none" else "")
            + f" on {len(g['params'])} tensors"
            for g in report["groups"]
        ]
        text = f"{report['optimizer']} " + "; ".join(groups)
        if report["uncovered"]:
            text += f"; {len(report['uncovered'])} trainable tensors in no group"
        parts.append(text)
    return "Regularization: " + " · ".join(parts)


def lint_count(lint: Mapping[str, Any]) -> str:
    """``2 findings``, ``clean``."""
    count = len(lint.get("findings", []))
    if not count:
        return "clean"
    return f"{count} finding{'s' if count != 1 else ''}"


def overview_cells(extras: Mapping[str, Any]) -> list[str]:
    """The report overview's ``MACs`` and ``Lint`` cells of one model (``-`` without data)."""
    data = extras.get(EXTRAS_KEY) or {}
    flops, lint = data.get("flops"), data.get("lint")
    return [si(flops["total_macs"]) if flops else "-", str(len(lint["findings"])) if lint else "-"]


def section_lines(extras: Mapping[str, Any], *, why: bool = False) -> list[str]:
    """Lines under a model's layer table: params, shared, MACs, regularization, lint.

    Rules that did not run (no optimizer or loss in a test report) are in the JSON
    report's ``skipped``, not repeated under every model.
    """
    from .findings import Findings

    data = extras.get(EXTRAS_KEY)
    if not data:
        return []
    if "error" in data:
        return [f"Inspection failed: {data['error']}"]
    lines = [params_line(data["parameters"]["totals"])]
    shared = shared_line(data["parameters"])
    if shared:
        lines.append(shared)
    flops = data["flops"]
    lines.append(flops_line(flops["total_macs"], flops["total_flops"]))
    lines.append(regularization_line(data["regularization"]))
    lines.append(f"Lint: {lint_count(data['lint'])}")
    for finding in Findings.from_dict(data["lint"]):
        lines.extend("  " + line for line in finding.lines(why=why))
    return lines


def markdown_lines(extras: Mapping[str, Any]) -> list[str]:
    """The same, as Markdown (after a blank line): a list, the findings with their fixes."""
    data = extras.get(EXTRAS_KEY)
    if not data:
        return []
    if "error" in data:
        return ["", f"Inspection failed: `{data['error']}`"]
    lines = ["", f"- {params_line(data['parameters']['totals'])}"]
    shared = shared_line(data["parameters"])
    if shared:
        lines.append(f"- {shared}")
    lines.append(f"- {flops_line(data['flops']['total_macs'], data['flops']['total_flops'])}")
    lines.append(f"- {regularization_line(data['regularization'])}")
    lines.append(f"- Lint: {lint_count(data['lint'])}")
    for finding in data["lint"]["findings"]:
        where = finding["layer"] or "(root)"
        lines.append(f"  - `{finding['rule']}` `{where}`: {finding['message']}. Fix: {finding['fix']}")
    return lines
