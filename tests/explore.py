"""``make test-explore``: every property test, drawn from random seeds with larger budgets,
for a fixed time.

``make test`` runs the property tests deterministically (the same examples on every run).
Here each round runs all of them (``pytest -m hypothesis``) with the ``explore`` profile
(tests/conftest.py), a fresh ``--hypothesis-seed`` and each test's budget times
``--scale``; rounds follow one another while the next is expected to end within
``--budget`` seconds (a test not started by then is skipped, and listed, so a slow machine
explores less rather than runs longer). The seed is printed before each round, and a
failing round prints
the command that replays it exactly: ``make test-explore EXPLORE_SEED=<seed>`` (that one
round; no example database is involved, so the seed is all it takes).

    python -m tests.explore --budget 180 --scale 2 [--seed N] [-- extra pytest arguments]
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import time


def _round(seed: int, scale: int, extra: list[str], deadline: float | None, timeout: float | None) -> int:
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-m",
        "hypothesis",
        "-p",
        "no:cacheprovider",
        "-q",
        "-rs",
        f"--hypothesis-seed={seed}",
        *extra,
    ]
    env = {**os.environ, "HYPOTHESIS_PROFILE": "explore", "CNNSHAPE_EXPLORE_SCALE": str(scale)}
    if deadline is not None:
        env["CNNSHAPE_EXPLORE_DEADLINE"] = str(deadline)  # tests not started by then are skipped
    try:
        return subprocess.run(command, env=env, check=False, timeout=timeout).returncode
    except subprocess.TimeoutExpired:
        print(f"explore: the round with seed {seed} was still running after {timeout:.0f} s (a test hung?)")
        return 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--budget", type=float, default=180.0, help="seconds for all rounds together")
    parser.add_argument("--scale", type=int, default=2, help="times each property test's usual budget")
    parser.add_argument("--seed", type=int, default=None, help="replay this seed (one round)")
    parser.add_argument("pytest_args", nargs="*", help="passed to pytest (after --)")
    options = parser.parse_args(argv)
    started = time.monotonic()
    rounds = 0
    longest = 0.0
    while True:
        seed = options.seed if options.seed is not None else random.SystemRandom().randrange(2**32)
        rounds += 1
        print(f"explore: round {rounds}, seed {seed}, {options.scale}x the budgets", flush=True)
        began = time.monotonic()
        # tests not started when the budget is spent are skipped (listed by -rs); those running
        # finish, so a round overruns by one test at most; past a further budget it is stopped
        remaining = max(options.budget - (began - started), 0)
        if options.seed is None:
            code = _round(
                seed, options.scale, options.pytest_args, time.time() + remaining, remaining + options.budget
            )
        else:  # a replay runs every test to the end, however long it takes
            code = _round(seed, options.scale, options.pytest_args, None, None)
        longest = max(longest, time.monotonic() - began)
        if code != 0:
            print(
                f"explore: seed {seed} failed (exit {code}); replay it with "
                f"make test-explore EXPLORE_SEED={seed}   (or HYPOTHESIS_PROFILE=explore "
                f"CNNSHAPE_EXPLORE_SCALE={options.scale} pytest -m hypothesis --hypothesis-seed={seed})",
                flush=True,
            )
            return code
        elapsed = time.monotonic() - started
        if options.seed is not None or elapsed + longest > options.budget:
            print(f"explore: {rounds} round(s) passed in {elapsed:.0f} s (budget {options.budget:.0f} s)")
            return 0


if __name__ == "__main__":
    sys.exit(main())
