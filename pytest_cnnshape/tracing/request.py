"""One trace, asked for once: the request every surface makes and every layer below passes on.

A surface (a public function, a fixture, a marker, a declared model, the CLI) turns
what the user wrote into a ``TraceRequest`` once: the model checked and unwrapped
(``wrappers``: torch.compile, DataParallel), the inputs parsed, the device and the
dtype validated, the mode. Every layer below takes the request as it is: nothing
re-validates, re-parses or re-unwraps it, and a variant (other inputs for a size
search, the training mode for a memory pass) is made from it with ``with_inputs`` or
``with_mode``, which validate only what they change.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal

from torch import nn

from ..errors import ArgumentTypeError
from .devices import model_dtype, parse_device, parse_dtype
from .inputs import InputSpec, parse_inputs
from .modelview import ModelView
from .wrappers import unwrap

if TYPE_CHECKING:
    import torch


def as_module(model: Any) -> nn.Module:
    """``model`` itself, which must be an nn.Module instance (a one-line error otherwise)."""
    if isinstance(model, nn.Module):
        return model
    if isinstance(model, type) and issubclass(model, nn.Module):
        raise ArgumentTypeError(
            f"model is the class {model.__name__}, not an instance; pass {model.__name__}() "
            "(with its constructor arguments)"
        )
    raise ArgumentTypeError(
        f"model must be a torch.nn.Module instance, got {type(model).__name__}; e.g. "
        "trace(nn.Conv2d(3, 8, 3), (1, 3, 32, 32))"
    )


def check_model(model: Any) -> nn.Module:
    """The module to work on: ``model`` (an nn.Module instance) with its wrappers removed, so
    that every tool sees the names a trace shows. For the tools that need no inputs
    (parameter breakdown, regularization); a trace takes a ``TraceRequest``."""
    if isinstance(model, TraceRequest):
        return model.model
    return unwrap(as_module(model)).module


@dataclass(frozen=True)
class TraceRequest:
    """What to trace and how, validated once (see the module docstring)."""

    #: The module that runs: the user's model with its wrappers removed.
    model: nn.Module
    inputs: InputSpec
    #: ``"auto"`` (meta first, a real forward when meta cannot run the model) or a device.
    device: torch.device | Literal["auto"]
    #: The dtype of inputs made from shapes: as asked, else the model's own.
    dtype: torch.dtype
    train: bool = False
    #: What was unwrapped, as the table's note says it (None: the model as given).
    wrapper: str | None = None

    @classmethod
    def of(
        cls,
        model: Any,
        inputs: Any,
        *,
        device: str | torch.device | None = "auto",
        dtype: torch.dtype | str | None = None,
        train: bool = False,
    ) -> TraceRequest:
        """Validate what a user wrote (one-line errors naming the argument) into a request."""
        if isinstance(model, TraceRequest):
            return model
        given = as_module(model)
        if not isinstance(train, bool):
            raise ArgumentTypeError(f"train={train!r} must be True or False")
        spec = parse_inputs(inputs)
        where = parse_device(device)
        unwrapped = unwrap(given)
        kind = parse_dtype(dtype) or model_dtype(unwrapped.module)
        return cls(unwrapped.module, spec, where, kind, train, unwrapped.note)

    @cached_property
    def view(self) -> ModelView:
        """The model's module tree, walked once for the request (a trace's steps, a diagnosis's
        probes and a report's passes all read it)."""
        return ModelView.of(self.model)

    def with_inputs(self, inputs: Any) -> TraceRequest:
        """The same request on other inputs (a size search, a rebatched memory estimate)."""
        return self._derived(inputs=parse_inputs(inputs))

    def with_mode(self, train: bool) -> TraceRequest:
        """The same request in training (True) or evaluation mode."""
        return self if train == self.train else self._derived(train=train)

    def on(self, device: str | torch.device | None) -> TraceRequest:
        """The same request on another device (validated)."""
        return self._derived(device=parse_device(device))

    def _derived(self, **changes: Any) -> TraceRequest:
        """A variant of the same model: its walk is shared, not repeated."""
        derived = replace(self, **changes)
        if "view" in self.__dict__ and derived.model is self.model:
            derived.__dict__["view"] = self.__dict__["view"]
        return derived
