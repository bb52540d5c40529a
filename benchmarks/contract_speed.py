"""What one hypothesis example of a shape contract costs, next to one CPU forward.

    python benchmarks/contract_speed.py    # about a minute

ResNet-50 (benchmarks/models.py), contract "B x 1000" over image_shapes(min_side=32,
max_side=256, batch=(1, 4)), 200 examples, run twice in one process (the first run
includes the one-time meta warm-up). The reference is a bare CPU forward under
no_grad at the very sizes the contract drew, timed in the same process.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

EXAMPLES = 200


def main() -> None:
    import torch
    from hypothesis import strategies as st

    from benchmarks.models import resnet50
    from pytest_cnnshape import assert_shape_contract
    from pytest_cnnshape.strategies import image_shapes

    model = resnet50().eval()
    drawn: list[tuple[int, ...]] = []
    shapes = image_shapes(min_side=32, max_side=256, batch=(1, 4)).map(lambda s: drawn.append(s) or s)
    assert isinstance(shapes, st.SearchStrategy)
    runs = []
    for _ in range(2):
        drawn.clear()
        start = time.perf_counter()
        assert_shape_contract(model, shapes, "B x 1000", max_examples=EXAMPLES)
        runs.append((time.perf_counter() - start, len(drawn)))
    (cold, n_cold), (warm, n_warm) = runs
    sample = drawn[:: max(1, len(drawn) // 25)]
    forwards = []
    with torch.no_grad():
        for shape in sample:
            x = torch.randn(shape)
            start = time.perf_counter()
            model(x)
            forwards.append(time.perf_counter() - start)
    per_example = warm / n_warm
    per_forward = statistics.mean(forwards)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; ResNet-50, contract 'B x 1000'")
    print(f"  first run:  {n_cold} examples in {cold:.2f} s (includes the meta warm-up)")
    print(f"  second run: {n_warm} examples in {warm:.2f} s, {per_example * 1000:.1f} ms per example")
    print(
        f"  one CPU forward at the same sizes ({len(sample)} of them): {per_forward * 1000:.1f} ms on average"
    )
    print(f"  per example / per CPU forward: {per_example / per_forward:.3f}x")


if __name__ == "__main__":
    main()
