"""Where users wait: the first trace in a fresh process, and what the --cnn-shapes report adds.

    python benchmarks/cold_start.py            # about two minutes on 2 cores
    python benchmarks/cold_start.py --quick    # fewer repeats

1. Fresh processes, interleaved, fastest of several: ``import torch; build ResNet-50``
   against the same plus ``trace(model, (1, 3, 224, 224))`` (the default device),
   and whether that trace imported ``torch._dynamo``. The target is at most 1.10x.
2. The report on 20 ResNet-50-sized models, as ``run_check`` does it per model, in
   one process: the plain trace a check makes without a report, against the report's
   trace with its inspection observed in the same pass (parameters, regularization,
   FLOPs, lint); the inspection's share is the difference. The memory estimate, one
   more forward, is shown on its own. Each model's fastest of several interleaved
   runs, the cyclic GC off while timing (as ``timeit`` does). Target: inspection at
   most 0.5x the traces.
3. The same 20 models declared in a ``pyproject.toml``, as fresh pytest sessions,
   with and without ``--cnn-shapes`` (interpreter, imports, pytest and the report's
   rendering included), for the whole picture.

Nothing here asserts; the figures are printed with their targets.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BUILD = f"""
import sys
import torch
sys.path.insert(0, {str(ROOT)!r})
from benchmarks.models import resnet50
model = resnet50().eval()
"""
TRACE = (
    BUILD
    + """
from pytest_cnnshape import trace
trace(model, (1, 3, 224, 224))
print("dynamo" if "torch._dynamo" in sys.modules else "no dynamo")
"""
)


def process_seconds(code: str) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return time.perf_counter() - start, done.stdout.strip()


def cold(repeats: int) -> None:
    process_seconds(BUILD)  # the page cache warm for both
    build, traced, said = [], [], set()
    for _ in range(repeats):
        build.append(process_seconds(BUILD)[0])
        seconds, out = process_seconds(TRACE)
        traced.append(seconds)
        said.add(out)
    b, t = min(build), min(traced)
    print(f"| `import torch; build ResNet-50` | {b:.2f} s |")
    print(f"| ... and `trace(model, (1, 3, 224, 224))` | {t:.2f} s |")
    print(f"| ratio (target at most 1.10x) | {t / b:.3f}x |")
    print(f"| torch._dynamo after the trace | {', '.join(sorted(said))} |")


def report(models: int, repeats: int) -> None:
    import gc

    import torch

    from benchmarks.models import resnet50
    from pytest_cnnshape import trace
    from pytest_cnnshape.inspection.collect import record_inspection, record_memory, report_trace
    from pytest_cnnshape.tracing.request import TraceRequest

    shape = (1, 3, 224, 224)
    torch.manual_seed(0)
    nets = [resnet50().eval() for _ in range(models)]
    trace(nets[0], shape)  # the first trace of the process is in part 1

    def plain(net: object) -> None:
        trace(net, shape)  # type: ignore[arg-type]

    def inspected(net: object) -> None:
        request = TraceRequest.of(net, shape)
        _, observation = report_trace(request)
        record_inspection({}, request, observation=observation)

    def memory(net: object) -> None:
        record_memory({}, TraceRequest.of(net, shape))

    runs = {"plain": plain, "inspected": inspected, "memory": memory}
    best = {name: [float("inf")] * models for name in runs}
    gc.disable()  # as timeit does: a collection of torch's heap would land in one run at random
    try:
        for _ in range(repeats):
            for i, net in enumerate(nets):
                for name, run in runs.items():
                    start = time.perf_counter()
                    run(net)
                    best[name][i] = min(best[name][i], time.perf_counter() - start)
            gc.collect()
    finally:
        gc.enable()
    total = {name: sum(values) for name, values in best.items()}
    share = (total["inspected"] - total["plain"]) / total["plain"]
    print(f"| {models} plain traces (a check without a report) | {total['plain'] * 1000:,.0f} ms |")
    print(f"| {models} report traces with their inspection | {total['inspected'] * 1000:,.0f} ms |")
    print(f"| the inspection's share (target at most 0.5x the traces) | {share:.2f}x |")
    memory = total["memory"] / total["plain"]
    print(f"| {models} memory estimates (one more forward each) | {memory:.2f}x the traces |")


PYPROJECT = """
[tool.cnnshape.models.resnet50_{i}]
factory = "{models}:resnet50"
input = "1x3x224x224"
"""


def sessions(models: int, repeats: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp)
        (project / "pyproject.toml").write_text(
            "".join(PYPROJECT.format(i=i, models=ROOT / "benchmarks" / "models.py") for i in range(models))
        )
        base = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "pyproject.toml"]
        runs: dict[str, list[float]] = {"plain": [], "report": []}
        for _ in range(repeats):
            for name, extra in (("plain", []), ("report", ["--cnn-shapes"])):
                start = time.perf_counter()
                subprocess.run([*base, *extra], cwd=project, capture_output=True, check=True)
                runs[name].append(time.perf_counter() - start)
    plain, with_report = min(runs["plain"]), min(runs["report"])
    print(f"| `pytest pyproject.toml` ({models} ResNet-50s) | {plain:.2f} s |")
    print(f"| ... with `--cnn-shapes` | {with_report:.2f} s (+{with_report - plain:.2f} s) |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    quick = parser.parse_args().quick
    import torch

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print()
    print("| fresh process, fastest of several | |")
    print("|---|---:|")
    cold(3 if quick else 7)
    print()
    print("| the --cnn-shapes report, in one process | |")
    print("|---|---:|")
    report(20, 2 if quick else 5)
    print()
    print("| fresh pytest sessions, fastest of several | |")
    print("|---|---:|")
    sessions(20, 1 if quick else 3)


if __name__ == "__main__":
    main()
