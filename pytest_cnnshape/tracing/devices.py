"""Where a trace runs: argument checks and the ``device="auto"`` decision.

Auto runs on meta (no memory, no compute) unless a real forward is certain to be
cheaper or is the only faithful option:

* the model is tiny for this input (an upper bound of its multiply-accumulates is
  under ``CHEAP_REAL_MACS``): a CPU forward is then faster than a meta trace.
  Measured (benchmarks/cold_start.py): the meta size rules make a meta trace cost
  about 0.1 ms per op with no warm-up, while the first CPU forward of a shape pays
  for its kernels (LeNet at 8x1x28x28: 100 ms on CPU, 3 ms on meta, in a fresh
  process); a CPU forward wins only below about 2 million MACs. The decision
  depends only on the model and input, never on what ran before, so
  the device a model is traced on is the same in every process (serial or xdist);
* an input tensor lives on another device than the model: only a real forward
  shows what that does.

When meta cannot run the model, ``trace`` falls back to a real forward on the
model's own device (see ``meta_limitation``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn
from torch.nn.parameter import is_lazy

from ..errors import ArgumentError, ArgumentTypeError
from .inputs import InputSpec
from .modelview import ModelView

#: Upper bound of MACs under which a real CPU forward is cheaper than a meta trace.
CHEAP_REAL_MACS = 2_000_000

DEVICE_EXAMPLE = "use 'auto' (meta first, real forward if needed), 'meta', 'cpu' or 'cuda'"


@dataclass(frozen=True)
class Plan:
    """The device to try first and whether a failure there may fall back to a real run."""

    first: torch.device
    fallback: torch.device | None
    reason: str


def parse_device(device: Any) -> torch.device | Literal["auto"]:
    """Validate the ``device`` argument."""
    if device is None or device == "auto":
        return "auto"
    if isinstance(device, torch.device):
        parsed = device
    elif isinstance(device, str):
        try:
            parsed = torch.device(device)
        except RuntimeError:
            raise ArgumentError(f"device={device!r} is not a device; {DEVICE_EXAMPLE}") from None
    else:
        raise ArgumentTypeError(
            f"device={device!r} ({type(device).__name__}) is not a device; {DEVICE_EXAMPLE}"
        )
    if parsed.type == "cuda" and not torch.cuda.is_available():
        raise ArgumentError(f"device={device!r}: CUDA is not available on this machine; use 'auto' or 'cpu'")
    if parsed.type not in ("meta", "cpu", "cuda", "mps", "xpu"):
        raise ArgumentError(f"device={device!r} is not supported; {DEVICE_EXAMPLE}")
    return parsed


def parse_dtype(dtype: Any) -> torch.dtype | None:
    """Validate the ``dtype`` argument: a torch.dtype or its name (``"float16"``)."""
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    if isinstance(dtype, str):
        found = getattr(torch, dtype.removeprefix("torch."), None)
        if isinstance(found, torch.dtype):
            return found
    raise ArgumentTypeError(
        f"dtype={dtype!r} is not a torch dtype; pass e.g. torch.float32, torch.float16 "
        "or 'bfloat16' (None: the model's own dtype)"
    )


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter or buffer (CPU for a stateless model)."""
    for param in model.parameters():
        return param.device
    for buffer in model.buffers():
        return buffer.device
    return torch.device("cpu")


def model_dtype(model: nn.Module) -> torch.dtype:
    """The dtype inputs made from shapes get: the model's first floating-point parameter's
    (in ``parameters()`` order), else its first floating-point buffer's.

    Read without recursion: a request is made before the trace gives a model nested
    deeper than Python's recursion limit the room it needs.
    """
    modules, stack, seen = [], [model], {id(model)}
    while stack:  # preorder, as named_modules() walks
        module = stack.pop()
        modules.append(module)
        children = [c for c in module._modules.values() if c is not None and id(c) not in seen]
        seen.update(id(c) for c in children)
        stack.extend(reversed(children))
    for registry in ("_parameters", "_buffers"):
        for module in modules:
            tensors: dict[str, torch.Tensor | None] = getattr(module, registry)
            for tensor in tensors.values():
                if tensor is not None and tensor.is_floating_point():
                    return tensor.dtype
    return torch.get_default_dtype()


def estimated_macs(view: ModelView, spec: InputSpec) -> int:
    """A cheap upper bound of one forward's multiply-accumulates.

    Every conv weight is charged once per input position (as if no layer ever
    shrank the map), every other parameter once per batch item.
    """
    first = spec.first_shape() or (1,)
    batch = first[0]
    positions = batch
    for size in first[2:]:
        positions *= size
    total = 0
    for m in view.modules:
        own = sum(p.numel() for p in m._parameters.values() if p is not None and not is_lazy(p))
        total += own * (positions if isinstance(m, nn.modules.conv._ConvNd) else batch)
    return total


def plan(
    view: ModelView,
    spec: InputSpec,
    requested: torch.device | Literal["auto"],
    home: torch.device | None = None,
) -> Plan:
    """Decide where to trace, and where to go if that fails (``home``: where the model's
    weights are; default: where they are now)."""
    meta = torch.device("meta")
    home = home or model_device(view.root)
    if requested != "auto":
        return Plan(requested, None, f"device={str(requested)!r} was asked for")
    if home.type == "meta":
        return Plan(meta, None, "the model's weights are on meta")
    foreign = [t.device for t in spec.tensors() if t.device != home]
    if foreign:
        return Plan(home, None, f"an input tensor is on {foreign[0]}, the model on {home}")
    if home.type == "cpu" and estimated_macs(view, spec) <= CHEAP_REAL_MACS:
        return Plan(home, meta, "a real forward of this small model is cheaper than meta")
    return Plan(meta, home, "meta first")


def meta_first(view: ModelView, spec: InputSpec, requested: torch.device | Literal["auto"]) -> bool:
    """Whether ``plan`` would trace this model on meta first if its weights were on the CPU.

    What a factory may build on meta for (``torch.device("meta")``: no memory, no
    initialisation): the model is then traced exactly where a CPU-built one would be.
    ``view`` may be of the meta-built model (its parameter shapes are all the MACs
    estimate reads).
    """
    return plan(view, spec, requested, torch.device("cpu")).first.type == "meta"


_META_LIMIT_PATTERNS = re.compile(
    r"meta|data.dependent|DataDependent|fake tensor|FakeTensor|Cannot copy out|"
    r"can't convert .* to numpy|no kernel|not implemented for",
    re.IGNORECASE,
)


def meta_limitation(exc: BaseException) -> bool:
    """True when a failure on meta is meta's own limit, not the model's shape error.

    Missing meta kernels raise NotImplementedError; data-dependent code (``.item()``,
    ``nonzero``, numpy conversion) and real tensors held as plain attributes raise
    errors that name the meta device. A genuine shape error never does.
    """
    if isinstance(exc, NotImplementedError):
        return True
    return bool(_META_LIMIT_PATTERNS.search(str(exc)))


def short_reason(exc: BaseException) -> str:
    """First line of an exception (of the error itself inside TorchScript), trimmed for a note."""
    from .failure import error_text

    message = error_text(exc).strip()
    text = message.splitlines()[0] if message else type(exc).__name__
    return text if len(text) <= 160 else text[:157] + "..."
