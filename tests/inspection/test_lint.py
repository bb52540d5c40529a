"""lint(): every rule catches its planted problem, a clean model has no finding, and
"directly followed" is read from the call order and the data flow of the forward."""

from __future__ import annotations

from itertools import pairwise
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from pytest_cnnshape import Finding, Findings, LintError, ShapeMismatchError, assert_no_lint, lint, trace
from pytest_cnnshape.inspection.catalog import RULE_IDS, RULES
from pytest_cnnshape.strategies import cnn_stacks
from tests.corpus.inspection_zoo import (
    PLANTED,
    Case,
    Clean,
    ConvBiasBN,
    ConvReluBN,
    DeadHead,
    ElementDropout,
    fixed_size_classifier,
    softmax_classifier,
    split_decay,
)
from tests.corpus.zoo import ZOO
from tests.helpers import assert_same, examples, snapshot
from tests.truth import calls_of, doubled, model_dtype, plain_inputs, run_on

CASES = [
    pytest.param(rule, case, id=f"{rule}-{i}")
    for rule, cases in PLANTED.items()
    for i, case in enumerate(cases)
]


def test_every_rule_has_a_planted_case_and_a_documented_rationale() -> None:
    assert set(PLANTED) == set(RULE_IDS)
    for rule in RULES:
        assert rule.title and len(rule.why) > 80 and rule.needs in ("model", "inputs", "optimizer", "loss")


@pytest.mark.parametrize(("rule", "case"), CASES)
def test_a_planted_problem_is_caught_with_layer_why_and_fix(rule: str, case: Case) -> None:
    model, arguments = case.lint_arguments()
    findings = lint(model, **arguments)
    caught = [f for f in findings if f.rule == rule]
    assert [f.layer for f in caught] == [case.layer], findings.text()
    finding = caught[0]
    assert finding.why == next(r.why for r in RULES if r.id == rule)
    assert finding.message and finding.fix
    if not case.layer.startswith("optimizer"):
        assert finding.message.startswith(case.layer) or f"{case.layer} (" in finding.message


def test_a_clean_model_has_no_finding_and_every_rule_ran() -> None:
    model = Clean()
    findings = lint(model, (2, 3, 32, 32), split_decay(model), loss=nn.CrossEntropyLoss())
    assert findings == [] and findings.skipped == {} and findings.ignored == ()
    assert_no_lint(model, "2x3x32x32", split_decay(model), loss="cross_entropy")


def test_the_reference_resnet_is_clean() -> None:
    from benchmarks.models import resnet50

    model = resnet50()
    assert lint(model, (1, 3, 224, 224), split_decay(model), loss=nn.CrossEntropyLoss()) == []


def test_call_order_not_definition_order_decides_what_follows() -> None:
    # ConvBiasBN creates bn before conv; the forward runs conv -> bn.
    assert [f.rule for f in lint(ConvBiasBN(), (1, 3, 8, 8))] == ["bias-before-batchnorm"]
    # conv -> F.relu -> bn: the ReLU sees the bias, so it is not wasted.
    assert lint(ConvReluBN(), (1, 3, 8, 8)) == []


def test_a_layer_called_several_times_is_reported_once() -> None:
    class Twice(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(4, 4, 3, padding=1)
            self.bn = nn.BatchNorm2d(4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            for _ in range(3):
                x = self.bn(self.conv(x))
            return x

    assert [(f.rule, f.layer) for f in lint(Twice(), (1, 4, 8, 8))] == [("bias-before-batchnorm", "conv")]


def test_identity_layers_in_between_do_not_hide_a_cancelled_bias() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Identity(), nn.BatchNorm2d(4))
    assert [(f.rule, f.layer) for f in lint(model, (1, 3, 8, 8))] == [("bias-before-batchnorm", "0")]


def test_fix_texts_carry_this_models_numbers() -> None:
    (bias,) = lint(ConvBiasBN(), (1, 3, 8, 8))
    assert "nn.Conv2d(3, 8, 3, padding=1, bias=False)" in bias.fix
    (drop,) = lint(ElementDropout(), (1, 3, 8, 8))
    assert "nn.Dropout2d(p=0.25)" in drop.fix
    (fixed,) = lint(fixed_size_classifier(), (1, 1, 28, 28))
    assert "nn.AdaptiveAvgPool2d(12)" in fixed.fix and "864 features" in fixed.fix
    assert "fits only 1x1x28x28: at 1x1x56x56 it receives 4,056 features" in fixed.message  # 6 * 26 * 26


def test_the_adaptive_pool_fix_solves_for_a_functional_pooling_in_between() -> None:
    class PoolThenFlatten(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3, padding=1, bias=False)
            self.fc = nn.Linear(8 * 4 * 8, 10)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(F.max_pool2d(self.conv(x), 2).flatten(1))

    (finding,) = lint(PoolThenFlatten(), (1, 3, 8, 16))
    assert finding.fix.startswith(
        "add nn.AdaptiveAvgPool2d((4, 8)) before the flatten: fc then gets 256 features at any input size"
    )


def test_functional_use_of_a_layers_weights_counts_as_used() -> None:
    findings = lint(DeadHead(), (1, 3, 8, 8))
    assert [f.layer for f in findings if f.rule == "unused-parameters"] == ["aux"]
    assert "aux (Sequential, 30 parameters) is never called" in findings[0].message


def test_loss_spelled_in_several_ways() -> None:
    for loss in (
        nn.CrossEntropyLoss(),
        nn.CrossEntropyLoss,
        F.cross_entropy,
        "CrossEntropyLoss",
        "cross-entropy",
    ):
        assert [f.rule for f in lint(softmax_classifier(), (1, 3, 8, 8), loss=loss)] == [
            "softmax-before-cross-entropy"
        ]
    assert lint(softmax_classifier(), (1, 3, 8, 8), loss=nn.MSELoss()) == []
    log_softmax = nn.Sequential(nn.Linear(4, 3), nn.LogSoftmax(dim=1))
    assert lint(log_softmax, (2, 4), loss=nn.NLLLoss()) == []


def test_without_inputs_optimizer_or_loss_the_rules_that_need_them_are_listed() -> None:
    findings = lint(Clean())
    assert findings == []
    assert findings.skipped["bias-before-batchnorm"] == "no inputs= given"
    assert findings.skipped["adam-weight-decay"] == "no optimizer= given"
    assert "dropout-probability" not in findings.skipped
    assert "not run:" in findings.text()
    with_inputs = lint(Clean(), (1, 3, 16, 16))
    assert set(with_inputs.skipped) == {
        "weight-decay-on-norm-or-bias",
        "adam-weight-decay",
        "softmax-before-cross-entropy",
    }


def test_rules_can_be_switched_off_per_call() -> None:
    model = ConvBiasBN()
    findings = lint(model, (1, 3, 8, 8), ignore=["bias-before-batchnorm"])
    assert findings == [] and findings.ignored == ("bias-before-batchnorm",)
    assert "bias-before-batchnorm" not in findings.skipped


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        (
            {"ignore": ["bias-before-bn"]},
            ValueError,
            "ignore= names an unknown lint rule 'bias-before-bn' (did you mean 'bias-before-batchnorm'?)",
        ),
        ({"ignore": "bias-before-batchnorm"}, ValueError, "must be a list of rule ids"),
        ({"optimizer": torch.optim.SGD}, TypeError, "optimizer is the class SGD, not an instance"),
        ({"optimizer": "adam"}, TypeError, "optimizer must be a torch.optim.Optimizer, got str"),
        ({"loss": "hinge"}, ValueError, "loss='hinge' is not a loss name pytest-cnnshape knows"),
        ({"loss": 3}, TypeError, "loss=3 (int) is not a loss"),
    ],
)
def test_wrong_arguments_say_what_to_pass(
    kwargs: dict[str, object], error: type[Exception], message: str
) -> None:
    with pytest.raises(error) as info:
        lint(Clean(), **kwargs)  # type: ignore[arg-type]
    assert message in str(info.value)


def test_a_model_class_instead_of_an_instance_is_explained() -> None:
    with pytest.raises(TypeError, match="model is the class Clean, not an instance"):
        lint(Clean)  # type: ignore[arg-type]


def test_assert_no_lint_lists_every_finding_with_its_fix() -> None:
    with pytest.raises(LintError) as info:
        assert_no_lint(ConvBiasBN(), (1, 3, 8, 8))
    text = str(info.value)
    assert text.startswith(
        "ConvBiasBN: 1 lint finding (to accept one, switch its rule off: "
        "ignore=['rule-id'] or [tool.cnnshape] lint.ignore)"
    )
    assert "[bias-before-batchnorm] conv:" in text and "fix: create conv without it" in text
    assert isinstance(info.value, AssertionError) and info.value.findings[0].rule == "bias-before-batchnorm"
    assert_no_lint(ConvBiasBN(), (1, 3, 8, 8), ignore=["bias-before-batchnorm"])


def test_findings_round_trip_through_json() -> None:
    findings = lint(ConvBiasBN(), (1, 3, 8, 8))
    again = Findings.from_dict(findings.to_dict())
    assert again == findings and again.skipped == findings.skipped
    assert Finding.from_dict(findings[0].to_dict()) == findings[0]


@pytest.mark.parametrize("device", ["meta", "cpu"])
@pytest.mark.parametrize("train", [False, True])
def test_lint_leaves_the_model_exactly_as_it_was(device: str, train: bool) -> None:
    for case in [c for cases in PLANTED.values() for c in cases if c.inputs is not None]:
        model, arguments = case.lint_arguments()
        model.train(train)
        next(model.parameters()).requires_grad_(False)
        before, rng = snapshot(model), torch.get_rng_state()
        lint(model, **arguments, device=device)
        assert_same(before, model)
        assert torch.equal(rng, torch.get_rng_state())


def test_a_broken_forward_is_the_shape_diagnostic_not_a_lint_result() -> None:
    from pytest_cnnshape import ShapeMismatchError

    with pytest.raises(ShapeMismatchError):
        lint(fixed_size_classifier(), (1, 1, 32, 32))


def _expected_findings(name: str) -> set[tuple[str, str]]:
    """The findings of the two rules a structure can trip without an optimizer or a loss,
    from plain torch: a Conv/Linear with a bias whose output tensor is the very input of a
    BatchNorm call, and the Linear a forward at double the spatial size breaks."""
    factory, inputs = ZOO[name]
    model = factory()
    args, kwargs = plain_inputs(inputs, model_dtype(model))
    calls, _ = calls_of(model, args, kwargs)
    found = set()
    made_by: dict[int, Any] = {}  # tensor id -> the last call that returned it (in-place ops too)
    for call in calls:
        source = made_by.get(call.inputs[0]) if call.inputs else None
        biased = source is not None and isinstance(source.module, (nn.modules.conv._ConvNd, nn.Linear))
        if (
            biased
            and source.module.bias is not None
            and isinstance(call.module, nn.modules.batchnorm._BatchNorm)
        ):
            found.add(("bias-before-batchnorm", source.name))
        made_by.update(dict.fromkeys(call.outputs, call))
    model = factory()
    _, failed = run_on(model, doubled(args), doubled(kwargs), device="meta")
    if failed is not None and isinstance(model.get_submodule(failed.module), nn.Linear):
        found.add(("linear-fixed-input-size", failed.module))
    return found


@pytest.mark.parametrize("name", sorted(ZOO))
def test_the_structures_of_the_trace_zoo_lint_as_plain_torch_says(name: str) -> None:
    factory, inputs = ZOO[name]
    model = factory()
    lazy = name == "lazy_linear"  # a snapshot would have to touch the uninitialised weights
    before = None if lazy else snapshot(model)
    findings = lint(model, inputs)
    if before is not None:
        assert_same(before, model)
    else:
        assert isinstance(model.head.weight, nn.parameter.UninitializedParameter)
    assert {(f.rule, f.layer) for f in findings} == _expected_findings(name)
    assert len(findings) == len({(f.rule, f.layer) for f in findings})  # each once


def test_the_zoo_trips_both_rules() -> None:
    """The comparison above is not of empty sets only."""
    rules = {rule for name in ZOO for rule, _ in _expected_findings(name)}
    assert rules == {"bias-before-batchnorm", "linear-fixed-input-size"}


@settings(max_examples=examples(25))
@given(stack=cnn_stacks(2, max_layers=8), device=st.sampled_from(["meta", "cpu"]))
def test_cancelled_biases_are_exactly_the_conv_batchnorm_neighbours(stack: object, device: str) -> None:
    layers = [m for m in stack.model if not isinstance(m, nn.Identity)]  # type: ignore[attr-defined]
    names = {id(m): n for n, m in stack.model.named_children()}  # type: ignore[attr-defined]
    expected = sorted(
        {
            names[id(a)]
            for a, b in pairwise(layers)
            if isinstance(a, nn.Conv2d) and a.bias is not None and isinstance(b, nn.BatchNorm2d)
        }
    )
    findings = lint(
        stack.model,
        stack.input_shape,
        device=device,  # type: ignore[attr-defined]
        ignore=["linear-fixed-input-size"],
    )
    assert sorted(f.layer for f in findings if f.rule == "bias-before-batchnorm") == expected


def test_rules_findings_and_report_text_load_without_torch() -> None:
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from pytest_cnnshape.inspection import catalog, findings, render\n"
        "from pytest_cnnshape.plugin.config import parse_project\n"
        "parse_project({'lint': {'ignore': ['dropout-after-conv']}})\n"
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


class NeedsValues(nn.Module):
    """Reads a value (``.item()``): meta cannot run it, the trace falls back to CPU."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 64, 3, padding=1)
        self.bn = nn.BatchNorm2d(64)
        self.unused = nn.Linear(2, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn(self.conv(x))
        return y if y.mean().item() > -1e9 else -y


def test_a_meta_attempt_that_falls_back_is_forgotten() -> None:
    from pytest_cnnshape import count_flops
    from pytest_cnnshape.inspection.observe import observed_trace
    from pytest_cnnshape.tracing.request import TraceRequest

    model = NeedsValues()
    observation = observed_trace(TraceRequest.of(model, (1, 3, 256, 256)), flops=True, parameter_use=True)
    assert observation.trace.device == "cpu" and observation.trace.note
    assert [c.module for c in observation.calls] == [model, model.conv, model.bn]
    assert observation.calls[2].fed_by_previous_leaf
    assert observation.used_parameters == {"conv.weight", "conv.bias", "bn.weight", "bn.bias"}
    assert [(f.rule, f.layer) for f in lint(model, (1, 3, 256, 256))] == [
        ("bias-before-batchnorm", "conv"),
        ("unused-parameters", "unused"),
    ]
    assert count_flops(model, (1, 3, 256, 256)).total_macs == 64 * 3 * 9 * 256 * 256


def test_no_hook_is_left_behind_when_the_forward_fails() -> None:
    model = fixed_size_classifier()
    with pytest.raises(Exception, match="mat1 and mat2"):
        lint(model, (1, 1, 32, 32))
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


class FunctionalSoftmax(nn.Module):
    """A classifier whose forward ends in ``F.softmax`` (the common Keras port), no Softmax layer."""

    def __init__(self, log: bool = False) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.fc = nn.Linear(4, 5)
        self.log = log

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.fc(torch.flatten(F.adaptive_avg_pool2d(self.conv(x), 1), 1))
        return F.log_softmax(logits, dim=1) if self.log else F.softmax(logits, dim=1)


@pytest.mark.parametrize("device", ["meta", "cpu"])
def test_a_functional_softmax_before_cross_entropy_is_found(device: str) -> None:
    found = lint(FunctionalSoftmax(), (2, 3, 8, 8), loss=nn.CrossEntropyLoss(), device=device)
    assert [(f.rule, f.layer) for f in found] == [("softmax-before-cross-entropy", "")]
    assert "F.softmax in its forward()" in found[0].message and "probabilities" in found[0].message
    assert "drop the F.softmax" in found[0].fix
    assert [f.rule for f in lint(FunctionalSoftmax(log=True), (2, 3, 8, 8), loss="cross_entropy")] == [
        "softmax-before-cross-entropy"
    ]
    assert lint(FunctionalSoftmax(log=True), (2, 3, 8, 8), loss="nll") == []
    nll = lint(FunctionalSoftmax(), (2, 3, 8, 8), loss="nll")
    assert "F.log_softmax(x, dim=1)" in nll[0].fix
    assert lint(FunctionalSoftmax(), (2, 3, 8, 8), loss=nn.MSELoss()) == []


class CRNNHead(nn.Module):
    """A CRNN's CTC head: (B, C, 1, W) -> (W, B, C) by a permute, then an LSTM (batch_first=False)."""

    def __init__(self, rnn: bool = True) -> None:
        super().__init__()
        self.cnn = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.AdaptiveAvgPool2d((1, 12)))
        self.rnn = nn.LSTM(8, 6) if rnn else None
        self.fc = nn.Linear(6 if rnn else 8, 11)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seq = self.cnn(x).squeeze(2).permute(2, 0, 1)  # (W, B, C) for CTC
        if self.rnn is not None:
            seq, _ = self.rnn(seq)
        return F.log_softmax(self.fc(seq), dim=2)


class Transposed(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean((2, 3)).t()  # (C, B): sequence-first by design, nothing shows it


@pytest.mark.parametrize("rnn", [True, False])
def test_a_sequence_first_output_is_not_a_changed_batch(rnn: bool) -> None:
    model = CRNNHead(rnn)
    assert lint(model, (3, 1, 16, 48), ignore=["linear-fixed-input-size"]) == []
    # the diagnosis does not take (T, B, C) for a fold either
    broken = CRNNHead(rnn)
    broken.fc = nn.Linear(7, 11)
    with pytest.raises(ShapeMismatchError) as info:
        trace(broken, (3, 1, 16, 48))
    assert "batch changed" not in str(info.value) and info.value.kind == "linear_in_features"
    assert info.value.fix is not None and "in_features=" in info.value.fix


def test_batch_dim_says_where_the_batch_is() -> None:
    found = lint(Transposed(), (4, 3, 8, 8))
    assert [f.rule for f in found] == ["batch-dimension-changed"]
    assert "batch_dim=1" in found[0].fix
    assert lint(Transposed(), (4, 3, 8, 8), batch_dim=1) == []
    from tests.corpus.inspection_zoo import FoldsBatch

    assert [f.rule for f in lint(FoldsBatch(), (2, 3, 8, 8), batch_dim=1)] == ["batch-dimension-changed"]
    with pytest.raises(ValueError, match="batch_dim=-1 must be a whole number >= 0"):
        lint(Transposed(), (4, 3, 8, 8), batch_dim=-1)


def test_a_parametrization_is_not_data_flow() -> None:
    model = nn.Sequential(
        nn.utils.parametrizations.spectral_norm(nn.Conv2d(3, 8, 3)),
        nn.Flatten(),
        nn.utils.parametrizations.weight_norm(nn.Linear(8 * 6 * 6, 10)),
    )
    result = trace(model, (2, 3, 8, 8))
    assert [r.name for r in result.layers] == ["", "0", "1", "2"]  # no parametrization calls
    assert all(r.is_leaf for r in result.layers[1:])
    assert lint(model, (2, 3, 8, 8), ignore=["linear-fixed-input-size"]) == []


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda ps: torch.optim.Adam(ps, lr=1e-3, weight_decay=5e-4), "torch.optim.AdamW(["),
        (lambda ps: torch.optim.SGD(ps, lr=0.1, weight_decay=5e-4), "torch.optim.SGD(["),
    ],
    ids=["adam", "sgd"],
)
def test_the_optimizer_fixes_apply_together(make: Any, expected: str) -> None:
    """The param-group fix builds the optimizer the Adam rule asks for (AdamW), so a user who
    applies both gets a clean lint, not one fix undoing the other."""
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 6 * 6, 2)
    )
    found = lint(model, (2, 3, 8, 8), make(model.parameters()))
    groups = next(f for f in found if f.rule == "weight-decay-on-norm-or-bias")
    assert expected in groups.fix
    statements = groups.fix.removeprefix("give them a group without decay: ").replace("lr=...", "lr=1e-3")
    *setup, call = statements.split("; ")
    namespace: dict[str, Any] = {"model": model, "torch": torch}
    exec("\n".join(setup), namespace)
    fixed = eval(call, namespace)
    left = {f.rule for f in lint(model, (2, 3, 8, 8), fixed)}
    assert not left & {"weight-decay-on-norm-or-bias", "adam-weight-decay"}, left
