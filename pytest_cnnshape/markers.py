"""The ``cnn_model`` marker: a model contract attached to a test.

    @pytest.mark.cnn_model("mypkg.models:Net", input="B x 3 x 32 x 32", output="B x 10",
                           dims={"B": 2}, max_params=1_000_000, device="meta")

The factory (first argument or ``factory=``) is a callable or a spec string.
Arguments are checked when the test is set up; a wrong one fails that test with a
message naming it, the same way in serial and xdist runs.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

import pytest

from .checks import ModelCheck
from .domain import parse_contract
from .errors import ConfigError, SpecError
from .keys import MARKER
from .options import DEVICES

ARGUMENTS = ("factory", "input", "output", "dims", "max_params", "device", "kwargs", "name",
             "train", "baseline", "baseline_output_only", "contract")


class MarkerError(Exception):
    """A cnn_model marker written wrongly."""


def _fail(message: str) -> MarkerError:
    return MarkerError(f"@pytest.mark.{MARKER}: {message}")


def check_from_marker(marker: pytest.Mark, default_device: str,
                      nodeid: str) -> tuple[ModelCheck, dict[str, Any]]:
    """The ModelCheck a marker describes, and its baseline options."""
    if len(marker.args) > 1:
        raise _fail(f"takes one positional argument (the factory), got {len(marker.args)}; "
                    "write the rest as keywords: input=..., output=...")
    kwargs = dict(marker.kwargs)
    for key in kwargs:
        if key not in ARGUMENTS:
            close = difflib.get_close_matches(key, ARGUMENTS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise _fail(f"unknown argument {key!r}{hint}; it takes {', '.join(ARGUMENTS)}")
    if marker.args:
        if "factory" in kwargs:
            raise _fail("factory given twice (positionally and as factory=)")
        kwargs["factory"] = marker.args[0]
    factory = kwargs.get("factory")
    if factory is None:
        raise _fail("needs a factory: @pytest.mark.cnn_model(Net, input='1x3x32x32')")
    if not (callable(factory) or isinstance(factory, str)):
        raise _fail(f"factory={factory!r} must be a callable or a spec like 'mypkg.models:Net'")
    contract = None
    if kwargs.get("contract") is not None:
        try:
            contract = parse_contract(kwargs["contract"], "contract=")
        except ConfigError as exc:
            raise _fail(str(exc)) from None
        kwargs.setdefault("input", contract.smallest())
    if kwargs.get("input") is None:
        raise _fail("needs input=..., e.g. input='1x3x32x32' or input='B x 3 x H x W' with dims=")
    device = kwargs.get("device") or default_device
    if device not in DEVICES:
        raise _fail(f"device={device!r} is not one of {', '.join(DEVICES)}")
    max_params = kwargs.get("max_params")
    if max_params is not None and (not isinstance(max_params, int) or max_params <= 0):
        raise _fail(f"max_params={max_params!r} must be a positive whole number")
    for key in ("kwargs", "dims"):
        if kwargs.get(key) is not None and not isinstance(kwargs[key], Mapping):
            raise _fail(f"{key}={kwargs[key]!r} must be a dict")
    for key in ("baseline", "baseline_output_only"):
        if key in kwargs and not isinstance(kwargs[key], bool):
            raise _fail(f"{key}={kwargs[key]!r} must be True or False")
    try:
        from .contract import bind_inputs, parse_expected

        bind_inputs(kwargs["input"], kwargs.get("dims"))
        if kwargs.get("output") is not None:
            parse_expected(kwargs["output"])
        if isinstance(factory, str):
            from .factory import parse_factory

            parse_factory(factory)
    except SpecError as exc:
        raise _fail(str(exc)) from None
    name = kwargs.get("name") or _factory_name(factory)
    check = ModelCheck(
        name=str(name), factory=factory, kwargs=dict(kwargs.get("kwargs") or {}),
        input=kwargs["input"], output=kwargs.get("output"), dims=dict(kwargs.get("dims") or {}),
        max_params=max_params, device=device, train=bool(kwargs.get("train", False)),
        contract=contract,
    )
    baseline: dict[str, Any] = {
        k: kwargs[k] for k in ("baseline", "baseline_output_only") if k in kwargs
    }
    return check, baseline


def _factory_name(factory: Any) -> str:
    if isinstance(factory, str):
        return factory.rpartition(":")[2].split("(")[0]
    return str(getattr(factory, "__name__", type(factory).__name__))
