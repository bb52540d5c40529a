"""One trace of a module at a time: the locks that make tracing safe under threads.

A trace changes the model while its forward runs: training flags, on meta every
parameter and buffer swapped for a twin, hooks on every module. Two threads
tracing one model at once would see each other's twins and hooks (and could put
meta tensors back as the user's weights). So every module a trace touches is
locked from planning to diagnosis (``guarded``), and again for each forward
(``exclusive``: the probes of contracts and size searches): each module has its
own re-entrant lock, taken in one global order (by ``id``), so two traces that
share any module (the same model, or a model and one of its parts) run one after
the other while traces of unrelated models run side by side. Re-entrant: a
forward that traces one of its own submodules already holds that lock in its
thread. (A forward that starts another thread to trace its own submodule and waits
for it would wait forever; nothing in a model needs that.)

The locks live in a weak dictionary: a model that is dropped takes its locks with it.

``gc_paused`` keeps the cyclic garbage collector out of a trace's forward: a trace
allocates a few thousand small objects, and the full collection they may happen to
trigger walks all of torch's heap (about 100 ms after ``import torch``, five times a
ResNet-50 meta trace); it runs at the next allocation after the trace instead.

``recursion_room`` makes the depth a trace can reach torch's, not ours: hooks cost
Python frames per level of nesting, so the recursion limit is raised for a trace.
"""

from __future__ import annotations

import gc
import sys
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from types import FrameType

from torch import nn

from ..errors import TraceError


@contextmanager
def gc_paused() -> Iterator[None]:
    """The cyclic garbage collector off for the block (as ``timeit`` does), then as it was."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


_LOCKS: weakref.WeakKeyDictionary[nn.Module, threading.RLock] = weakref.WeakKeyDictionary()
_REGISTRY = threading.Lock()


def _lock(module: nn.Module) -> threading.RLock:
    lock = _LOCKS.get(module)  # a plain read: only creating a lock needs the registry's
    if lock is None:
        with _REGISTRY:
            lock = _LOCKS.get(module)
            if lock is None:
                lock = _LOCKS[module] = threading.RLock()
    return lock


@contextmanager
def exclusive(modules: tuple[nn.Module, ...]) -> Iterator[None]:
    """Hold the lock of every module in ``modules`` (in ``id`` order: no lock-order deadlock)."""
    locks = [_lock(m) for m in sorted(modules, key=id)]
    taken = 0
    try:
        for lock in locks:
            lock.acquire()
            taken += 1
        yield
    finally:
        for lock in reversed(locks[:taken]):
            lock.release()


#: Python frames torch's own ``Module.__call__`` costs per level of nesting (measured on
#: torch 2.13: ``__call__``, ``_wrapped_call_impl``, ``_call_impl``, ``forward``).
TORCH_FRAMES_PER_LEVEL = 4
#: What a trace may cost per level on top of that: hooks make torch take its slow call
#: path (a frame more), and our own walks (deepcopy of a lazy model) recurse too.
TRACE_FRAMES_PER_LEVEL = 12
_HEADROOM = 200
_LIMITS = threading.Lock()
#: ``id`` of the roots whose trace this context is inside (``guarded``).
_HELD: ContextVar[frozenset[int]] = ContextVar("cnnshape_guarded", default=frozenset())
_RAISED: list[int] = []


def walk(root: nn.Module) -> tuple[int, list[nn.Module]]:
    """How deep ``root``'s modules nest (1: no children), and each module once; no recursion."""
    deepest, stack, seen, modules = 0, [(root, 1)], {id(root)}, [root]
    while stack:
        module, depth = stack.pop()
        deepest = max(deepest, depth)
        for child in module._modules.values():
            if child is not None and id(child) not in seen:
                seen.add(id(child))
                modules.append(child)
                stack.append((child, depth + 1))
    return deepest, modules


def _round_up(n: int) -> int:
    return -(-n // 1000) * 1000


def _stack_depth() -> int:
    frame: FrameType | None = sys._getframe(1)
    depth = 0
    while frame is not None:
        frame, depth = frame.f_back, depth + 1
    return depth


@contextmanager
def guarded(root: nn.Module, name: str) -> Iterator[None]:
    """The whole of a trace of ``root``: the stack it needs (``recursion_room``), its modules locked.

    Planning (which device, are the weights on meta?) and diagnosing a failure read
    the model too, so the lock spans them, not just the forward. Entered once per
    root and context: a nested ``guarded`` of the same root costs nothing.
    """
    held = _HELD.get()
    if id(root) in held:
        yield
        return
    depth, modules = walk(root)
    with recursion_room(depth, name), exclusive(tuple(modules)):
        token = _HELD.set(held | {id(root)})
        try:
            yield
        finally:
            _HELD.reset(token)


@contextmanager
def recursion_room(depth: int, name: str) -> Iterator[None]:
    """Give the trace the Python stack torch's own forward would have, plus what hooks cost.

    Python's recursion limit is the user's choice; a model that plain torch runs under
    it must trace under it too, so the limit is raised for the trace (with headroom, for
    every thread tracing, and put back after the last). A model too deep for torch's
    own forward is refused in words, before any walk of the tree recurses.
    """
    with _LIMITS:
        limit = _RAISED[0] if _RAISED else sys.getrecursionlimit()  # the user's, not one we raised
    used = _stack_depth()
    if used + depth * TORCH_FRAMES_PER_LEVEL + 20 > limit:
        raise TraceError(
            f"cannot trace {name}: its modules nest {depth} deep, and torch's own forward costs "
            f"{TORCH_FRAMES_PER_LEVEL} Python frames per level, past Python's recursion limit "
            f"({limit}); torch cannot run it either. Flatten the nesting, or raise the limit first "
            f"(sys.setrecursionlimit({_round_up(used + depth * TRACE_FRAMES_PER_LEVEL + _HEADROOM)}))"
        )
    needed = used + depth * TRACE_FRAMES_PER_LEVEL + _HEADROOM
    if needed <= limit:
        yield
        return
    with _LIMITS:
        if not _RAISED:
            _RAISED.append(sys.getrecursionlimit())
        _RAISED.append(needed)
        sys.setrecursionlimit(max(_RAISED))
    try:
        yield
    finally:
        with _LIMITS:
            _RAISED.remove(needed)
            sys.setrecursionlimit(max(_RAISED))
            if len(_RAISED) == 1:
                _RAISED.clear()
