"""The process state a check must leave as it found it: a snapshot, and what differs.

Everything global a trace, its diagnosis or its verification could touch: the random
generators (torch's CPU and initialised CUDA ones, Python's, NumPy's), torch's
defaults (dtype, device, grad and inference mode, deterministic algorithms, matmul
precision, threads), the modes and global hooks in force, the recursion limit, the
garbage collector, warning filters, the working directory and the environment.
``sys.modules`` and ``sys.path`` are left out: loading a user's model file imports it
(and pytest's own ``PYTEST_CURRENT_TEST``).
"""

from __future__ import annotations

import gc
import os
import random
import sys
import warnings
from typing import Any

import torch


def process_state() -> dict[str, Any]:
    """A comparable snapshot of the global state (tensors as tensors)."""
    from torch.nn.modules import module as nn_module

    cuda = None
    if torch.cuda.is_available() and torch.cuda.is_initialized():  # type: ignore[no-untyped-call]
        cuda = torch.cuda.get_rng_state_all()
    numpy = sys.modules.get("numpy")
    return {
        "torch CPU RNG": torch.get_rng_state(),
        "torch CUDA RNG": cuda,
        "torch initial seed": torch.initial_seed(),
        "python random": random.getstate(),
        "numpy random": numpy.random.get_state()[1].tolist() if numpy is not None else None,
        "default dtype": torch.get_default_dtype(),
        "default device": torch.get_default_device(),
        "grad enabled": torch.is_grad_enabled(),
        "inference mode": torch.is_inference_mode_enabled(),
        "deterministic algorithms": (
            torch.are_deterministic_algorithms_enabled(),
            torch.is_deterministic_algorithms_warn_only_enabled(),
        ),
        "anomaly detection": torch.is_anomaly_enabled(),
        "matmul precision": torch.get_float32_matmul_precision(),
        "threads": torch.get_num_threads(),
        "torch function modes": torch._C._len_torch_function_stack(),
        "torch dispatch modes": torch._C._len_torch_dispatch_stack(),
        "global module hooks": [
            len(getattr(nn_module, name))
            for name in sorted(vars(nn_module))
            if name.startswith("_global_") and name.endswith("hooks")
        ],
        "recursion limit": sys.getrecursionlimit(),
        "gc enabled": gc.isenabled(),
        "warning filters": list(warnings.filters),
        "cwd": os.getcwd(),
        "environment": {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"},
    }


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and torch.equal(a, b)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def changed(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """The names of what differs between two snapshots (empty: nothing)."""
    return [key for key in before if not _same(before[key], after[key])]
