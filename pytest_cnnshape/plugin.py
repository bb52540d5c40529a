"""pytest entry point of pytest-cnnshape (plugin name ``cnnshape``).

Thin by design: hooks delegate to modules that do the work. Importing this module
imports only the standard library and pytest, never torch.
"""

from __future__ import annotations
