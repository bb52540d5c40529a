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
    "trace": "tracer",
    "TraceError": "tracer",
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

__all__ = [  # noqa: RUF022  (kept in the order of _EXPORTS; a test checks they agree)
    "trace", "TraceError", "ShapeTrace", "LayerRecord", "ShapeMismatchError", "SpecError",
    "ConfigError", "assert_output_shape", "torchinfo_summary", "parse_shape",
    "arith", "strategies", "__version__",
]

if TYPE_CHECKING:
    from .assertions import assert_output_shape as assert_output_shape
    from .errors import ConfigError as ConfigError
    from .errors import ShapeMismatchError as ShapeMismatchError
    from .errors import SpecError as SpecError
    from .records import LayerRecord as LayerRecord
    from .records import ShapeTrace as ShapeTrace
    from .spec import parse_shape as parse_shape
    from .torchinfo_view import torchinfo_summary as torchinfo_summary
    from .tracer import TraceError as TraceError
    from .tracer import trace as trace


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
