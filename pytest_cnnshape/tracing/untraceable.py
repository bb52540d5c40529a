"""Failed forwards that are not shape errors: said in one line, as a TraceError (or a usage error).

A ShapeMismatchError explains torch refusing an op (a Linear's in_features, a
cat of maps that differ). Some forwards fail for reasons no shape fixes:

* no device here can run one of the model's ops: a C++ extension without a
  kernel for this device (NotImplementedError, "Could not run ... backend"), an
  op or a ``.cuda()`` that needs CUDA on a machine without it, memory running out;
* the model raises for its own reasons: a ``raise`` or ``assert`` in its code,
  or an exception torch never raises for a shape (KeyError, AttributeError...).

A shape check that a library layer makes itself (timm's ``_assert(x.ndim == 4, "expected
4D input (got 3D input)")``, torchvision's "Wrong image height!") is torch's refusal in
all but name: it is explained as one (``library_shape_check``).

Those become a ``TraceError`` naming the layer that was running, the reason and
the user's line. A root forward called with arguments its signature does not
take (``forward() missing 1 required positional argument``) is the caller's
mistake: an ``ArgumentError`` saying to give one input per argument.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import torch

from ..errors import ArgumentError, ForwardFailed, TraceError, UsageError
from .devices import short_reason
from .failure import error_text, is_torch_file, is_torch_layer, is_user_file, raised_by_model
from .wrappers import type_name

if TYPE_CHECKING:
    from .failure import FailureContext
    from .records import ShapeTrace

#: What torch raises when it refuses an op's arguments; anything else is the model's own.
TORCH_REFUSALS = (RuntimeError, ValueError, IndexError, TypeError)

_NO_KERNEL = re.compile(r"Could not run '[^']+' with arguments from the '[^']+' backend|no kernel", re.I)
_NO_CUDA = re.compile(
    r"not compiled with CUDA|no NVIDIA driver|No CUDA GPUs are available|CUDA driver|"
    r"CUDA is not available|cuda.*not available",
    re.I,
)
_NO_MEMORY = re.compile(r"out of memory|can't allocate memory|not enough memory", re.I)
_SIGNATURE = re.compile(
    r"forward\(\) (missing \d+ required|got an unexpected keyword|got multiple values|"
    r"takes (from \d+ to )?\d+ positional)"
)


def environment_limit(exc: BaseException, device: torch.device) -> str | None:
    """Why no forward can run here (a missing kernel, no CUDA, no memory), or None."""
    text = error_text(exc)
    if _NO_CUDA.search(text):
        return f"needs CUDA, which this machine does not have ({short_reason(exc)})"
    if isinstance(exc, torch.OutOfMemoryError) or _NO_MEMORY.search(text):
        return (
            f"ran out of memory on {device} ({short_reason(exc)}); trace on device='meta', which "
            "allocates nothing"
        )
    if isinstance(exc, NotImplementedError) or _NO_KERNEL.search(text):
        return (
            f"runs an op with no kernel for {device} ({short_reason(exc)}); trace where the op has "
            "one (its extension's device), or give it a meta kernel (torch.library.register_fake) "
            "for device='meta'"
        )
    return None


_SHAPE_WORDS = re.compile(
    r"\b(dim|dims|ndim|dimension|dimensions|shape|shapes|size|sizes|channels?|height|width|"
    r"[0-9]D input|input (size|shape))\b",
    re.I,
)


def library_shape_check(exc: BaseException) -> bool:
    """An ``assert`` or ``raise`` of an installed package's layer (not torch, not the user's)
    about the sizes it got: a shape error to explain, as torch's own would be."""
    tb = exc.__traceback__
    if tb is None or not isinstance(exc, (AssertionError, ValueError, RuntimeError)):
        return False
    frames = []
    while tb is not None:
        frames.append(tb.tb_frame.f_code.co_filename)
        tb = tb.tb_next
    # the innermost frame that is not torch's (``torch._assert`` raises for timm's ``_assert``)
    raiser = next((f for f in reversed(frames) if not is_torch_file(f)), None)
    if raiser is None or is_user_file(raiser) or raiser.startswith("<"):
        return False
    return bool(_SHAPE_WORDS.search(str(exc)))


def where_failed(ctx: FailureContext) -> tuple[str, str]:
    """The failing layer's name and ``fc (Linear)`` / ``the forward() of (root) (Net)``."""
    running = ctx.innermost
    if running is None:
        return "", type_name(ctx.view.root)
    record = running.record
    described = f"{record.label} ({record.type})"
    return record.name, described if is_torch_layer(running.module) else f"the forward() of {described}"


def untraceable(failed: ForwardFailed, model: str, trace: ShapeTrace) -> UsageError | TraceError | None:
    """The error to raise instead of a ShapeMismatchError, or None when it is a shape error."""
    ctx = failed.context
    exc = ctx.exc
    running = ctx.innermost
    if (
        isinstance(exc, TypeError)
        and _SIGNATURE.search(str(exc))
        and running is not None
        and running.index == 0
    ):
        return ArgumentError(
            f"inputs do not fit {model}.forward: {short_reason(exc)}; give one input per forward "
            "argument (a list for several, a dict for keywords)"
        )
    if library_shape_check(exc):
        return None
    own = f"raised {type(exc).__name__}: {short_reason(exc)}"
    reason = own if raised_by_model(exc) else environment_limit(exc, ctx.device)
    if reason is None and not isinstance(exc, TORCH_REFUSALS):
        reason = own
    if reason is None:
        return None
    layer, described = where_failed(ctx)
    frame = ctx.frame
    at = f" (at {frame})" if frame is not None else ""
    return TraceError(f"cannot trace {model}: {described} {reason}{at}", layer=layer, trace=trace)
