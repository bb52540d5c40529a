"""How many broken CNNs get a verified fix, and what verifying costs on ResNet-50-sized models.

    python benchmarks/diagnostics_corpus.py    # about a minute

Part 1, the corpus (tests/corpus: broken_zoo and field_zoo, every case diagnosed on meta):
how many diagnoses show a fix verified to run the model to its output, how many one that
gets the model past the failure to a second problem, and how many say plainly that no fix
verified. Part 2, the cost: ResNet-50 (benchmarks/models.py) with one planted mistake
each; the extra time is what ``explain`` takes after the failed meta forward (the rules,
the data-flow re-run, size searches and every twin traced to verify a fix), the median of
several repeats per model. The reference is the failed meta forward itself.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

REPEATS = 5


def corpus() -> None:
    from pytest_cnnshape import ShapeMismatchError, trace
    from tests.corpus.broken_zoo import CORPUS
    from tests.corpus.field_zoo import FIELD

    counts = {"verified": 0, "partly verified": 0, "no verified fix": 0}
    kinds: dict[str, int] = {}
    for case in (*CORPUS.values(), *FIELD.values()):
        try:
            trace(case.factory(), case.inputs, device="meta", train=case.train)
        except ShapeMismatchError as err:
            shown = err.diagnosis.shown
            if shown is None:
                counts["no verified fix"] += 1
            else:
                counts["verified" if shown.complete else "partly verified"] += 1
                kinds[shown.kind] = kinds.get(shown.kind, 0) + 1
    total = sum(counts.values())
    print(f"corpus: {total} broken CNNs ({len(FIELD)} re-created from public threads), diagnosed on meta")
    for label, n in counts.items():
        print(f"  {label:16s} {n:3d}  ({n / total:.0%})")
    print("  fixes by kind:   " + ", ".join(f"{k} {n}" for k, n in sorted(kinds.items())))
    print(f"  share with a verified fix: {counts['verified'] / total:.1%}")


def planted() -> dict[str, tuple[Callable[[], Any], Any]]:
    """ResNet-50 with one mistake each, and the input it is run with."""
    from torch import nn

    from benchmarks.models import resnet50

    def fc() -> nn.Module:
        model = resnet50()
        model.fc = nn.Linear(1024, 1000)
        return model

    def conv() -> nn.Module:
        model = resnet50()
        model.layer3[2].conv2 = nn.Conv2d(128, 256, 3, padding=1, bias=False)
        return model

    def norm() -> nn.Module:
        model = resnet50()
        model.layer2[0].bn3 = nn.BatchNorm2d(256)
        return model

    def shortcut() -> nn.Module:
        model = resnet50()
        model.layer4[0].downsample = None
        return model

    def pool() -> nn.Module:
        model = resnet50()
        model.avgpool = nn.AvgPool2d(7)  # the original ResNet's pool, for 224x224 inputs only
        return model

    return {
        "fc in_features": (fc, (1, 3, 224, 224)),
        "conv in_channels": (conv, (1, 3, 224, 224)),
        "BatchNorm num_features": (norm, (1, 3, 224, 224)),
        "missing downsample": (shortcut, (1, 3, 224, 224)),
        "AvgPool2d(7) at 112x112": (pool, (1, 3, 112, 112)),
        "grayscale input": (resnet50, (1, 1, 224, 224)),
        "channels-last input": (resnet50, (1, 224, 224, 3)),
    }


def cost() -> None:
    import torch

    from pytest_cnnshape.diagnostics.explain import explain
    from pytest_cnnshape.errors import ForwardFailed
    from pytest_cnnshape.tracing.tracer import run

    extras, forwards = [], []
    print(f"cost on ResNet-50 (25.6 M parameters), torch {torch.__version__}, meta; median of {REPEATS}:")
    for name, (build, inputs) in planted().items():
        model = build().eval()
        times, failed_at, fixed = [], [], ""
        for _ in range(REPEATS + 1):  # the first round warms up
            start = time.perf_counter()
            try:
                run(model, inputs, device="meta")
            except ForwardFailed as failed:
                middle = time.perf_counter()
                err = explain(failed)
                end = time.perf_counter()
            else:
                raise AssertionError(f"{name}: the planted mistake did not fail")
            times.append(end - middle)
            failed_at.append(middle - start)
            fixed = err.diagnosis.verified or "no verified fix"
        extra, forward = statistics.median(times[1:]), statistics.median(failed_at[1:])
        extras.append(extra)
        forwards.append(forward)
        timing = f"diagnosis {extra * 1000:7.1f} ms   failed forward {forward * 1000:6.1f} ms"
        print(f"  {name:24s} {timing}   {fixed}")
    median, reference = statistics.median(extras), statistics.median(forwards)
    print(
        f"  median extra time of a diagnosis: {median * 1000:.1f} ms (goal: under 1000 ms); "
        f"{median / reference:.1f}x the failed forward"
    )


def main() -> None:
    corpus()
    print()
    cost()


if __name__ == "__main__":
    main()
