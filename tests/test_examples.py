"""Every example project passes its own test suite, as `make demo` runs it.

Each project is run where it lies, as a user would in their repository (its own
pyproject.toml, its committed baselines), in a fresh pytest process.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
PROJECTS = sorted(p.name for p in EXAMPLES.iterdir() if (p / "pyproject.toml").is_file())


def run(project: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "--cnn-shapes", *args],
        cwd=EXAMPLES / project,
        capture_output=True,
        text=True,
        check=False,
    )


def test_every_example_project_is_covered() -> None:
    assert PROJECTS == ["broken", "dynamic", "lenet", "resnet_style", "unet_style", "vgg_style"]


@pytest.mark.parametrize("project", PROJECTS)
def test_example_project_passes(project: str) -> None:
    done = run(project)
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"\d+ passed", done.stdout)
    assert "failed" not in done.stdout.splitlines()[-1]
    if project == "broken":
        assert "0 passed, 0 failed, 8 failed as their tests expected (xfailed)" in done.stdout
    else:
        assert re.search(r"\d+ model\(s\): \d+ passed, 0 failed", done.stdout)


def test_the_lenet_baseline_catches_a_changed_layer(tmp_path: Path) -> None:
    import shutil

    project = tmp_path / "lenet"
    shutil.copytree(EXAMPLES / "lenet", project)
    source = project / "lenet.py"
    source.write_text(
        source.read_text()
        .replace("nn.Conv2d(6, 16, kernel_size=5)", "nn.Conv2d(6, 12, kernel_size=5)")
        .replace("nn.Linear(16 * 5 * 5, 120)", "nn.Linear(12 * 5 * 5, 120)")
    )
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-k", "lenet5_digits"],
        cwd=project,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1, done.stdout
    assert "shape baseline changed for lenet5_digits (16x1x28x28)" in done.stdout
    assert "~   3        Conv2d" in done.stdout
