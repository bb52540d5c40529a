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
    "assert_shape_contract": "properties",
    "assert_batch_invariant": "properties",
    "min_input_size": "properties",
    "ShapeContractError": "properties",
    "parameter_breakdown": "inspection.parameters",
    "ParameterBreakdown": "inspection.parameters",
    "regularization": "inspection.regularization",
    "RegularizationReport": "inspection.regularization",
    "lint": "inspection.lint",
    "assert_no_lint": "inspection.lint",
    "Finding": "inspection.findings",
    "Findings": "inspection.findings",
    "LintError": "inspection.findings",
    "count_flops": "inspection.flops",
    "FlopReport": "inspection.flops",
}
_SUBMODULES = frozenset({"arith", "strategies"})

__all__ = [  # noqa: RUF022  (kept in the order of _EXPORTS; a test checks they agree)
    "trace", "TraceError", "ShapeTrace", "LayerRecord", "ShapeMismatchError", "SpecError",
    "ConfigError", "assert_output_shape", "torchinfo_summary", "parse_shape",
    "assert_shape_contract", "assert_batch_invariant", "min_input_size", "ShapeContractError",
    "parameter_breakdown", "ParameterBreakdown", "regularization", "RegularizationReport",
    "lint", "assert_no_lint", "Finding", "Findings", "LintError", "count_flops", "FlopReport",
    "arith", "strategies", "__version__",
]

if TYPE_CHECKING:
    from .assertions import assert_output_shape as assert_output_shape
    from .errors import ConfigError as ConfigError
    from .errors import ShapeMismatchError as ShapeMismatchError
    from .errors import SpecError as SpecError
    from .inspection.findings import Finding as Finding
    from .inspection.findings import Findings as Findings
    from .inspection.findings import LintError as LintError
    from .inspection.flops import FlopReport as FlopReport
    from .inspection.flops import count_flops as count_flops
    from .inspection.lint import assert_no_lint as assert_no_lint
    from .inspection.lint import lint as lint
    from .inspection.parameters import ParameterBreakdown as ParameterBreakdown
    from .inspection.parameters import parameter_breakdown as parameter_breakdown
    from .inspection.regularization import RegularizationReport as RegularizationReport
    from .inspection.regularization import regularization as regularization
    from .properties import ShapeContractError as ShapeContractError
    from .properties import assert_batch_invariant as assert_batch_invariant
    from .properties import assert_shape_contract as assert_shape_contract
    from .properties import min_input_size as min_input_size
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
