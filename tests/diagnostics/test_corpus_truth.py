"""The broken corpus's expected answers, checked against plain torch rather than our tracer.

Each case says which layer fails and what it received (``Broken.layer``,
``Broken.received``): here a plain CPU forward, watched by hooks registered by hand
and a ``TorchFunctionMode`` (``tests/truth.py``, which imports nothing of ours), must
fail at that very module call with that very shape. The fixes are confirmed with plain
torch in ``test_diagnostics.test_applying_the_fix_shown_makes_the_model_run``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from tests.corpus.broken_zoo import CORPUS, Broken
from tests.corpus.field_zoo import FIELD
from tests.corpus.generalize_zoo import GENERALIZE
from tests.truth import model_dtype, plain_inputs, run_plain

CASES: dict[str, Broken] = {**CORPUS, **FIELD, **GENERALIZE}

#: Kinds whose diagnosis shows what the model was given (the size path starts at the
#: input; the input is what must become integer), not the operand of the op that raised.
_INPUT_KINDS = {"input_too_small", "index_input_float"}

#: How an op that raised in forward code is spelt in the user's line.
_SPELLING = {"add": "+", "add_": "+=", "iadd": "+="}


def _library_layer(module: torch.nn.Module) -> bool:
    """A layer of torch, or a leaf layer of an installed package (the corpus's stand-in
    ``minilib``: a conv class that pads in its forward); a library's block, with layers
    inside, fails in its forward code like the user's."""
    if type(module).__module__.startswith("torch.nn"):
        return True
    file = getattr(sys.modules.get(type(module).__module__), "__file__", "") or ""
    return "site-packages" in Path(file).parts and not any(module.children())


@pytest.mark.parametrize("name", sorted(CASES))
def test_the_case_fails_where_plain_torch_fails(name: str) -> None:
    case = CASES[name]
    model = case.factory()
    args, kwargs = plain_inputs(case.inputs, model_dtype(model))
    _, failed = run_plain(model, args, kwargs, train=case.train)
    assert failed is not None, f"{name} runs in plain torch: it is not broken"
    assert failed.module == case.layer, (failed.module, failed.error)
    module = model.get_submodule(failed.module)
    if _library_layer(module) or isinstance(failed.error, AssertionError):
        # a library layer refused its input, with torch's error or with its own assertion
        assert failed.received[0] == case.received
        return
    # forward() code of the user's own: the torch function that raised, and its operands
    assert failed.op is not None, f"{name}: the error did not come from a torch function: {failed.error!r}"
    if case.kind in _INPUT_KINDS:
        assert failed.received[0] == case.received
    else:
        assert failed.operands[0] == case.received, (failed.op_name, failed.operands)
    if case.source is not None:
        assert _SPELLING.get(failed.op_name or "", failed.op_name or "") in case.source, failed.op_name


def test_the_truth_sees_both_kinds_of_failure() -> None:
    """Both branches above are exercised by the corpus: library layers and forward code."""
    kinds = {"layer": 0, "code": 0}
    for case in CASES.values():
        model = case.factory()
        args, kwargs = plain_inputs(case.inputs, model_dtype(model))
        _, failed = run_plain(model, args, kwargs, train=case.train)
        assert failed is not None
        library = _library_layer(model.get_submodule(failed.module))
        kinds["layer" if library else "code"] += 1
    assert kinds["layer"] >= 60 and kinds["code"] >= 15, kinds
