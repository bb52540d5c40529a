"""What ``--cnn-shapes`` costs a model-zoo repository, and where a report's time goes.

    python benchmarks/session_zoo.py            # about three minutes on 2 cores
    python benchmarks/session_zoo.py --quick    # one round

The repository declares 21 models in its ``pyproject.toml``: ResNet-18/34/50, VGG-11,
MobileNetV2 and U-Net at 224x224 (U-Net at 128x128) and LeNet-5 at 28x28, each at
batch 1, 8 and 32 (``benchmarks/models.py``, written here). Printed, as ratios from
one run of this script:

1. fresh pytest sessions, interleaved, medians: the plain session against the same
   with ``--cnn-shapes`` (target at most 1.2x), and the plain session against the same
   session whose factories build their models on the CPU whatever the plugin asks
   (``torch.device("cpu")`` inside the factory: ``kaiming_uniform_`` on real weights;
   target: the plain session at least 1.5x faster);
2. in one process, per model: ``estimate_memory`` against a meta trace (target at most
   1.1x), and the report's cost split: the check's trace, the inspection, the memory
   estimate and rendering the tables, each as a share of the trace.

Nothing here asserts; the figures are printed with their targets.
"""

from __future__ import annotations

import argparse
import gc
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

#: (factory, input side, channels) of the zoo's architectures.
ZOO = (
    ("resnet18", 224, 3),
    ("resnet34", 224, 3),
    ("resnet50", 224, 3),
    ("vgg11", 224, 3),
    ("mobilenet_v2", 224, 3),
    ("unet", 128, 3),
    ("lenet", 28, 1),
)
BATCHES = (1, 8, 32)

#: Factories that build on the CPU whatever device the caller asked for.
CPU_FACTORIES = """
import torch
import zoo_models


def _on_cpu(name):
    def build():
        with torch.device("cpu"):
            return getattr(zoo_models, name)()
    return build


""" + "\n".join(f'{name} = _on_cpu("{name}")' for name, _, _ in ZOO)


def pyproject(module: str) -> str:
    tables = [
        f'[tool.cnnshape.models.{name}_b{batch}]\nfactory = "{module}.py:{name}"\n'
        f'input = "{batch}x{channels}x{side}x{side}"\n'
        for name, side, channels in ZOO
        for batch in BATCHES
    ]
    return '[tool.pytest.ini_options]\naddopts = "-p no:cacheprovider"\n\n' + "\n".join(tables)


def project(tmp: Path, module: str) -> Path:
    root = tmp / module
    root.mkdir()
    (root / "zoo_models.py").write_text((ROOT / "benchmarks" / "models.py").read_text())
    (root / "cpu_models.py").write_text(CPU_FACTORIES)
    (root / "pyproject.toml").write_text(pyproject(module))
    return root


def session_seconds(cwd: Path, *extra: str) -> float:
    """CPU seconds (user + system) of one fresh pytest process: less sensitive than the wall
    clock to what else a shared machine runs. Python's bytecode cache is on, as on any
    user's machine, even where the environment sets PYTHONDONTWRITEBYTECODE (pytest then
    rewrites the asserts of every plugin's modules afresh in every run)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:xdist", *extra],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"the session failed in {cwd}:\n{done.stdout[-3000:]}\n{done.stderr[-2000:]}")
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def sessions(repeats: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        meta_built = project(Path(tmp), "zoo_models")
        cpu_built = project(Path(tmp), "cpu_models")
        variants: dict[str, tuple[Path, tuple[str, ...]]] = {
            "plain": (meta_built, ()),
            "--cnn-shapes": (meta_built, ("--cnn-shapes",)),
            "CPU-built factories": (cpu_built, ()),
        }
        for cwd, extra in variants.values():
            session_seconds(cwd, *extra)  # bytecode and page caches warm for every variant
        times: dict[str, list[float]] = {name: [] for name in variants}
        for _ in range(repeats):
            for name, (cwd, extra) in variants.items():
                times[name].append(session_seconds(cwd, *extra))
    median = {name: statistics.median(values) for name, values in times.items()}
    models = len(ZOO) * len(BATCHES)
    print(f"| fresh pytest sessions, {models} declared models, CPU time, median of {repeats} | |")
    print("|---|---:|")
    for name, seconds in median.items():
        print(f"| {name} | {seconds:.2f} s |")
    print(
        f"| `--cnn-shapes` / plain (target at most 1.2x) | {median['--cnn-shapes'] / median['plain']:.3f}x |"
    )
    print(
        f"| CPU-built / plain (target at least 1.5x) | "
        f"{median['CPU-built factories'] / median['plain']:.2f}x |"
    )


def best_of(repeats: int, run: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def model_split(name: str, side: int, channels: int, repeats: int) -> dict[str, float]:
    """Seconds of one zoo model at batch 8: its trace, and the report's parts."""
    import torch

    from benchmarks import models as zoo
    from pytest_cnnshape import estimate_memory, trace
    from pytest_cnnshape.inspection.collect import record_inspection, record_memory, report_trace
    from pytest_cnnshape.inspection.render import memory_lines, section_lines
    from pytest_cnnshape.tracing.request import TraceRequest

    with torch.device("meta"):
        model = getattr(zoo, name)().eval()
    shape = (8, channels, side, side)
    result = trace(model, shape)  # warm
    request = TraceRequest.of(model, shape)
    extras: dict[str, object] = {}

    observed: dict[str, object] = {}

    def inspected() -> None:
        _, observation = report_trace(request, memory=True)
        record_inspection(extras, request, observation=observation)
        observed["observation"] = observation

    def rendered() -> None:
        result.table()
        section_lines(extras)
        memory_lines(extras)

    seconds = {
        "trace": best_of(repeats, lambda: trace(model, shape)),
        "estimate": best_of(repeats, lambda: estimate_memory(model, shape)),
        "inspection": best_of(repeats, inspected),
        "memory": best_of(
            repeats, lambda: record_memory(extras, request, observation=observed["observation"])
        ),  # type: ignore[arg-type]
    }
    seconds["inspection"] -= seconds["trace"]
    seconds["render"] = best_of(repeats, rendered)
    return seconds


def split(repeats: int) -> None:
    """Per model, in one process: the trace, the report's parts, ``estimate_memory``."""
    rows = []
    totals = {"trace": 0.0, "inspection": 0.0, "memory": 0.0, "render": 0.0, "estimate": 0.0}
    gc.disable()
    try:
        for name, side, channels in ZOO:
            seconds = model_split(name, side, channels, repeats)
            for key, value in seconds.items():
                totals[key] += value
            rows.append((name, seconds))
            gc.collect()
    finally:
        gc.enable()
    print("| model at 8x | trace | inspection | memory | rendering | estimate_memory / trace |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, s in rows:
        t = s["trace"]
        print(
            f"| {name} | {t * 1000:.1f} ms | {s['inspection'] / t:.2f}x | {s['memory'] / t:.2f}x | "
            f"{s['render'] / t:.2f}x | {s['estimate'] / t:.2f}x |"
        )
    t = totals["trace"]
    print(
        f"| all | {t * 1000:.1f} ms | {totals['inspection'] / t:.2f}x | {totals['memory'] / t:.2f}x | "
        f"{totals['render'] / t:.2f}x | **{totals['estimate'] / t:.2f}x** (target at most 1.1x) |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one round")
    quick = parser.parse_args().quick
    import torch

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print()
    split(3 if quick else 7)
    print()
    sessions(1 if quick else 3)


if __name__ == "__main__":
    main()
