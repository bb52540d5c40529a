"""Every broken CNN of the corpus gets its diagnosis: the layer, what it received, the
fix with the right number, verified, the user's line — the same on meta and on CPU — and
applying the fix shown makes the model run, on meta and on CPU."""

from __future__ import annotations

import copy
import functools
import re

import pytest
import torch
from torch import nn
from torch.nn.parameter import is_lazy

from pytest_cnnshape import ShapeMismatchError, trace
from pytest_cnnshape.diagnostics import diagnose
from pytest_cnnshape.diagnostics.patches import Patch, ReplaceLayer, TransformInput, apply
from pytest_cnnshape.shapes.tree import format_shape
from tests.corpus.broken_zoo import CORPUS, Broken
from tests.corpus.field_zoo import FIELD
from tests.corpus.generalize_zoo import GENERALIZE
from tests.helpers import spec_tensors
from tests.truth import model_dtype, plain_inputs, run_on, run_plain, shape_of

CASES: dict[str, Broken] = {**CORPUS, **FIELD, **GENERALIZE}


def failure(case: Broken, device: str) -> ShapeMismatchError:
    with pytest.raises(ShapeMismatchError) as info:
        trace(case.factory(), case.inputs, device=device, train=case.train)
    return info.value


@functools.cache
def diagnosed(name: str, device: str) -> ShapeMismatchError:
    """One diagnosis per case and device per test process (several tests read it)."""
    case = CASES[name]
    try:
        trace(case.factory(), case.inputs, device=device, train=case.train)
    except ShapeMismatchError as err:
        return err
    raise AssertionError(f"{name} ran on {device}: it is not broken")


def test_the_corpus_covers_every_category() -> None:
    kinds = {case.kind for case in CASES.values()}
    assert len(CASES) >= 80
    sourced = [name for name, case in CASES.items() if case.origin.startswith("https://")]
    assert len(sourced) >= 80, sorted(set(CASES) - set(sourced))
    assert all(case.origin for case in (*FIELD.values(), *GENERALIZE.values()))
    assert {
        "linear_in_features",
        "linear_unflattened",
        "flatten_start_dim",
        "flatten_batch",
        "conv_in_channels",
        "channels_last",
        "clip_layout",
        "missing_channel_axis",
        "missing_batch_axis",
        "norm_num_features",
        "norm_rank",
        "groupnorm_channels",
        "layernorm_shape",
        "batchnorm_single_value",
        "input_too_small",
        "combine_mismatch",
        "residual_double_downsample",
        "view_size",
        "view_batch_fold",
        "dtype_mismatch",
        "pixel_shuffle_channels",
        "max_unpool_size",
        "position_table_size",
        "rnn_input_size",
    } <= kinds
    assert {case.fix_kind for case in CASES.values()} == {"layer", "input", "code", None}


@pytest.mark.parametrize("device", ["meta", "cpu"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_diagnosis(name: str, device: str) -> None:
    case = CASES[name]
    err = diagnosed(name, device)
    assert err.kind == case.kind
    assert err.layer == case.layer
    assert err.received_shapes[0] == case.received
    diagnosis = err.diagnosis
    if case.fix is None:
        assert err.fix is None and diagnosis.shown is None
        assert re.search(r"^  fix +none verified: ", str(err), re.MULTILINE), str(err)
    else:
        assert err.fix is not None and case.fix in err.fix, err.fix
        assert diagnosis.shown is not None and diagnosis.shown.kind == case.fix_kind
        verdict = "verified: the model then runs to " if case.complete else "partly verified: "
        assert diagnosis.verified is not None and diagnosis.verified.startswith(verdict), diagnosis.verified
        assert diagnosis.verified in str(err)
        assert diagnosis.facts["verified"] is case.complete
    if case.alternative is not None:
        assert diagnosis.alternative is not None and diagnosis.alternative.kind == case.alternative
        assert diagnosis.alternative.kind != diagnosis.shown.kind  # type: ignore[union-attr]
        assert re.search(r"^  or +", str(err), re.MULTILINE)
    if case.source is not None:
        assert err.source is not None and case.source in err.source, err.source
        assert err.source.startswith("tests/corpus/")
    assert case.facts.items() <= diagnosis.facts.items()
    assert isinstance(err.__cause__, Exception)
    text = str(err)
    assert text.splitlines()[0] == diagnosis.headline
    assert "layers up to the failure" in text
    assert err.trace.complete is False and err.trace.layers


def _run_text(patch: Patch, case: Broken, device: str) -> None:
    """The fix as the user would apply it from its text alone, independently of the patch
    machinery: the constructor call pasted over the layer, the statement run on the input."""
    model = case.factory()
    inputs: object = case.inputs
    if isinstance(patch, ReplaceLayer):
        parent, _, attr = patch.name.rpartition(".")
        cls = type(model.get_submodule(patch.name))  # a library's class is named by itself
        with torch.device(device):
            layer = eval(patch.text, {"nn": nn, "torch": torch, cls.__name__: cls})
        owner = model.get_submodule(parent)
        owner.register_module(attr, layer)  # a Sequential's "0" or an fx GraphModule's plain container
    elif isinstance(patch, TransformInput) and patch.transform is not None:
        x = case.inputs if isinstance(case.inputs, torch.Tensor) else torch.randn(case.inputs)
        namespace = {"x": x, "torch": torch}
        exec(patch.text, namespace)
        inputs = namespace["x"]
    elif isinstance(patch, TransformInput):
        assert patch.shape is not None and "x".join(map(str, patch.shape)) in patch.text
        inputs = patch.shape
    else:
        return
    trace(model, inputs, device=device, train=case.train)


@pytest.mark.parametrize("device", ["meta", "cpu"])
@pytest.mark.parametrize("name", sorted(n for n, c in CASES.items() if c.fix is not None))
def test_applying_the_fix_shown_makes_the_model_run(name: str, device: str) -> None:
    case = CASES[name]
    diagnosis = diagnosed(name, "meta").diagnosis
    for shown in filter(None, (diagnosis.shown, diagnosis.alternative)):
        model = case.factory()
        before = copy.deepcopy(model.state_dict())
        patched, inputs = apply(model, case.inputs, shown.patch, device)
        result = trace(patched, inputs, device=device, train=case.train)
        if shown.complete:
            assert shown.verified == f"verified: the model then runs to {format_shape(result.output_shape)}"
        after = model.state_dict()
        assert before.keys() == after.keys()
        assert all(is_lazy(v) or torch.equal(before[k], v) for k, v in after.items())  # untouched
        _run_text(shown.patch, case, device)
        # and with plain torch, no tracer: the patched model called on the patched inputs (last:
        # it may initialise the user's lazy layers, and on meta it moves the model there)
        output, failed = run_on(
            patched, *spec_tensors(inputs, model_dtype(patched)), device=device, train=case.train
        )
        if shown.complete:
            assert failed is None, f"plain torch: {failed}"
            assert shown.verified == f"verified: the model then runs to {format_shape(shape_of(output))}"
        else:
            assert failed is not None and failed.module != case.layer, failed


@pytest.mark.parametrize("name", sorted(CASES))
def test_meta_and_cpu_agree(name: str) -> None:
    meta, cpu = (diagnosed(name, d).diagnosis for d in ("meta", "cpu"))
    assert (meta.kind, meta.layer, meta.received_shapes, meta.fix, meta.facts, meta.headline) == (
        cpu.kind,
        cpu.layer,
        cpu.received_shapes,
        cpu.fix,
        cpu.facts,
        cpu.headline,
    )
    assert meta.verified == cpu.verified
    assert (meta.alternative and meta.alternative.text) == (cpu.alternative and cpu.alternative.text)


def test_the_headline_example_reads_as_documented() -> None:
    err = failure(CORPUS["linear_after_torch_flatten"], "meta")
    lines = str(err).splitlines()
    assert lines[0] == "fc (Linear) cannot take its input"
    assert lines[1].split() == [
        "received",
        "[1,",
        "800]",
        "flattened",
        "from",
        "features.5",
        "(MaxPool2d)",
        "->",
        "[1,",
        "32,",
        "5,",
        "5]",
    ]
    assert lines[2].split()[:3] == ["expects", "[*,", "1152]"]
    assert lines[3].strip() == ("fix       nn.Linear(in_features=800, out_features=10)   # 800 = 32 * 5 * 5")
    assert lines[4].strip() == "verified: the model then runs to [1, 10]"
    assert lines[6].strip().startswith("at        tests/corpus/broken_zoo.py:")
    assert "fc          Linear     [1, 800]         <- failed here" in str(err)


def test_too_small_shows_the_size_path_and_the_minimum() -> None:
    err = failure(CORPUS["lenet_input_too_small"], "cpu")
    text = str(err)
    assert "path      12x12 -> 8x8 (0 Conv2d) -> 4x4 (2 MaxPool2d) -> 3 (Conv2d) fails" in text
    assert "needs     kernel 5x5: the output would be 0x0" in text
    assert err.diagnosis.facts["min_input"] == [1, 1, 16, 16]
    trace(CORPUS["lenet_input_too_small"].factory(), (1, 1, 16, 16))  # the minimum does run


def test_a_rule_that_breaks_never_hides_the_users_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from pytest_cnnshape.diagnostics.rules import linear

    def broken_rule(ctx: object) -> None:
        raise KeyError("a bug in a rule")

    monkeypatch.setattr(linear, "diagnose", broken_rule)
    monkeypatch.delenv("CNNSHAPE_DEBUG")
    err = failure(CORPUS["linear_after_torch_flatten"], "meta")
    assert err.kind == "forward_error" and err.layer == "fc"
    assert f"torch     {str(err.__cause__).splitlines()[0]}" in str(err)
    monkeypatch.setenv("CNNSHAPE_DEBUG", "1")
    with pytest.raises(KeyError, match="a bug in a rule"):
        trace(CORPUS["linear_after_torch_flatten"].factory(), (1, 1, 28, 28), device="meta")


def test_the_batch_fold_note_accompanies_a_later_failure() -> None:
    class FoldThenNorm(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(1, 4, 3)
            self.norm = nn.BatchNorm1d(8)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.norm(self.conv(x).view(-1, 18))

    err = failure(Broken(FoldThenNorm, (2, 1, 5, 5), "", "", (), None), "meta")
    assert err.layer == "norm"
    # undo the fold and size the layer for one sample -- not resize it to the folded rows
    assert err.fix == (
        "x = torch.flatten(x, 1)   (in place of the view that folded the batch), and "
        "norm: nn.BatchNorm1d(num_features=36)"
    )
    assert err.diagnosis.verified == "verified: the model then runs to [2, 36]"
    assert err.diagnosis.fix_note == "keeps the batch of 2: the layer then gets 36 features per sample"
    assert err.diagnosis.hint is not None
    assert err.diagnosis.hint.startswith(
        "the batch changed from 2 to 4 between conv (Conv2d) and norm (BatchNorm1d)"
    )
    assert err.diagnosis.facts["batch_changed"] == [2, 4]


def test_diagnose_is_public_for_tools() -> None:
    """A tool that runs the tracer itself hands the moment of failure to ``diagnose``; what it
    gets back is checked against plain torch: the Linear that failed, what it received, and
    the in_features that fits it, with the model then running to plain torch's output."""
    from pytest_cnnshape.errors import ForwardFailed
    from pytest_cnnshape.tracing.request import TraceRequest
    from pytest_cnnshape.tracing.tracer import run

    case = CORPUS["linear_after_torch_flatten"]
    with pytest.raises(ForwardFailed) as info:
        run(TraceRequest.of(case.factory(), case.inputs, device="meta"))
    diagnosis = diagnose(info.value.context)
    model = case.factory()
    _, failed = run_plain(model, *plain_inputs(case.inputs))
    assert failed is not None
    features = failed.received[0][-1]  # what torch.flatten gave the Linear per sample
    assert (diagnosis.layer, diagnosis.received_shapes[0]) == (failed.module, failed.received[0])
    assert diagnosis.fix == f"nn.Linear(in_features={features}, out_features={model.fc.out_features})"
    model.fc = nn.Linear(features, model.fc.out_features)
    output, again = run_plain(model, *plain_inputs(case.inputs))
    assert again is None and diagnosis.verified == f"verified: the model then runs to {list(output.shape)}"
