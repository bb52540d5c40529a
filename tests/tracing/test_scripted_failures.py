"""A TorchScript model whose forward fails: the submodule named, what it received, an eager fix.

Re-created CNNs, scripted (``torch.jit.script``) and traced (``torch.jit.trace``),
with the mistakes people make: a classifier's ``in_features`` for another input size,
an image with the wrong channel count, a reshape in forward. The failing submodule and
what it received must be the submodule's (``ShapeMismatchError.layer`` and
``.received_shapes``); a fix shown must make the eager model run (checked here on a
fresh eager model with the fix applied by hand); what cannot be rebuilt says so.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn

from pytest_cnnshape import ShapeMismatchError, trace
from pytest_cnnshape.cli import main
from tests.helpers import assert_same, snapshot

pytestmark = [
    pytest.mark.filterwarnings(r"ignore:`torch\.jit\.\w+` is deprecated:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning"),
]

SOURCE = textwrap.dedent(
    """
    import torch
    from torch import nn


    class Block(nn.Module):
        def __init__(self, channels):
            super().__init__()
            self.conv = nn.Conv2d(channels, channels, 3, padding=1)
            self.bn = nn.BatchNorm2d(channels)

        def forward(self, x):
            return torch.relu(self.bn(self.conv(x))) + x


    class CNN(nn.Module):
        \"\"\"A small image classifier; ``fc`` sized for 16x16 inputs.\"\"\"

        def __init__(self, width=8, size=16):
            super().__init__()
            self.width = width
            self.features = nn.Sequential(
                nn.Conv2d(3, width, 3, padding=1), nn.ReLU(), Block(width), nn.MaxPool2d(2)
            )
            self.fc = nn.Linear(width * (size // 2) ** 2, 10)

        def forward(self, x):
            x = self.features(x)
            x = torch.flatten(x, 1)
            return self.fc(x)


    class Reshaping(CNN):
        \"\"\"Flattens with a view sized for one input size, in its own forward.\"\"\"

        def forward(self, x):
            x = self.features(x)
            x = x.view(-1, self.width * 8 * 8)
            return self.fc(x)


    def scripted():
        return torch.jit.script(CNN())


    def scripted_reshaping():
        return torch.jit.script(Reshaping())
    """
)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """The classes, loaded from a real file (TorchScript and the diagnosis quote its lines)."""
    path = tmp_path_factory.mktemp("scripted") / "scripted_models.py"
    path.write_text(SOURCE)
    namespace: dict[str, object] = {"__file__": str(path), "__name__": "scripted_models"}
    exec(compile(SOURCE, str(path), "exec"), namespace)  # our own source, compiled from its file
    namespace["path"] = path
    return namespace


def _cnn(models: dict[str, object], cls: str = "CNN", **kwargs: int) -> nn.Module:
    torch.manual_seed(0)
    model = models[cls](**kwargs)  # type: ignore[operator]
    assert isinstance(model, nn.Module)
    return model.eval()


def _failure(model: nn.Module, shape: tuple[int, ...], **kwargs: object) -> ShapeMismatchError:
    with pytest.raises(ShapeMismatchError) as info:
        trace(model, shape, **kwargs)  # type: ignore[arg-type]
    text = str(info.value)
    assert "TorchScript interpreter" not in text and "Traceback" not in text
    return info.value


def _line(models: dict[str, object], code: str) -> str:
    path = models["path"]
    assert isinstance(path, Path)
    number = next(i for i, text in enumerate(path.read_text().splitlines(), 1) if text.strip() == code)
    return f"{path}:{number}: {code}"


@pytest.mark.parametrize("train", [False, True])
def test_a_scripted_cnn_with_a_wrong_in_features_names_fc_and_its_eager_fix(
    models: dict[str, object], train: bool
) -> None:
    model = torch.jit.script(_cnn(models))
    model.train(train)
    before, rng = snapshot(model), torch.get_rng_state()
    err = _failure(model, (2, 3, 32, 32), train=train)
    assert (err.layer, err.module_type, err.received_shapes) == ("fc", "Linear", ((2, 2048),))
    assert err.fix == "nn.Linear(in_features=2048, out_features=10)"
    assert "verified: the model then runs to [2, 10]" in str(err)
    assert err.source is not None and err.source.endswith(
        _line(models, "return self.fc(x)").rpartition("/")[2]
    )
    assert [r.name for r in err.trace.layers if r.is_leaf] == [
        "features.0",
        "features.1",
        "features.2.conv",
        "features.2.bn",
        "features.3",
        "fc",
    ]  # every layer up to the failure, from the eager model the scripted one was compiled from
    assert "compiled from" in str(err)
    assert_same(before, model)  # BatchNorm's running stats too, in training mode
    assert torch.equal(torch.get_rng_state(), rng)
    fixed = _cnn(models)
    fixed.fc = nn.Linear(in_features=2048, out_features=10)  # the fix, applied to the eager model
    assert trace(fixed, (2, 3, 32, 32)).output_shape == (2, 10)


def test_a_scripted_cnn_given_the_wrong_channels_names_the_first_conv(models: dict[str, object]) -> None:
    err = _failure(torch.jit.script(_cnn(models)), (2, 5, 16, 16))
    assert (err.layer, err.received_shapes) == ("features.0", ((2, 5, 16, 16),))
    assert err.fix is not None and err.fix.startswith(
        "nn.Conv2d(in_channels=5, out_channels=8, kernel_size=3"
    )


def test_a_reshape_in_a_scripted_forward_is_the_roots_own_code(models: dict[str, object]) -> None:
    err = _failure(torch.jit.script(_cnn(models, "Reshaping")), (2, 3, 20, 20))  # 1,600 features a sample
    assert err.layer == "" and err.module_type == "Reshaping"
    assert err.source == _line(models, "x = x.view(-1, self.width * 8 * 8)")


def test_a_traced_cnn_names_the_submodule_and_verifies_a_linear_alone(models: dict[str, object]) -> None:
    model = torch.jit.trace(_cnn(models), torch.randn(1, 3, 16, 16))
    before = snapshot(model)
    err = _failure(model, (2, 3, 32, 32))
    assert (err.layer, err.module_type, err.received_shapes) == ("fc", "Linear", ((2, 2048),))
    assert err.fix == "nn.Linear(in_features=2048, out_features=10)"
    text = str(err)
    assert "verified: fc then runs to [2, 10]" in text and "verified on fc alone" in text
    assert err.source == _line(models, "return self.fc(x)")
    assert_same(before, model)


def test_a_traced_conv_has_no_eager_twin_and_says_so(models: dict[str, object]) -> None:
    model = torch.jit.trace(_cnn(models), torch.randn(1, 3, 16, 16))
    err = _failure(model, (2, 5, 16, 16))
    assert (err.layer, err.module_type, err.received_shapes) == ("features.0", "Conv2d", ((2, 5, 16, 16),))
    assert err.fix is None
    text = str(err)
    assert text.startswith("features.0 (Conv2d) failed inside TorchScript: Given groups=1")
    assert "scripted models are diagnosed to the module only" in text


def test_the_cli_names_fc_of_a_scripted_model(
    models: dict[str, object], capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["check", f"{models['path']}:scripted", "--input", "2x3x32x32"])
    out, err = capsys.readouterr()
    assert code == 1 and out.startswith("ShapeMismatchError: fc (Linear) cannot take its input")
    assert "nn.Linear(in_features=2048, out_features=10)" in out
    assert "Traceback" not in out + err and "internal error" not in err
