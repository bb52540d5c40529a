"""dtype and device mismatches: a float64 input into float32 weights, CPU into CUDA.

A numpy array becomes a float64 tensor, and ``model.to("cuda")`` moves the
weights but not the batch: both surface as torch errors about types that never
say which layer or which tensor. The numbers here come from the tensors the
layer received and its own parameters.

An Embedding (or ``F.one_hot``) takes integer indices; given floats — a shape
spec without a dtype makes float tensors — it fails with words about
"indices". The diagnosis names the model input that fed it and the spec that
makes it integer (``"8x50:long"``).
"""

from __future__ import annotations

import ast
import re
from typing import Any

import torch

from ...shapes.tree import format_shape
from ...tracing.failure import FailureContext
from ...tracing.inputs import ShapeLeaf
from ..common import before_layer, describe, layer_diagnosis
from ..edits import Transform, method
from ..patches import RetypeInput
from ..report import Candidate, Diagnosis

_DTYPE_WORDS = re.compile(
    r"dtype|scalar type|Input type|mixed dtype|Type promoting|expected .* but found", re.IGNORECASE
)
_DEVICE_WORDS = re.compile(r"device|cuda|mps|xpu", re.IGNORECASE)
_INDEX_WORDS = re.compile(r"'indices'|indices to be long|one_hot is only applicable to index tensor")


def _name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _cast(dtype: torch.dtype) -> Transform:
    """The tensor method that casts to ``dtype``: ``.float()``, or ``.to(torch.bfloat16)``."""
    methods = {torch.float32: "float", torch.float64: "double", torch.float16: "half"}
    name = methods.get(dtype)
    return method(name) if name is not None else method("to", dtype)


def _model_input(ctx: FailureContext, tensor: torch.Tensor) -> tuple[str, Any, int | str] | None:
    """Which model input ``tensor`` is (``"input 1"``, ``"input 'labels'"``), how it was
    given and where (its position or keyword)."""
    if not ctx.running:
        return None
    root = ctx.running[0]
    for i, value in enumerate(root.args):
        if value is tensor and i < len(ctx.inputs.args):
            return (f"input {i}" if len(root.args) > 1 else "the input"), ctx.inputs.args[i], i
    for key, value in root.kwargs.items():
        if value is tensor and key in ctx.inputs.kwargs:
            return f"input {key!r}", ctx.inputs.kwargs[key], key
    return None


def _spec_text(value: Any, long: ShapeLeaf) -> str:
    if isinstance(value, ShapeLeaf):
        shape = "x".join(str(d) for d in value.shape)
        if value is long:
            return f"{shape}:long"
        return f"{shape}:{_name(value.dtype)}" if value.dtype is not None else shape
    return "<tensor>" if isinstance(value, torch.Tensor) else repr(value)


def _inputs_with_long(ctx: FailureContext, long: ShapeLeaf) -> tuple[str, str]:
    """The whole input spec with ``long`` made integer, and the CLI's ``--input`` form (if any)."""
    args, kwargs = ctx.inputs.args, ctx.inputs.kwargs
    if kwargs:
        text = "{" + ", ".join(f"{k!r}: {_spec_text(v, long)!r}" for k, v in kwargs.items()) + "}"
        return text, ""
    specs = [_spec_text(v, long) for v in args]
    cli = " ".join(f"--input {spec}" for spec in specs) if all(isinstance(v, ShapeLeaf) for v in args) else ""
    return (repr(specs[0]) if len(specs) == 1 else "[" + ", ".join(map(repr, specs)) + "]"), cli


def _one_hot_operand(ctx: FailureContext) -> torch.Tensor | None:
    """The tensor the user's ``F.one_hot(y, n)`` call was given, read from its frame."""
    from ..source import Resolver, failing_node, user_traceback

    tb = user_traceback(ctx)
    node = failing_node(tb) if tb is not None else None
    if tb is None or not isinstance(node, ast.Call) or not node.args:
        return None
    value = Resolver(ctx, tb).operand(node.args[0]).value
    return value if isinstance(value, torch.Tensor) and value.is_floating_point() else None


def _index_input(ctx: FailureContext) -> Diagnosis | None:
    """Floats where integer indices go: an Embedding, EmbeddingBag or ``F.one_hot``."""
    running = ctx.innermost
    if running is None or not _INDEX_WORDS.search(ctx.message):
        return None
    one_hot = "one_hot" in ctx.message
    odd = _one_hot_operand(ctx) if one_hot else None
    if odd is None:
        odd = next((t for t in ctx.tensors_in(running) if t.is_floating_point()), None)
    what = "F.one_hot" if one_hot else describe(running.record)
    if odd is None:
        return None
    found = _model_input(ctx, odd)
    dtype = _name(odd.dtype)
    candidates: list[Candidate] = []
    if found is not None and isinstance(found[1], ShapeLeaf):
        label = found[0]
        fix, cli = _inputs_with_long(ctx, found[1])
        note = (
            f"give {label} as integer indices: trace(model, {fix}), input={fix} in a marker or "
            "[tool.cnnshape]"
        )
        if cli:
            note += f", cnnshape {cli}"
        retype = RetypeInput(where=found[2], leaf=found[1], dtype=torch.long, spec=fix)
        candidates.append(Candidate(retype, note=note))
    else:
        label = found[0] if found is not None else "a tensor made in forward()"
        note = f"cast {label} to int64 before {what}"
        if not one_hot:
            candidates.append(Candidate(before_layer(ctx, running, method("long")), note=note))
    problem = (
        f"calls one_hot on a {dtype} tensor; it takes int64 class indices"
        if one_hot
        else f"takes integer indices but got a {dtype} input"
    )
    head = f"the forward() of {describe(running.record)}" if one_hot else None
    diagnosis = layer_diagnosis(
        ctx,
        "index_input_float",
        problem,
        details=[
            ("received", f"{format_shape(tuple(odd.shape))} {dtype}    ({label})"),
            ("expects", "int64 (long) indices" + ("" if one_hot else " or int32")),
        ],
        candidates=candidates,
        hint=None if candidates else note,
        facts={"input_dtype": dtype, "input": label},
    )
    if head is not None:
        diagnosis.headline = f"{head} {problem}"
    return diagnosis


def diagnose(ctx: FailureContext) -> Diagnosis | None:
    """A layer whose input's dtype or device differs from its weights'."""
    running = ctx.innermost
    if running is None:
        return None
    index = _index_input(ctx)
    if index is not None:
        return index
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
                        before_layer(ctx, running, _cast(weight.dtype)),
                        note=f"cast the input to the weights' dtype before the call, or the model to "
                        f"the input's: {_cast(odd.dtype).expression('model')}",
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
                        before_layer(ctx, running, method("to", str(weight.device))),
                        note=f"move the batch to the model's device (or the model to the batch's: "
                        f'model.to("{odd.device}"))',
                    )
                ],
                facts={"input_device": str(odd.device), "weight_device": str(weight.device)},
            )
    return None
