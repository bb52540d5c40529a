"""torchinfo's familiar table, wrapped so it cannot touch the model.

torchinfo 1.8 advances the global RNG, switches a model the user froze with
``.eval()`` back to training, moves the model when given ``device="meta"`` and
only shows the first tensor of structured outputs. Here it runs on real inputs
(``input_data=``) on the model's own device, in eval mode, inside the same
``preserved`` block ``trace`` uses; and it is a view, never the tracing engine.
Note that torchinfo counts tied weights once per module that holds them;
``trace`` counts each tensor once.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from ..errors import ArgumentError, ArgumentTypeError, TraceError
from ..tracing.devices import model_device, model_dtype
from ..tracing.guard import exclusive
from ..tracing.inputs import materialize, parse_inputs
from ..tracing.modelview import ModelView
from ..tracing.request import check_model
from ..tracing.state import preserved
from ..tracing.wrappers import is_script_module, type_name


def torchinfo_summary(model: nn.Module, inputs: Any, *, depth: int = 3, **options: Any) -> Any:
    """``torchinfo.summary`` of ``model`` on ``inputs`` (any form ``trace`` takes).

    Returns torchinfo's ModelStatistics (``str()`` is the table). ``options`` go to
    torchinfo (e.g. ``col_names``); ``device``, ``mode`` and ``input_data`` are set here.
    """
    import torchinfo

    model = check_model(model)
    for key in ("device", "mode", "input_data", "input_size"):
        if key in options:
            raise ArgumentTypeError(f"torchinfo_summary sets {key}= itself; leave it out")
    home = model_device(model)
    if home.type == "meta":
        raise ArgumentError("torchinfo needs real weights; this model is on meta (use trace())")
    if is_script_module(model):
        raise TraceError(
            f"torchinfo cannot look inside the TorchScript module {type_name(model)} (hooks do not "
            "fire in TorchScript); use trace() for its output and parameters, or the eager model"
        )
    view = ModelView.of(model)
    args, kwargs = materialize(parse_inputs(inputs), home, model_dtype(model), view.modules)
    with exclusive(view.modules), preserved(view, real_run=True, train=False):
        return torchinfo.summary(
            model,
            input_data=list(args),
            device=home,
            mode="eval",
            depth=depth,
            verbose=0,
            **kwargs,
            **options,
        )
