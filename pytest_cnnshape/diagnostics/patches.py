"""Fixes as patches: the change a diagnosis proposes, as data, applied to a twin of the model.

A rule (or the search over the data flow) proposes each fix as a ``Patch``. A patch is
data (``edits``: a layer with its settings changed, a new layer, a transform of a
tensor, an edit of one expression of a forward) and its ``text``, what the user reads
and pastes, is rendered from that data; nothing is built by evaluating text:

* ``ReplaceLayer``: the layer at a qualified name becomes what a recipe builds (the same
  layer with other settings, or another layer);
* ``TransformInput``: the model's first input transformed (``x.permute(0, 3, 1, 2)``)
  or given another shape;
* ``RetypeInput``: an input given as a shape is made in another dtype (``'8x50:long'``);
* ``FeedLayer``: forward code hands a layer a transform of what it received, or of what
  another layer returned (the view that folded the batch, undone);
* ``EditSource``: one expression of a forward replaced (``x.view(-1, 400)`` ->
  ``torch.flatten(x, 1)``, a shortcut ``x`` -> ``self.downsample(x)``): the method's
  syntax tree with that node swapped, compiled and bound to the twin only;
* ``Patches``: several at once (a fix that needs every site it names).

``twin(model, patch)`` builds the patched model without touching the user's: every
module on the path from the root to a changed one is copied shallowly (its own
registries and hook tables), every other module is shared, so no weight is copied;
the twin is then traced like the model itself (on meta its tensors are swapped for
meta twins for the run, as for any trace). A patch that cannot be applied to this
model (the forward's source is not available, a closure over a cell we cannot
rebuild, settings a class refuses) raises ``Unpatchable``: the fix stays unverified
and is not shown.
"""

from __future__ import annotations

import ast
import copy
import linecache
import types
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ..tracing.inputs import InputSpec, ShapeLeaf, parse_inputs
from .edits import LayerEdit, NewLayer, Recipe, Transform, Unbuildable

if TYPE_CHECKING:
    from ..tracing.modelview import ModelView

#: What a fix changes, for ranking and for saying what an alternative is.
LAYER, INPUT, CODE = "layer", "input", "code"


class Unpatchable(Exception):
    """Internal: this patch cannot be applied to this model; its fix is not verified."""


@dataclass(frozen=True, eq=False)
class Patch:
    """One change a fix makes; ``text`` is how it is shown (rendered from the data)."""

    @property
    def text(self) -> str:
        raise NotImplementedError

    @property
    def kind(self) -> str:
        """``layer``, ``input`` or ``code``."""
        raise NotImplementedError

    def parts(self) -> Iterator[Patch]:
        yield self

    def apply(self, twin: Twin) -> None:
        raise NotImplementedError

    def sites(self) -> tuple[str, ...]:
        """What the patch changes: layer names, ``input``, ``forward of <owner>``."""
        return tuple(s for part in self.parts() for s in part._site())

    def places(self) -> set[str]:
        """How many things the user changes: each layer, the input, each method (several
        expressions of one ``forward`` are one change of it)."""
        return {p for part in self.parts() for p in part._place()}

    def described(self, failing: str) -> str:
        """The text as a diagnosis of the layer ``failing`` shows it: a layer other than that
        one named (``layer3.0.conv2: nn.Conv2d(...)``)."""
        return self.text

    def _site(self) -> tuple[str, ...]:
        return ()

    def _place(self) -> tuple[str, ...]:
        return self._site()


@dataclass(frozen=True, eq=False)
class ReplaceLayer(Patch):
    """The layer ``name`` becomes what ``recipe`` builds."""

    name: str = ""
    recipe: Recipe | None = None

    @property
    def text(self) -> str:
        assert self.recipe is not None
        return self.recipe.text()

    @property
    def kind(self) -> str:
        return LAYER

    def apply(self, twin: Twin) -> None:
        assert self.recipe is not None
        original = twin.original(self.name)
        try:
            built = (
                self.recipe.build(twin.device)
                if isinstance(self.recipe, LayerEdit)
                else self.recipe.build(twin.device, original)
            )
        except Unbuildable as exc:
            raise Unpatchable(str(exc)) from exc
        twin.replace(original, built)

    def _site(self) -> tuple[str, ...]:
        return (self.name,)

    def described(self, failing: str) -> str:
        return self.text if self.name == failing else f"{self.name or '(root)'}: {self.text}"

    def changes(self) -> dict[str, Any]:
        """The settings an edit of the layer changes (empty for a layer of another class)."""
        return dict(self.recipe.changes) if isinstance(self.recipe, LayerEdit) else {}


@dataclass(frozen=True, eq=False)
class TransformInput(Patch):
    """The model's first input transformed by ``transform``, or given ``shape`` (``said``:
    how a new shape reads: ``an input of at least 1x3x64x64``)."""

    transform: Transform | None = None
    shape: tuple[int, ...] | None = None
    said: str = ""
    #: How the input is written in the user's terms: ``x``, ``batch["image"]``.
    written: str = "x"

    @property
    def text(self) -> str:
        if self.transform is not None:
            return self.transform.statement(self.written)
        return self.said

    @property
    def kind(self) -> str:
        return INPUT

    def apply(self, twin: Twin) -> None:
        twin.transform_input(self)

    def _site(self) -> tuple[str, ...]:
        return ("input",)


@dataclass(frozen=True, eq=False)
class RetypeInput(Patch):
    """The model input at ``where`` (a position or a keyword), given as ``leaf``, made in
    ``dtype`` instead (``spec``: the new spec as text)."""

    where: int | str = 0
    leaf: ShapeLeaf | None = None
    dtype: torch.dtype | None = None
    spec: str = ""

    @property
    def text(self) -> str:
        return self.spec

    @property
    def kind(self) -> str:
        return INPUT

    def apply(self, twin: Twin) -> None:
        assert self.leaf is not None
        twin.retype_input(self.where, self.leaf, self.dtype)

    def _site(self) -> tuple[str, ...]:
        return ("input",)


@dataclass(frozen=True, eq=False)
class FeedLayer(Patch):
    """Forward code hands layer ``name`` the result of ``transform``.

    Of what the layer received, or, with ``source``, of what the layer ``source`` last
    returned (the map before the reshape that went wrong). ``why``: the words after the
    statement (``in place of the view that folded the batch``).
    """

    name: str = ""
    transform: Transform | None = None
    source: str | None = None
    why: str = ""

    @property
    def text(self) -> str:
        assert self.transform is not None
        return f"{self.transform.statement()}   ({self.why or f'before calling {self.name}'})"

    @property
    def kind(self) -> str:
        return CODE

    def apply(self, twin: Twin) -> None:
        assert self.transform is not None
        cell = None
        if self.source is not None:
            cell = _Cell()
            source = twin.original(self.source)
            twin.replace(source, _Captured(twin.current(source), cell))
        layer = twin.original(self.name)
        twin.replace(layer, _Fed(twin.current(layer), self.transform, cell))

    def _site(self) -> tuple[str, ...]:
        return (self.name,)


@dataclass(frozen=True, eq=False)
class EditSource(Patch):
    """One expression of a method of module ``owner`` replaced by ``code``.

    ``span`` is the expression's ``(lineno, col, end_lineno, end_col)`` in
    ``filename`` (as Python records it for each instruction); ``add`` gives the twin's
    owner new submodules (``("downsample", NewLayer(nn.Sequential, ...))``) the new code
    uses. ``shown``: the edited line as the user reads it (``with ...`` after it).
    """

    owner: str = ""
    function: str = ""
    filename: str = ""
    span: tuple[int, int, int, int] = (0, 0, 0, 0)
    code: str = ""
    add: tuple[tuple[str, NewLayer], ...] = ()
    shown: str = ""
    #: Other modules run the same method: an edit of it is theirs too.
    shared: bool = False

    @property
    def text(self) -> str:
        text = self.shown or edited_line(self.filename, self.span, self.code)
        if self.add:
            text += "   with " + ", ".join(f"self.{attr} = {layer.text()}" for attr, layer in self.add)
            if self.shared:
                text += " in this block (nn.Identity() in the others, whose shapes already meet)"
        return text

    @property
    def kind(self) -> str:
        return CODE

    def apply(self, twin: Twin) -> None:
        owner = twin.original(self.owner)
        method = _method(type(owner), self.function, self.filename)
        twin.edit(method, self.function, self.span, self.code)
        others = [
            m for m in twin.view.modules if m is not owner and _resolves(type(m), self.function) is method
        ]
        for attr, layer in self.add:
            try:
                twin.add_child(owner, attr, layer.build(twin.device, owner))
            except Unbuildable as exc:
                raise Unpatchable(str(exc)) from exc
            for other in others:  # the blocks that keep their shape pass it on unchanged
                if attr not in other._modules:
                    twin.add_child(other, attr, nn.Identity())

    def _site(self) -> tuple[str, ...]:
        # the method is the class's: an edit of it is one site for every instance; each new
        # submodule is one more (its line in ``__init__``)
        line = f"{self.function} at {self.filename}:{self.span[0]}"
        return (line, *(f"{self.owner}.{attr} (new)" for attr, _ in self.add))

    def _place(self) -> tuple[str, ...]:
        return (f"{self.function} in {self.filename}", *self._site()[1:])

    @property
    def in_library(self) -> bool:
        """An edit of an installed package's code (torchvision's, timm's): the user's own fix
        is elsewhere (a setting, the input), so such an edit is believed last."""
        from ..tracing.failure import is_user_file

        return not is_user_file(self.filename)


@dataclass(frozen=True, eq=False)
class Patches(Patch):
    """Several changes at once (the Flatten's start_dim and the Linear after it); ``said``:
    how they read together (default: joined by ``, and``)."""

    items: tuple[Patch, ...] = ()
    said: str = ""
    #: The one place the user changes for all of them (a class's ``__init__``), if one.
    place: str = ""

    @property
    def text(self) -> str:
        return self.said or ", and ".join(p.text for p in self.items)

    def described(self, failing: str) -> str:
        if self.said:
            return self.said
        # several layers: each one named, the failing one too
        return ", and ".join(p.described("" if len(self.items) > 1 else failing) for p in self.items)

    def places(self) -> set[str]:
        return {self.place} if self.place else super().places()

    @property
    def kind(self) -> str:
        return self.items[0].kind if self.items else LAYER

    def parts(self) -> Iterator[Patch]:
        for item in self.items:
            yield from item.parts()

    def apply(self, twin: Twin) -> None:
        # layers are replaced before anything wraps them (a FeedLayer around the new Linear)
        for item in sorted(self.parts(), key=lambda p: not isinstance(p, ReplaceLayer)):
            item.apply(twin)


def joined(*patches: Patch, text: str = "", place: str = "") -> Patch:
    """One patch of several (``text``: how they read together; default: joined by ``, and``;
    ``place``: the one place they are all made at)."""
    items = tuple(p for patch in patches for p in patch.parts())
    if len(items) == 1 and not text:
        return items[0]
    return Patches(items, text, place)


# -- the twin --------------------------------------------------------------------------

#: The attribute under which a wrapper of the twin holds the layer it wraps.
WRAPPED = "layer"


def unwrapped(text: str) -> str:
    """A name or headline from a twin, with the layers a fix wrapped under their own names."""
    return text.replace(f".{WRAPPED} (", " (").removesuffix(f".{WRAPPED}")


class _Cell:
    """Holds the tensor a captured layer last returned (a plain attribute, no module)."""

    value: Any = None


class _Wrapper(nn.Module):
    """A layer of the twin that holds the user's layer under ``WRAPPED``."""

    @property
    def wrapped(self) -> nn.Module:
        layer = self._modules[WRAPPED]
        assert layer is not None
        return layer


class _Captured(_Wrapper):
    """A layer whose output is also kept for a ``FeedLayer`` further on."""

    def __init__(self, layer: nn.Module, cell: _Cell) -> None:
        super().__init__()
        self.add_module(WRAPPED, layer)
        self.cell = cell

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        out = self.wrapped(*args, **kwargs)
        self.cell.value = out
        return out


class _Fed(_Wrapper):
    """A layer given ``transform`` of its input (or of a captured tensor) instead."""

    def __init__(self, layer: nn.Module, transform: Transform, cell: _Cell | None) -> None:
        super().__init__()
        self.add_module(WRAPPED, layer)
        self.transform = transform
        self.cell = cell

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        x = self.cell.value if self.cell is not None else args[0]
        return self.wrapped(self.transform.apply(x), *args[1:], **kwargs)


def _shallow(module: nn.Module) -> nn.Module:
    """A copy of ``module`` with its own registries and hook tables, sharing their contents.

    Made without the class's ``__new__``: an fx ``GraphModule`` makes a class of its own
    there, without the generated ``forward`` its instance's class holds.
    """
    twin: nn.Module = object.__new__(module.__class__)
    state = dict(vars(module))
    for key, value in state.items():
        if type(value) in (dict, OrderedDict):
            state[key] = type(value)(value)
    twin.__dict__.update(state)
    return twin


class Twin:
    """The model with patches applied: changed modules new, every other one shared."""

    def __init__(self, view: ModelView, spec: InputSpec, device: torch.device, dtype: torch.dtype) -> None:
        self.view, self.spec, self.device, self.dtype = view, spec, device, dtype
        self._replaced: dict[int, nn.Module] = {}
        self._methods: dict[int, dict[str, types.FunctionType]] = {}
        self._edits: dict[types.FunctionType, tuple[str, dict[tuple[int, int, int, int], str]]] = {}
        self._added: dict[int, dict[str, nn.Module]] = {}

    def original(self, name: str) -> nn.Module:
        module = self.view.module(name)
        if module is None:
            raise Unpatchable(f"no module named {name!r}")
        return module

    def current(self, module: nn.Module) -> nn.Module:
        """What stands at ``module``'s place so far (a replacement, or itself)."""
        return self._replaced.get(id(module), module)

    def replace(self, module: nn.Module, by: nn.Module) -> None:
        self._replaced[id(module)] = by

    def edit(self, method: types.FunctionType, name: str, span: tuple[int, int, int, int], code: str) -> None:
        """An expression of ``method`` (a class's) replaced: in every instance that runs it."""
        self._edits.setdefault(method, (name, {}))[1][span] = code

    def _compile_edits(self) -> None:
        """Each edited method compiled once with all its edits, bound to every module of the
        model whose class runs it (the user edits the class, not one instance)."""
        for method, (name, spans) in self._edits.items():
            edited = _edited(method, spans)
            for module in self.view.modules:
                if _resolves(type(module), name) is method:
                    self._methods.setdefault(id(module), {})[name] = edited

    def add_child(self, owner: nn.Module, name: str, child: nn.Module) -> None:
        self._added.setdefault(id(owner), {})[name] = child

    def transform_input(self, patch: TransformInput) -> None:
        if patch.shape is not None:
            self.spec = self.spec.with_first_shape(patch.shape)
            return
        assert patch.transform is not None
        first = self.spec.tensors()[:1]
        shape = self.spec.first_shape()
        if shape is None:
            raise Unpatchable("the model has no input tensor to transform")
        real = first and self.device.type != "meta" and tuple(first[0].shape) == shape
        x = (
            first[0]
            if real
            else torch.empty(shape, dtype=self.spec.first_dtype() or self.dtype, device="meta")
        )
        try:
            out = patch.transform.apply(x)
        except Exception as exc:  # a device meta cannot stand for, a shape it does not fit
            raise Unpatchable(f"{patch.text} fails on the input: {exc}") from exc
        if not isinstance(out, torch.Tensor):
            raise Unpatchable(f"{patch.text} does not give a tensor")
        if real:
            self.spec = _with_first_tensor(self.spec, out)
        else:
            self.spec = self.spec.with_first_shape(tuple(out.shape), out.dtype)

    def retype_input(self, where: int | str, leaf: ShapeLeaf, dtype: torch.dtype | None) -> None:
        """The input at ``where``, given as ``leaf``, made in ``dtype``."""
        args, kwargs = list(self.spec.args), dict(self.spec.kwargs)
        given = args[where] if isinstance(where, int) and where < len(args) else kwargs.get(str(where))
        if given != leaf:
            raise Unpatchable(f"the model input {where!r} is not {leaf}")
        if isinstance(where, int):
            args[where] = ShapeLeaf(leaf.shape, dtype)
        else:
            kwargs[where] = ShapeLeaf(leaf.shape, dtype)
        self.spec = InputSpec(tuple(args), kwargs)

    def build(self) -> nn.Module:
        """The patched root (the model itself when no module changed)."""
        self._compile_edits()
        memo: dict[int, nn.Module] = {}

        def rebuild(module: nn.Module) -> nn.Module:
            key = id(module)
            if key in memo:
                return memo[key]
            if key in self._replaced:
                memo[key] = self._replaced[key]
                return memo[key]
            children = {
                name: (rebuild(child) if child is not None else None)
                for name, child in module._modules.items()
            }
            changed = any(children[n] is not c for n, c in module._modules.items())
            if not (changed or key in self._methods or key in self._added):
                memo[key] = module
                return module
            twin = _shallow(module)
            twin.__dict__["_modules"] = {**children, **self._added.get(key, {})}
            for name, function in self._methods.get(key, {}).items():
                twin.__dict__[name] = types.MethodType(function, twin)
            memo[key] = twin
            return twin

        return rebuild(self.view.root)


def _with_first_tensor(spec: InputSpec, tensor: torch.Tensor) -> InputSpec:
    """``spec`` with its first tensor replaced by ``tensor`` (a real input, transformed)."""
    done = False

    def swap(value: Any) -> Any:
        nonlocal done
        if not done and isinstance(value, torch.Tensor):
            done = True
            return tensor
        if isinstance(value, (tuple, list)):
            return type(value)(swap(v) for v in value)
        if isinstance(value, dict):
            return {k: swap(v) for k, v in value.items()}
        return value

    return InputSpec(tuple(swap(a) for a in spec.args), {k: swap(v) for k, v in spec.kwargs.items()})


def twin(
    view: ModelView, inputs: Any, patch: Patch, device: torch.device, dtype: torch.dtype
) -> tuple[nn.Module, InputSpec]:
    """The patched model and inputs: ``patch`` applied to a twin of ``view``'s model."""
    built = Twin(view, parse_inputs(inputs), device, dtype)
    patch.apply(built)
    return built.build(), built.spec


def apply(
    model: nn.Module, inputs: Any, patch: Patch, device: str | torch.device = "cpu"
) -> tuple[nn.Module, InputSpec]:
    """A fix applied for real: the patched model (new layers built on ``device``, every
    other module the user's own) and the inputs it then takes. The model is untouched."""
    from ..tracing.devices import model_dtype
    from ..tracing.modelview import ModelView

    return twin(ModelView.of(model), inputs, patch, torch.device(device), model_dtype(model))


# -- editing a method's source -----------------------------------------------------------


def _resolves(cls: type, name: str) -> Any:
    """What ``cls().name`` finds along the class's MRO."""
    for klass in cls.__mro__:
        if name in vars(klass):
            return vars(klass)[name]
    return None


def _method(cls: type, name: str, filename: str) -> types.FunctionType:
    for klass in cls.__mro__:
        function = vars(klass).get(name)
        if isinstance(function, types.FunctionType) and function.__code__.co_filename == filename:
            return function
    raise Unpatchable(f"{cls.__name__}.{name} is not a plain method defined in {filename}")


def function_of(module: nn.Module, code: types.CodeType) -> str | None:
    """The name of the plain method of ``module``'s class whose code is ``code``."""
    for klass in type(module).__mro__:
        for name, function in vars(klass).items():
            if isinstance(function, types.FunctionType) and function.__code__ is code:
                return name
    return None


class _Swap(ast.NodeTransformer):
    """Replaces the expressions at the given spans (the outermost one at each span)."""

    def __init__(self, replacements: dict[tuple[int, int, int, int], ast.expr]) -> None:
        self.replacements = replacements
        self.pending = set(replacements)

    def visit(self, node: ast.AST) -> Any:
        where = (
            getattr(node, "lineno", None),
            getattr(node, "col_offset", None),
            getattr(node, "end_lineno", None),
            getattr(node, "end_col_offset", None),
        )
        if isinstance(node, ast.expr) and where in self.pending:
            self.pending.discard(where)
            return ast.copy_location(self.replacements[where], node)
        return self.generic_visit(node)


def _edited(function: types.FunctionType, edits: dict[tuple[int, int, int, int], str]) -> types.FunctionType:
    """``function`` recompiled from its source with the expression at each span replaced."""
    filename = function.__code__.co_filename
    source = "".join(linecache.getlines(filename))
    try:
        tree = ast.parse(source)
        replacements = {span: _expression(code) for span, code in edits.items()}
    except SyntaxError as exc:
        raise Unpatchable(f"cannot parse the source of {function.__qualname__}") from exc
    found = next(
        (
            node
            for node in ast.walk(tree)
            if isinstance(node, ast.FunctionDef)
            and node.name == function.__name__
            and min([node.lineno, *(d.lineno for d in node.decorator_list)])
            == function.__code__.co_firstlineno
        ),
        None,
    )
    if found is None:
        raise Unpatchable(f"no source for {function.__qualname__}")
    node = copy.deepcopy(found)
    node.decorator_list = []
    swap = _Swap(replacements)
    node = swap.visit(node)
    if swap.pending:
        raise Unpatchable(f"no expression at {sorted(swap.pending)[0]} in {function.__qualname__}")
    # free variables (``__class__`` for super(), closures) become parameters of an outer
    # function, called with the original cells' contents
    free = function.__code__.co_freevars
    outer = ast.parse(f"def _cnnshape_outer({', '.join(free)}):\n    pass").body[0]
    assert isinstance(outer, ast.FunctionDef)
    outer.body = [node, ast.Return(ast.Name(node.name, ast.Load()))]
    module = ast.Module([outer], type_ignores=[])
    ast.fix_missing_locations(module)
    namespace: dict[str, Any] = {}
    exec(compile(module, filename, "exec"), function.__globals__, namespace)
    try:
        cells = [cell.cell_contents for cell in function.__closure__ or ()]
    except ValueError as exc:  # an empty cell
        raise Unpatchable(f"{function.__qualname__} closes over an unset variable") from exc
    edited: types.FunctionType = namespace["_cnnshape_outer"](*cells)
    edited.__defaults__ = function.__defaults__
    edited.__kwdefaults__ = function.__kwdefaults__
    return edited


def _expression(code: str) -> ast.expr:
    """``code`` as an expression node; a bare ``name := value`` (valid as a call's argument,
    where the edit puts it) parsed in the parentheses it needs alone."""
    try:
        return ast.parse(code, mode="eval").body
    except SyntaxError:
        return ast.parse(f"({code})", mode="eval").body


def edited_line(filename: str, span: tuple[int, int, int, int], code: str) -> str:
    """The source line with the expression at ``span`` replaced: how an edit reads."""
    line, col, end_line, end_col = span
    if line != end_line:
        return code
    text = linecache.getline(filename, line).rstrip("\n")
    return _without_comment(text[:col] + code + text[end_col:]).strip()


def _without_comment(line: str) -> str:
    """The line without its trailing ``# comment`` (a ``#`` inside a string stays)."""
    import io
    import tokenize

    try:
        for token in tokenize.generate_tokens(io.StringIO(line.strip() + "\n").readline):
            if token.type == tokenize.COMMENT:
                return line.strip()[: token.start[1]].rstrip()
    except (tokenize.TokenError, IndentationError, SyntaxError):
        pass
    return line


__all__ = [
    "CODE",
    "INPUT",
    "LAYER",
    "EditSource",
    "FeedLayer",
    "Patch",
    "Patches",
    "ReplaceLayer",
    "RetypeInput",
    "TransformInput",
    "Unpatchable",
    "apply",
    "edited_line",
    "function_of",
    "joined",
    "twin",
]
