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
    "trace": "diagnostics.explain",
    "Arg": "tracing.inputs",
    "TraceError": "errors",
    "ShapeTrace": "tracing.records",
    "LayerRecord": "tracing.records",
    "ShapeMismatchError": "errors",
    "SpecError": "errors",
    "ConfigError": "errors",
    "assert_output_shape": "contracts.assertions",
    "torchinfo_summary": "inspection.torchinfo_view",
    "parse_shape": "shapes.spec",
    "assert_shape_contract": "contracts.properties",
    "assert_batch_invariant": "contracts.sizes",
    "min_input_size": "contracts.sizes",
    "ShapeContractError": "errors",
    "parameter_breakdown": "inspection.parameters",
    "ParameterBreakdown": "inspection.parameters",
    "regularization": "inspection.regularization",
    "RegularizationReport": "inspection.regularization",
    "lint": "inspection.lint",
    "assert_no_lint": "inspection.lint",
    "Finding": "inspection.findings",
    "Findings": "inspection.findings",
    "LintError": "errors",
    "count_flops": "inspection.flops",
    "FlopReport": "inspection.flops",
    "estimate_memory": "inspection.memory",
    "MemoryReport": "inspection.memory",
    "linear_in_features": "contracts.sizes",
    "CnnShapeError": "errors",
    "UsageError": "errors",
    "ArgumentError": "errors",
    "FactoryError": "errors",
    "ContractFailure": "errors",
    "OutputShapeError": "errors",
    "BatchInvarianceError": "errors",
    "SizeSearchError": "errors",
    "BaselineFailure": "errors",
    "BaselineFileError": "errors",
    "input_domain": "diagnostics.explain",
    "InputDomain": "tracing.input_domain",
    "SymbolicError": "errors",
    "ContractResult": "contracts.properties",
}
_SUBMODULES = frozenset({"arith", "strategies"})

__all__ = [  # noqa: RUF022  (kept in the order of _EXPORTS; a test checks they agree)
    "trace",
    "Arg",
    "TraceError",
    "ShapeTrace",
    "LayerRecord",
    "ShapeMismatchError",
    "SpecError",
    "ConfigError",
    "assert_output_shape",
    "torchinfo_summary",
    "parse_shape",
    "assert_shape_contract",
    "assert_batch_invariant",
    "min_input_size",
    "ShapeContractError",
    "parameter_breakdown",
    "ParameterBreakdown",
    "regularization",
    "RegularizationReport",
    "lint",
    "assert_no_lint",
    "Finding",
    "Findings",
    "LintError",
    "count_flops",
    "FlopReport",
    "estimate_memory",
    "MemoryReport",
    "linear_in_features",
    "CnnShapeError",
    "UsageError",
    "ArgumentError",
    "FactoryError",
    "ContractFailure",
    "OutputShapeError",
    "BatchInvarianceError",
    "SizeSearchError",
    "BaselineFailure",
    "BaselineFileError",
    "input_domain",
    "InputDomain",
    "SymbolicError",
    "ContractResult",
    "arith",
    "strategies",
    "__version__",
]

if TYPE_CHECKING:
    from .contracts.assertions import assert_output_shape as assert_output_shape
    from .contracts.properties import ContractResult as ContractResult
    from .contracts.properties import assert_shape_contract as assert_shape_contract
    from .contracts.sizes import assert_batch_invariant as assert_batch_invariant
    from .contracts.sizes import linear_in_features as linear_in_features
    from .contracts.sizes import min_input_size as min_input_size
    from .diagnostics.explain import input_domain as input_domain
    from .diagnostics.explain import trace as trace
    from .errors import ArgumentError as ArgumentError
    from .errors import BaselineFailure as BaselineFailure
    from .errors import BaselineFileError as BaselineFileError
    from .errors import BatchInvarianceError as BatchInvarianceError
    from .errors import CnnShapeError as CnnShapeError
    from .errors import ConfigError as ConfigError
    from .errors import ContractFailure as ContractFailure
    from .errors import FactoryError as FactoryError
    from .errors import LintError as LintError
    from .errors import OutputShapeError as OutputShapeError
    from .errors import ShapeContractError as ShapeContractError
    from .errors import ShapeMismatchError as ShapeMismatchError
    from .errors import SizeSearchError as SizeSearchError
    from .errors import SpecError as SpecError
    from .errors import SymbolicError as SymbolicError
    from .errors import TraceError as TraceError
    from .errors import UsageError as UsageError
    from .inspection.findings import Finding as Finding
    from .inspection.findings import Findings as Findings
    from .inspection.flops import FlopReport as FlopReport
    from .inspection.flops import count_flops as count_flops
    from .inspection.lint import assert_no_lint as assert_no_lint
    from .inspection.lint import lint as lint
    from .inspection.memory import MemoryReport as MemoryReport
    from .inspection.memory import estimate_memory as estimate_memory
    from .inspection.parameters import ParameterBreakdown as ParameterBreakdown
    from .inspection.parameters import parameter_breakdown as parameter_breakdown
    from .inspection.regularization import RegularizationReport as RegularizationReport
    from .inspection.regularization import regularization as regularization
    from .inspection.torchinfo_view import torchinfo_summary as torchinfo_summary
    from .shapes.spec import parse_shape as parse_shape
    from .tracing.input_domain import InputDomain as InputDomain
    from .tracing.inputs import Arg as Arg
    from .tracing.records import LayerRecord as LayerRecord
    from .tracing.records import ShapeTrace as ShapeTrace


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
