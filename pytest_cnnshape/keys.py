"""Names the plugin's hooks need before anything else is loaded.

pytest imports the plugin in every run of every project that has it installed;
the hooks of a run that traces no model must cost next to nothing. So the stash
keys and marker names live here, in a module that imports only pytest, and the
modules that do the work are imported when a hook finds work to do.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from .checks import CheckResult, ModelCheck
    from .entries import ModelEntry
    from .options import Settings
    from .session import CnnShapeSession

#: The marker attaching a model contract to a test.
MARKER = "cnn_model"
MARKER_HELP = (
    "cnn_model(factory, input=..., output=None, dims=None, max_params=None, device=None, "
    "kwargs=None, name=None, train=False, baseline=None, baseline_output_only=False, "
    "contract=None): attach a CNN shape contract to this test (pytest-cnnshape); fixtures "
    "cnn_model and cnn_trace build and trace it; baseline=True also compares it with its "
    "committed shape baseline; contract={'input': 'B x 3 x H x W', 'output': 'B x 10'} checks "
    "it over many sizes"
)
DECLARED_MARKER = "cnn_declared"
DECLARED_HELP = "cnn_declared: a model declared in [tool.cnnshape.models]"

#: Attribute on TestReport objects that carries a test's model entries (one JSON text:
#: a torch object or a Path there would break xdist's serialisation).
REPORT_ATTRIBUTE = "cnnshape_entries"

SETTINGS_KEY: pytest.StashKey[Settings] = pytest.StashKey()
SESSION_KEY: pytest.StashKey[CnnShapeSession] = pytest.StashKey()
#: The model entries a test recorded (what the report and baselines learn of it).
ENTRIES_KEY: pytest.StashKey[list[ModelEntry]] = pytest.StashKey()
MARKER_KEY: pytest.StashKey[tuple[ModelCheck, dict[str, Any]]] = pytest.StashKey()
RESULT_KEY: pytest.StashKey[CheckResult] = pytest.StashKey()
