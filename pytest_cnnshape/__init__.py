"""pytest-cnnshape: see, test and gate the shapes of convolutional networks in PyTorch.

Public names are loaded lazily (PEP 562): ``import pytest_cnnshape`` and the
pytest plugin never import torch; the first use of ``trace`` does.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0.dev0"

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    "trace": "trace",
    "TraceError": "trace",
    "ShapeTrace": "records",
    "LayerRecord": "records",
    "ShapeMismatchError": "errors",
    "SpecError": "errors",
    "ConfigError": "errors",
    "assert_output_shape": "assertions",
    "torchinfo_summary": "torchinfo_view",
    "parse_shape": "spec",
}
_SUBMODULES = frozenset({"arith", "strategies"})

__all__ = sorted([*_EXPORTS, *_SUBMODULES, "__version__"])

if TYPE_CHECKING:
    from .assertions import assert_output_shape
    from .errors import ConfigError, ShapeMismatchError, SpecError
    from .records import LayerRecord, ShapeTrace
    from .spec import parse_shape
    from .torchinfo_view import torchinfo_summary
    from .trace import TraceError, trace


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'pytest_cnnshape' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
