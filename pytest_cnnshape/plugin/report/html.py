"""The HTML report (``--cnn-shapes-report=x.html``): every model of the session as a picture.

Built on the controller from the entries the tests sent (JSON only), in the order
of the other reports, with no timings, host names or dates: a serial run and an
xdist run write the same bytes. The tests of such a session record each trace's
data flow and what else the picture shows (``extras["picture"]``).
"""

from __future__ import annotations

from ...baseline.record import use_in
from ...picture.document import render as render_document
from ...picture.flow import EXTRAS_KEY, ModelPicture
from .gather import ReportedModel, SessionModels


def picture_of(model: ReportedModel) -> ModelPicture:
    """The picture's view of one reported model."""
    entry = model.entry
    extras = entry.extras.get(EXTRAS_KEY) or {}
    failed = model.failed or model.expected_failure
    baseline = extras.get("baseline")
    use = use_in(entry.extras)
    if baseline is not None and use is not None and not use.failed:
        baseline = {
            **baseline,
            "headline": baseline["headline"] + " (accepted: the baseline file was rewritten)",
        }
    notes = []
    contract = model.contract_line()
    if contract:
        notes.append(contract)
    if use is not None and use.failed and baseline is None:
        notes.append(use.headline)
    return ModelPicture(
        title=entry.name,
        trace=entry.trace,
        status=entry.status,
        input=entry.input,
        output=model.output,
        tests=tuple(model.nodeids),
        failure=entry.failure if failed else None,
        diagnostic=extras.get("diagnostic") if failed else None,
        inspection=entry.extras.get("inspection"),
        modules=extras.get("modules"),
        baseline=baseline,
        facts={name: [tuple(f) for f in facts] for name, facts in (extras.get("facts") or {}).items()},
        notes=tuple(notes),
    )


def render(session: SessionModels, depth: int, generator: str = "") -> str:
    """The whole HTML document: an index of the models, then each one's picture."""
    models = session.models()
    ordered = sorted(models, key=lambda m: not m.failed)  # what needs attention first, as in Markdown
    return render_document(
        [picture_of(m) for m in ordered],
        depth=depth,
        title="CNN shapes",
        summary=session.counts_line(),
        footer=generator,
        index=True,
    )
