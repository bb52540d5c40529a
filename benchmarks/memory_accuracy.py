"""How close ``estimate_memory`` comes to a real training step, and what it costs.

    python benchmarks/memory_accuracy.py           # about ten minutes on 2 cores (ResNet-50's real step)
    python benchmarks/memory_accuracy.py --quick   # the examples only, and the cost

For each example model and ResNet-50 at 32x3x224x224: our estimate (one meta
pass), the same figures measured on a real CPU training step (what autograd saved,
counted by a plain saved-tensors hook keyed by data pointers; the allocator's peak
over a whole step, forward, backward and optimizer, from torch's profiler, plus
what was held before it: parameters, buffers, optimizer state, inputs), and
torchinfo's "Estimated Total Size" (inputs + twice the outputs of the layers with
parameters + parameters). Nothing here asserts.

Then the cost of an estimate of ResNet-50 at 64x3x224x224: its time against a meta
trace (this process's CPU time, which other processes on a shared machine do not
inflate; fastest of interleaved repeats, medians in parentheses), and the peak RSS
of fresh processes that hold the model, trace it on meta, or estimate.
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
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MIB = 2**20


def examples() -> list[tuple[str, Callable[[], Any], tuple[int, ...], Callable[[Any], Any]]]:
    """(name, factory, input, optimizer) of each case."""
    import torch

    from benchmarks.models import resnet50
    from pytest_cnnshape.tracing.factory import build_model

    def example(spec: str) -> Callable[[], Any]:
        return lambda: build_model(str(ROOT / "examples" / spec))

    def adam(model: Any) -> Any:
        return torch.optim.Adam(model.parameters())

    def vgg_optimizer(model: Any) -> Any:
        sys.path.insert(0, str(ROOT / "examples" / "vgg_style"))
        from vgg import make_optimizer  # type: ignore[import-not-found]

        return make_optimizer(model)

    def sgd(model: Any) -> Any:
        return torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)

    return [
        ("lenet (Adam)", example("lenet/lenet.py:lenet5"), (256, 1, 28, 28), adam),
        ("vgg_style (AdamW)", example("vgg_style/vgg.py:VGGStyle"), (128, 3, 32, 32), vgg_optimizer),
        ("resnet_style (Adam)", example("resnet_style/resnet.py:ResNet"), (128, 3, 32, 32), adam),
        ("dynamic (Adam)", example("dynamic/dynamic_net.py:DynamicNet"), (32, 3, 128, 128), adam),
        ("unet_style (Adam)", example("unet_style/unet.py:UNet"), (16, 1, 128, 128), adam),
        ("ResNet-50 (SGD, momentum)", resnet50, (32, 3, 224, 224), sgd),
    ]


def torchinfo_total(model: Any, shape: tuple[int, ...]) -> int:
    """torchinfo's "Estimated Total Size", in bytes (its own sum, as its summary prints it)."""
    from pytest_cnnshape import torchinfo_summary

    stats = torchinfo_summary(model, shape)
    return int(stats.total_input + stats.total_output_bytes + stats.total_param_bytes)


def accuracy(quick: bool) -> list[dict[str, Any]]:
    import torch

    from benchmarks.measure import saved_tensors, training_step_peak
    from pytest_cnnshape import estimate_memory

    rows = []
    for name, factory, shape, make_optimizer in examples():
        if quick and name.startswith("ResNet-50"):
            continue
        torch.manual_seed(0)
        model = factory()
        optimizer = make_optimizer(model)
        start = time.perf_counter()
        estimate = estimate_memory(model, shape, optimizer, device="meta")
        seconds = time.perf_counter() - start
        x = torch.randn(shape)
        saved = saved_tensors(model, x)
        model.zero_grad(set_to_none=True)
        peak = training_step_peak(model, (x,), optimizer)
        rows.append(
            {
                "model": name,
                "input": "x".join(map(str, shape)),
                "estimate saved": estimate.saved_activation_bytes,
                "measured saved": saved.bytes,
                "estimate peak": estimate.peak_training_bytes,
                "measured peak": peak,
                "torchinfo": torchinfo_total(model.eval(), shape),
                "estimate ms": seconds * 1000,
            }
        )
        print(f"  measured {name}", file=sys.stderr)
    return rows


def interleaved(runs: dict[str, Callable[[], object]], repeats: int) -> dict[str, tuple[float, float]]:
    """(fastest, median) CPU seconds of each run, alternating between them after a warm-up."""
    for fn in runs.values():
        fn()
    samples: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, fn in runs.items():
            start = time.process_time()
            fn()
            samples[name].append(time.process_time() - start)
    return {name: (min(v), statistics.median(v)) for name, v in samples.items()}


def cost() -> dict[str, tuple[float, float]]:
    from benchmarks.models import resnet50
    from pytest_cnnshape import estimate_memory, trace

    model = resnet50()
    shape = (64, 3, 224, 224)
    return interleaved(
        {
            "meta trace": lambda: trace(model, shape, device="meta"),
            "meta trace (train mode)": lambda: trace(model, shape, device="meta", train=True),
            "estimate_memory": lambda: estimate_memory(model, shape, "SGD(momentum=0.9)", device="meta"),
        },
        15,
    )


# The peak RSS of the child's own address space (VmHWM): getrusage's ru_maxrss is
# carried over exec from the parent, which has run real training steps by then.
MEMORY = """
import json, re, sys
import torch
sys.path.insert(0, {root!r})
from benchmarks.models import resnet50
from pytest_cnnshape import estimate_memory, trace
model = resnet50()
{work}
status = open("/proc/self/status").read()
print(json.dumps(int(re.search(r"VmHWM:\\s+(\\d+) kB", status).group(1)) * 1024))
"""
WORK = {
    "holding": "",
    "trace": "trace(model, (64, 3, 224, 224), device='meta')",
    "estimate": "estimate_memory(model, (64, 3, 224, 224), 'SGD(momentum=0.9)', device='meta')",
}


def rss(work: str) -> int:
    code = MEMORY.format(root=str(ROOT), work=WORK[work])
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return int(json.loads(out.stdout))


def mib(n: float) -> str:
    return f"{n / MIB:,.1f} MiB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="skip ResNet-50's real training step")
    quick = parser.parse_args().quick

    import torch

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU")
    peaks = {work: rss(work) for work in WORK}
    print()
    print(
        "| model | input | saved for backward: estimate | measured (hooks) | ratio "
        "| training step peak: estimate | measured (allocator) | ratio | torchinfo Estimated Total Size "
        "| torchinfo / measured peak |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in accuracy(quick):
        print(
            f"| {r['model']} | {r['input']} | {mib(r['estimate saved'])} | {mib(r['measured saved'])} "
            f"| {r['estimate saved'] / r['measured saved']:.3f} | {mib(r['estimate peak'])} "
            f"| {mib(r['measured peak'])} | {r['estimate peak'] / r['measured peak']:.3f} "
            f"| {mib(r['torchinfo'])} | {r['torchinfo'] / r['measured peak']:.3f} |"
        )
    print()
    times = cost()
    meta, meta_median = times["meta trace"]
    train, train_median = times["meta trace (train mode)"]
    est, est_median = times["estimate_memory"]
    print("ResNet-50 at 64x3x224x224, CPU time, fastest of 15 interleaved repeats (median):")
    print(f"  meta trace               {meta * 1000:7.1f} ms ({meta_median * 1000:.1f} ms)")
    print(f"  meta trace, train mode   {train * 1000:7.1f} ms ({train_median * 1000:.1f} ms)")
    print(
        f"  estimate_memory          {est * 1000:7.1f} ms ({est_median * 1000:.1f} ms): "
        f"{est / meta:.2f}x a meta trace ({est_median / meta_median:.2f}x by medians), "
        f"{est / train:.2f}x one in train mode: one pass, with autograd recording"
    )
    holding, traced, estimated = peaks["holding"], peaks["trace"], peaks["estimate"]
    print(
        f"Peak RSS (VmHWM) of fresh processes: holding the model {mib(holding)}; a meta trace "
        f"{mib(traced)} ({traced / holding:.3f}x); an estimate {mib(estimated)} "
        f"({estimated / holding:.3f}x holding, {estimated / traced:.3f}x a meta trace)"
    )


if __name__ == "__main__":
    main()
