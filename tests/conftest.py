"""Shared fixtures.

torch is imported, and the meta device warmed up, once per test process here.
pytester's in-process runs restore ``sys.modules`` afterwards: a torch submodule
first imported inside such a run (the first meta BatchNorm pulls in
``torch._dynamo``) would be dropped and later re-imported, and torch's operator
registry refuses a second registration of the same library. Importing it all up
front keeps every later import a cache hit.
"""

from __future__ import annotations

import os

import torch
from hypothesis import settings
from torch import nn
from torch.utils import flop_counter  # noqa: F401  (same reason: imported once, here)

with torch.no_grad():
    nn.BatchNorm2d(1, device="meta").eval()(torch.empty(1, 1, 1, 1, device="meta"))

# Property tests are deterministic by default (the same examples on every run and
# machine, no example database to carry between CI runs); HYPOTHESIS_PROFILE=explore
# searches afresh each time. No deadline: the first meta forward of a process
# warms torch up and would trip it.
settings.register_profile("deterministic", derandomize=True, deadline=None, database=None)
settings.register_profile("explore", deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "deterministic"))

# A diagnostic rule that breaks is skipped for users (their own error still shows);
# in our tests it must fail loudly.
os.environ.setdefault("CNNSHAPE_DEBUG", "1")

pytest_plugins = ["pytester"]
