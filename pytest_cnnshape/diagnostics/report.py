"""A diagnosis and how it reads.

``Diagnosis`` is what a rule makes of a failed forward; ``render`` turns it into
the text of a ShapeMismatchError::

    fc (Linear) cannot take its input
      received  [1, 800]    flattened from features.5 (MaxPool2d) -> [1, 32, 5, 5]
      expects   [*, 512]    in_features=512
      fix       nn.Linear(in_features=800, out_features=10)   # 800 = 32 * 5 * 5
                verified: the model then runs to [1, 10]
      at        model.py:14: x = self.fc(x)
    layers up to the failure: ...

A rule proposes ``candidates`` (``Candidate``: a patch and why); ``verify.settle``
tries each on a twin of the model and fills ``fix`` (and an ``alternative`` of
another kind) only with those the twin ran with. A diagnosis always names the
layer and what it received, and says plainly when no fix was verified.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..shapes.tree import ShapeTree, format_shape, to_json
from ..tracing.table import grid, inputs_cell

if TYPE_CHECKING:
    from collections.abc import Callable

    from ..tracing.records import LayerRecord, ShapeTrace
    from .patches import Patch

#: Rows of the partial trace shown under a diagnostic.
PATH_ROWS = 8


@dataclass
class Candidate:
    """A fix a rule proposes; shown only once a twin of the model ran with it."""

    patch: Patch
    #: Why its number is right (``800 = 32 * 5 * 5``): the ``# ...`` after the fix.
    note: str | None = None
    #: The rule's order of belief: lower first. Equal ranks: the smaller change first.
    rank: int = 0
    #: How much it changes (settings, axes, layers touched).
    cost: int = 1
    #: When this is the fix shown, the diagnosis reads as this kind, headline, facts.
    kind: str | None = None
    headline: str | None = None
    facts: dict[str, Any] = field(default_factory=dict)
    hint: str | None = None
    #: Settings it moves back to a consensus the siblings do not hold (the other parts of the
    #: join it belongs to): counted as a sibling consensus is (``search.prior``).
    agreed_by: int = 0
    #: A dearer, exact form of this fix (an input size from the model's input domain), worked
    #: out only when this one is the fix shown: the candidates it gives are verified in turn.
    refine: Callable[[], list[Candidate] | None] | None = field(default=None, compare=False, repr=False)


@dataclass
class ShownFix:
    """A verified fix as shown: its text, why, and what the twin did with it."""

    text: str
    note: str | None
    #: ``the model then runs to [8, 10]`` (or how much further it got).
    verified: str
    #: ``layer``, ``input`` or ``code``.
    kind: str
    #: True when the patched twin ran to its output; False when it only got further.
    complete: bool
    patch: Patch

    def to_dict(self) -> dict[str, Any]:
        return {
            "fix": self.text,
            "note": self.note,
            "verified": self.verified,
            "kind": self.kind,
            "complete": self.complete,
        }


@dataclass
class Diagnosis:
    """What went wrong, where, and what to change."""

    #: Stable id of the failure class, e.g. ``"linear_in_features"``.
    kind: str
    #: Qualified name of the failing module (``""``: the root's own forward).
    layer: str
    module_type: str
    received_shapes: tuple[ShapeTree, ...]
    headline: str
    #: Labelled lines between the headline and the fix (``received``, ``expects``...).
    details: list[tuple[str, str]] = field(default_factory=list)
    #: The concrete change, with the right number, verified on a twin of the model; None
    #: when none verified. Set by ``verify.settle`` from ``candidates``, never by a rule.
    fix: str | None = None
    #: Why the fix's number is right (``800 = 32 * 5 * 5``), or why there is no fix.
    fix_note: str | None = None
    hint: str | None = None
    source: str | None = None
    #: The line of an installed package's forward that raised (``torchvision/models/resnet.py:150:
    #: out += identity``): shown as context below the user's own line.
    library: str | None = None
    original: str = ""
    device: str = ""
    #: The numbers behind the text, for tools and tests (``{"in_features": 800}``);
    #: plain JSON values only, since they travel in reports.
    facts: dict[str, Any] = field(default_factory=dict)
    #: The fixes the rule proposes, to be verified.
    candidates: list[Candidate] = field(default_factory=list)
    #: The fix shown (``fix`` is its text) and another verified one of a different kind.
    shown: ShownFix | None = None
    alternative: ShownFix | None = None

    @property
    def verified(self) -> str | None:
        """What the twin did with the fix shown: ``the model then runs to [8, 10]``."""
        return self.shown.verified if self.shown is not None else None

    @property
    def patch(self) -> Patch | None:
        """The fix shown, as a patch tools can apply (``patches.apply``)."""
        return self.shown.patch if self.shown is not None else None

    def render(self, trace: ShapeTrace | None = None) -> str:
        """The diagnostic text: headline, labelled details, fix, source, the path."""
        lines = [self.headline]
        rows = list(self.details)
        if self.fix:
            text = self.fix + (f"   # {self.fix_note}" if self.fix_note else "")
            if self.shown is not None:
                text += "\n" + self.shown.verified
            rows.append(("fix", text))
            other = self.alternative
            if other is not None:
                rows.append(
                    ("or", other.text + (f"   # {other.note}" if other.note else "") + "\n" + other.verified)
                )
        else:
            rows.append(
                (
                    "fix",
                    "none verified: " + (self.fix_note or "no change to try was found from what ran"),
                )
            )
        if self.hint:
            rows.append(("hint", self.hint))
        if self.source:
            rows.append(("at", self.source))
        if self.library:
            rows.append(("in", self.library))
        if self.original:
            rows.append(("torch", self.original.strip().splitlines()[0]))
        width = max(len(label) for label, _ in rows)
        for label, text in rows:
            first, *rest = text.splitlines() or [""]
            lines.append(f"  {label.ljust(width)}  {first}")
            lines.extend(f"  {' ' * width}  {more}" for more in rest)
        if trace is not None and trace.layers:
            lines.append(path_table(trace.layers))
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form (reports, xdist)."""
        return {
            "kind": self.kind,
            "layer": self.layer,
            "module_type": self.module_type,
            "received_shapes": to_json(list(self.received_shapes)),
            "headline": self.headline,
            "fix": self.fix,
            "fix_note": self.fix_note,
            "verified": self.verified,
            "fix_kind": self.shown.kind if self.shown is not None else None,
            "alternative": self.alternative.to_dict() if self.alternative is not None else None,
            "source": self.source,
            "library": self.library,
            "original": self.original,
            "facts": dict(self.facts),
        }


def path_table(layers: list[LayerRecord], rows: int = PATH_ROWS) -> str:
    """The last rows of the partial trace: leaf calls and the call that failed."""
    # finished layers in order, then the call that failed (a block failing in its own
    # forward() code was entered before the layers it ran)
    failing = [r for r in layers if not r.finished][-1:]
    shown = [r for r in layers if r.is_leaf and r.finished] + failing
    cut = shown[-rows:]
    body = [
        [
            r.label,
            r.type,
            inputs_cell(r),
            format_shape(r.output_shape)
            if r.finished
            else "<- failed here"
            if r.is_leaf
            else "<- failed in its forward()",
        ]
        for r in cut
    ]
    title = "layers up to the failure"
    if len(shown) > len(cut):
        title += f" (last {len(cut)} of {len(shown)})"
    table = grid(body, ("Layer", "Type", "Input", "Output"))
    return title + ":\n" + "\n".join("  " + line for line in table.splitlines())
