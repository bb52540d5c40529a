"""Shared fixtures.

torch and every module of pytest_cnnshape are imported, and the meta device
warmed up, once per test process here. pytester's in-process runs restore
``sys.modules`` afterwards, so a module first imported inside such a run is
dropped and imported afresh by the next one: for a torch submodule (the first
meta BatchNorm pulls in ``torch._dynamo``, the first symbolic trace more of torch's
own) torch's operator registry refuses the second registration, and for ours a
package attribute would keep the first copy
while ``sys.modules`` hands out the second (two ``Snapshot`` classes that never
compare equal). Importing it all up front keeps every later import a cache hit.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from hypothesis import settings
from torch import nn
from torch.utils import flop_counter  # noqa: F401  (same reason: imported once, here)

import pytest_cnnshape
from tests.helpers import EXPLORE_SCALE

for _module in pkgutil.walk_packages(pytest_cnnshape.__path__, "pytest_cnnshape."):
    importlib.import_module(_module.name)

with torch.no_grad():
    nn.BatchNorm2d(1, device="meta").eval()(torch.empty(1, 1, 1, 1, device="meta"))
# The first symbolic trace imports what torch's symbolic shapes use on their first call
# (torch._inductor's size helpers, torch._export...): once, here, for the same reason.
pytest_cnnshape.trace(nn.Conv2d(1, 1, 3), "B x 1 x H x W", symbolic=True, dims={"B": 2, "H": 8, "W": 8})

# Property tests are deterministic by default (the same examples on every run and
# machine, no example database to carry between CI runs); HYPOTHESIS_PROFILE=explore
# (``make test-explore``) draws from the seed given with --hypothesis-seed, each test's
# budget times CNNSHAPE_EXPLORE_SCALE (``tests.helpers.examples``), still without a
# database, so the printed seed alone replays a failure. No deadline: the first meta
# forward of a process warms torch up and would trip it.
settings.register_profile("deterministic", derandomize=True, deadline=None, database=None)
settings.register_profile("explore", deadline=None, database=None, max_examples=100 * EXPLORE_SCALE)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "deterministic"))

# A diagnostic rule that breaks is skipped for users (their own error still shows);
# in our tests it must fail loudly.
os.environ.setdefault("CNNSHAPE_DEBUG", "1")

pytest_plugins = ["pytester"]


def pytest_runtest_setup(item: object) -> None:
    """Under ``make test-explore``: a test not yet started when the round's time is up is
    skipped (and listed), so a round ends within its budget on a slow machine too."""
    deadline = os.environ.get("CNNSHAPE_EXPLORE_DEADLINE")
    if deadline is not None and time.time() > float(deadline):
        pytest.skip("make test-explore: the time budget was spent before this test started")


@pytest.fixture(autouse=True)
def _user_modules_forgotten() -> Iterator[None]:
    """A test that loads a user's ``models.py`` in this process (the CLI run in-process, a
    factory loaded by path) leaves it in ``sys.modules`` and its directory on ``sys.path``;
    the next test's own ``models.py`` would then import the stale one. Both are put back as
    they were, for modules loaded from outside the installed packages and the repository."""
    modules, path = set(sys.modules), list(sys.path)
    yield
    for name in set(sys.modules) - modules:
        where = getattr(sys.modules[name], "__file__", None) or ""
        if where and not where.startswith(_KEPT_ROOTS):
            del sys.modules[name]
    sys.path[:] = path


#: Where the modules a test may import and keep live: the repository and the interpreter's.
_KEPT_ROOTS = (str(Path(__file__).resolve().parent.parent), sys.prefix, sys.base_prefix)
