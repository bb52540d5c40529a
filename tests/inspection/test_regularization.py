"""regularization(): dropout, normalization and weight decay, checked against the
model's and the optimizer's real settings."""

from __future__ import annotations

import inspect
import json

import pytest
import torch
from torch import nn

from pytest_cnnshape import RegularizationReport, regularization
from tests.corpus.inspection_zoo import Clean, split_decay
from tests.helpers import assert_same, snapshot


def every_dropout() -> nn.Module:
    return nn.Sequential(
        nn.Dropout(0.1),
        nn.Dropout1d(0.2),
        nn.Dropout2d(0.3),
        nn.Dropout3d(0.4),
        nn.AlphaDropout(0.05),
        nn.FeatureAlphaDropout(0.15, inplace=True),
    )


def every_norm() -> nn.Module:
    norms = [
        nn.BatchNorm1d(4),
        nn.BatchNorm2d(8, eps=1e-3, momentum=0.01),
        nn.BatchNorm3d(2, affine=False),
        nn.BatchNorm2d(5, track_running_stats=False),
        nn.GroupNorm(2, 8),
        nn.LayerNorm([8, 4], elementwise_affine=True, eps=1e-6),
        nn.InstanceNorm2d(8),
        nn.InstanceNorm1d(3, affine=True, track_running_stats=True),
    ]
    rms = getattr(nn, "RMSNorm", None)
    if rms is not None:
        norms.append(rms(16))
    return nn.ModuleList(norms)


@pytest.mark.parametrize("train", [True, False])
def test_every_dropout_layer_with_its_p_and_whether_it_acts(train: bool) -> None:
    model = every_dropout().train(train)
    model[1].eval()
    report = regularization(model)
    assert [(d.name, d.type, d.p, d.inplace) for d in report.dropouts] == [
        (str(i), type(m).__name__, m.p, m.inplace) for i, m in enumerate(model)
    ]
    assert [d.active for d in report.dropouts] == [m.training for m in model]


def test_dropout_with_p_zero_is_not_active() -> None:
    (layer,) = regularization(nn.Sequential(nn.Dropout(0.0))).dropouts
    assert layer.training and not layer.active


def test_every_normalization_layer_with_its_settings_and_statistics() -> None:
    model = every_norm().train()
    model[1].eval()
    report = regularization(model)
    assert [n.type for n in report.norms] == [type(m).__name__ for m in model]
    by_name = {n.name: n for n in report.norms}
    bn = by_name["1"]
    assert bn.settings == {
        "num_features": 8,
        "eps": 1e-3,
        "momentum": 0.01,
        "affine": True,
        "track_running_stats": True,
    }
    assert (bn.training, bn.statistics) == (False, "running")
    assert by_name["0"].statistics == "batch"  # training: batch statistics, running stats updated
    assert by_name["2"].settings["affine"] is False
    assert by_name["3"].statistics == "batch"  # no running stats: batch statistics even in eval
    assert by_name["4"].settings == {"num_groups": 2, "num_channels": 8, "eps": 1e-5, "affine": True}
    assert by_name["5"].settings == {
        "normalized_shape": [8, 4],
        "eps": 1e-6,
        "elementwise_affine": True,
        "bias": True,
    }
    assert by_name["4"].statistics == by_name["5"].statistics == "sample"
    assert by_name["6"].statistics == "instance"
    model.eval()
    assert regularization(model).norms[7].statistics == "running"


def test_weight_decay_per_group_decoupled_or_added_to_the_gradient() -> None:
    model = Clean()
    report = regularization(model, split_decay(model, torch.optim.AdamW, 0.05))
    assert report.optimizer == "AdamW"
    decay, no_decay = report.groups
    assert (decay.weight_decay, decay.decay, decay.lr) == (0.05, "decoupled", 1e-3)
    assert (no_decay.weight_decay, no_decay.decay) == (0.0, "none")
    names = dict(model.named_parameters())
    assert set(decay.params) == {n for n, p in names.items() if p.ndim > 1}
    assert set(no_decay.params) == {n for n, p in names.items() if p.ndim <= 1}
    assert report.uncovered == ()


@pytest.mark.parametrize(
    ("make", "kind"),
    [
        (lambda ps: torch.optim.SGD(ps, lr=0.1, weight_decay=1e-4), "L2"),
        (lambda ps: torch.optim.Adam(ps, weight_decay=1e-4), "L2"),
        (lambda ps: torch.optim.RMSprop(ps, weight_decay=1e-4), "L2"),
        (lambda ps: torch.optim.AdamW(ps, weight_decay=1e-4), "decoupled"),
        (lambda ps: torch.optim.SGD(ps, lr=0.1), "none"),
    ],
)
def test_decay_kind_of_torch_optimizers(make: object, kind: str) -> None:
    model = Clean()
    report = regularization(model, make(model.parameters()))  # type: ignore[operator]
    assert [g.decay for g in report.groups] == [kind]


def test_adam_with_decoupled_weight_decay_flag() -> None:
    if "decoupled_weight_decay" not in inspect.signature(torch.optim.Adam).parameters:
        pytest.skip("this torch's Adam has no decoupled_weight_decay")
    model = Clean()
    optimizer = torch.optim.Adam(model.parameters(), weight_decay=0.01, decoupled_weight_decay=True)
    assert regularization(model, optimizer).groups[0].decay == "decoupled"


def test_parameters_no_group_covers_and_tensors_foreign_to_the_model() -> None:
    model = Clean()
    stranger = nn.Parameter(torch.zeros(3))
    model.features[0].weight.requires_grad_(False)  # frozen and left out: not "uncovered"
    optimizer = torch.optim.SGD([model.fc.weight, stranger], lr=0.1)
    report = regularization(model, optimizer)
    assert report.groups[0].params == ("fc.weight",) and report.groups[0].foreign == 1
    trainable = [n for n, p in model.named_parameters() if p.requires_grad and n != "fc.weight"]
    assert list(report.uncovered) == trainable
    assert "features.0.weight" not in report.uncovered


def test_summary_line_and_json() -> None:
    model = Clean().eval()
    report = regularization(model, split_decay(model))
    line = report.line()
    assert line.startswith("Regularization: Dropout2d p=0.1 (inactive, eval mode), Dropout p=0.5")
    assert "BatchNorm2d (running stats) x2" in line
    assert "AdamW group 0: weight_decay=0.05 decoupled on 3 tensors; group 1: weight_decay=0.0" in line
    data = report.to_dict()
    assert json.loads(json.dumps(data)) == data and data["dropouts"][0]["active"] is False
    no_optimizer = regularization(nn.Linear(2, 2))
    assert no_optimizer.line() == ("Regularization: no dropout · no normalization · optimizer not given")


def test_the_model_and_optimizer_are_only_read() -> None:
    model = Clean()
    optimizer = split_decay(model)
    before, groups = snapshot(model), [dict(g) for g in optimizer.param_groups]
    report: RegularizationReport = regularization(model, optimizer)
    assert report.groups
    assert_same(before, model)
    assert [dict(g) for g in optimizer.param_groups] == groups
