"""The VGG-style model's shapes, regularization report and a clean lint."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from vgg import VGGStyle, make_optimizer

from pytest_cnnshape import lint, regularization


def test_shapes_per_stage(cnn_shapes):
    tr = cnn_shapes.assert_output(VGGStyle(), "8x3x32x32", "B x 10", name="VGGStyle")
    assert [tr[f"features.{i}"].output_shape for i in range(3)] == [
        (8, 32, 16, 16),
        (8, 64, 8, 8),
        (8, 128, 4, 4),
    ]
    assert tr["classifier.2"].input_shapes == ((8, 2048),)  # 128 * 4 * 4


def test_regularization_report_matches_the_settings():
    model = VGGStyle()
    report = regularization(model, make_optimizer(model))
    print(report.line())
    drops = {d.name: d.p for d in report.dropouts}
    assert drops == pytest.approx(
        {"features.0.7": 0.1, "features.1.7": 0.2, "features.2.7": 0.3, "classifier.4": 0.5}
    )
    assert [d.type for d in report.dropouts] == ["Dropout2d"] * 3 + ["Dropout"]
    assert [n.settings["num_features"] for n in report.norms] == [32, 32, 64, 64, 128, 128]
    assert [(g.weight_decay, g.decay) for g in report.groups] == [(5e-4, "decoupled"), (0.0, "none")]
    assert all(
        (name.endswith("weight") and "features" in name) or "classifier" in name
        for name in report.groups[0].params
    )
    assert not report.uncovered


def test_lint_is_clean_with_the_optimizer_and_loss(cnn_shapes):
    model = VGGStyle()
    cnn_shapes.assert_no_lint(model, (4, 3, 32, 32), make_optimizer(model), loss=nn.CrossEntropyLoss())


def test_the_classic_optimizer_mistake_is_caught():
    model = VGGStyle()
    adam = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=5e-4)
    rules = {f.rule for f in lint(model, (4, 3, 32, 32), adam, loss="cross_entropy")}
    assert rules == {"adam-weight-decay", "weight-decay-on-norm-or-bias"}
