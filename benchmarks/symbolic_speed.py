"""What a symbolic trace of ResNet-50 costs, warm and cold, next to a concrete meta trace.

    python benchmarks/symbolic_speed.py            # about a minute and a half on 2 cores
    python benchmarks/symbolic_speed.py --quick    # fewer repeats

1. Warm, in one process: ``trace(model, "B x 3 x H x W", symbolic=True)`` (the
   example found from the defaults, the forward on fake tensors, the guards tested,
   the formulas written) against ``trace(model, (2, 3, 224, 224), device="meta")``,
   each after one warm-up run, fastest and median of several. Target: at most 2 s.
2. Cold, fresh processes, interleaved, fastest of several: ``import torch; build
   ResNet-50`` and then a concrete meta trace, or a symbolic trace; and the import
   cost on its own: torch's symbolic shapes, sympy and ``torch._dynamo``, which a
   symbolic trace imports and a default trace never does.

Nothing here asserts; the figures are printed with their ratios.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BUILD = f"""
import sys, time
start = time.perf_counter()
import torch
sys.path.insert(0, {str(ROOT)!r})
from benchmarks.models import resnet50
from pytest_cnnshape import trace
model = resnet50().eval()
"""
CONCRETE = BUILD + 'trace(model, (2, 3, 224, 224), device="meta")\n'
SYMBOLIC = BUILD + 'trace(model, "B x 3 x H x W", symbolic=True)\n'
IMPORTS = """
import time
import torch
start = time.perf_counter()
import pytest_cnnshape.tracing.symbolic_follow
import torch._dynamo
print(time.perf_counter() - start)
"""


def _seconds(runs: list[float]) -> str:
    return f"{min(runs):.2f} s (median {statistics.median(runs):.2f} s)"


def warm(repeats: int) -> None:
    from benchmarks.models import resnet50
    from pytest_cnnshape import trace

    model = resnet50().eval()
    trace(model, (2, 3, 224, 224), device="meta")
    trace(model, "B x 3 x H x W", symbolic=True)
    concrete, symbolic = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        trace(model, (2, 3, 224, 224), device="meta")
        concrete.append(time.perf_counter() - start)
        start = time.perf_counter()
        result = trace(model, "B x 3 x H x W", symbolic=True)
        symbolic.append(time.perf_counter() - start)
    assert result.domain is not None
    print("## Warm, one process (ResNet-50)")
    print("| trace | time | ratio |")
    print("|---|---|---|")
    print(f"| concrete, meta, 2x3x224x224 | {_seconds(concrete)} | 1.00x |")
    print(f"| symbolic, B x 3 x H x W | {_seconds(symbolic)} | {min(symbolic) / min(concrete):.1f}x |")
    print(f"target: a warm symbolic trace in at most 2 s: {'met' if min(symbolic) <= 2 else 'NOT met'}")
    print(f"output {result.layers[0].output_formula}; domain: {result.domain}")


def _process(code: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, cwd=ROOT)
    return time.perf_counter() - start


def cold(repeats: int) -> None:
    _process(BUILD)  # the page cache warm for every kind of process
    concrete, symbolic, imports = [], [], []
    for _ in range(repeats):
        concrete.append(_process(CONCRETE))
        symbolic.append(_process(SYMBOLIC))
        done = subprocess.run(
            [sys.executable, "-c", IMPORTS], check=True, capture_output=True, text=True, cwd=ROOT
        )
        imports.append(float(done.stdout.strip()))
    print("\n## Cold, fresh processes (import torch, build ResNet-50, one trace)")
    print("| process | time | ratio |")
    print("|---|---|---|")
    print(f"| concrete meta trace | {_seconds(concrete)} | 1.00x |")
    print(f"| symbolic trace | {_seconds(symbolic)} | {min(symbolic) / min(concrete):.2f}x |")
    print(
        f"import cost of the symbolic engine (torch's symbolic shapes, sympy, torch._dynamo, after "
        f"import torch): {_seconds(imports)}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    args = parser.parse_args()
    import torch

    print(f"torch {torch.__version__}, python {sys.version.split()[0]}\n")
    warm(3 if args.quick else 7)
    cold(2 if args.quick else 4)


if __name__ == "__main__":
    main()
