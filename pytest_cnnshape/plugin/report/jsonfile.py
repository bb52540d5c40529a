"""The JSON report (``--cnn-shapes-report=x.json``): a documented, versioned schema.

No timestamps, durations or host names: a serial run and an xdist run of the same
suite write byte-identical files.

Each object of ``models`` is a ModelEntry (``name``, ``input``, ``status``,
``trace``, ``failure``, ``error``, ``extras``, ...) plus ``nodeids``, ``output``,
``total_params``, ``trainable_params`` and ``device``. Keys are only ever added
within a schema version. ``trace`` is ``ShapeTrace.to_dict()``; its ``wrapper``
(what was traced of a compiled, data-parallel or TorchScript model) and a layer's
``lazy`` (an uninitialised lazy layer, counted as after its first call) appear only
when they apply. ``extras["inspection"]`` (added in version 1, present for
every model traced without error while a report is written) holds:

- ``parameters``: ``totals`` (``total``, ``trainable``, ``frozen``, ``buffers``,
  ``parameter_bytes``, ``buffer_bytes``), ``parameters`` and ``buffers`` (per tensor:
  ``name``, ``aliases``, ``shape``, ``numel``, ``trainable``, ``dtype``, ``bytes``,
  ``materialized``), ``layers`` (per module: ``name``, ``type``, ``params``,
  ``trainable``, ``buffers``, ``bytes``, ``shared``);
- ``regularization``: ``dropouts`` (``name``, ``type``, ``p``, ``inplace``,
  ``training``, ``active``), ``norms`` (``name``, ``type``, ``training``,
  ``statistics``, ``settings``), ``optimizer``, ``groups``, ``uncovered``;
- ``flops``: ``total_macs``, ``total_flops``, ``input``, ``device``, ``layers``
  (``name``, ``type``, ``depth``, ``calls``, ``flops``, ``macs``, ``is_leaf``);
- ``lint``: ``findings`` (``rule``, ``layer``, ``message``, ``why``, ``fix``),
  ``skipped`` (rule id -> why it did not run), ``ignored``;

or ``{"error": "..."}`` when the model could not be inspected.

``extras["memory"]`` (added in version 1, present while a report is written or a
check sets ``max_memory``) is ``estimate_memory(...).to_dict()`` at the traced
input (or at the check's ``batch``), all sizes in bytes: ``model``, ``input``,
``device``, ``dtype``, ``train``, ``param_bytes``, ``buffer_bytes``,
``grad_bytes``, ``optimizer`` (``name``, ``bytes``, ``how``, ``note``,
``tensors``), ``optimizer_state_bytes`` (null: not counted),
``saved_activation_bytes``, ``saved_tensors``, ``backward_transient_bytes``,
``transient_at``, ``peak_training_bytes``, ``peak_inference_bytes``,
``inference_peak_at``, ``layers`` (per module call: ``name``, ``type``,
``depth``, ``call``, ``is_leaf``, ``output_bytes``, ``saved_bytes`` (saved while
the call itself ran), ``saved_total`` (its nested calls included)), plus
``batch`` (the first input's batch size), ``rebatched`` (true when the check's
``batch`` set it) and ``budget`` (``max_memory`` in bytes, or null); or
``{"error": "...", "budget": ...}`` when it could not be estimated.

When the same session also writes the HTML picture, trace layers carry ``sources``
(and containers ``returns``): where each call's inputs came from (see
``tracing.lineage.Origin.to_dict``). What only the picture uses stays out of this file.
"""

from __future__ import annotations

import json
from importlib import metadata
from typing import Any

from .gather import SessionModels

SCHEMA = "pytest-cnnshape/report"
SCHEMA_VERSION = 1


def package_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _without_picture(model: dict[str, Any]) -> dict[str, Any]:
    from ...picture.flow import EXTRAS_KEY

    model["extras"] = {key: value for key, value in model["extras"].items() if key != EXTRAS_KEY}
    return model


def document(session: SessionModels, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The whole report as a JSON-safe dict."""
    from ... import __version__

    out: dict[str, Any] = {
        "schema": SCHEMA,
        "version": SCHEMA_VERSION,
        "generator": f"pytest-cnnshape {__version__}",
        "torch": package_version("torch"),
        "summary": session.counts(),
        "models": [_without_picture(m.to_dict()) for m in session.models()],
    }
    out.update(extra or {})
    return out


def render(session: SessionModels, extra: dict[str, Any] | None = None) -> str:
    """The file's text: sorted keys, two-space indent, final newline."""
    return json.dumps(document(session, extra), indent=2, sort_keys=True) + "\n"
