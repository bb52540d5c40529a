"""Model entries: what the session report knows about each traced model.

An entry is plain JSON data (the trace's ``to_dict()``, the contract, the outcome)
so it can ride on a test report from an xdist worker to the controller: a torch
object or a Path there would break xdist's serialisation, so entries cross as one
JSON string and are decoded on the other side.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from typing import Any

PASSED, FAILED = "passed", "failed"
#: A model that failed inside a test that expected it (pytest.raises, a strict xfail).
XFAILED = "xfailed"


@dataclass
class ModelEntry:
    """One model traced in one test (or one declared model)."""

    name: str
    nodeid: str
    source: str  # "declared" | "marker" | "fixture"
    input: str
    status: str = PASSED
    expected: str | None = None
    trace: dict[str, Any] | None = None
    failure: str | None = None
    error: dict[str, Any] | None = None
    max_params: int | None = None
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str]:
        """Entries with the same key describe the same model traced the same way."""
        return (self.name, self.input)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form (also the JSON report's per-model object).

        Shallow: the trace, error and extras are JSON-safe data already, shared rather than
        deep-copied (``dataclasses.asdict`` copied every nested dict and list of every
        layer, one of the largest costs of a ``--cnn-shapes`` session).
        """
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelEntry:
        return cls(**data)


def encode(entries: list[ModelEntry]) -> str:
    """Entries as one JSON string for a report attribute."""
    return json.dumps([e.to_dict() for e in entries], sort_keys=True)


def decode(payload: str) -> list[ModelEntry]:
    """Entries back from ``encode``."""
    return [ModelEntry.from_dict(d) for d in json.loads(payload)]
