"""A default trace in a fresh process never imports torch._dynamo, nor what torch's Python meta
kernels need on their first call (sympy and the decompositions); nor does a memory estimate,
which counts what autograd would save without running autograd.

Each example model (and the ResNet-50 of the benchmarks) is built and traced in
a process of its own, as ``pytest -k mymodel`` or ``cnnshape check`` would,
and the modules that trace imported are read off ``sys.modules``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

#: name -> (file or module, factory, input): every example project's models.
MODELS = {
    "lenet": ("examples/lenet/lenet.py", "lenet5", (8, 1, 28, 28)),
    "vgg_style": ("examples/vgg_style/vgg.py", "VGGStyle", (8, 3, 32, 32)),
    "resnet_style": ("examples/resnet_style/resnet.py", "ResNet", (2, 3, 64, 64)),
    "unet_style": ("examples/unet_style/unet.py", "UNet", (1, 1, 128, 128)),
    "dynamic": ("examples/dynamic/dynamic_net.py", "DynamicNet", (2, 3, 120, 40)),
    "resnet50": ("benchmarks/models.py", "resnet50", (1, 3, 224, 224)),
}

SCRIPT = """
import importlib.util, json, sys
import torch
from pytest_cnnshape import trace
spec = importlib.util.spec_from_file_location("model_file", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
model = getattr(module, sys.argv[2])()
before = set(sys.modules)
if sys.argv[4] == "estimate_memory":
    from pytest_cnnshape import estimate_memory
    result = estimate_memory(model, tuple(json.loads(sys.argv[3])))
else:
    result = trace(model, tuple(json.loads(sys.argv[3])))
print(json.dumps({
    "device": result.device,
    "dynamo": "torch._dynamo" in sys.modules,
    "sympy": "sympy" in sys.modules,
    "imported": sorted(m for m in set(sys.modules) - before if not m.startswith("pytest_cnnshape")),
}))
"""


CALLS = [("trace", name) for name in sorted(MODELS)] + [
    ("estimate_memory", name) for name in ("resnet50", "unet_style", "vgg_style")
]


@pytest.mark.parametrize(("call", "name"), CALLS)
def test_a_default_trace_imports_nothing_heavy(call: str, name: str) -> None:
    path, factory, shape = MODELS[name]
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(ROOT / path), factory, json.dumps(shape), call],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    seen = json.loads(done.stdout)
    assert not seen["dynamo"] and not seen["sympy"], seen
    assert seen["imported"] == [], seen


def test_every_example_project_has_its_model_here() -> None:
    projects = {p.name for p in (ROOT / "examples").iterdir() if (p / "pyproject.toml").is_file()}
    assert projects - {"broken"} <= set(MODELS)
