"""Shared fixtures. torch is imported once here: pytester's in-process runs restore
sys.modules afterwards, and re-importing torch in one process can crash."""

from __future__ import annotations

import torch  # noqa: F401  (see the module docstring)

pytest_plugins = ["pytester"]
