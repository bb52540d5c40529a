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

import dataclasses
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from ..errors import UnverifiedFixError
from ..shapes.tree import ShapeTree, first_shape, format_shape, leaf_shapes
from ..tracing.devices import meta_limitation
from ..tracing.failure import FailureContext
from ..tracing.records import ShapeTrace
from .common import sequence_first
from .edits import LayerEdit
from .patches import CODE, INPUT, EditSource, Patch, ReplaceLayer, Unpatchable, joined, twin, unwrapped
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

    quiet = dataclasses.replace(ctx, probe=None)  # a name is all that is wanted: no searches
    try:
        return unwrapped(recognise(quiet).headline)
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
        if not isinstance(part.recipe, LayerEdit):
            return False  # another layer in its place: what it gives the next is its own
        if part.recipe.resized():
            return False
    return True


def _shown(candidate: Candidate, outcome: Outcome, failing: str) -> ShownFix:
    return ShownFix(
        text=candidate.patch.described(failing),
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


#: Twins traced per diagnosis at most, extensions included.
MAX_TRIES = 16
#: Candidates named when none verified.
TRIED_SHOWN = 3


def _progressed(ctx: FailureContext, later: FailureContext) -> bool:
    """The twin got further than the model: more layers ran before it failed."""
    return _finished_leaves(later) > _finished_leaves(ctx)


def _same_cause(ctx: FailureContext, later: FailureContext) -> bool:
    """The failure a twin runs into is this one again, further on: the same wrong width
    reaching the next layer, or the same class of layer refusing its input."""
    before, now = ctx.innermost, later.innermost
    if before is None or now is None or not _progressed(ctx, later):
        return False
    if type(now.module) is type(before.module) and later.in_torch_layer == ctx.in_torch_layer:
        return True
    got, then = first_shape(before.record.input_shapes), first_shape(now.record.input_shapes)
    if got is None or then is None or len(got) < 2 or len(then) < 2:
        return False
    return got[1] == then[1] or got[-1] == then[-1]


def _sites(candidate: Candidate) -> tuple[str, ...]:
    return candidate.patch.sites()


def _extended(ctx: FailureContext, base: Candidate, later: FailureContext) -> list[Candidate]:
    """``base`` joined with each fix the failure it runs into (of the same cause) is offered."""
    from . import recognise
    from .search import every_instance, flow_candidates

    taken = set(_sites(base))
    try:
        found_diagnosis = recognise(later)
        found = found_diagnosis.candidates + flow_candidates(later, found_diagnosis.facts)
    except Exception:  # a rule that breaks on the twin: no extension, never a crash
        if os.environ.get("CNNSHAPE_DEBUG"):
            raise
        return []
    out = []
    for candidate in found:
        if taken & set(_sites(candidate)) or candidate.patch.kind != base.patch.kind:
            continue
        patch = joined(base.patch, candidate.patch)
        note = "; ".join(n for n in (base.note, candidate.note) if n) or None
        everywhere = every_instance(ctx.view, patch)
        if everywhere is not None:  # the same change in each instance of a block: all at once
            patch, note = everywhere.patch, base.note
        out.append(
            Candidate(
                patch,
                note=note,
                rank=base.rank,
                cost=base.cost + candidate.cost,
                kind=base.kind,
                headline=base.headline,
                facts=dict(base.facts),
                hint=base.hint,
            )
        )
    return out


def _choose(ctx: FailureContext, candidates: list[Candidate]) -> _Choice:
    """Try the candidates (and their extensions) in order of belief; rank what verified."""
    from .search import MAX_SITES, Siblings, prior

    siblings = Siblings(ctx.view)
    scored = [(prior(siblings, c), i, c) for i, c in enumerate(candidates)]
    queue = [
        c for _, _, c in sorted(scored, key=lambda item: (item[2].rank - item[0], item[2].cost, item[1]))
    ]
    sequence_first = bool(queue) and time_major(ctx)
    complete: list[tuple[Candidate, Outcome]] = []
    choice = _Choice()
    tried = 0
    seen: set[str] = set()
    passed_over: list[Candidate] = []
    while queue and tried < MAX_TRIES:
        candidate = queue.pop(0)
        key = candidate.patch.text
        if key in seen:
            continue
        seen.add(key)
        if complete and _worse_than(siblings, candidate, complete, candidates):
            passed_over.append(candidate)
            continue  # it could not beat a fix already verified
        tried += 1
        outcome = attempt(ctx, candidate.patch, sequence_first)
        if outcome.complete:
            complete.append((candidate, outcome))
            continue
        if candidate.refine is not None:  # the quick guess missed: its exact form is worth its cost
            queue[:0] = _exact_forms(candidate)
        later = outcome.failure
        if later is not None and len(_sites(candidate)) < MAX_SITES and _same_cause(ctx, later):
            queue[:0] = _extended(ctx, candidate, later)  # followed first: the same cause, further on
        if outcome.further and choice.partial is None:
            choice.partial = (candidate, outcome)
        elif not outcome.further:
            choice.failed.append((candidate, outcome))
    if complete:
        ranked = sorted(complete, key=lambda item: _rank_key(siblings, item[0], candidates))
        choice.main = ranked[0]
        kind = ranked[0][0].patch.kind
        choice.alternative = next((item for item in ranked[1:] if item[0].patch.kind != kind), None)
        if choice.alternative is None:
            choice.alternative = _returning_otherwise(ctx, choice.main, ranked[1:], passed_over)
    return choice


#: Fixes passed over that are still tried, for a model returning several tensors, to find
#: one that makes it return other shapes (``_returning_otherwise``).
OTHER_RETURNS = 2


def _returning_otherwise(
    ctx: FailureContext,
    main: tuple[Candidate, Outcome],
    verified: list[tuple[Candidate, Outcome]],
    passed_over: list[Candidate],
) -> tuple[Candidate, Outcome] | None:
    """A fix that runs too but makes the model return other shapes, for a model that returns
    several tensors; None otherwise.

    Such a model can return the very map a later layer refuses (a feature map beside the
    logits): fixing the layer keeps the map's width, fixing its producer changes what the
    model returns, and nothing in the model says which width was meant. Both are shown,
    each with what the model then returns, rather than one as if it were the only fix.
    A model returning one tensor pays nothing.
    """
    if len(leaf_shapes(main[1].output)) < 2:
        return None
    found = next((item for item in verified if item[1].output != main[1].output), None)
    for candidate in [] if found else passed_over[:OTHER_RETURNS]:
        outcome = attempt(ctx, candidate.patch)
        if outcome.complete and outcome.output != main[1].output:
            found = candidate, outcome
            break
    if found is None:
        return None
    candidate, outcome = found
    said = "the model then returns other shapes than with the fix above: pick the one you meant"
    note = f"{candidate.note}; {said}" if candidate.note else said
    return dataclasses.replace(candidate, note=note), outcome


def _rank_key(siblings: Any, candidate: Candidate, candidates: list[Candidate]) -> tuple[Any, ...]:
    """Fewest places changed, the root cause (siblings' consensus), the rule's belief, the
    smaller change."""
    from .search import prior

    order = next((i for i, c in enumerate(candidates) if c is candidate), len(candidates))
    places = len(candidate.patch.places())
    return (places, -prior(siblings, candidate), belief(candidate), candidate.cost, order)


def belief(candidate: Candidate) -> int:
    """The rule's order of belief, an edit of a library's code (torchvision, timm) last."""
    library = any(isinstance(p, EditSource) and p.in_library for p in candidate.patch.parts())
    return candidate.rank + (3 if library else 0)


def _worse_than(
    siblings: Any,
    candidate: Candidate,
    complete: list[tuple[Candidate, Outcome]],
    candidates: list[Candidate],
) -> bool:
    """Whether ``candidate`` cannot rank above the best verified fix of its kind (places, the
    siblings' consensus and belief of ``_rank_key``): then it is not worth a twin."""
    same_kind = [c for c, _ in complete if c.patch.kind == candidate.patch.kind]
    if not same_kind:
        return False  # the first of its kind: an alternative to the fix of another kind
    best = min(_rank_key(siblings, c, candidates)[:3] for c in same_kind)
    return _rank_key(siblings, candidate, candidates)[:3] >= best


def _flow(ctx: FailureContext, diagnosis: Diagnosis) -> list[Candidate]:
    """The data flow's candidates (``search``); none when the search breaks on a model."""
    from .search import flow_candidates

    try:
        return flow_candidates(ctx, diagnosis.facts)
    except Exception:
        if os.environ.get("CNNSHAPE_DEBUG"):
            raise
        return []


def _worked_out(make: Callable[[], list[Candidate] | None]) -> list[Candidate]:
    """The candidates a dear refinement gives (an exact form, a last resort); none when working
    them out breaks: a refinement is never a reason to lose the diagnosis."""
    try:
        return make() or []
    except Exception:
        if os.environ.get("CNNSHAPE_DEBUG"):
            raise
        return []


def _exact_forms(candidate: Candidate) -> list[Candidate]:
    """The candidates of ``candidate``'s exact form."""
    assert candidate.refine is not None
    return _worked_out(candidate.refine)


def _refined(ctx: FailureContext, candidate: Candidate, outcome: Outcome) -> tuple[Candidate, Outcome]:
    """The fix shown in its exact form where it has a dearer one (an input size from the
    model's input domain: a symbolic forward, paid only for the fix that is shown), once that
    form is verified too; the fix as found otherwise."""
    if candidate.refine is None:
        return candidate, outcome
    for better in _exact_forms(candidate)[:2]:
        tried = attempt(ctx, better.patch)
        if tried.complete:
            better.kind = better.kind or candidate.kind
            better.headline = better.headline or candidate.headline
            better.hint = better.hint or candidate.hint
            better.facts = {**candidate.facts, **better.facts}
            return better, tried
    return candidate, outcome


def _last_resort(ctx: FailureContext, choice: _Choice) -> _Choice:
    """The dear candidates (``FailureContext.last_resorts``), tried when no other verified; what
    was tried before still counts as tried."""
    found = [c for make in ctx.last_resorts for c in _worked_out(make)]
    if not found:
        return choice
    later = _choose(ctx, found)
    if later.main is None:
        later.partial = choice.partial or later.partial
        later.failed = choice.failed + later.failed
    return later


def settle(ctx: FailureContext, diagnosis: Diagnosis) -> Diagnosis:
    """Verify the diagnosis's candidates; show the best verified one (and another kind)."""
    if diagnosis.fix is not None and diagnosis.shown is None and os.environ.get("CNNSHAPE_DEBUG"):
        raise UnverifiedFixError(
            f"a rule set the fix {diagnosis.fix!r} of {diagnosis.kind!r} directly; propose it as a "
            "Candidate so that it is verified"
        )
    diagnosis.fix = None
    choice = _choose(ctx, [*diagnosis.candidates, *_flow(ctx, diagnosis)])
    if choice.main is None and ctx.last_resorts:
        choice = _last_resort(ctx, choice)
    main = choice.main or choice.partial
    if main is None:
        tried = [
            f"tried {c.patch.described(diagnosis.layer)}: {o.text}" for c, o in choice.failed[:TRIED_SHOWN]
        ]
        if len(choice.failed) > TRIED_SHOWN:
            tried.append(f"and {len(choice.failed) - TRIED_SHOWN} more, each failing as one of these")
        diagnosis.fix_note = "\n".join(n for n in (diagnosis.fix_note, *tried) if n) or None
        diagnosis.facts.setdefault("verified", False)
        diagnosis.facts["tried"] = len(choice.failed)
        return diagnosis
    candidate, outcome = _refined(ctx, *main) if choice.main is not None else main
    diagnosis.shown = _shown(candidate, outcome, diagnosis.layer)
    diagnosis.fix = diagnosis.shown.text
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
        diagnosis.alternative = _shown(*choice.alternative, diagnosis.layer)
    return diagnosis
