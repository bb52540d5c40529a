"""Every broken CNN of the corpus gets its diagnosis: the layer, what it received,
the fix with the right number, the user's line — the same on meta and on CPU."""

from __future__ import annotations

import re

import pytest
import torch
from torch import nn

from pytest_cnnshape import ShapeMismatchError, trace
from pytest_cnnshape.diagnostics import diagnose
from tests.corpus.broken_zoo import CORPUS, Broken


def failure(case: Broken, device: str) -> ShapeMismatchError:
    with pytest.raises(ShapeMismatchError) as info:
        trace(case.factory(), case.inputs, device=device)
    return info.value


def test_the_corpus_covers_every_category() -> None:
    kinds = {case.kind for case in CORPUS.values()}
    assert len(CORPUS) >= 25
    assert {
        "linear_in_features",
        "linear_unflattened",
        "flatten_start_dim",
        "conv_in_channels",
        "channels_last",
        "missing_channel_axis",
        "missing_batch_axis",
        "norm_num_features",
        "norm_rank",
        "groupnorm_channels",
        "layernorm_shape",
        "input_too_small",
        "combine_mismatch",
        "view_size",
        "view_batch_fold",
        "dtype_mismatch",
    } <= kinds


@pytest.mark.parametrize("device", ["meta", "cpu"])
@pytest.mark.parametrize("name", sorted(CORPUS))
def test_diagnosis(name: str, device: str) -> None:
    case = CORPUS[name]
    err = failure(case, device)
    assert err.kind == case.kind
    assert err.layer == case.layer
    assert err.received_shapes[0] == case.received
    if case.fix is None:
        assert err.fix is None
        assert re.search(r"^  fix +none derived automatically: ", str(err), re.MULTILINE), str(err)
    else:
        assert err.fix is not None and case.fix in err.fix, err.fix
    if case.source is not None:
        assert err.source is not None and case.source in err.source, err.source
        assert err.source.startswith("tests/corpus/broken_zoo.py:")
    assert case.facts.items() <= err.diagnosis.facts.items()
    assert isinstance(err.__cause__, Exception)
    text = str(err)
    assert text.splitlines()[0] == err.diagnosis.headline
    assert "layers up to the failure" in text
    assert err.trace.complete is False and err.trace.layers


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_meta_and_cpu_agree(name: str) -> None:
    case = CORPUS[name]
    meta, cpu = (failure(case, d).diagnosis for d in ("meta", "cpu"))
    assert (meta.kind, meta.layer, meta.received_shapes, meta.fix, meta.facts, meta.headline) == (
        cpu.kind,
        cpu.layer,
        cpu.received_shapes,
        cpu.fix,
        cpu.facts,
        cpu.headline,
    )


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
    assert lines[5].strip().startswith("at        tests/corpus/broken_zoo.py:")
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
    assert err.fix == "x = torch.flatten(x, 1)   (or x.view(x.size(0), -1))"
    assert err.diagnosis.fix_note == "keeps the batch of 2: the layer then gets 36 features per sample"
    assert err.diagnosis.hint is not None
    assert err.diagnosis.hint.startswith(
        "the batch changed from 2 to 4 between conv (Conv2d) and norm (BatchNorm1d)"
    )
    assert "nn.BatchNorm1d(num_features=18)" in err.diagnosis.hint
    assert err.diagnosis.facts["batch_changed"] == [2, 4]


def test_diagnose_is_public_for_tools() -> None:
    assert callable(diagnose)
