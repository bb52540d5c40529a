"""One self-contained HTML file: index, per-model picture, diagnostic, baseline, text version.

Everything is inline: the style and the script from ``static/``, the data as JSON in
a ``<script type="application/json">``. A Content-Security-Policy forbids loading
anything, so the file never reaches the network, from ``file://`` or anywhere. The
same input always gives the same bytes (no timestamps, no ids from memory), so a
serial run and an xdist run write the same report.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from functools import cache
from importlib import resources
from typing import Any

from ..shapes.tree import format_shape, from_json, shape_text
from .flow import ADDED, CHANGED, REMOVED, ModelPicture, count, failing_call, picture_data

CSP = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:"
_MARK_CLASS = {CHANGED: "changed", ADDED: "added", REMOVED: "removed"}


@cache
def _asset(name: str) -> str:
    return (resources.files(__package__) / "static" / name).read_text(encoding="utf-8")


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _script_json(data: Any) -> str:
    """JSON that cannot end its ``<script>`` element early."""
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _macs(picture: ModelPicture) -> int | None:
    flops = (picture.inspection or {}).get("flops") or {}
    value = flops.get("total_macs")
    return value if isinstance(value, int) else None


def _index(pictures: Sequence[ModelPicture]) -> list[str]:
    rows = []
    for k, p in enumerate(pictures):
        trace = p.trace or {}
        lint = ((p.inspection or {}).get("lint") or {}).get("findings")
        rows.append(
            f'<tr><td><a href="#model-{k}">{_e(p.title)}</a></td><td class="mono">{_e(p.input)}</td>'
            f'<td class="mono">{_e(p.output)}</td><td class="num">{count(trace.get("total_params"))}</td>'
            f'<td class="num">{count(_macs(p))}</td>'
            f'<td class="num">{"-" if lint is None else len(lint)}</td>'
            f'<td><span class="status {_e(p.status)}">{_e(p.status)}</span></td></tr>'
        )
    return [
        '<nav class="index" aria-label="models"><table>',
        "<thead><tr><th>Model</th><th>Input</th><th>Output</th><th class=num>Params</th>"
        "<th class=num>MACs</th><th class=num>Lint</th><th>Status</th></tr></thead><tbody>",
        *rows,
        "</tbody></table></nav>",
    ]


def _baseline(picture: ModelPicture) -> list[str]:
    baseline = picture.baseline
    if not baseline or not baseline.get("changes"):
        return []
    lines = [
        '<div class="baseline" role="group" aria-label="baseline changes">',
        f"<p><b>{_e(baseline.get('headline', 'shape baseline changed'))}</b><br>"
        f"<span class=mono>{_e(baseline.get('file', ''))}</span></p>",
        "<table><thead><tr><th></th><th>Layer</th><th>Type</th><th>Output (baseline)</th>"
        "<th>Output (now)</th><th class=num>Params (baseline)</th><th class=num>Params (now)</th>"
        "</tr></thead><tbody>",
    ]
    for change in baseline["changes"]:
        old, new = change.get("old"), change.get("new")
        name = " -> ".join(dict.fromkeys(_row_label(r) for r in (old, new) if r))
        kind = " -> ".join(dict.fromkeys(r["type"] for r in (old, new) if r))
        mark = change["mark"]
        lines.append(
            f'<tr class="mark-{_MARK_CLASS.get(mark, "same")}"><td class="mark">{_e(mark)}</td>'
            f"<td class=mono>{_e(name)}</td><td>{_e(kind)}</td>"
            f"<td class=mono>{_e(shape_text(old['output']) if old else '')}</td>"
            f"<td class=mono>{_e(shape_text(new['output']) if new else '')}</td>"
            f'<td class="num">{count(old["params"]) if old else ""}</td>'
            f'<td class="num">{count(new["params"]) if new else ""}</td></tr>'
        )
    lines.append("</tbody></table></div>")
    return lines


def _row_label(row: dict[str, Any]) -> str:
    base = row["name"] or "(root)"
    return f"{base} (call {row['call'] + 1})" if row["call"] else base


def _text_version(picture: ModelPicture, data: dict[str, Any]) -> list[str]:
    """The layer table: what the picture shows, for a screen reader or a text search."""
    layers = (picture.trace or {}).get("layers", [])
    if not layers:
        return []
    fail = failing_call(layers)
    marks = data.get("marks", {})
    rows = []
    for index, layer in enumerate(layers):
        label = layer["name"] or "(root)"
        if layer["call"]:
            label += f" (call {layer['call'] + 1})"
        note = ""
        if index == fail:
            note = "failed here"
        elif layer.get("finished", True) is False:
            note = "failed inside"
        elif str(index) in marks:
            note = marks[str(index)] + " since the baseline"
        inputs = ", ".join(format_shape(from_json(s)) for s in layer["input_shapes"]) or "-"
        output = (
            "-" if layer.get("finished", True) is False else format_shape(from_json(layer["output_shape"]))
        )
        rows.append(
            f"<tr><td>{_e('  ' * layer['depth'] + label)}</td><td>{_e(layer['type'])}</td>"
            f"<td>{_e(inputs)}</td><td>{_e(output)}</td>"
            f'<td class="num">{count(layer["num_params"])}</td><td>{_e(note)}</td></tr>'
        )
    return [
        '<details class="text-version"><summary>The layers as a table (text version of the '
        "picture)</summary><table><thead><tr><th>Layer</th><th>Type</th><th>Input</th><th>Output</th>"
        "<th class=num>Params</th><th></th></tr></thead><tbody>",
        *rows,
        "</tbody></table></details>",
    ]


def _meta(picture: ModelPicture) -> str:
    trace = picture.trace or {}
    parts = [f"input <span class=mono>{_e(picture.input or '-')}</span>"]
    if picture.output and picture.output != "-":
        parts[0] += f" → output <span class=mono>{_e(picture.output)}</span>"
    if trace:
        parts.append(
            f"{count(trace.get('total_params'))} params ({count(trace.get('trainable_params'))} trainable)"
        )
        macs = _macs(picture)
        if macs is not None:
            parts.append(f"{count(macs)} MACs")
        parts.append(f"traced on {_e(trace.get('device', '?'))}")
    if picture.tests:
        shown = ", ".join(f"<span class=mono>{_e(t)}</span>" for t in picture.tests[:3])
        more = f" (+{len(picture.tests) - 3} more)" if len(picture.tests) > 3 else ""
        parts.append(f"tests: {shown}{more}")
    return '<p class="meta">' + " · ".join(parts) + "</p>"


def _section(k: int, picture: ModelPicture, data: dict[str, Any]) -> list[str]:
    title = _e(picture.title)
    lines = [
        f'<section class="model" id="model-{k}" aria-labelledby="model-{k}-title">',
        f'<h2 id="model-{k}-title"><a href="#model-{k}">{title}</a>'
        f'<span class="status {_e(picture.status)}">{_e(picture.status)}</span></h2>',
        _meta(picture),
    ]
    notes = list(picture.notes)
    trace_note = (picture.trace or {}).get("note")
    if trace_note:
        notes.append(str(trace_note))
    symbolic = (picture.trace or {}).get("symbolic")
    if symbolic and symbolic.get("domain"):
        example = ", ".join(f"{n}={v}" for n, v in symbolic.get("example", {}).items())
        notes.append(
            f"Symbolic: input {', '.join(symbolic.get('inputs', []))}; each block shows its sizes at "
            f"{example} and its formula. Domain: {symbolic.get('domain', '-')}"
        )
    if notes:
        lines.append('<ul class="notes">' + "".join(f"<li>{_e(n)}</li>" for n in notes) + "</ul>")
    baseline_shown = bool(picture.baseline and picture.baseline.get("changes"))
    if picture.diagnostic or (picture.failure and picture.status != "passed" and not baseline_shown):
        lines.append(
            f'<pre class="diagnostic" role="alert">{_e(picture.diagnostic or picture.failure)}</pre>'
        )
    lines += _baseline(picture)
    if picture.trace and picture.trace.get("layers"):
        flow_note = (
            "Edges follow the tensors: which call's output each call received, through "
            "forward code (residual adds, concatenations, reshapes)."
            if data["flow"]
            else "Edges follow the call order: this trace did not record the data flow "
            "(trace(model, inputs, flow=True) does), so skips and branches are not drawn."
        )
        lines += [
            '<div class="viewer">',
            '<div class="toolbar" role="toolbar" aria-label="picture controls">'
            '<input class="search" type="search" placeholder="find a layer" '
            f'aria-label="find a layer in {title}">'
            '<button type="button" data-action="zoom-out" aria-label="zoom out">−</button>'
            '<button type="button" data-action="zoom-in" aria-label="zoom in">+</button>'
            '<button type="button" data-action="fit">Fit</button>'
            '<button type="button" data-action="expand">Open all</button>'
            '<button type="button" data-action="fold">Fold</button>'
            '<span class="search-status" aria-live="polite"></span></div>',
            '<div class="legend" aria-hidden="true"></div>',
            '<div class="viewer-body">',
            f'<div class="stage" tabindex="0" aria-label="picture of {title}: drag or arrow keys to pan, '
            '+ and - to zoom, Tab to go through the layers">'
            '<svg class="flow" xmlns="http://www.w3.org/2000/svg" role="group" '
            f'aria-label="{title}"></svg></div>',
            '<aside class="facts" aria-live="polite"><p class="kind">Point at or Tab to a layer to see '
            "everything known about it; click a grey block to open it.</p></aside>",
            "</div>",
            f'<p class="flow-note">{_e(flow_note)}</p>',
            "</div>",
        ]
        lines += _text_version(picture, data)
    lines.append("</section>")
    return lines


def render(
    pictures: Sequence[ModelPicture],
    *,
    depth: int,
    title: str = "CNN shapes",
    summary: str = "",
    footer: str = "",
    index: bool | None = None,
) -> str:
    """The whole HTML document for ``pictures`` (folded to ``depth`` levels of nesting)."""
    data = [picture_data(p, depth) for p in pictures]
    show_index = len(pictures) > 1 if index is None else index
    body: list[str] = [f"<h1>{_e(title)}</h1>"]
    if summary:
        body.append(f'<p class="lead">{_e(summary)}</p>')
    if show_index:
        body += _index(pictures)
    for k, (picture, model) in enumerate(zip(pictures, data, strict=True)):
        body += _section(k, picture, model)
    if footer:
        body.append(f"<footer>{_e(footer)}</footer>")
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en">',
            "<head>",
            '<meta charset="utf-8">',
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{_e(title)}</title>",
            f"<style>\n{_asset('shapeflow.css')}</style>",
            "</head>",
            "<body>",
            *body,
            f'<script type="application/json" id="cnnshape-data">{_script_json({"models": data})}</script>',
            f"<script>\n{_asset('shapeflow.js')}</script>",
            "</body>",
            "</html>",
            "",
        ]
    )


def frame(document: str, height: int = 560) -> str:
    """The document inside an ``<iframe srcdoc>``: how a notebook shows it, isolated from the page."""
    return (
        f'<iframe srcdoc="{_e(document)}" style="width: 100%; height: {height}px; border: 0" '
        'sandbox="allow-scripts" title="CNN shape-flow picture"></iframe>'
    )
