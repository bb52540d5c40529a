"""A test's use of a baseline, as it travels with the model's report entry to the controller.

The record is plain JSON in the entry's ``extras["baseline"]``: the file as text
relative to the rootdir, what the test found there, and the failure text. The
snapshot itself does not travel: the controller rebuilds it from the entry's
trace with ``Snapshot.from_trace``, as the test did, so a serial run and an xdist
run write the same bytes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

#: Key of the record in ``ModelEntry.extras``.
EXTRAS_KEY = "baseline"

#: What the test found: the file matches, is missing, differs, or cannot be read.
SAME, MISSING, CHANGED, UNREADABLE = "same", "missing", "changed", "unreadable"


@dataclass
class BaselineUse:
    """One comparison of a model with its baseline file, in one test."""

    file: str
    status: str
    output_only: bool
    #: True when the test failed because of it (not accepted by an update option).
    failed: bool = False
    #: One line: what happened; ``text``: the whole explanation (the diff for a change).
    headline: str = ""
    text: str = ""
    #: Where annotations point: the test file (rootdir-relative) and line, if known.
    location: str = ""
    line: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def attach(extras: dict[str, Any], use: BaselineUse) -> None:
    """Record the use in a report entry's ``extras`` (it rides to the controller with it)."""
    extras[EXTRAS_KEY] = use.to_dict()


def use_in(extras: Mapping[str, Any]) -> BaselineUse | None:
    """The baseline use recorded in a report entry's ``extras``, if any."""
    data = extras.get(EXTRAS_KEY)
    return BaselineUse(**data) if data else None


@dataclass(frozen=True)
class BaselineOptions:
    """Whether a model is compared with a baseline, and how much of it."""

    #: True/False as written on the model; None follows ``[tool.cnnshape] baselines``.
    enabled: bool | None = None
    #: Compare only the output shape and the parameter totals.
    output_only: bool = False

    @classmethod
    def from_marker(cls, options: Mapping[str, Any]) -> BaselineOptions:
        """The options of a cnn_model marker's ``baseline=`` / ``baseline_output_only=``."""
        return cls(options.get("baseline"), bool(options.get("baseline_output_only", False)))

    def active(self, project_default: bool) -> bool:
        """On when asked for, or when asked for output-only, or project-wide unless turned off."""
        if self.enabled is not None:
            return self.enabled
        return self.output_only or project_default
