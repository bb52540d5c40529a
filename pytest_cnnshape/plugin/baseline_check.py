"""The test side of baselines: compare a traced model with its file; fail with the diff.

Declared models, ``cnn_model`` markers and ``cnn_shapes.assert_baseline`` call
``verify`` once the model's contract has passed. It only reads files: what it
found rides on the model's entry to the controller (``baseline.record``), and only
the controller writes (``baseline_gate``), so xdist workers never race on a file.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ..baseline import render, serializer
from ..baseline.diff import compare
from ..baseline.location import declared_folder, display, file_name, folder_for_tests
from ..baseline.record import CHANGED, MISSING, SAME, UNREADABLE, BaselineOptions, BaselineUse, attach
from ..baseline.snapshot import Snapshot
from ..errors import BaselineFailure, BaselineFileError
from ..picture.flow import EXTRAS_KEY as PICTURE_KEY
from .entries import FAILED, PASSED, ModelEntry
from .options import Settings, settings


def entry_snapshot(entry: ModelEntry, output_only: bool) -> Snapshot:
    """The snapshot of a passing entry's trace: what its baseline file holds."""
    assert entry.trace is not None
    return Snapshot.from_trace(entry.trace, model=entry.name, input=entry.input, output_only=output_only)


def baseline_path(item: pytest.Item, entry: ModelEntry, s: Settings) -> Path:
    """The file of an entry's baseline: project-level for declared models, else by the test file."""
    if entry.source == "declared":
        return declared_folder(s.project.root, s.project.baseline_dir) / file_name(entry.name)
    return folder_for_tests(item.path, s.project.baseline_dir) / file_name(entry.name, entry.input)


def verify(item: pytest.Item, entry: ModelEntry, options: BaselineOptions) -> BaselineFailure | None:
    """Compare a passing entry with its baseline; the failure to raise, or None."""
    s = settings(item.config)
    if entry.status != PASSED or not entry.trace or not options.active(s.project.baselines):
        return None
    path = baseline_path(item, entry, s)
    file = display(path, s.rootpath)
    where, line, _ = item.location
    use = BaselineUse(
        file=file,
        status=SAME,
        output_only=options.output_only,
        location=where,
        line=None if line is None else line + 1,
    )
    snapshot = entry_snapshot(entry, options.output_only)
    try:
        stored = serializer.read(path)
    except BaselineFileError as err:
        use.status = UNREADABLE
        use.headline, use.text = render.unreadable(err, snapshot, file, entry.nodeid)
    else:
        if stored is None:
            use.status = MISSING
            use.headline, use.text = render.missing(snapshot, file, entry.nodeid)
        elif stored != snapshot:
            use.status = CHANGED
            diff = compare(stored, snapshot)
            use.headline, use.text = render.changed(diff, file, entry.nodeid)
            if s.pictures:  # the picture marks the changed layers, old and new shapes side by side
                picture = entry.extras.setdefault(PICTURE_KEY, {})
                picture["baseline"] = {"file": file, "headline": use.headline, "changes": diff.changes_data()}
    accepted = use.status == SAME or s.update or (use.status == MISSING and s.project.update_missing)
    use.failed = not accepted
    attach(entry.extras, use)
    if accepted:
        return None
    entry.status, entry.failure = FAILED, use.headline
    return BaselineFailure(use.text)
