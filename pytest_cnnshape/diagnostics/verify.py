"""Every fix verified before it is shown: each candidate applied to a twin and traced.

A rule's candidates are tried in its order of belief (``Candidate.rank``), the
smaller change first among equals. Each is applied to a twin of the model
(``patches.twin``: no weights copied, the user's model untouched) and the twin is
traced on meta with the failed run's inputs (transformed, if the fix says so):

* it runs to its output, keeping the batch: verified, ``verified: the model then
  runs to [8, 10]``;
* it fails later than the original failure (a second, independent problem): shown
  only when no candidate runs through, and the text says how far it got;
* anything else: not shown.

The first verified candidate is the fix; the first verified one of another kind
(a layer fix against an input fix) is shown as the alternative. When none
verifies the diagnosis keeps its facts and says so, naming what was tried.
``CNNSHAPE_DEBUG=1`` raises if a diagnosis carries a fix that was not verified.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch

from ..errors import UnverifiedFixError
from ..shapes.tree import ShapeTree, first_shape, format_shape
from ..tracing.devices import meta_limitation
from ..tracing.failure import FailureContext
from ..tracing.records import ShapeTrace
from .common import sequence_first
from .patches import CODE, INPUT, Patch, ReplaceLayer, Unpatchable, build_module, twin, unwrapped
from .report import Candidate, Diagnosis, ShownFix

if TYPE_CHECKING:
    from ..tracing.inputs import InputSpec
    from ..tracing.modelview import ModelView

#: Candidates tried per diagnosis at most (each costs one traced forward on meta).
MAX_ATTEMPTS = 8

_META = torch.device("meta")


@dataclass(frozen=True)
class Outcome:
    """What a twin with one patch did."""

    #: It ran to its output (and kept the batch).
    complete: bool
    #: It failed, but later than the original failure.
    further: bool
    #: ``verified: the model then runs to [8, 10]``, or why it does not verify.
    text: str
    output: ShapeTree = None
    #: The twin's failure, when it failed.
    failure: FailureContext | None = None
    #: The inputs the twin ran on.
    inputs: InputSpec | None = None


def keeps_batch(output: ShapeTree, inputs: InputSpec, time_major: bool) -> bool:
    """The output's batch is the input's: on axis 0, or on axis 1 of a sequence-first model."""
    shape, given = first_shape(output), inputs.first_shape()
    if shape is None or given is None or len(given) < 2 or len(shape) < 1:
        return True
    batch = given[0]
    return shape[0] == batch or (len(shape) >= 3 and shape[1] == batch and time_major)


_AXIS_MOVES = frozenset({"permute", "transpose", "movedim", "moveaxis", "swapaxes", "swapdims", "t"})


def time_major(ctx: FailureContext) -> bool:
    """Whether the model is sequence-first by design: a recurrent or attention layer with
    ``batch_first=False``, or forward code that moves axes (a CRNN's ``(W, B, C)``)."""
    if any(sequence_first(m) for m in ctx.view.modules):
        return True
    flow = ctx.flow
    if flow is None:
        return False
    origins = [o for found in flow.lineage.sources.values() for o in found if o is not None]
    return any(op in _AXIS_MOVES for o in origins for op in o.ops)


def _finished_leaves(ctx: FailureContext) -> int:
    return sum(1 for r in ctx.records if r.is_leaf and r.finished)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _where(ctx: FailureContext) -> str:
    running = ctx.innermost
    if running is None:
        return "its forward()"
    record = running.record
    name = unwrapped(record.name)  # a layer a fix wrapped: its own name
    label = f"{name or '(root)'}" + (f" (call {record.call + 1})" if record.call else "")
    return f"{label} ({record.type})" if ctx.in_torch_layer else f"the forward() of {label} ({record.type})"


def _second_problem(ctx: FailureContext) -> str:
    """The headline the rules give the failure a fix runs into (its own fixes not tried)."""
    from . import recognise

    ctx.probe = None  # a name is all that is wanted: no searches, no re-runs
    try:
        return unwrapped(recognise(ctx).headline)
    except Exception:  # naming the second problem must never break the first one's diagnosis
        if os.environ.get("CNNSHAPE_DEBUG"):
            raise
        return f"{_where(ctx)}: {_first_line(ctx.exc)}"


def attempt(ctx: FailureContext, patch: Patch, sequence_first: bool = False) -> Outcome:
    """Apply ``patch`` to a twin of the failed model and trace it (meta first).

    ``sequence_first``: the output may hold the batch on axis 1 (``time_major``).
    """
    probe = ctx.probe
    if probe is None:
        return Outcome(False, False, "no second run is possible here")
    view = probe.view
    result: ShapeTrace | FailureContext | None = None
    spec = None
    places = (_META,) if probe.fallback.type == "meta" else (_META, probe.fallback)
    for where in places:
        try:
            root, spec = twin(view, ctx.inputs, patch, where, probe.dtype)
        except Unpatchable as exc:
            if where is not places[-1]:
                continue  # meta cannot stand for it (a device move): try the real device
            return Outcome(False, False, f"it cannot be tried on this model ({exc})")
        result = probe(spec, root=root, where=where)
        if not (isinstance(result, FailureContext) and meta_limitation(result.exc)):
            break
    if result is None or spec is None:
        return Outcome(False, False, "it cannot be tried on this model")
    if isinstance(result, ShapeTrace):
        if not keeps_batch(result.output_shape, spec, sequence_first):
            return Outcome(
                False,
                False,
                f"the model then runs, but its output {format_shape(result.output_shape)} no longer "
                "has the input's batch",
                result.output_shape,
                inputs=spec,
            )
        return Outcome(
            True,
            False,
            f"verified: the model then runs to {format_shape(result.output_shape)}",
            result.output_shape,
            inputs=spec,
        )
    before, now = ctx.innermost, result.innermost
    moved = (
        _independent(ctx, patch, view, result)
        and _finished_leaves(result) > _finished_leaves(ctx)
        and now is not None
        and before is not None
        and (unwrapped(now.record.name), now.record.call) != (before.record.name, before.record.call)
    )
    if moved:
        text = (
            f"partly verified: the model then gets past {_where(ctx)} and fails later: "
            f"{_second_problem(result)} (a second problem)"
        )
        return Outcome(False, True, text, failure=result, inputs=spec)
    return Outcome(
        False,
        False,
        f"the model would still fail: {_second_problem(result)}",
        failure=result,
    )


_WIDTHS = ("out_channels", "out_features", "num_features", "hidden_size", "normalized_shape")


def _independent(ctx: FailureContext, patch: Patch, view: ModelView, later: FailureContext) -> bool:
    """Whether a failure further on can be a second, independent problem.

    Not after a change of forward code (it reshapes what comes next: the next line may fail
    because of it), not in forward code after an input change, and not when a layer fix
    changed what the failing layer gives the next one (its output channels or features).
    """
    running = ctx.innermost
    if running is None or patch.kind == CODE:
        return False
    if patch.kind == INPUT:
        return later.in_torch_layer
    for part in patch.parts():
        if not isinstance(part, ReplaceLayer) or part.name != running.record.name:
            continue
        original = view.module(part.name)
        try:
            built = build_module(part.code or part.text, _META, original)
        except Unpatchable:
            return False
        for width in _WIDTHS:
            if hasattr(original, width) and getattr(built, width, None) != getattr(original, width):
                return False
    return True


def _shown(candidate: Candidate, outcome: Outcome) -> ShownFix:
    return ShownFix(
        text=candidate.patch.text,
        note=candidate.note,
        verified=outcome.text,
        kind=candidate.patch.kind,
        complete=outcome.complete,
        patch=candidate.patch,
    )


@dataclass
class _Choice:
    """What the candidates' outcomes give: the fix, an alternative, a partial one, the misses."""

    main: tuple[Candidate, Outcome] | None = None
    alternative: tuple[Candidate, Outcome] | None = None
    partial: tuple[Candidate, Outcome] | None = None
    failed: list[tuple[Candidate, Outcome]] = field(default_factory=list)


def _choose(ctx: FailureContext, candidates: list[Candidate]) -> _Choice:
    """Try the candidates in order of belief until a fix and one of another kind verified."""
    order = sorted(enumerate(candidates), key=lambda item: (item[1].rank, item[1].cost, item[0]))
    choice = _Choice()
    sequence_first = bool(order) and time_major(ctx)
    tried = 0
    for _, candidate in order:
        kind = candidate.patch.kind
        main = choice.main
        if main is not None and (choice.alternative is not None or kind == main[0].patch.kind):
            continue
        if tried >= MAX_ATTEMPTS:
            break
        tried += 1
        outcome = attempt(ctx, candidate.patch, sequence_first)
        if outcome.complete and main is None:
            choice.main = (candidate, outcome)
        elif outcome.complete:
            choice.alternative = (candidate, outcome)
        elif outcome.further and choice.partial is None:
            choice.partial = (candidate, outcome)
        else:
            choice.failed.append((candidate, outcome))
    return choice


def settle(ctx: FailureContext, diagnosis: Diagnosis) -> Diagnosis:
    """Verify the diagnosis's candidates; show the best verified one (and another kind)."""
    if diagnosis.fix is not None and diagnosis.shown is None and os.environ.get("CNNSHAPE_DEBUG"):
        raise UnverifiedFixError(
            f"a rule set the fix {diagnosis.fix!r} of {diagnosis.kind!r} directly; propose it as a "
            "Candidate so that it is verified"
        )
    diagnosis.fix = None
    choice = _choose(ctx, diagnosis.candidates)
    main = choice.main or choice.partial
    if main is None:
        if choice.failed:
            candidate, outcome = choice.failed[0]
            diagnosis.fix_note = f"{candidate.patch.text} was tried: {outcome.text}" + (
                f" ({diagnosis.fix_note})" if diagnosis.fix_note else ""
            )
        diagnosis.facts.setdefault("verified", False)
        return diagnosis
    candidate, outcome = main
    diagnosis.shown = _shown(candidate, outcome)
    diagnosis.fix = candidate.patch.text
    diagnosis.fix_note = candidate.note
    if candidate.kind is not None:
        diagnosis.kind = candidate.kind
    if candidate.headline is not None:
        diagnosis.headline = candidate.headline
    if candidate.hint is not None:
        diagnosis.hint = candidate.hint if diagnosis.hint is None else f"{candidate.hint}\n{diagnosis.hint}"
    diagnosis.facts.update(candidate.facts)
    diagnosis.facts["verified"] = outcome.complete
    if choice.alternative is not None and choice.main is not None:
        diagnosis.alternative = _shown(*choice.alternative)
    return diagnosis
