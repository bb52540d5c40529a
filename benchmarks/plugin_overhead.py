"""What the pytest plugin costs a project: nothing when no model is traced.

    python benchmarks/plugin_overhead.py    # about a minute

1. A 200-test suite that never touches torch, run with the plugin loaded and with
   ``-p no:cnnshape``, interleaved; the ratio of the fastest runs (target < 1.03x).
2. Declared models (``[tool.cnnshape.models]``, traced on meta): a run with one and
   with 21 of them; the first pays for importing torch and warming the meta device
   up, each further one costs the difference divided by 20.

Each run is a fresh ``python -m pytest`` process, as in CI.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PLAIN_TESTS = "\n".join(f"def test_{i}():\n    assert {i} + 1 > {i}\n" for i in range(200))

MODEL = '''
import torch.nn as nn

def lenet(classes=10):
    return nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, classes),
    )
'''


def pyproject(models: int) -> str:
    tables = [
        f'[tool.cnnshape.models.lenet{i}]\nfactory = "model.py:lenet"\nkwargs = {{ classes = {i + 2} }}\n'
        f'input = "8x1x28x28"\noutput = "B x {i + 2}"\ndevice = "meta"\n'
        for i in range(models)
    ]
    return "[tool.pytest.ini_options]\naddopts = \"-p no:cacheprovider\"\n\n" + "\n".join(tables)


def run(cwd: Path, *args: str) -> float:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", *args], cwd=cwd,
                          capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode not in (0, 5):
        raise SystemExit(f"pytest {' '.join(args)} failed in {cwd}:\n{done.stdout}\n{done.stderr}")
    return elapsed


def interleaved(cwd: Path, variants: dict[str, tuple[str, ...]], repeats: int) -> dict[str, list[float]]:
    for args in variants.values():
        run(cwd, *args)  # warm the file system and bytecode caches
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(repeats):
        for name, args in variants.items():
            times[name].append(run(cwd, *args))
    return times


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        plain = Path(tmp, "plain")
        plain.mkdir()
        (plain / "test_plain.py").write_text(PLAIN_TESTS)
        (plain / "pyproject.toml").write_text('[tool.pytest.ini_options]\naddopts = "-p no:cacheprovider"\n')
        times = interleaved(plain, {"with the plugin": (), "-p no:cnnshape": ("-p", "no:cnnshape")}, 15)
        print("200 tests that never touch torch, fresh pytest processes, 15 interleaved runs each:")
        for name, values in times.items():
            print(f"  {name:16} fastest {min(values) * 1000:7.1f} ms   median "
                  f"{statistics.median(values) * 1000:7.1f} ms")
        ratio = min(times["with the plugin"]) / min(times["-p no:cnnshape"])
        median_ratio = (statistics.median(times["with the plugin"])
                        / statistics.median(times["-p no:cnnshape"]))
        print(f"  ratio {ratio:.3f}x (medians {median_ratio:.3f}x); target < 1.03x: "
              f"{'ok' if ratio < 1.03 else 'MISSED'}")

        declared = {}
        for count in (0, 1, 21):
            project = Path(tmp, f"declared{count}")
            project.mkdir()
            (project / "model.py").write_text(MODEL)
            (project / "test_nothing.py").write_text("def test_nothing():\n    pass\n")
            (project / "pyproject.toml").write_text(pyproject(count))
            declared[count] = min(interleaved(project, {"run": ()}, 5)["run"])
        print()
        print("Declared models traced on meta (LeNet-5, 8x1x28x28), fastest of 5 runs:")
        print(f"  a run with no model:    {declared[0] * 1000:7.1f} ms")
        print(f"  the first model:        +{(declared[1] - declared[0]) * 1000:6.1f} ms "
              "(imports torch, warms meta up)")
        print(f"  each further model:     +{(declared[21] - declared[1]) / 20 * 1000:6.1f} ms")


if __name__ == "__main__":
    main()
