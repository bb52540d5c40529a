"""Each module's own settings as plain data, for the facts the picture shows per call.

A trace records shapes, not constructor arguments; the picture's hover facts (a
conv's kernel, stride and padding, a dropout's p) and its receptive fields need
them, and only the process holding the model can read them. ``extra_repr()`` is
what torch prints for a module, so the text matches ``print(model)``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..arith import kernel_of

if TYPE_CHECKING:
    from torch import nn

#: Longest settings text kept per module (a custom extra_repr can be long).
MAX_TEXT = 160


def module_settings(model: nn.Module) -> dict[str, dict[str, Any]]:
    """Qualified name -> ``{"repr": extra_repr, "kernel": [kernel, stride, dilation]}``
    (keys only where known)."""
    out: dict[str, dict[str, Any]] = {}
    for name, module in model.named_modules():
        entry: dict[str, Any] = {}
        try:
            text = " ".join(module.extra_repr().split())
        except Exception:  # a custom extra_repr that raises must not cost the report
            text = ""
        if text:
            entry["repr"] = text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"
        window = kernel_of(module)
        if window is not None:
            entry["kernel"] = list(window)
        if entry:
            out[name] = entry
    return out
