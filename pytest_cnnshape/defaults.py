"""The defaults every surface shares: where models are traced, how deep tables go, where
baselines live.

The pytest options, ``[tool.cnnshape]`` and the ``cnnshape`` command line all read
these, so a default is changed in one place. Torch-free and pytest-free.
"""

from __future__ import annotations

#: Where models may be traced: ``auto`` (meta first, a real forward when meta cannot
#: run the model), ``meta``, ``cpu`` or ``cuda`` (an error on a machine without CUDA).
DEVICES = ("auto", "meta", "cpu", "cuda")
DEFAULT_DEVICE = "auto"

#: Nesting levels the report's layer tables show.
DEFAULT_DEPTH = 2

#: The folder baselines are kept in, next to each test file and pyproject.toml.
DEFAULT_BASELINE_DIR = "__cnnshapes__"
