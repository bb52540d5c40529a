"""dtype and device mismatches: a float64 input into float32 weights, CPU into CUDA.

A numpy array becomes a float64 tensor, and ``model.to("cuda")`` moves the
weights but not the batch: both surface as torch errors about types that never
say which layer or which tensor. The numbers here come from the tensors the
layer received and its own parameters.
"""

from __future__ import annotations

import re

import torch

from ...shapes.tree import format_shape
from ...tracing.failure import FailureContext
from ..common import before_layer, layer_diagnosis
from ..report import Candidate, Diagnosis

_DTYPE_WORDS = re.compile(
    r"dtype|scalar type|Input type|mixed dtype|Type promoting|expected .* but found", re.IGNORECASE
)
_DEVICE_WORDS = re.compile(r"device|cuda|mps|xpu", re.IGNORECASE)


def _name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _cast(dtype: torch.dtype) -> str:
    """The tensor method that casts to ``dtype``: ``.float()``, or ``.to(torch.bfloat16)``."""
    methods = {torch.float32: ".float()", torch.float64: ".double()", torch.float16: ".half()"}
    return methods.get(dtype, f".to(torch.{_name(dtype)})")


def diagnose(ctx: FailureContext) -> Diagnosis | None:
    """A layer whose input's dtype or device differs from its weights'."""
    running = ctx.innermost
    if running is None:
        return None
    params = [p for p in running.module.parameters(recurse=False) if not torch.nn.parameter.is_lazy(p)]
    inputs = list(ctx.tensors_in(running))
    if not params or not inputs:
        return None
    weight = params[0]
    message = ctx.message
    if _DTYPE_WORDS.search(message):
        odd = next((t for t in inputs if t.dtype != weight.dtype), None)
        if odd is not None:
            return layer_diagnosis(
                ctx,
                "dtype_mismatch",
                f"got a {_name(odd.dtype)} input but its weights are {_name(weight.dtype)}",
                details=[
                    ("received", f"{format_shape(tuple(odd.shape))} {_name(odd.dtype)}"),
                    ("expects", f"{_name(weight.dtype)}, the dtype of its parameters"),
                ],
                candidates=[
                    Candidate(
                        before_layer(ctx, running, "{x}" + _cast(weight.dtype)),
                        note=f"cast the input to the weights' dtype before the call, or the model to "
                        f"the input's: model{_cast(odd.dtype)}",
                    )
                ],
                hint="numpy arrays become float64 tensors: torch.from_numpy(a).float()"
                if odd.dtype == torch.float64
                else None,
                facts={"input_dtype": _name(odd.dtype), "weight_dtype": _name(weight.dtype)},
            )
    if _DEVICE_WORDS.search(message):
        odd = next((t for t in inputs if t.device != weight.device), None)
        if odd is not None:
            return layer_diagnosis(
                ctx,
                "device_mismatch",
                f"got an input on {odd.device} but its weights are on {weight.device}",
                details=[
                    ("received", f"{format_shape(tuple(odd.shape))} on {odd.device}"),
                    ("expects", f"tensors on {weight.device}, where its parameters are"),
                ],
                candidates=[
                    Candidate(
                        before_layer(ctx, running, "{x}" + f'.to("{weight.device}")'),
                        note=f"move the batch to the model's device (or the model to the batch's: "
                        f'model.to("{odd.device}"))',
                    )
                ],
                facts={"input_device": str(odd.device), "weight_device": str(weight.device)},
            )
    return None
