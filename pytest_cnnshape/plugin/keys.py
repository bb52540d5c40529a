"""Names the plugin's hooks need before anything else is loaded.

pytest imports the plugin in every run of every project that has it installed;
the hooks of a run that traces no model must cost next to nothing. So the stash
keys and marker names live here, in a module that imports only pytest, and the
modules that do the work are imported when a hook finds work to do.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from .checks import CheckResult
    from .entries import ModelEntry
    from .options import Settings
    from .schema import ModelCheck
    from .session import CnnShapeSession

#: What a Ctrl-C before the first baseline write leaves: said by the session and the gate.
NOTHING_WRITTEN = "interrupted before the shape baselines were written: each is as it was"
#: The marker attaching a model contract to a test (its fields: ``schema.FIELDS``).
MARKER = "cnn_model"
#: Its entry in ``pytest --markers`` (registered so --strict-markers passes). Written out
#: rather than built from ``schema.FIELDS``, which would cost every pytest run an import;
#: a test checks that it names every field.
MARKER_HELP = (
    f"{MARKER}(factory, input=..., output=..., dims=..., max_params=..., device=..., kwargs=..., "
    "name=..., train=..., baseline=..., baseline_output_only=..., lint=..., contract=..., dtype=..., "
    "forward_kwargs=..., batch_dim=..., max_memory=..., batch=..., optimizer=...): attach a CNN "
    "shape contract to this test (pytest-cnnshape); fixtures cnn_model and cnn_trace build and "
    "trace it; baseline=True also compares it with its committed shape baseline; "
    "contract={'input': 'B x 3 x H x W', 'output': 'B x 10'} checks it over many sizes; "
    "input='8 x 50:long' makes token ids, forward_kwargs={'task': 'seg'} passes plain values; "
    "max_memory='6 GiB' (with batch=64, optimizer='AdamW') budgets its estimated training memory"
)
DECLARED_MARKER = "cnn_declared"
DECLARED_HELP = f"{DECLARED_MARKER}: a model declared in [tool.cnnshape.models]"

#: Attribute on TestReport objects that carries a test's model entries (one JSON text:
#: a torch object or a Path there would break xdist's serialisation).
REPORT_ATTRIBUTE = "cnnshape_entries"

SETTINGS_KEY: pytest.StashKey[Settings] = pytest.StashKey()
SESSION_KEY: pytest.StashKey[CnnShapeSession] = pytest.StashKey()
#: The model entries a test recorded (what the report and baselines learn of it).
ENTRIES_KEY: pytest.StashKey[list[ModelEntry]] = pytest.StashKey()
MARKER_KEY: pytest.StashKey[ModelCheck] = pytest.StashKey()
RESULT_KEY: pytest.StashKey[CheckResult] = pytest.StashKey()
