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
#: Key of the memory estimate (``estimate_memory(...).to_dict()`` and its budget).
MEMORY_KEY = "memory"


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
    if report.get("hidden"):  # an exported program: its layers are graph ops
        parts.append(f"dropout and normalization not visible: {report['hidden']}")
    else:
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
    """The report overview's ``MACs``, ``Memory`` and ``Lint`` cells of one model (``-`` without data)."""
    data = extras.get(EXTRAS_KEY) or {}
    flops, lint = data.get("flops"), data.get("lint")
    return [
        si(flops["total_macs"]) if flops else "-",
        memory_cell(extras.get(MEMORY_KEY)),
        str(len(lint["findings"])) if lint else "-",
    ]


def memory_cell(memory: Mapping[str, Any] | None) -> str:
    """``5.6 GiB`` (the estimated training peak), ``5.6 GiB / 6.0 GiB (B=64)`` against a
    budget, the batch said when the check estimates at a batch of its own."""
    if not memory:
        return "-"
    if "error" in memory:
        return "?"
    cell = human_bytes(memory["peak_training_bytes"])
    if memory.get("budget") is not None:
        cell += f" / {human_bytes(memory['budget'])}"
    if memory.get("rebatched"):
        cell += f" (B={memory['batch']})"
    return cell


def section_lines(extras: Mapping[str, Any], *, why: bool = False) -> list[str]:
    """Lines under a model's layer table: params, shared, MACs, regularization, lint, memory.

    Rules that did not run (no optimizer or loss in a test report) are in the JSON
    report's ``skipped``, not repeated under every model.
    """
    return _inspection_lines(extras, why=why) + memory_lines(extras)


def memory_lines(extras: Mapping[str, Any]) -> list[str]:
    """The memory estimate's line (it depends on the input, unlike the architecture's)."""
    memory = extras.get(MEMORY_KEY)
    if not memory:
        return []
    if "error" in memory:
        return [f"Memory: not estimated: {memory['error']}"]
    return [memory_line(memory)]


def _inspection_lines(extras: Mapping[str, Any], *, why: bool = False) -> list[str]:
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
    """The same, as Markdown (after a blank line): a list, the findings with their fixes,
    the memory estimate and the calls that keep the most for backward."""
    lines = _inspection_markdown(extras)
    memory = extras.get(MEMORY_KEY)
    if memory:
        lines += ["", *(f"- {line}" for line in memory_lines(extras))]
        consumers = [] if "error" in memory else largest_consumers(memory)
        if consumers:
            lines += ["", "Largest consumers of training memory (saved for backward):", "", "```text"]
            lines += [*consumers, "```"]
    return lines


def _inspection_markdown(extras: Mapping[str, Any]) -> list[str]:
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


# -- memory (``estimate_memory``'s ``to_dict()``) ---------------------------------------


def optimizer_text(optimizer: Mapping[str, Any]) -> str:
    """``195.2 MiB (Adam: 483 state tensors for 161 parameters)`` or ``not counted (...)``."""
    size = "not counted" if optimizer["bytes"] is None else human_bytes(optimizer["bytes"])
    return f"{size} ({optimizer['note']})"


def memory_totals(data: Mapping[str, Any]) -> list[str]:
    """The lines under the memory table: what the peaks are made of."""
    mode = "train" if data["train"] else "eval"
    return [
        f"Params {human_bytes(data['param_bytes'])} · buffers {human_bytes(data['buffer_bytes'])} · "
        f"grads {human_bytes(data['grad_bytes'])} · optimizer state {optimizer_text(data['optimizer'])}",
        f"Saved for backward {human_bytes(data['saved_activation_bytes'])} in {data['saved_tensors']:,} "
        f"tensors · backward transient {human_bytes(data['backward_transient_bytes'])}"
        + (f" at {data['transient_at']}" if data["transient_at"] else ""),
        f"Peak training {human_bytes(data['peak_training_bytes'])} · peak inference "
        f"{human_bytes(data['peak_inference_bytes'])}"
        + (f" (at {data['inference_peak_at']})" if data["inference_peak_at"] else "")
        + f"    estimated for {data['input']} on {data['device']} ({data['dtype']}, {mode} mode)",
    ]


def _call_label(layer: Mapping[str, Any]) -> str:
    name = layer["name"] or "(root)"
    return name if not layer["call"] else f"{name} (call {layer['call'] + 1})"


def memory_text(data: Mapping[str, Any], max_depth: int | None = None) -> str:
    """Per call: its output and what autograd saves (its own calls included), then the totals."""
    from ..tracing.table import grid, indent

    saved = data["saved_activation_bytes"]
    rows = [
        [
            indent(layer["depth"]) + _call_label(layer),
            layer["type"],
            human_bytes(layer["output_bytes"]),
            human_bytes(layer["saved_total"]),
            f"{100 * layer['saved_total'] / saved:.1f}%" if saved else "-",
        ]
        for layer in data["layers"]
        if max_depth is None or layer["depth"] <= max_depth
    ]
    body = grid(rows, ("Layer", "Type", "Output", "Saved for backward", "Share"))
    return "\n".join([body, *memory_totals(data)])


def largest_consumers(data: Mapping[str, Any], count: int = 5) -> list[str]:
    """The calls that keep the most for backward themselves, largest first, one line each."""
    from ..tracing.table import grid

    saved = data["saved_activation_bytes"] or 1
    ranked = sorted(data["layers"], key=lambda layer: -layer["saved_bytes"])[:count]
    rows = [
        [
            _call_label(layer) + ("" if layer["is_leaf"] else " (its own forward code)"),
            layer["type"],
            human_bytes(layer["saved_bytes"]),
            f"{100 * layer['saved_bytes'] / saved:.1f}%",
            human_bytes(layer["output_bytes"]),
        ]
        for layer in ranked
        if layer["saved_bytes"]
    ]
    if not rows:
        return []
    return grid(rows, ("Layer", "Type", "Saved", "Share", "Output")).splitlines()


def memory_line(data: Mapping[str, Any]) -> str:
    """``Memory at 64x3x224x224: training peak 5.6 GiB (...) · inference peak 1.1 GiB``."""
    weights = data["param_bytes"] + data["buffer_bytes"] + data["grad_bytes"]
    optimizer = data["optimizer"]
    state = "not counted" if optimizer["bytes"] is None else human_bytes(optimizer["bytes"])
    line = (
        f"Memory at {data['input']}: training peak {human_bytes(data['peak_training_bytes'])} "
        f"(saved activations {human_bytes(data['saved_activation_bytes'])}, weights and grads "
        f"{human_bytes(weights)}, optimizer state {state}, backward transient "
        f"{human_bytes(data['backward_transient_bytes'])}) · inference peak "
        f"{human_bytes(data['peak_inference_bytes'])}"
    )
    budget = data.get("budget")
    if budget is not None:
        verdict = "over" if data["peak_training_bytes"] > budget else "within"
        line += f" · {verdict} max_memory {human_bytes(budget)}"
    return line
