"""A failed forward, explained: the data of a diagnostic and how it reads.

``FailureContext`` is everything known at the moment a forward raised (the calls
still running, the partial trace, the user's frame); ``Diagnosis`` is what the
rules in ``diagnose`` make of it; ``render`` turns it into the text of a
ShapeMismatchError. A diagnosis always names the layer and what it received, and
says plainly when no fix can be derived.
"""

from __future__ import annotations

import linecache
import os
import sysconfig
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .shapes import ShapeTree, format_shape
from .table import grid, inputs_cell

if TYPE_CHECKING:
    import torch
    from torch import nn

    from .inputs import InputSpec
    from .modelview import ModelView
    from .recorder import RunningCall
    from .records import LayerRecord, ShapeTrace

#: Rows of the partial trace shown under a diagnostic.
PATH_ROWS = 8
_PACKAGE_DIR = str(Path(__file__).resolve().parent)


@dataclass(frozen=True)
class UserFrame:
    """The innermost frame of user code in a traceback: where to look."""

    filename: str
    lineno: int
    code: str
    function: str
    locals: dict[str, Any] = field(compare=False, repr=False)

    @property
    def location(self) -> str:
        """``file.py:LINE`` with the path relative to the working directory if inside it."""
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


@dataclass
class Diagnosis:
    """What went wrong, where, and what to change."""

    kind: str
    layer: str
    module_type: str
    received_shapes: tuple[ShapeTree, ...]
    headline: str
    details: list[tuple[str, str]] = field(default_factory=list)
    fix: str | None = None
    fix_note: str | None = None
    hint: str | None = None
    source: str | None = None
    original: str = ""
    device: str = ""

    def render(self, trace: ShapeTrace | None = None) -> str:
        """The diagnostic text: headline, labelled details, fix, source, the path."""
        lines = [self.headline]
        rows = list(self.details)
        if self.fix:
            rows.append(("fix", self.fix + (f"   # {self.fix_note}" if self.fix_note else "")))
        else:
            rows.append(("fix", "none derived automatically: " + (self.fix_note or
                         "compare the received shape with what this layer expects")))
        if self.hint:
            rows.append(("hint", self.hint))
        if self.source:
            rows.append(("at", self.source))
        if self.original:
            rows.append(("torch", self.original.strip().splitlines()[0]))
        width = max(len(label) for label, _ in rows)
        for label, text in rows:
            first, *rest = text.splitlines() or [""]
            lines.append(f"  {label.ljust(width)}  {first}")
            lines.extend(f"  {' ' * width}  {more}" for more in rest)
        if trace is not None and trace.layers:
            lines.append(path_table(trace.layers, self.layer))
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form (reports, xdist)."""
        from .shapes import to_json

        return {
            "kind": self.kind,
            "layer": self.layer,
            "module_type": self.module_type,
            "received_shapes": to_json(list(self.received_shapes)),
            "headline": self.headline,
            "fix": self.fix,
            "source": self.source,
            "original": self.original,
        }


def path_table(layers: list[LayerRecord], failed: str, rows: int = PATH_ROWS) -> str:
    """The last rows of the partial trace: leaf calls and the call that failed."""
    shown = [r for r in layers if r.is_leaf or (not r.finished and r.name == failed)]
    if not shown:
        shown = [r for r in layers if not r.finished][-1:]
    cut = shown[-rows:]
    body = [
        [r.label, r.type, inputs_cell(r),
         format_shape(r.output_shape) if r.finished else "<- failed here"]
        for r in cut
    ]
    title = "layers up to the failure"
    if len(shown) > len(cut):
        title += f" (last {len(cut)} of {len(shown)})"
    table = grid(body, ("Layer", "Type", "Input", "Output"))
    return title + ":\n" + "\n".join("  " + line for line in table.splitlines())


@dataclass
class FailureContext:
    """Everything known when a forward raised."""

    exc: BaseException
    view: ModelView
    records: list[LayerRecord]
    running: list[RunningCall]
    device: torch.device
    inputs: InputSpec

    @property
    def model(self) -> nn.Module:
        """The module that ran (the user's model, or its clone for lazy layers)."""
        return self.view.root

    @property
    def innermost(self) -> RunningCall | None:
        """The innermost module call still running: the layer that failed."""
        return self.running[-1] if self.running else None

    @property
    def frame(self) -> UserFrame | None:
        """The user's line that raised, if the traceback passes through user code."""
        return user_frame(self.exc)

    def name_of(self, module: nn.Module) -> str:
        """Qualified name of a module of the model."""
        return self.view.name_of(module)

    def finished_before(self, record: LayerRecord) -> list[LayerRecord]:
        """Finished leaf calls recorded before ``record``, most recent last."""
        out = []
        for r in self.records:
            if r is record:
                break
            if r.finished and r.is_leaf:
                out.append(r)
        return out


def _library_dirs() -> tuple[str, ...]:
    import torch

    dirs = {str(Path(torch.__file__).resolve().parent), _PACKAGE_DIR}
    for key in ("stdlib", "platstdlib"):
        path = sysconfig.get_paths().get(key)
        if path:
            dirs.add(str(Path(path).resolve()))
    return tuple(sorted(dirs))


def is_user_file(filename: str) -> bool:
    """True for code the user wrote (not torch, not Python, not this package)."""
    if filename.startswith("<"):
        return False
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
    return UserFrame(frame.f_code.co_filename, lineno, code, frame.f_code.co_name,
                     dict(frame.f_locals))


def generic(ctx: FailureContext) -> Diagnosis:
    """The diagnosis when no rule recognises the failure: layer, input, torch's words."""
    running = ctx.innermost
    frame = ctx.frame
    message = str(ctx.exc).strip() or type(ctx.exc).__name__
    if running is not None:
        record = running.record
        where = f"{record.name or '(root)'} ({record.type})"
        received = record.input_shapes
    else:
        where, received = type(ctx.model).__name__, ()
    kind_word = "failed" if isinstance(ctx.exc, (RuntimeError, ValueError)) else (
        f"raised {type(ctx.exc).__name__}")
    details = [("received", inputs_cell(running.record) if running else "-")]
    return Diagnosis(
        kind="forward_error",
        layer=running.record.name if running else "",
        module_type=running.record.type if running else type(ctx.model).__name__,
        received_shapes=received,
        headline=f"{where} {kind_word}: {message.splitlines()[0]}",
        details=details,
        source=str(frame) if frame else None,
        original="",
        device=str(ctx.device),
    )

