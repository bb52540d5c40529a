"""A trace as the picture's data: calls, the data flow between them, and facts per call.

The input is ``ShapeTrace.to_dict()``. Each record of a trace made with
``flow=True`` carries ``sources``, the origins of its positional inputs
(``tracing.lineage.Origin.to_dict()``), and containers carry ``returns``, the origin
their output had inside them. Here they become references the script resolves
against whatever is folded: ``{"c": i}`` the output of call ``i``, ``{"i": k}`` the
model's k-th input, ``{"j": k}`` the k-th junction (an op of several tensors, a
residual ``add`` or a skip ``cat``), each with the single-tensor ``ops`` forward
code applied on the way (``flatten``, ``view``). A trace without them is drawn in
call order, and says so.

Facts the trace does not hold (MACs, lint findings, dropout and norm settings, a
module's constructor settings and so its receptive field, a changed baseline,
more per-call facts such as memory) come in as plain data beside it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..shapes.tree import shape_text

#: Key of what a test noted for the picture in ``ModelEntry.extras`` (``modules``,
#: ``diagnostic``, ``baseline``, and ``facts``: more ``[label, text]`` pairs per
#: qualified module name), present only in sessions that draw pictures.
EXTRAS_KEY = "picture"

#: One fact shown for a call: a label and its text.
Fact = tuple[str, str]

#: Baseline marks of a row (as ``baseline.diff`` writes them).
CHANGED, ADDED, REMOVED = "~", "+", "-"


@dataclass
class ModelPicture:
    """One model to draw: its trace and whatever else is known about it (all plain data)."""

    title: str
    #: ``ShapeTrace.to_dict()``; None when the model could not be traced at all.
    trace: dict[str, Any] | None
    #: ``passed``, ``failed`` or ``xfailed`` (failed inside a test that expected it).
    status: str = "passed"
    input: str = ""
    output: str = ""
    tests: tuple[str, ...] = ()
    #: One line: why the model failed (a diagnostic's headline, a contract).
    failure: str | None = None
    #: The diagnostic text of a failed forward, shown next to the failing layer.
    diagnostic: str | None = None
    #: Inspection data (``ModelEntry.extras["inspection"]``): flops, lint, regularization.
    inspection: Mapping[str, Any] | None = None
    #: Per qualified module name: ``{"repr": extra_repr, "kernel": [k, stride, dilation]}``.
    modules: Mapping[str, Mapping[str, Any]] | None = None
    #: A baseline comparison: ``status``, ``file``, ``headline``, ``changes`` (see
    #: ``baseline.diff.SnapshotDiff.changes_data``).
    baseline: Mapping[str, Any] | None = None
    #: More facts per qualified module name, shown after the others (e.g. memory).
    facts: Mapping[str, Sequence[Fact]] = field(default_factory=dict)
    #: Lines shown under the title (a contract's outcome, a note).
    notes: tuple[str, ...] = ()


def count(n: int | None) -> str:
    """``25,557,032``; ``-`` when unknown."""
    return "-" if n is None else f"{n:,}"


class _Refs:
    """Origins as references; ops of several tensors become shared junctions."""

    def __init__(self) -> None:
        self.junctions: list[dict[str, Any]] = []
        self._index: dict[str, int] = {}

    def ref(self, origin: Mapping[str, Any] | None) -> dict[str, Any] | None:
        if origin is None:
            return None
        kind = origin.get("kind")
        out: dict[str, Any]
        if kind == "input":
            out = {"i": origin["index"]}
        elif kind == "layer":
            out = {"c": origin["index"]}
        else:
            key = json.dumps([origin.get("name"), origin.get("parents")], sort_keys=True)
            index = self._index.get(key)
            if index is None:
                parents = [self.ref(p) for p in origin.get("parents", [])]
                index = self._index[key] = len(self.junctions)
                self.junctions.append({"op": origin.get("name", "op"), "src": [p for p in parents if p]})
            out = {"j": index}
        if origin.get("ops"):
            out["ops"] = list(origin["ops"])
        return out


def _parents(layers: Sequence[Mapping[str, Any]]) -> list[int]:
    """Each call's enclosing call (-1 for the root): the last open call one level up."""
    open_at: list[int] = []
    out = []
    for index, layer in enumerate(layers):
        depth = layer["depth"]
        del open_at[depth:]
        out.append(open_at[-1] if open_at else -1)
        open_at.append(index)
    return out


def failing_call(layers: Sequence[Mapping[str, Any]]) -> int | None:
    """The innermost call still running when the forward raised (None: it did not raise)."""
    unfinished = [i for i, layer in enumerate(layers) if layer.get("finished", True) is False]
    return unfinished[-1] if unfinished else None


class _ReceptiveFields:
    """Receptive field of each call's output along the data flow (first spatial axis).

    ``r_out = r_in + (kernel - 1) * dilation * jump_in``, ``jump_out = jump_in * stride``,
    as ``arith.receptive_field_of``; where maps meet (an add, a cat) the larger counts.
    Without the data flow, calls are taken in order.
    """

    def __init__(
        self, calls: list[dict[str, Any]], junctions: list[dict[str, Any]], modules: Mapping[str, Any]
    ) -> None:
        self.calls, self.junctions, self.modules = calls, junctions, modules
        self.out: dict[int, tuple[int, int] | None] = {}

    def of(self, ref: Mapping[str, Any] | None) -> tuple[int, int] | None:
        if ref is None:
            return None
        if "i" in ref:
            return (1, 1)
        if "c" in ref:
            index = ref["c"]
            if index not in self.out and not self.calls[index]["leaf"]:
                self.out[index] = self.of(self.calls[index].get("ret"))  # what its inside made
            return self.out.get(index)
        known = [f for f in (self.of(p) for p in self.junctions[ref["j"]]["src"]) if f is not None]
        return max(known) if known else None

    def compute(self, flow: bool) -> dict[int, tuple[int, int] | None]:
        last: tuple[int, int] | None = (1, 1)
        for index, call in enumerate(self.calls):
            if not call["leaf"]:
                if not flow:
                    self.out[index] = last
                continue
            sources = call.get("src") or [None]
            start = self.of(sources[0]) if flow else last
            last = self.out[index] = self._apply(call["n"], start)
        if not flow:  # a container's output is what its last leaf made
            for index in reversed(range(len(self.calls) - 1)):
                if not self.calls[index]["leaf"]:
                    inside = [i for i in range(index + 1, len(self.calls)) if self._within(i, index)]
                    self.out[index] = self.out.get(inside[-1]) if inside else self.out[index]
        else:
            for index, call in enumerate(self.calls):
                if not call["leaf"]:
                    self.of({"c": index})
        return self.out

    def _within(self, index: int, ancestor: int) -> bool:
        parent = self.calls[index]["p"]
        while parent > ancestor:
            parent = self.calls[parent]["p"]
        return bool(parent == ancestor)

    def _apply(self, name: str, start: tuple[int, int] | None) -> tuple[int, int] | None:
        if start is None:
            return None
        kernel = (self.modules.get(name) or {}).get("kernel")
        if not kernel:
            return start
        k, stride, dilation = kernel
        size, jump = start
        return (size + (k - 1) * dilation * jump, jump * stride)


def _by_name(items: Sequence[Mapping[str, Any]], key: str = "name") -> dict[str, list[Mapping[str, Any]]]:
    out: dict[str, list[Mapping[str, Any]]] = {}
    for item in items:
        out.setdefault(str(item.get(key, "")), []).append(item)
    return out


def _module_facts(picture: ModelPicture) -> dict[str, list[Fact]]:
    """Facts per module name from the inspection data and the module settings."""
    out: dict[str, list[Fact]] = {}

    def add(name: str, label: str, text: str) -> None:
        out.setdefault(name, []).append((label, text))

    for name, module in (picture.modules or {}).items():
        if module.get("repr"):
            add(name, "Settings", str(module["repr"]))
    data = picture.inspection or {}
    for layer in (data.get("flops") or {}).get("layers", []):
        calls = layer.get("calls", 1)
        add(
            layer["name"],
            "MACs",
            f"{layer['macs']:,}" + (f" (all {calls} calls)" if calls > 1 else ""),
        )
    regularization = data.get("regularization") or {}
    for drop in regularization.get("dropouts", []):
        state = "active" if drop.get("active") else "inactive"
        add(
            drop["name"],
            "Dropout",
            f"p={drop.get('p')}, {state} ({'train' if drop.get('training') else 'eval'})",
        )
    for norm in regularization.get("norms", []):
        settings = ", ".join(f"{k}={v}" for k, v in (norm.get("settings") or {}).items())
        add(norm["name"], "Normalization", f"{norm.get('statistics')} statistics; {settings}")
    for finding in (data.get("lint") or {}).get("findings", []):
        add(finding["layer"], "Lint", f"[{finding['rule']}] {finding['message']} Fix: {finding['fix']}")
    for name, facts in picture.facts.items():
        for label, text in facts:
            add(name, label, text)
    return out


def _baseline_marks(
    calls: list[dict[str, Any]], baseline: Mapping[str, Any] | None
) -> tuple[dict[str, str], dict[str, list[str]], dict[str, Any]]:
    """Per call index (as text): its mark, the layers removed after it, its old output."""
    marks: dict[str, str] = {}
    removed: dict[str, list[str]] = {}
    old: dict[str, Any] = {}
    if not baseline:
        return marks, removed, old
    where = {(c["n"], c["c"]): i for i, c in enumerate(calls)}
    for change in baseline.get("changes", []):
        new, before = change.get("new"), change.get("old")
        if change["mark"] == REMOVED:
            after = change.get("after")
            at = where.get((after[0], after[1])) if after else 0
            label = before["name"] or "(root)"
            removed.setdefault(str(at if at is not None else 0), []).append(
                f"{label} ({before['type']}, {shape_text(before['output'])})"
            )
            continue
        index = where.get((new["name"], new["call"])) if new else None
        if index is None:
            continue
        marks[str(index)] = "added" if change["mark"] == ADDED else "changed"
        if before is not None:
            old[str(index)] = {
                "out": before["output"],
                "np": before["params"],
                "n": before["name"],
                "t": before["type"],
            }
    return marks, removed, old


def _calls(layers: Sequence[Mapping[str, Any]], refs: _Refs, flow: bool) -> list[dict[str, Any]]:
    """The calls in the script's short keys (see the module docstring for the references)."""
    parents = _parents(layers)
    has_children = {p for p in parents if p >= 0}
    module_calls: dict[str, int] = {}
    for layer in layers:
        module_calls[layer["name"]] = module_calls.get(layer["name"], 0) + 1
    calls: list[dict[str, Any]] = []
    for index, layer in enumerate(layers):
        call: dict[str, Any] = {
            "n": layer["name"],
            "t": layer["type"],
            "d": layer["depth"],
            "c": layer["call"],
            "p": parents[index],
            "leaf": index not in has_children,
            "in": layer["input_shapes"],
            "out": layer["output_shape"],
            "np": layer["num_params"],
            "tp": layer["trainable_params"],
        }
        if layer.get("finished", True) is False:
            call["ok"] = False
        if module_calls[layer["name"]] > 1:
            call["k"] = module_calls[layer["name"]]
        if layer.get("aliases"):
            call["al"] = list(layer["aliases"])
        if layer.get("output_formula") is not None:
            call["f"] = layer["output_formula"]
        if flow:
            call["src"] = [refs.ref(o) for o in layer.get("sources") or []]
            if layer.get("returns") is not None:
                call["ret"] = refs.ref(layer["returns"])
        calls.append(call)
    return calls


def _add_facts(calls: list[dict[str, Any]], picture: ModelPicture, refs: _Refs, flow: bool) -> None:
    """Each call's facts beyond its shapes (``x``): settings, receptive field, MACs, lint..."""
    facts = _module_facts(picture)
    fields = _ReceptiveFields(calls, refs.junctions, picture.modules).compute(flow) if picture.modules else {}
    for index, call in enumerate(calls):
        shown = list(facts.get(call["n"], []))
        rf = fields.get(index)
        out = call["out"]
        spatial = isinstance(out, list) and len(out) >= 3 and all(isinstance(d, int) for d in out)
        if rf is not None and rf[0] > 1 and spatial:
            at = 1 if shown and shown[0][0] == "Settings" else 0
            shown.insert(at, ("Receptive field", f"{rf[0]} px (outputs {rf[1]} px apart)"))
        if shown:
            call["x"] = [list(f) for f in shown]


def picture_data(picture: ModelPicture, depth: int) -> dict[str, Any]:
    """The JSON the script draws one model from."""
    trace = picture.trace or {"layers": [], "input_shapes": []}
    layers = trace.get("layers", [])
    flow = any("sources" in layer for layer in layers)
    refs = _Refs()
    calls = _calls(layers, refs, flow)
    _add_facts(calls, picture, refs, flow)
    data: dict[str, Any] = {
        "title": picture.title,
        "status": picture.status,
        "depth": depth,
        "flow": flow,
        "inputs": trace.get("input_shapes", []) + list((trace.get("input_kwargs") or {}).values()),
        "calls": calls,
        "junctions": refs.junctions,
        "complete": trace.get("complete", True) and picture.trace is not None,
    }
    fail = failing_call(layers)
    if fail is not None:
        data["fail"] = fail
        data["failure"] = picture.failure or ""
    marks, removed, old = _baseline_marks(calls, picture.baseline)
    if marks or removed:
        data["marks"], data["removed"], data["old"] = marks, removed, old
    return data
