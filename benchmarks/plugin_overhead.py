"""What the pytest plugin costs a project: nothing when no model is traced.

    python benchmarks/plugin_overhead.py                    # 5 minutes with valgrind
    python benchmarks/plugin_overhead.py --no-instructions  # a minute

1. A 200-test suite that never touches torch, run with the plugin loaded and with
   ``-p no:cnnshape``, interleaved; the ratio of the median CPU and wall times.
   On a shared 2-core machine these vary from run to run by more than the plugin
   costs, so where valgrind is installed the two runs are also counted in
   instructions (callgrind: the same count on every run), the figure the target
   (< 1.03x) is judged on.
2. Declared models (``[tool.cnnshape.models]``, traced on meta): a run with one and
   with 41 of them; the first pays for importing torch and warming the meta device
   up, each further one costs the difference divided by 40.

Each run is a fresh ``python -m pytest`` process, as in CI, with Python's bytecode
cache on (as on any user's machine: the warm-up run writes it), even where the
environment sets PYTHONDONTWRITEBYTECODE.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PLAIN_TESTS = "\n".join(f"def test_{i}():\n    assert {i} + 1 > {i}\n" for i in range(200))

MODEL = """
import torch.nn as nn

def lenet(classes=10):
    return nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, classes),
    )
"""


def pyproject(models: int) -> str:
    tables = [
        f'[tool.cnnshape.models.lenet{i}]\nfactory = "model.py:lenet"\nkwargs = {{ classes = {i + 2} }}\n'
        f'input = "8x1x28x28"\noutput = "B x {i + 2}"\ndevice = "meta"\n'
        for i in range(models)
    ]
    return '[tool.pytest.ini_options]\naddopts = "-p no:cacheprovider"\n\n' + "\n".join(tables)


def run(cwd: Path, *args: str) -> tuple[float, float]:
    """Wall time and CPU time (user + system) of one pytest process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if done.returncode not in (0, 5):
        raise SystemExit(f"pytest {' '.join(args)} failed in {cwd}:\n{done.stdout}\n{done.stderr}")
    return elapsed, cpu


def count_instructions(cwd: Path, *args: str) -> int:
    """Instructions one pytest process executes, counted by valgrind's callgrind."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    done = subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            "--callgrind-out-file=/dev/null",
            sys.executable,
            "-m",
            "pytest",
            "-q",
            *args,
        ],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    found = re.search(r"Collected : (\d+)", done.stderr)
    if found is None:
        raise SystemExit(f"valgrind gave no instruction count:\n{done.stderr[-2000:]}")
    return int(found.group(1))


def interleaved(
    cwd: Path, variants: dict[str, tuple[str, ...]], repeats: int
) -> dict[str, list[tuple[float, float]]]:
    for args in variants.values():
        run(cwd, *args)  # warm the file system and bytecode caches
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in variants}
    for _ in range(repeats):
        for name, args in variants.items():
            times[name].append(run(cwd, *args))
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--no-instructions", action="store_true", help="skip the valgrind instruction counts (minutes)"
    )
    instructions = not parser.parse_args().no_instructions
    with tempfile.TemporaryDirectory() as tmp:
        plain = Path(tmp, "plain")
        plain.mkdir()
        (plain / "test_plain.py").write_text(PLAIN_TESTS)
        (plain / "pyproject.toml").write_text('[tool.pytest.ini_options]\naddopts = "-p no:cacheprovider"\n')
        times = interleaved(plain, {"with the plugin": (), "-p no:cnnshape": ("-p", "no:cnnshape")}, 25)
        print("200 tests that never touch torch, fresh pytest processes, 25 interleaved runs each")
        print("(medians; CPU = user + system time of the process, less sensitive to other load):")
        wall = {name: statistics.median(t for t, _ in values) for name, values in times.items()}
        cpu = {name: statistics.median(c for _, c in values) for name, values in times.items()}
        for name in times:
            print(f"  {name:16} wall {wall[name] * 1000:7.1f} ms   CPU {cpu[name] * 1000:7.1f} ms")
        ratio = cpu["with the plugin"] / cpu["-p no:cnnshape"]
        print(f"  ratio: CPU {ratio:.3f}x, wall {wall['with the plugin'] / wall['-p no:cnnshape']:.3f}x")
        if instructions and shutil.which("valgrind"):
            counts = {
                name: count_instructions(plain, *args)
                for name, args in (("with the plugin", ()), ("-p no:cnnshape", ("-p", "no:cnnshape")))
            }
            ratio = counts["with the plugin"] / counts["-p no:cnnshape"]
            print(
                "  instructions (valgrind callgrind, one run each): "
                + ", ".join(f"{name} {n / 1e6:,.1f} M" for name, n in counts.items())
            )
            print(f"  ratio: {ratio:.4f}x; target < 1.03x: {'ok' if ratio < 1.03 else 'MISSED'}")

        declared = {}
        for count in (0, 1, 41):
            project = Path(tmp, f"declared{count}")
            project.mkdir()
            (project / "model.py").write_text(MODEL)
            (project / "test_nothing.py").write_text("def test_nothing():\n    pass\n")
            (project / "pyproject.toml").write_text(pyproject(count))
            runs = interleaved(project, {"run": ()}, 5)["run"]
            declared[count] = statistics.median(wall for wall, _ in runs)
        print()
        print("Declared models traced on meta (LeNet-5, 8x1x28x28), median of 5 runs:")
        print(f"  a run with no model:    {declared[0] * 1000:7.1f} ms")
        print(
            f"  the first model:        +{(declared[1] - declared[0]) * 1000:6.1f} ms "
            "(imports torch, warms meta up)"
        )
        print(f"  each further model:     +{(declared[41] - declared[1]) / 40 * 1000:6.1f} ms")


if __name__ == "__main__":
    main()
