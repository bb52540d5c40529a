"""What a trace produces: one LayerRecord per module call, gathered in a ShapeTrace.

Both are plain data (ints, strings, shape trees) so a trace outlives the model,
pickles to xdist workers' controller as JSON and is compared in baselines.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

from ..shapes.tree import Shape, ShapeTree, first_shape, from_json, shape_text, to_json

if TYPE_CHECKING:
    from .input_domain import InputDomain

#: A formula (``"B x 10"``) or the structure of a structured output with formulas at the leaves.
FormulaTree: TypeAlias = "str | tuple[FormulaTree, ...] | list[FormulaTree] | dict[Any, FormulaTree] | None"

#: Version of the dictionary layout ``ShapeTrace.to_dict`` returns.
TRACE_FORMAT = 1


@dataclass(slots=True)
class LayerRecord:
    """One call of one module, as seen by the forward pre-hook and hook."""

    #: Qualified name as ``model.named_modules()`` gives it; ``""`` is the root.
    name: str
    #: Class name of the module, e.g. ``"Conv2d"``.
    type: str
    #: Nesting depth in the call stack at the time of the call (root = 0).
    depth: int
    #: 0 for the module's first call in the forward, 1 for its second, ...
    call: int
    #: Shapes of the positional arguments (None where an argument is no tensor).
    input_shapes: tuple[ShapeTree, ...]
    #: Shape (or shape structure) of what the call returned; None while running.
    output_shape: ShapeTree = None
    #: Parameters of the module and its children, each tensor counted once.
    num_params: int = 0
    trainable_params: int = 0
    #: True when the module has no child modules.
    is_leaf: bool = True
    #: Shapes of keyword arguments, when the module was called with any.
    input_kwargs: dict[str, ShapeTree] = field(default_factory=dict)
    #: False for calls still running when the forward raised.
    finished: bool = False
    #: Other names the same module object is reachable under (shared modules).
    aliases: tuple[str, ...] = ()
    #: Where each positional tensor input came from (``tracing.lineage.Origin.to_dict()``,
    #: None for an argument of unknown origin); None when the trace did not record the
    #: data flow (``trace(..., flow=True)`` does).
    sources: tuple[dict[str, Any] | None, ...] | None = None
    #: For a container call of such a trace: the origin its output had inside it (the
    #: call or op that made what it returned).
    returns: dict[str, Any] | None = None
    #: True when the module (or a child) is a lazy layer the model has not initialised:
    #: the parameter counts are those it will have after its first call.
    lazy: bool = False
    #: In a symbolic trace, the output as a formula of the input's named sizes, in the spec
    #: syntax (``"B x 64 x H//4 x W//4"``); a structure of those for a structured output.
    output_formula: FormulaTree = None

    @property
    def label(self) -> str:
        """The name as shown in tables: ``(root)`` for the root, call number if reused."""
        base = self.name or "(root)"
        return f"{base} (call {self.call + 1})" if self.call else base

    @property
    def input_shape(self) -> Shape | None:
        """The first input tensor's shape: what a one-input layer received."""
        return first_shape(self.input_shapes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form with stable keys."""
        out: dict[str, Any] = {
            "name": self.name,
            "type": self.type,
            "depth": self.depth,
            "call": self.call,
            "input_shapes": to_json(list(self.input_shapes)),
            "output_shape": to_json(self.output_shape),
            "num_params": self.num_params,
            "trainable_params": self.trainable_params,
            "is_leaf": self.is_leaf,
        }
        if self.input_kwargs:
            out["input_kwargs"] = to_json(self.input_kwargs)
        if not self.finished:
            out["finished"] = False
        if self.aliases:
            out["aliases"] = list(self.aliases)
        if self.sources is not None:
            out["sources"] = list(self.sources)
        if self.returns is not None:
            out["returns"] = self.returns
        if self.lazy:
            out["lazy"] = True
        if self.output_formula is not None:
            out["output_formula"] = formula_json(self.output_formula)
        return out


@dataclass
class ShapeTrace:
    """Every module call of one forward pass, root first, in the order entered."""

    layers: list[LayerRecord]
    output_shape: ShapeTree
    total_params: int
    trainable_params: int
    #: The device the forward actually ran on: ``"meta"``, ``"cpu"``, ``"cuda:0"``...
    device: str
    #: Class name of the traced model.
    model_type: str = ""
    #: Shapes of the inputs the model was called with (positional, then keyword).
    input_shapes: tuple[ShapeTree, ...] = ()
    input_kwargs: dict[str, ShapeTree] = field(default_factory=dict)
    #: dtype of the inputs built from shapes, e.g. ``"float32"``.
    dtype: str = "float32"
    #: True when traced in training mode (``train=True``).
    train: bool = False
    #: Why the trace did not run where asked (e.g. meta fell back to CPU), if it did not.
    note: str | None = None
    #: False for the partial trace carried by a ShapeMismatchError.
    complete: bool = True
    #: What was traced of a wrapped model (torch.compile, DataParallel, TorchScript), if wrapped.
    wrapper: str | None = None
    #: A symbolic trace's input specs, example sizes and domain in words (JSON-safe).
    symbolic: dict[str, Any] | None = None
    #: A symbolic trace's input domain (``input_domain``): not carried by ``to_dict``.
    domain: InputDomain | None = field(default=None, compare=False, repr=False)

    @property
    def lazy(self) -> bool:
        """True when some layer is lazy and uninitialised: its counts are those after its first call."""
        return any(r.lazy for r in self.layers)

    @property
    def non_trainable_params(self) -> int:
        """Frozen parameters (``requires_grad=False``)."""
        return self.total_params - self.trainable_params

    def __iter__(self) -> Iterator[LayerRecord]:
        return iter(self.layers)

    def __len__(self) -> int:
        return len(self.layers)

    def __getitem__(self, name: str) -> LayerRecord:
        """The first call of the module named ``name`` (``""`` for the root)."""
        for record in self.layers:
            if record.name == name or name in record.aliases:
                return record
        known = ", ".join(repr(r.name) for r in self.layers[:8])
        raise KeyError(f"no layer named {name!r} in this trace; names look like {known}")

    def calls(self, name: str) -> list[LayerRecord]:
        """Every call of the module named ``name``, in order."""
        return [r for r in self.layers if r.name == name or name in r.aliases]

    def leaves(self) -> list[LayerRecord]:
        """Calls of modules without children: the rows most people think of as layers."""
        return [r for r in self.layers if r.is_leaf]

    def table(self, max_depth: int | None = None) -> str:
        """The layer table (tabulate), indented by depth, with totals below."""
        from .table import render_trace

        return render_trace(self, max_depth=max_depth)

    def __str__(self) -> str:
        return self.table()

    def to_html(
        self,
        *,
        depth: int | None = None,
        title: str | None = None,
        diagnostic: str | None = None,
        inspection: dict[str, Any] | None = None,
        modules: dict[str, dict[str, Any]] | None = None,
    ) -> str:
        """The shape-flow picture as one self-contained HTML document.

        A block per layer call, folded to ``depth`` levels (default 2), click to open;
        the data flow when the trace was made with ``flow=True``, else the call order.
        ``diagnostic``: a failed forward's text shown next to the failing layer;
        ``inspection`` (``inspection.collect.inspect_model``) and ``modules``
        (``inspection.settings.module_settings``) add MACs, lint findings and settings.
        """
        from ..defaults import DEFAULT_DEPTH
        from ..picture.document import render
        from ..picture.flow import ModelPicture
        from ..shapes.tree import shape_text

        name = title or self.model_type or "model"
        data = self.to_dict()
        failed = not self.complete
        picture = ModelPicture(
            title=name,
            trace=data,
            status="failed" if failed else "passed",
            input=inputs_text(data, "-"),
            output="" if failed else shape_text(data["output_shape"]),
            failure=diagnostic.splitlines()[0] if diagnostic else None,
            diagnostic=diagnostic,
            inspection=inspection,
            modules=modules,
        )
        return render([picture], depth=DEFAULT_DEPTH if depth is None else depth, title=f"CNN shapes: {name}")

    def save_html(self, path: str | Path, **options: Any) -> Path:
        """Write ``to_html(**options)`` to ``path`` (atomically); return the path."""
        from ..fileio import write_atomic

        target = Path(path)
        write_atomic(target, self.to_html(**options))
        return target

    def _repr_html_(self) -> str:
        """Jupyter shows a trace as its picture (in an isolated frame)."""
        from ..picture.document import frame

        return frame(self.to_html())

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form with stable keys; reports and baselines are built on it."""
        out: dict[str, Any] = {
            "format": TRACE_FORMAT,
            "model": self.model_type,
            "device": self.device,
            "dtype": self.dtype,
            "train": self.train,
            "input_shapes": to_json(list(self.input_shapes)),
            "output_shape": to_json(self.output_shape),
            "total_params": self.total_params,
            "trainable_params": self.trainable_params,
            "layers": [r.to_dict() for r in self.layers],
        }
        if self.input_kwargs:
            out["input_kwargs"] = to_json(self.input_kwargs)
        if self.note:
            out["note"] = self.note
        if not self.complete:
            out["complete"] = False
        if self.wrapper:
            out["wrapper"] = self.wrapper
        if self.symbolic is not None:
            out["symbolic"] = self.symbolic
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ShapeTrace:
        """Rebuild a trace from ``to_dict()`` output (e.g. sent by an xdist worker)."""
        shape = from_json

        layers = [
            LayerRecord(
                name=d["name"],
                type=d["type"],
                depth=d["depth"],
                call=d["call"],
                input_shapes=tuple(shape(x) for x in d["input_shapes"]),
                output_shape=shape(d["output_shape"]),
                num_params=d["num_params"],
                trainable_params=d["trainable_params"],
                is_leaf=d["is_leaf"],
                input_kwargs={k: shape(v) for k, v in d.get("input_kwargs", {}).items()},
                finished=d.get("finished", True),
                aliases=tuple(d.get("aliases", ())),
                sources=None if d.get("sources") is None else tuple(d["sources"]),
                returns=d.get("returns"),
                lazy=d.get("lazy", False),
                output_formula=formula_tree(d.get("output_formula")),
            )
            for d in data["layers"]
        ]
        return cls(
            layers=layers,
            output_shape=shape(data["output_shape"]),
            total_params=data["total_params"],
            trainable_params=data["trainable_params"],
            device=data["device"],
            model_type=data.get("model", ""),
            input_shapes=tuple(shape(x) for x in data.get("input_shapes", [])),
            input_kwargs={k: shape(v) for k, v in data.get("input_kwargs", {}).items()},
            dtype=data.get("dtype", "float32"),
            train=data.get("train", False),
            note=data.get("note"),
            complete=data.get("complete", True),
            wrapper=data.get("wrapper"),
            symbolic=data.get("symbolic"),
        )


def formula_json(tree: FormulaTree) -> Any:
    """A formula tree in JSON form, as ``to_json`` writes shapes: strings as they are, namedtuples
    as dicts, tuples as lists."""
    if tree is None or isinstance(tree, str):
        return tree
    if isinstance(tree, dict):
        return {str(k): formula_json(v) for k, v in tree.items()}
    fields = getattr(tree, "_fields", None)
    if fields is not None:
        return {str(k): formula_json(v) for k, v in zip(fields, tree, strict=True)}
    return [formula_json(v) for v in tree]


def formula_tree(value: Any) -> FormulaTree:
    """A formula tree back from ``formula_json`` (lists come back as tuples, namedtuples as dicts)."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, dict):
        return {k: formula_tree(v) for k, v in value.items()}
    return tuple(formula_tree(v) for v in value)


def inputs_text(trace_dict: dict[str, Any] | None, fallback: str) -> str:
    """``1x3x32x32`` style text of a trace's inputs (``to_dict()`` form; several joined by ', ')."""
    if not trace_dict:
        return fallback
    parts = [shape_text(shape) for shape in trace_dict.get("input_shapes", [])]
    parts += [
        f"{key}={shape_text(shape)}" for key, shape in sorted(trace_dict.get("input_kwargs", {}).items())
    ]
    return ", ".join(parts) or fallback
