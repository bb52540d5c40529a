"""The ``cnn_model`` marker: a model contract attached to a test.

    @pytest.mark.cnn_model("mypkg.models:Net", input="B x 3 x 32 x 32", output="B x 10",
                           dims={"B": 2}, max_params=1_000_000, device="meta")

The factory (first argument or ``factory=``) is a callable or a spec string; the
keywords are the fields of ``schema.ModelCheck``. Arguments are checked when the
test is set up; a wrong one fails that test with a message naming it, the same way
in serial and xdist runs.
"""

from __future__ import annotations

import pytest

from .schema import MARKER_PLACE, ModelCheck, parse_check


def check_from_marker(marker: pytest.Mark) -> ModelCheck:
    """The ModelCheck a marker describes; MarkerError naming the argument when written wrongly."""
    if len(marker.args) > 1:
        raise MARKER_PLACE.error(
            f"takes one positional argument (the factory), got {len(marker.args)}; write the "
            "rest as keywords: input=..., output=..."
        )
    raw = dict(marker.kwargs)
    if marker.args:
        if "factory" in raw:
            raise MARKER_PLACE.error("factory given twice (positionally and as factory=)")
        raw["factory"] = marker.args[0]
    return parse_check(raw, MARKER_PLACE)
