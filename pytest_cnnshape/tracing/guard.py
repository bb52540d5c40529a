"""One trace of a module at a time: the locks that make tracing safe under threads.

A trace changes the model while its forward runs: training flags, on meta every
parameter and buffer swapped for a twin, hooks on every module. Two threads
tracing one model at once would see each other's twins and hooks (and could put
meta tensors back as the user's weights). So every module a trace touches is
locked for the forward: each has its own re-entrant lock, taken in one global
order (by ``id``), so two traces that share any module (the same model, or a
model and one of its parts) run one after the other while traces of unrelated
models run side by side. Re-entrant: a forward that traces one of its own
submodules already holds that lock in its thread.

The locks live in a weak dictionary: a model that is dropped takes its locks with it.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

from torch import nn

_LOCKS: weakref.WeakKeyDictionary[nn.Module, threading.RLock] = weakref.WeakKeyDictionary()
_REGISTRY = threading.Lock()


def _lock(module: nn.Module) -> threading.RLock:
    with _REGISTRY:
        lock = _LOCKS.get(module)
        if lock is None:
            lock = _LOCKS[module] = threading.RLock()
        return lock


@contextmanager
def exclusive(modules: tuple[nn.Module, ...]) -> Iterator[None]:
    """Hold the lock of every module in ``modules`` (in ``id`` order: no lock-order deadlock)."""
    with ExitStack() as stack:
        for module in sorted(modules, key=id):
            stack.enter_context(_lock(module))
        yield
