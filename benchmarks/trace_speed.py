"""How fast and how lean ``trace`` is, as ratios against references run in the same process.

    python benchmarks/trace_speed.py            # about two minutes on 2 cores
    python benchmarks/trace_speed.py --quick    # fewer repeats, 1x3x224x224 only

Model: ResNet-50 (25.6 M parameters, benchmarks/models.py). References: a bare
``model(x)`` under ``no_grad`` on the CPU, and ``torchinfo.summary``. Warm timings
are the fastest of several repeats (other processes only ever add time, so the
minimum is the cleanest view of the work itself; the median is printed too), the
runs being compared interleaved so drift hits both.
The cold first call and peak memory are measured in fresh processes (peak RSS
only ever grows inside one process). Targets from the foundation issue are
printed next to the measurements; nothing here asserts.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SIZES = ((1, 3, 224, 224), (8, 3, 512, 512))


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def interleaved(runs: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Fastest and median seconds of each run, alternating between them after a warm-up."""
    for fn in runs.values():
        fn()
    samples: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, fn in runs.items():
            samples[name].append(timed(fn))
    out = {name: min(values) for name, values in samples.items()}
    out.update({f"{name} median": statistics.median(values) for name, values in samples.items()})
    return out


def warm(quick: bool) -> list[dict[str, object]]:
    import torch
    import torchinfo

    from benchmarks.models import resnet50
    from pytest_cnnshape import trace

    torch.manual_seed(0)
    model = resnet50().eval()
    rows = []
    for shape in SIZES[:1] if quick else SIZES:
        big = shape[0] > 1
        x = torch.randn(shape)

        def bare(x: torch.Tensor = x) -> object:
            with torch.no_grad():
                return model(x)

        def cpu_trace(shape: tuple[int, ...] = shape) -> object:
            return trace(model, shape, device="cpu")

        def meta_trace(shape: tuple[int, ...] = shape) -> object:
            return trace(model, shape, device="meta")

        def info(shape: tuple[int, ...] = shape) -> object:
            return torchinfo.summary(model, input_size=shape, verbose=0, device="cpu", mode="eval")

        repeats = 3 if quick else (5 if big else 20)
        real = interleaved({"bare forward": bare, "cpu trace": cpu_trace}, repeats)
        meta = interleaved({"meta trace": meta_trace}, 20)
        tinfo = interleaved({"torchinfo.summary": info}, 2 if big else 5)
        rows.append({"input": "x".join(map(str, shape)), **real, **meta, **tinfo})
    return rows


def nested(depth: int) -> object:
    """A conv wrapped in ``depth`` levels of Sequential: the same work at any depth."""
    from torch import nn

    inner: nn.Module = nn.Conv2d(3, 3, 3, padding=1)
    for _ in range(depth):
        inner = nn.Sequential(inner, nn.ReLU())
    return inner


def nesting() -> list[tuple[int, float, float]]:
    """Trace and torchinfo time by nesting depth: our cost follows the number of calls."""
    import torchinfo

    from pytest_cnnshape import trace

    rows = []
    for depth in (5, 10, 20):
        model = nested(depth)
        times = interleaved(
            {
                "trace": lambda m=model: trace(m, (1, 3, 32, 32), device="cpu"),
                "torchinfo": lambda m=model: torchinfo.summary(
                    m, input_size=(1, 3, 32, 32), verbose=0, device="cpu"
                ),
            },
            5,
        )
        rows.append((depth, times["trace"], times["torchinfo"]))
    return rows


COLD = """
import json, sys, time
t0 = time.perf_counter()
import torch
t1 = time.perf_counter()
sys.path.insert(0, {root!r})
from benchmarks.models import resnet50
from pytest_cnnshape import trace
model = resnet50().eval()
t2 = time.perf_counter()
trace(model, (1, 3, 224, 224), device={device!r})
t3 = time.perf_counter()
trace(model, (1, 3, 224, 224), device={device!r})
t4 = time.perf_counter()
print(json.dumps({{"import torch": t1 - t0, "first trace": t3 - t2, "second trace": t4 - t3}}))
"""

MEMORY = """
import json, resource, sys
import torch
sys.path.insert(0, {root!r})
from benchmarks.models import resnet50
from pytest_cnnshape import trace
model = resnet50().eval()
if {trace_it}:
    trace(model, (8, 3, 512, 512), device="meta")
print(json.dumps(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024))
"""


def fresh(code: str) -> object:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def cold() -> dict[str, dict[str, float]]:
    return {
        device: fresh(COLD.format(root=str(ROOT), device=device))  # type: ignore[misc]
        for device in ("meta", "cpu")
    }


def memory() -> tuple[int, int]:
    holding = fresh(MEMORY.format(root=str(ROOT), trace_it=False))
    tracing = fresh(MEMORY.format(root=str(ROOT), trace_it=True))
    return int(holding), int(tracing)  # type: ignore[call-overload]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:,.1f} ms" if seconds < 10 else f"{seconds:,.1f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats, the small input only")
    quick = parser.parse_args().quick

    import torch

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; ResNet-50, 25,557,032 params")
    print()
    print("Warm, fastest of the repeats (median in parentheses):")
    print()
    print(
        "| input | bare forward | CPU trace | meta trace | torchinfo.summary "
        "| CPU trace / bare | torchinfo / meta trace |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    rows = warm(quick)
    for r in rows:
        cells = {k: float(r[k]) for k in r if k != "input"}  # type: ignore[arg-type]
        bare, cpu, meta, info = (
            cells[k] for k in ("bare forward", "cpu trace", "meta trace", "torchinfo.summary")
        )
        shown = [
            f"{ms(cells[k])} ({ms(cells[k + ' median'])})"
            for k in ("bare forward", "cpu trace", "meta trace", "torchinfo.summary")
        ]
        print(
            f"| {r['input']} | {' | '.join(shown)} | {cpu / bare:.3f}x "
            f"({cells['cpu trace median'] / cells['bare forward median']:.3f}x) "
            f"| {info / meta:,.0f}x |"
        )
    print()
    print("Nesting: a conv inside N levels of Sequential (N + 1 ReLU calls), 1x3x32x32, fastest:")
    for depth, ours, theirs in nesting():
        print(f"  depth {depth:2}: trace {ms(ours)}, torchinfo.summary {ms(theirs)}")
    print()
    first = cold()
    print("Fresh process, 1x3x224x224:")
    for device, t in first.items():
        print(
            f"  {device:4}  import torch {ms(t['import torch'])}, first trace {ms(t['first trace'])}, "
            f"second trace {ms(t['second trace'])}"
        )
    holding, tracing = memory()
    print(
        f"Peak RSS: holding the model {holding / 2**20:,.0f} MiB; plus a meta trace at "
        f"8x3x512x512 {tracing / 2**20:,.0f} MiB ({tracing / holding:.3f}x)"
    )
    print()
    big = rows[-1]
    print("Targets:")
    if not quick:
        ratio = float(big["torchinfo.summary"]) / float(big["meta trace"])  # type: ignore[arg-type]
        print(
            f"  warm meta trace at 8x3x512x512 >= 50x faster than torchinfo: {ratio:,.0f}x "
            f"{'ok' if ratio >= 50 else 'MISSED'}"
        )
    worst = max(float(r["cpu trace"]) / float(r["bare forward"]) for r in rows)  # type: ignore[arg-type]
    print(f"  CPU trace <= 1.10x a bare forward: worst {worst:.3f}x {'ok' if worst <= 1.10 else 'MISSED'}")
    print(
        f"  meta trace peak RSS < 1.3x holding the model: {tracing / holding:.3f}x "
        f"{'ok' if tracing / holding < 1.3 else 'MISSED'}"
    )


if __name__ == "__main__":
    main()
