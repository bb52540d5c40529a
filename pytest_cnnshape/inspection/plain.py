"""Dicts of the inspection's records, field by field.

``dataclasses.asdict`` deep-copies every value on the way; for a ResNet-50's 320
tensors and 160 layers that was most of what the report's inspection cost. The
records hold numbers, strings and tuples of them, so one level of fields is all
a JSON form needs (tuples become lists where the caller says).
"""

from __future__ import annotations

from typing import Any


def fields_dict(record: Any, *lists: str) -> dict[str, Any]:
    """``record``'s fields as a dict; the fields named in ``lists`` as lists, dicts copied."""
    data = {name: getattr(record, name) for name in record.__dataclass_fields__}
    for name, value in data.items():
        if isinstance(value, dict):
            data[name] = dict(value)
    for name in lists:
        data[name] = list(data[name])
    return data
