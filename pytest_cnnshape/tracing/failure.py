"""Everything known at the moment a forward raised, and questions rules ask of it.

The recorder's stack says which module calls were running (the innermost one is
where it failed) and what each received; the partial trace says what ran before;
the traceback says which line of the user's code raised; the prober runs the
model again on other inputs (on meta: milliseconds) to compute a minimum size.
It belongs to the tracing layer (the tracer builds it when a forward raises);
``diagnostics`` explains it.
"""

from __future__ import annotations

import dis
import linecache
import os
import sys
import sysconfig
import types
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cache, cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

if TYPE_CHECKING:
    import torch
    from torch import nn

    from .functional import FunctionalOps
    from .inputs import InputSpec
    from .lineage import Lineage
    from .modelview import ModelView
    from .recorder import RunningCall
    from .records import LayerRecord, ShapeTrace

_PACKAGE_DIR = str(Path(__file__).resolve().parent.parent)

_T = TypeVar("_T")


class Prober(Protocol):
    """Runs the model (or a twin of it) on other inputs without diagnosing: a trace, or
    the failure's context (``tracer.Prober``)."""

    #: The model it runs (the user's), its inputs' dtype, and where meta falls back to.
    view: ModelView
    dtype: torch.dtype
    train: bool
    fallback: torch.device

    def __call__(
        self,
        inputs: Any,
        *,
        observers: Sequence[Any] = (),
        root: nn.Module | None = None,
        where: torch.device | None = None,
    ) -> ShapeTrace | FailureContext: ...


@dataclass(frozen=True)
class UserFrame:
    """The innermost frame of user code in a traceback: where to look."""

    filename: str
    lineno: int
    code: str
    function: str

    @property
    def location(self) -> str:
        """``file.py:LINE`` with the path relative to the working directory if inside it;
        ``cell In[3], line 14`` for a Jupyter cell (IPython names its cells' temporary files)."""
        cell = _notebook_cell(self.filename)
        if cell is not None:
            return f"cell {cell}, line {self.lineno}"
        path = self.filename
        try:
            rel = os.path.relpath(path)
            if not rel.startswith(".."):
                path = rel
        except ValueError:  # another drive on Windows
            pass
        return f"{path}:{self.lineno}"

    def __str__(self) -> str:
        return f"{self.location}: {self.code}"


def _notebook_cell(filename: str) -> str | None:
    """``In[3]`` when ``filename`` is the code of a cell of the running IPython kernel."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None and hasattr(ipython, "get_ipython") else None
    name = getattr(getattr(shell, "compile", None), "format_code_name", None)
    try:
        found = name(filename) if callable(name) else None
    except Exception:  # another IPython's idea of its cells: the file's name will do
        return None
    return str(found[1]) if isinstance(found, tuple) and len(found) == 2 else None


def _library_dirs() -> tuple[str, ...]:
    """torch's, ours, the standard library's and every installed-package directory: those of
    this interpreter and any ``site-packages`` / ``dist-packages`` on ``sys.path``."""
    return _library_dirs_of(tuple(sys.path))


@cache
def _library_dirs_of(path: tuple[str, ...]) -> tuple[str, ...]:
    dirs = {_torch_dir(), _PACKAGE_DIR}
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        found = sysconfig.get_paths().get(key)
        if found:
            dirs.add(str(Path(found).resolve()))
    for entry in path:
        if Path(entry).name in ("site-packages", "dist-packages"):
            dirs.add(str(Path(entry).resolve()))
    return tuple(sorted(dirs))


@cache
def _torch_dir() -> str:
    import torch

    return str(Path(torch.__file__).resolve().parent)


def is_torch_file(filename: str) -> bool:
    """True for torch's own code (its layers, functional, autograd); not torchvision's or
    torchaudio's, whose directories only begin with the same letters."""
    try:
        return str(Path(filename).resolve()).startswith(_torch_dir() + os.sep)
    except OSError:
        return False


def package_path(filename: str) -> str:
    """A file of an installed package from the package on (``torchvision/models/resnet.py``)."""
    resolved = str(Path(filename).resolve())
    for root in sorted(_library_dirs(), key=len, reverse=True):  # the innermost: site-packages
        if root not in (_torch_dir(), _PACKAGE_DIR) and resolved.startswith(root + os.sep):
            return os.path.relpath(resolved, root)
    return filename


def is_user_file(filename: str) -> bool:
    """True for code the user wrote (not torch, not Python, not installed packages, not us),
    a Jupyter cell's among it."""
    if filename.startswith("<"):
        return _notebook_cell(filename) is not None
    try:
        resolved = str(Path(filename).resolve())
    except OSError:
        return False
    return not resolved.startswith(_library_dirs())


def user_frame(exc: BaseException) -> UserFrame | None:
    """The innermost traceback frame in user code."""
    tb: types.TracebackType | None = exc.__traceback__
    found: types.TracebackType | None = None
    while tb is not None:
        if is_user_file(tb.tb_frame.f_code.co_filename):
            found = tb
        tb = tb.tb_next
    if found is None:
        return None
    frame = found.tb_frame
    lineno = found.tb_lineno
    code = linecache.getline(frame.f_code.co_filename, lineno).strip()
    return UserFrame(frame.f_code.co_filename, lineno, code, frame.f_code.co_name)


_SCRIPT_TRACEBACK = "The following operation failed in the TorchScript interpreter"


def error_text(exc: BaseException) -> str:
    """The exception's message; for one raised inside TorchScript, the error itself.

    TorchScript prefixes the error with its own traceback of the compiled code;
    its last line (``RuntimeError: Given groups=1, ...``) is torch's message.
    """
    text = str(exc)
    if _SCRIPT_TRACEBACK not in text:
        return text
    last = [line for line in text.strip().splitlines() if line.strip()][-1].strip()
    name, sep, rest = last.partition(": ")
    return rest if sep and name.replace(".", "").isidentifier() else last


def raised_by_model(exc: BaseException) -> bool:
    """True when a ``raise`` or ``assert`` in the user's own code raised ``exc``.

    That is the model refusing its input for its own reasons, not torch refusing
    an op: the innermost frame is user code and stopped on a raise instruction
    (a tensor method failing in the same line stops on a call instead).
    """
    tb = exc.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    code = tb.tb_frame.f_code
    if not is_user_file(code.co_filename):
        return False
    for instruction in dis.get_instructions(code):
        if instruction.offset == tb.tb_lasti:
            return instruction.opname in ("RAISE_VARARGS", "RERAISE")
    return False


@dataclass
class FailureContext:
    """Everything known when a forward raised."""

    exc: BaseException
    view: ModelView
    records: list[LayerRecord]
    running: list[RunningCall]
    device: torch.device
    inputs: InputSpec
    #: ``id(tensor) -> record`` of the call that returned it (outputs still alive).
    produced: dict[int, LayerRecord] = field(default_factory=dict)
    #: Runs the model on other inputs; None where no second run is possible.
    probe: Prober | None = None
    #: The observers that watched this run (``Lineage``, ``FunctionalOps``...).
    observers: tuple[Any, ...] = ()
    #: The mode the forward ran in (True: training).
    train: bool = False
    #: The input domains found for size fixes (``domain``), by the example they were followed at.
    domains: dict[tuple[int, ...] | None, Any] = field(default_factory=dict, repr=False, compare=False)
    #: Fixes dear to work out (an input size from the input domain: a symbolic forward), each a
    #: function giving candidates; asked only when no other candidate verifies (diagnostics).
    last_resorts: list[Callable[[], Any]] = field(default_factory=list, repr=False, compare=False)

    def observed(self, kind: type[_T]) -> _T | None:
        """The observer of this class that watched the run, if one did."""
        return next((o for o in self.observers if isinstance(o, kind)), None)

    @cached_property
    def flow(self) -> Flow | None:
        """Where each tensor came from and which functional ops ran, for this failure.

        From this run's own observers when it had them; otherwise the same input is
        run again, on meta, watched (a diagnosis needs it once; an ordinary trace
        should not pay for it). None when that run does not fail at the same call.
        """
        from .functional import FunctionalOps
        from .lineage import Lineage

        lineage, functional = self.observed(Lineage), self.observed(FunctionalOps)
        if lineage is not None and functional is not None:
            return Flow(lineage, functional, self)
        if self.probe is None:
            return None
        lineage, functional = Lineage(), FunctionalOps()
        again = self.probe(self.inputs, observers=(lineage, functional))
        if not isinstance(again, FailureContext) or not _same_failure(again, self):
            return None
        return Flow(lineage, functional, again)

    def domain(self, example: Sequence[int] | None = None) -> Any:
        """The sizes the model runs at, by torch's symbolic shapes (``symbolic_follow.NearbyDomain``):
        followed at ``example`` (a first-input shape where the model runs) or, without one,
        found from this failing input; None where the engine cannot follow the model.
        Imported and run only when a rule asks (a size fix), once per example."""
        key = None if example is None else tuple(example)
        if key not in self.domains:
            self.domains[key] = self._domain(key)
        return self.domains[key]

    def _domain(self, example: tuple[int, ...] | None) -> Any:
        if self.probe is None:
            return None
        from .records import ShapeTrace
        from .symbolic_follow import domain_near

        probe = self.probe

        def plain(inputs: Any) -> ShapeTrace | None:
            result = probe(inputs)
            return result if isinstance(result, ShapeTrace) else None

        return domain_near(
            probe.view, self.inputs, dtype=probe.dtype, train=probe.train, probe=plain, start=example
        )

    @property
    def model(self) -> nn.Module:
        """The module that ran (the user's model, or its clone for lazy layers)."""
        return self.view.root

    @property
    def innermost(self) -> RunningCall | None:
        """The innermost module call still running: the layer that failed."""
        return self.running[-1] if self.running else None

    @property
    def in_torch_layer(self) -> bool:
        """True when the failing call is a torch layer's own forward (Conv2d, Linear...).

        Otherwise the failure is in a forward() the user wrote, between layers.
        """
        running = self.innermost
        return running is not None and is_torch_layer(running.module)

    @cached_property
    def frame(self) -> UserFrame | None:
        """The user's line that raised, if the traceback passes through user code."""
        return user_frame(self.exc)

    @property
    def message(self) -> str:
        """torch's message, for classifying (never for numbers)."""
        return error_text(self.exc)

    def name_of(self, module: nn.Module) -> str:
        """Qualified name of a module of the model."""
        return self.view.name_of(module)

    def leaves_before(self, record: LayerRecord | None = None) -> list[LayerRecord]:
        """Finished leaf calls recorded before ``record`` (default: all), most recent last."""
        out = []
        for r in self.records:
            if r is record:
                break
            if r.finished and r.is_leaf:
                out.append(r)
        return out

    def producer(self, tensor: Any) -> LayerRecord | None:
        """The finished call whose output is this very tensor, if one is recorded."""
        record = self.produced.get(id(tensor))
        if record is not None and record.output_shape == tuple(getattr(tensor, "shape", ())):
            return record
        return None

    def model_input_shape(self) -> tuple[int, ...] | None:
        """The first input's shape: what sizes are searched over."""
        return self.inputs.first_shape()

    def tensors_in(self, call: RunningCall) -> Iterator[torch.Tensor]:
        """The tensors a running call received, positional first."""
        import torch

        for value in (*call.args, *call.kwargs.values()):
            if isinstance(value, torch.Tensor):
                yield value


@dataclass(frozen=True)
class Flow:
    """The data flow of a failed forward: tensor origins and functional ops (see ``flow``)."""

    lineage: Lineage
    functional: FunctionalOps
    #: The run they describe (the failed run itself, or its watched re-run).
    context: FailureContext


def _same_failure(a: FailureContext, b: FailureContext) -> bool:
    ra, rb = a.innermost, b.innermost
    return (
        len(a.records) == len(b.records)
        and ra is not None
        and rb is not None
        and (ra.record.name, ra.record.call) == (rb.record.name, rb.record.call)
    )


def is_torch_layer(module: Any) -> bool:
    """A layer class of torch itself, whose forward has no bugs of the user's.

    A layer with a parametrization (spectral_norm...) is an instance of a class
    torch derives from it (``ParametrizedLinear``): its base counts.
    """
    cls = type(module)
    if cls.__module__ == "torch.nn.utils.parametrize" and cls.__bases__:
        cls = cls.__bases__[0]
    return cls.__module__.startswith("torch.nn.modules.")
