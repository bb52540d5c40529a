"""Plant one shape mistake at a time in real CNNs and judge what ``trace`` makes of each.

    PYTHONPATH=. /work/bench-venv/bin/python benchmarks/mutations.py        # torchvision, timm, the corpus
    PYTHONPATH=. python benchmarks/mutations.py --corpus-only               # no torchvision needed
    ... --models tv:resnet18,timm:dla34 --kinds stride,padding --list       # the planted mistakes only
    ... --json before.json                                                  # every case, to diff two runs

The models: the torchvision and timm architectures listed below (built with
``weights=None`` / ``pretrained=False``) and the project's own working corpus
(``tests/corpus``), each with its usual input. The mistakes (``KINDS``): a Linear's
``in_features``, a conv's ``in_channels`` or ``out_channels``, a norm's size
(BatchNorm ``num_features``, GroupNorm ``num_channels``, LayerNorm
``normalized_shape``), a conv's stride 1 -> 2 or its padding removed inside a residual
branch, and input mistakes (channels-last, no batch axis, 1 channel for 3 or 3 for 1,
an input too small for the stack).

How a mistake is planted. While a model is built, a profile hook records what the
``__init__`` of every conv, linear and norm layer received (any class: timm's
``BatchNormAct2d`` and ``ScaledStdConv2d`` too). A layer is mutated by calling its own
class again with those arguments and one changed; a layer whose recorded arguments
do not rebuild it exactly (same repr, same parameter and buffer shapes) is never
planted. The new layer replaces the old one, wherever the model holds it, in a fresh
copy of the model. A conv is "inside a residual branch" when, in a plain forward of
the original, its output reaches one operand of an ``add`` of two same-shaped tensors
that both come from the input and not the other (a ``TorchFunctionMode`` follows which
convs each tensor passed through). Which layer and which new value: drawn from a
``random.Random`` seeded by ``--seed``, the model and the kind, so a run with filters
plants the same mistakes as the full run.

The truth is plain torch's, never this project's: the mutated model runs a plain CPU
forward (eval, no_grad) under forward pre/post hooks. A mutation whose forward does
not fail is discarded and another is drawn (up to ``DRAWS`` per kind); otherwise the
innermost module whose pre-hook ran and whose post-hook did not is the failing module.

Judging ``pytest_cnnshape.trace(mutated, input_shape)`` (default device "auto"):
named     its layer is the failing module or the planted one; or, when the failure
          is in a container's own forward() code (the add of a residual block), a
          module inside that container or one of its (non-root) ancestors;
verified  it shows a fix that its own twin ran to the output;
runs      that fix, applied by ``patches.apply`` and run in a plain CPU forward with real
          tensors, runs to the original model's output shape (the original run on the
          input the fix gives, or on the intended input when it cannot take that one);
exact     and every module's output shapes equal the original model's on that input;
wrong     a verified fix that plain torch refutes (fails, or another output shape); the
          list of problems says when the fix shown beside it as "or" runs to the original
          output (a model returning the very map a layer refuses: either width can be meant);
crash     ``trace`` raised something other than ShapeMismatchError/TraceError, did not
          raise at all, or ``patches.apply`` raised for a shown fix.
The time is the wall time of the ``trace`` call (after one warm-up diagnosis, as the first
in a process also pays for imports); p95 is the nearest-rank 95th percentile.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import random
import statistics
import sys
import time
import warnings
import weakref
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from types import FrameType
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

DEFAULT_SEED = 21
#: Mistakes planted per model at most (one per kind).
PER_MODEL = 5
#: Candidates drawn per kind and model before the kind is given up (each costs a plain forward).
DRAWS = 8
KINDS = ("in_features", "in_channels", "norm_size", "out_channels", "stride", "padding", "input")
INPUT_MISTAKES = ("channels_last", "no_batch", "channels", "too_small")
#: Spatial sizes tried, largest first, for an input too small for the stack.
SMALL_SIZES = (64, 48, 32, 24, 16, 12, 8, 6, 4, 3, 2, 1)

#: torchvision classification models and their input side (weights=None).
TORCHVISION: tuple[tuple[str, int], ...] = (
    ("alexnet", 224),
    ("convnext_tiny", 224),
    ("densenet121", 224),
    ("efficientnet_b0", 224),
    ("efficientnet_b1", 224),
    ("efficientnet_v2_s", 224),
    ("googlenet", 224),
    ("inception_v3", 299),
    ("mnasnet0_5", 224),
    ("mnasnet1_0", 224),
    ("mobilenet_v2", 224),
    ("mobilenet_v3_large", 224),
    ("mobilenet_v3_small", 224),
    ("regnet_x_400mf", 224),
    ("regnet_y_400mf", 224),
    ("regnet_y_800mf", 224),
    ("resnet18", 224),
    ("resnet34", 224),
    ("resnet50", 224),
    ("resnext50_32x4d", 224),
    ("shufflenet_v2_x0_5", 224),
    ("shufflenet_v2_x1_0", 224),
    ("squeezenet1_0", 224),
    ("squeezenet1_1", 224),
    ("vgg11_bn", 224),
    ("wide_resnet50_2", 224),
)

#: timm models and their input side (pretrained=False; the side of their pretrained_cfg).
TIMM: tuple[tuple[str, int], ...] = (
    ("coat_lite_tiny", 224),
    ("convnext_atto", 224),
    ("convnext_nano", 224),
    ("cs3darknet_s", 256),
    ("cspdarknet53", 256),
    ("cspresnet50", 256),
    ("darknet53", 256),
    ("densenet121", 224),
    ("dla34", 224),
    ("dpn68", 224),
    ("eca_resnet33ts", 256),
    ("edgenext_xx_small", 256),
    ("efficientformer_l1", 224),
    ("efficientnet_b0", 224),
    ("efficientvit_b0", 224),
    ("ese_vovnet19b_dw", 224),
    ("fastvit_t8", 256),
    ("fbnetc_100", 224),
    ("gernet_s", 224),
    ("ghostnet_100", 224),
    ("hardcorenas_a", 224),
    ("hrnet_w18_small", 224),
    ("lcnet_050", 224),
    ("levit_128s", 224),
    ("mixnet_s", 224),
    ("mobilenetv3_large_100", 224),
    ("mobilenetv3_small_050", 224),
    ("mobileone_s0", 224),
    ("mobilevit_xs", 256),
    ("nf_resnet26", 224),
    ("poolformer_s12", 224),
    ("regnetx_004", 224),
    ("regnety_004", 224),
    ("regnetz_b16", 224),
    ("repvgg_a0", 224),
    ("res2net50_26w_4s", 224),
    ("resnest14d", 224),
    ("resnet10t", 176),
    ("resnet18d", 224),
    ("resnet26d", 224),
    ("resnetv2_50", 224),
    ("rexnet_100", 224),
    ("selecsls42b", 224),
    ("semnasnet_050", 224),
    ("seresnet18", 224),
    ("skresnet18", 224),
    ("spnasnet_100", 224),
    ("tinynet_a", 192),
    ("vit_tiny_patch16_224", 224),
    ("vovnet39a", 224),
)

#: Parameters of the models whose times are also shown apart, as ResNet-50-sized (25.6 M).
RESNET50_SIZED = (20_000_000, 70_000_000)

#: The project's working models (tests/corpus/zoo.py ZOO keys) with one plain input shape.
CORPUS_ZOO = (
    "lenet_sequential",
    "functional_ops",
    "reused_modules",
    "shared_module",
    "tied_weights",
    "module_list",
    "module_dict_dict_output",
    "deep_nesting",
    "namedtuple_and_nontensor_output",
    "in_place_ops",
    "resnet_bottlenecks",
    "unet_skip_concat",
    "dynamic_loop",
    "conv1d",
    "conv3d",
    "regularized",
)

#: tests/corpus/training_zoo.py TRAINING_ZOO, by the words before " (" in its keys.
CORPUS_TRAINING = (
    "mnist-net",
    "vgg_style example",
    "resnet_style example",
    "resnet-50",
    "unet_style example",
    "milesial unet",
    "nearest unet",
    "lenet example",
)

Shape = tuple[int, ...]


@dataclass(frozen=True)
class Entry:
    """A model to plant mistakes in: a name, how to build it, the input it takes."""

    name: str
    build: Callable[[], nn.Module]
    shape: Shape


def real_models() -> list[Entry]:
    """The torchvision and timm architectures (imported only here)."""
    import timm
    import torchvision

    def tv(name: str) -> Callable[[], nn.Module]:
        return lambda: getattr(torchvision.models, name)(weights=None)

    def tm(name: str) -> Callable[[], nn.Module]:
        return lambda: timm.create_model(name, pretrained=False)

    return [Entry(f"tv:{n}", tv(n), (1, 3, side, side)) for n, side in TORCHVISION] + [
        Entry(f"timm:{n}", tm(n), (1, 3, side, side)) for n, side in TIMM
    ]


def corpus_models() -> list[Entry]:
    """The project's own working models (no torchvision)."""
    from tests.corpus.training_zoo import TRAINING_ZOO
    from tests.corpus.zoo import ZOO

    training = {key.split(" (")[0]: value for key, value in TRAINING_ZOO.items()}
    entries = [Entry(f"corpus:{n}", ZOO[n][0], tuple(ZOO[n][1])) for n in CORPUS_ZOO]
    entries += [
        Entry("corpus:" + n.replace(" example", "").replace(" ", "_"), training[n][0], tuple(training[n][1]))
        for n in CORPUS_TRAINING
    ]
    return entries


# -- how each layer was constructed ---------------------------------------------------------

_CONV = nn.modules.conv._ConvNd
_PLANTABLE = (_CONV, nn.Linear, nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)


def _copied(value: Any) -> Any:
    try:
        return copy.deepcopy(value)
    except Exception:  # a value that cannot be copied is kept as it is
        return value


@dataclass(frozen=True)
class Construction:
    """A layer's class and the arguments its ``__init__`` received, to build it again with one changed."""

    cls: type[nn.Module]
    settings: dict[str, Any]
    #: Names of ``settings`` passed by position (before ``*args``, or positional-only).
    positional: tuple[str, ...]
    varargs: tuple[Any, ...]
    varkw: dict[str, Any]

    def get(self, name: str) -> Any:
        return self.settings[name] if name in self.settings else self.varkw.get(name)

    def has(self, name: str) -> bool:
        return name in self.settings or name in self.varkw

    def build(self, **changes: Any) -> nn.Module:
        settings = {**self.settings, **{k: v for k, v in changes.items() if k in self.settings}}
        varkw = {**self.varkw, **{k: v for k, v in changes.items() if k in self.varkw}}
        args = [settings.pop(name) for name in self.positional]
        with torch.device("cpu"):
            return self.cls(*args, *self.varargs, **settings, **varkw)


def _construction(frame: FrameType, module: nn.Module) -> Construction:
    code, values = frame.f_code, frame.f_locals
    names = code.co_varnames
    positional = names[1 : code.co_argcount]
    end = code.co_argcount + code.co_kwonlyargcount
    settings = {n: _copied(values[n]) for n in names[1:end]}
    varargs: tuple[Any, ...] = ()
    varkw: dict[str, Any] = {}
    if code.co_flags & 0x04:  # CO_VARARGS
        varargs = tuple(_copied(values[names[end]]))
        end += 1
    if code.co_flags & 0x08:  # CO_VARKEYWORDS
        varkw = {k: _copied(v) for k, v in values[names[end]].items()}
    by_position = positional if varargs or code.co_posonlyargcount > 1 else ()
    return Construction(type(module), settings, by_position, varargs, varkw)


@contextmanager
def recording() -> Iterator[weakref.WeakKeyDictionary[nn.Module, Construction]]:
    """Record the outermost ``__init__`` call of every conv, linear and norm layer built inside."""
    calls: weakref.WeakKeyDictionary[nn.Module, Construction] = weakref.WeakKeyDictionary()

    def profile(frame: FrameType, event: str, arg: Any) -> None:
        if event != "call" or frame.f_code.co_name != "__init__" or not frame.f_code.co_argcount:
            return
        module = frame.f_locals.get(frame.f_code.co_varnames[0])
        if isinstance(module, _PLANTABLE) and module not in calls:
            calls[module] = _construction(frame, module)

    previous = sys.getprofile()
    sys.setprofile(profile)
    try:
        yield calls
    finally:
        sys.setprofile(previous)


# -- plain torch: the truth --------------------------------------------------------------------


def _tensors(value: Any) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in _tensors(v)]
    if isinstance(value, dict):
        return [t for v in value.values() for t in _tensors(v)]
    return []


def shape_of(value: Any) -> Any:
    """A tensor's shape; the same structure of shapes for tuples, lists and dicts; None otherwise."""
    if isinstance(value, torch.Tensor):
        return tuple(value.shape)
    if isinstance(value, (list, tuple)):
        return tuple(shape_of(v) for v in value)
    if isinstance(value, dict):
        return {k: shape_of(v) for k, v in value.items()}
    return None


_INPUT = "<input>"
_ADDS = frozenset({"add", "add_", "__add__", "__iadd__", "__radd__"})


class Lineage(TorchFunctionMode):
    """Which convs each tensor passed through; those on one side only of an add of two
    same-shaped tensors that both come from the input are inside a residual branch."""

    def __init__(self) -> None:
        super().__init__()
        # id -> (the tensor, kept alive so ids stay unique; the convs it passed through)
        self.sources: dict[int, tuple[torch.Tensor, frozenset[str]]] = {}
        self.branches: set[str] = set()

    def of(self, tensor: torch.Tensor) -> frozenset[str]:
        entry = self.sources.get(id(tensor))
        return entry[1] if entry is not None and entry[0] is tensor else frozenset()

    def mark(self, value: Any, names: frozenset[str]) -> None:
        for tensor in _tensors(value):
            self.sources[id(tensor)] = (tensor, self.of(tensor) | names)

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        came = frozenset().union(*(self.of(t) for t in _tensors((args, kwargs))))
        if getattr(func, "__name__", "") in _ADDS:
            self._residual([*args[:2], kwargs.get("other")])
        out = func(*args, **kwargs)
        self.mark(out, came)
        return out

    def _residual(self, operands: list[Any]) -> None:
        tensors = [t for t in operands if isinstance(t, torch.Tensor)]
        if len(tensors) != 2 or tensors[0].shape != tensors[1].shape:
            return
        left, right = (self.of(t) for t in tensors)
        if _INPUT in left and _INPUT in right:
            self.branches |= (left ^ right) - {_INPUT}


@dataclass
class Run:
    """A plain forward: the output's shapes, every module's, or where it failed."""

    output: Any = None
    #: module name -> the shapes of its outputs, one per call
    shapes: dict[str, list[Any]] = field(default_factory=dict)
    #: The innermost module running when the forward raised ("" = the root's own forward).
    failing: str | None = None
    #: That module has children: it raised in its own forward() code.
    container: bool = False
    error: str | None = None
    #: Convs inside a residual branch (when asked for).
    residual: frozenset[str] = frozenset()

    @property
    def ok(self) -> bool:
        return self.error is None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}"


def run_plain(
    model: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any] | None = None, *, residual: bool = False
) -> Run:
    """Run ``model`` on real tensors under plain forward hooks (eval, no_grad)."""
    names: dict[int, str] = {}
    for name, module in model.named_modules():
        names.setdefault(id(module), name)
    run, stack = Run(), []
    lineage = Lineage() if residual else None

    def pre(module: nn.Module, inputs: Any) -> None:
        stack.append(module)

    def post(module: nn.Module, inputs: Any, output: Any) -> None:
        while stack and stack.pop() is not module:
            pass
        name = names[id(module)]
        run.shapes.setdefault(name, []).append(shape_of(output))
        if lineage is not None and isinstance(module, _CONV):
            lineage.mark(output, frozenset({name}))

    modules = {id(m): m for m in model.modules()}.values()
    handles = [h for m in modules for h in (m.register_forward_pre_hook(pre), m.register_forward_hook(post))]
    try:
        if lineage is not None:
            lineage.mark((args, kwargs), frozenset({_INPUT}))
        with torch.no_grad(), lineage if lineage is not None else nullcontext():
            run.output = shape_of(model(*args, **(kwargs or {})))
    except Exception as exc:
        run.error = _first_line(exc)
        if stack:
            run.failing = names[id(stack[-1])]
            run.container = next(stack[-1].children(), None) is not None
    finally:
        for handle in handles:
            handle.remove()
    if lineage is not None:
        run.residual = frozenset(lineage.branches)
    return run


def tensor(shape: Shape, dtype: torch.dtype | None = None) -> torch.Tensor:
    """A real input of ``shape`` (seeded; integer dtypes hold zeros)."""
    if dtype is not None and not dtype.is_floating_point:
        return torch.zeros(shape, dtype=dtype)
    return torch.randn(shape, generator=torch.Generator().manual_seed(0), dtype=dtype)


# -- planting ----------------------------------------------------------------------------------


@dataclass
class Subject:
    """A model prepared for planting: built once, the constructions of its layers, its plain run."""

    entry: Entry
    #: Built and set to eval; never run (mutated copies are made of it).
    pristine: nn.Module
    calls: dict[str, Construction]
    #: A copy of the original that is run, and its plain run on the usual input.
    reference: nn.Module
    intended: Run
    #: Its plain runs by the shapes of their inputs.
    runs: dict[str, Run]
    discarded: int = 0

    @property
    def params(self) -> int:
        """The model's parameter count (lazy parameters not counted)."""
        lazy = nn.parameter.UninitializedParameter
        return sum(p.numel() for p in self.pristine.parameters() if not isinstance(p, lazy))

    def original(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Run:
        """The original model's plain run on these inputs (cached by their shapes)."""
        key = _key(args, kwargs)
        if key not in self.runs:
            self.runs[key] = run_plain(self.reference, args, kwargs)
        return self.runs[key]


def _key(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    return repr((shape_of(args), shape_of(kwargs)))


def prepare(entry: Entry) -> Subject:
    """Build the model (recording its layers' constructions) and run the original once."""
    with torch.random.fork_rng(devices=[]), warnings.catch_warnings(), recording() as recorded:
        torch.manual_seed(0)  # the same weights every run; the caller's RNG is restored
        warnings.simplefilter("ignore")
        pristine = entry.build().eval()
    calls = {name: recorded[m] for name, m in pristine.named_modules() if m in recorded}
    reference = copy.deepcopy(pristine)
    args = (tensor(entry.shape),)
    run = run_plain(reference, args, residual=True)
    if not run.ok:
        raise RuntimeError(f"{entry.name} does not run on {entry.shape}: {run.error}")
    return Subject(entry, pristine, calls, reference, run, {_key(args, {}): run})


@dataclass
class Mutation:
    """One planted mistake and what plain torch makes of it."""

    model: str
    kind: str
    #: The planted layer ("" for an input mistake).
    module: str
    #: What changed: ``in_features 2048 -> 1024``, ``input 1x3x224x224 -> 1x224x224x3 (channels_last)``.
    change: str
    #: The input the mutated model is run with.
    shape: Shape
    #: Plain torch: the innermost module running when the forward raised, and its error.
    failing: str
    container: bool
    error: str
    #: The original model's parameter count.
    params: int
    mutated: nn.Module | None = field(default=None, repr=False, compare=False)

    @property
    def key(self) -> str:
        return f"{self.model} {self.kind} {self.module or self.change}"

    def describe(self) -> dict[str, Any]:
        """The mutation as JSON-ready values (without the mutated model)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "mutated"}


def _size(shape: Shape) -> str:
    return "x".join(map(str, shape))


def _resized(value: int, unit: int, rng: random.Random) -> int:
    """Another size, a multiple of ``unit`` (the groups): twice, half or one unit more."""
    per = value // unit
    return rng.choice(sorted({2 * per, per // 2, per + 1} - {per, 0})) * unit


def _norm_argument(construction: Construction) -> str | None:
    return next(
        (a for a in ("num_features", "num_channels", "normalized_shape") if construction.has(a)), None
    )


def _norm_size(module: nn.Module) -> Any:
    if isinstance(module, nn.GroupNorm):
        return module.num_channels
    if isinstance(module, nn.LayerNorm):
        return tuple(module.normalized_shape)
    return getattr(module, "num_features", None)


def _ones(value: Any) -> bool:
    return isinstance(value, tuple) and all(v == 1 for v in value)


def _padded(value: Any) -> bool:
    return isinstance(value, tuple) and all(isinstance(v, int) for v in value) and any(v > 0 for v in value)


def _spread(outputs: list[Any]) -> bool:
    """Whether a layer's outputs have a spatial size above 1."""
    return any(isinstance(s, tuple) and any(isinstance(d, int) and d > 1 for d in s[2:]) for s in outputs)


def _plain_conv(module: nn.Module) -> bool:
    return isinstance(module, _CONV) and not module.transposed


#: Per kind: which layers may be planted, and the attribute that shows the change took.
_TARGETS: dict[str, tuple[Callable[[nn.Module, Construction], bool], Callable[[nn.Module], Any]]] = {
    "in_features": (lambda m, c: isinstance(m, nn.Linear) and c.has("in_features"), lambda m: m.in_features),
    "in_channels": (lambda m, c: isinstance(m, _CONV) and c.has("in_channels"), lambda m: m.in_channels),
    "out_channels": (lambda m, c: isinstance(m, _CONV) and c.has("out_channels"), lambda m: m.out_channels),
    "norm_size": (
        lambda m, c: (
            isinstance(m, (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm))
            and _norm_argument(c) is not None
        ),
        _norm_size,
    ),
    "stride": (lambda m, c: _plain_conv(m) and _ones(m.stride) and c.has("stride"), lambda m: m.stride),
    "padding": (lambda m, c: _plain_conv(m) and _padded(m.padding) and c.has("padding"), lambda m: m.padding),
}


def candidates(subject: Subject, kind: str) -> list[str]:
    """The layers of ``kind`` that ran in the original forward, in ``named_modules`` order."""
    accepts = _TARGETS[kind][0]
    ran, residual = subject.intended.shapes, subject.intended.residual
    found = []
    for name, construction in subject.calls.items():
        module = subject.pristine.get_submodule(name)
        if isinstance(module, nn.modules.lazy.LazyModuleMixin) or name not in ran:
            continue
        if kind in ("stride", "padding") and name not in residual:
            continue
        if kind == "stride" and not _spread(ran[name]):
            continue  # a stride cannot change a 1x1 map
        if accepts(module, construction):
            found.append(name)
    return found


def _new_setting(kind: str, module: Any, construction: Construction, rng: random.Random) -> tuple[str, Any]:
    """The constructor argument to change and its new value."""
    if kind == "in_features":
        return "in_features", _resized(construction.get("in_features"), 1, rng)
    if kind in ("in_channels", "out_channels"):
        return kind, _resized(construction.get(kind), module.groups, rng)
    if kind == "stride":
        return "stride", 2 if isinstance(construction.get("stride"), int) else (2,) * len(module.stride)
    if kind == "padding":
        return "padding", 0
    argument = _norm_argument(construction)
    assert argument is not None
    value = construction.get(argument)
    unit = module.num_groups if isinstance(module, nn.GroupNorm) else 1
    if isinstance(value, int):
        return argument, _resized(value, unit, rng)
    return argument, type(value)([*value[:-1], _resized(value[-1], unit, rng)])


def _fingerprint(module: nn.Module) -> tuple[Any, ...]:
    tensors = [*module.named_parameters(), *module.named_buffers()]
    return type(module), repr(module), tuple((n, tuple(t.shape)) for n, t in tensors)


def _replace(root: nn.Module, old: nn.Module, new: nn.Module) -> None:
    """``new`` wherever ``root`` holds ``old`` (a layer reachable under two names changes at both)."""
    sites = [
        (parent, key) for parent in root.modules() for key, child in parent._modules.items() if child is old
    ]
    for parent, key in sites:
        parent._modules[key] = new


def _mutated_layer(
    subject: Subject, kind: str, name: str, rng: random.Random
) -> tuple[nn.Module, str] | None:
    """The layer ``name`` built again with one setting changed, and what changed; None when its
    recorded construction does not rebuild it exactly or the change does not take."""
    old = subject.pristine.get_submodule(name)
    construction = subject.calls[name]
    argument, value = _new_setting(kind, old, construction, rng)
    shows = _TARGETS[kind][1]
    try:
        same, new = construction.build(), construction.build(**{argument: value})
    except Exception:  # the class refuses the value (a check of its own)
        return None
    if _fingerprint(same) != _fingerprint(old) or shows(new) == shows(old):
        return None
    new.train(old.training)
    given = construction.get(argument)
    was = repr(given) if given is not None else f"None (= {shows(old)!r})"  # a default the class computes
    return new, f"{argument} {was} -> {value!r}"


def _with_layer(subject: Subject, name: str, layer: nn.Module) -> nn.Module:
    mutated = copy.deepcopy(subject.pristine)
    _replace(mutated, mutated.get_submodule(name), layer)
    return mutated


def _failing(
    subject: Subject, kind: str, model: nn.Module, *, module: str, change: str, shape: Shape
) -> Mutation | None:
    """The mutation, when its plain forward fails (None when it runs: not a shape bug)."""
    run = run_plain(model, (tensor(shape),))
    if run.ok:
        subject.discarded += 1
        return None
    assert run.failing is not None and run.error is not None
    entry = subject.entry.name
    return Mutation(
        entry, kind, module, change, shape, run.failing, run.container, run.error, subject.params, model
    )


def plant_layer(subject: Subject, kind: str, seed: int) -> Mutation | None:
    """The first of up to ``DRAWS`` seeded draws of a layer of ``kind`` whose change fails."""
    rng = random.Random(f"{seed}/{subject.entry.name}/{kind}")
    names = candidates(subject, kind)
    for name in rng.sample(names, min(DRAWS, len(names))):
        planted = _mutated_layer(subject, kind, name, rng)
        if planted is None:
            continue
        layer, change = planted
        model = _with_layer(subject, name, layer)
        mutation = _failing(subject, kind, model, module=name, change=change, shape=subject.entry.shape)
        if mutation is not None:
            return mutation
    return None


def _mistaken_inputs(shape: Shape, mistake: str) -> Iterator[Shape]:
    """The inputs a mistake of this kind gives (several sizes for ``too_small``, largest first)."""
    if len(shape) < 3:
        return
    batch, channels, *space = shape
    if mistake == "channels_last":
        yield (batch, *space, channels)
    elif mistake == "no_batch":
        yield (channels, *space)
    elif mistake == "channels" and channels in (1, 3):
        yield (batch, 4 - channels, *space)
    elif mistake == "too_small":
        yield from ((batch, channels, *(s,) * len(space)) for s in SMALL_SIZES if s < min(space))


def plant_input(subject: Subject, seed: int) -> Mutation | None:
    """An input mistake whose plain forward fails: the mistakes in a seeded rotation, the first that does."""
    start = zlib.crc32(f"{seed}/{subject.entry.name}/input".encode()) % len(INPUT_MISTAKES)
    shape = subject.entry.shape
    for mistake in INPUT_MISTAKES[start:] + INPUT_MISTAKES[:start]:
        for wrong in _mistaken_inputs(shape, mistake):
            change = f"input {_size(shape)} -> {_size(wrong)} ({mistake})"
            model = copy.deepcopy(subject.pristine)
            mutation = _failing(subject, "input", model, module="", change=change, shape=wrong)
            if mutation is not None:
                return mutation
    return None


def _available(subject: Subject, kind: str) -> bool:
    if kind == "input":
        return len(subject.entry.shape) >= 3
    return bool(candidates(subject, kind))


def chosen_kinds(subject: Subject, seed: int, per_model: int = PER_MODEL) -> list[str]:
    """The kinds planted in this model: ``per_model`` that it has layers for, from a seeded
    rotation of ``KINDS`` (the same with or without ``--kinds``: filters never change a case)."""
    start = zlib.crc32(f"{seed}/{subject.entry.name}".encode()) % len(KINDS)
    rotated = KINDS[start:] + KINDS[:start]
    return [k for k in rotated if _available(subject, k)][:per_model]


def plant(
    subject: Subject, seed: int, kinds: tuple[str, ...] = KINDS, per_model: int = PER_MODEL
) -> Iterator[Mutation]:
    """The model's mutations, one per chosen kind, in ``KINDS`` order."""
    chosen = set(chosen_kinds(subject, seed, per_model))
    for kind in KINDS:
        if kind not in chosen or kind not in kinds:
            continue
        mutation = plant_input(subject, seed) if kind == "input" else plant_layer(subject, kind, seed)
        if mutation is not None:
            yield mutation


# -- what pytest_cnnshape says (the only calls of its API) -------------------------------------


@dataclass
class Diagnosed:
    """What ``trace`` did with a mutated model."""

    #: ``diagnosed`` (ShapeMismatchError), ``trace_error``, ``crash`` or ``no_error``.
    outcome: str
    layer: str | None = None
    #: The diagnostic without its table of layers (or the error, for the other outcomes).
    message: str = ""
    fix: str | None = None
    #: A fix is shown and its twin ran to the output.
    verified: bool = False
    patch: Any = None
    #: The verified fix shown as "or", when there is one.
    alternative: Any = None
    #: Wall and CPU time of the ``trace`` call.
    seconds: float = 0.0
    cpu: float = 0.0


def diagnose(model: nn.Module, shape: Shape) -> Diagnosed:
    """``pytest_cnnshape.trace`` on the mutated model, timed (adapt here when the API changes)."""
    wall, cpu = time.perf_counter(), time.process_time()
    found = _traced(model, shape)
    found.seconds, found.cpu = time.perf_counter() - wall, time.process_time() - cpu
    return found


def _traced(model: nn.Module, shape: Shape) -> Diagnosed:
    from pytest_cnnshape import ShapeMismatchError, trace
    from pytest_cnnshape.errors import TraceError

    try:
        trace(model, shape)
    except ShapeMismatchError as err:
        shown = err.diagnosis.shown
        message = str(err).split("\nlayers up to the failure")[0]
        verified = shown is not None and shown.complete
        other = err.diagnosis.alternative
        return Diagnosed(
            "diagnosed",
            err.layer,
            message,
            err.fix,
            verified,
            shown and shown.patch,
            other.patch if other is not None and other.complete else None,
        )
    except TraceError as err:
        return Diagnosed("trace_error", err.layer, str(err))
    except Exception as err:
        return Diagnosed("crash", None, f"trace raised {_first_line(err)}")
    return Diagnosed("no_error", None, "trace ran without an error")


def apply_fix(
    model: nn.Module, shape: Shape, patch: Any
) -> tuple[nn.Module, tuple[Any, ...], dict[str, Any]]:
    """The shown fix applied for real on the CPU: the patched model and real inputs for it."""
    from pytest_cnnshape.diagnostics import patches
    from pytest_cnnshape.tracing.inputs import ShapeLeaf

    patched, spec = patches.apply(model, shape, patch, device="cpu")

    def real(value: Any) -> Any:
        if isinstance(value, ShapeLeaf):
            return tensor(tuple(value.shape), value.dtype)
        if isinstance(value, (list, tuple)):
            return type(value)(real(v) for v in value)
        if isinstance(value, dict):
            return {k: real(v) for k, v in value.items()}
        return value

    return patched, tuple(real(a) for a in spec.args), {k: real(v) for k, v in spec.kwargs.items()}


def warm_up() -> None:
    """One diagnosis before any is timed: the first in a process also pays for imports."""
    diagnose(nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(5)), (1, 3, 8, 8))


# -- judging ------------------------------------------------------------------------------------


@dataclass
class Verdict:
    """How our diagnosis of one mutation compares with plain torch."""

    outcome: str
    #: Wall and CPU time of the ``trace`` call.
    seconds: float
    cpu: float
    layer: str | None
    #: How the layer was named: ``failing``, ``planted``, ``related`` (inside or above the
    #: container whose forward() code failed) or ``""`` (not named).
    named: str
    verified: bool
    fix: str | None
    runs: bool = False
    exact: bool = False
    wrong: bool = False
    #: A wrong fix whose "or" (shown beside it) runs to the original output in plain torch.
    alternative_runs: bool = False
    crash: bool = False
    #: What went wrong, when something did (the plain error of a fix, an exception).
    detail: str = ""
    message: str = ""


def _inside(inner: str, outer: str) -> bool:
    return inner.startswith(outer + ".")


def named_how(layer: str | None, mutation: Mutation) -> str:
    """Whether the diagnosis names the failing or the planted module (see the module docstring)."""
    if layer is None:
        return ""
    if layer == mutation.failing:
        return "failing"
    if mutation.module and layer == mutation.module:
        return "planted"
    failing = mutation.failing
    if mutation.container and layer and failing and (_inside(layer, failing) or _inside(failing, layer)):
        return "related"
    return ""


def _checked(verdict: Verdict, plain: Run, want: Run, expected: Any) -> None:
    """Fill runs, exact and wrong from the patched model's plain run."""
    runs = plain.ok and plain.output == expected
    verdict.runs = verdict.verified and runs
    verdict.exact = verdict.runs and want.ok and all(plain.shapes.get(n) == s for n, s in want.shapes.items())
    verdict.wrong = verdict.verified and not runs
    if not runs:
        verdict.detail = (
            f"patched plain forward: {plain.error or f'output {plain.output}, expected {expected}'}"
        )
    elif not verdict.exact and verdict.verified:
        verdict.detail = (
            "runs; some module shapes differ from the original's on that input"
            if want.ok
            else "runs; the original model cannot take the input the fix gives"
        )


def judge(mutation: Mutation, subject: Subject) -> Verdict:
    """Diagnose the mutated model with ``trace``; check the shown fix in plain torch."""
    assert mutation.mutated is not None
    found = diagnose(mutation.mutated, mutation.shape)
    verdict = Verdict(
        outcome=found.outcome,
        seconds=found.seconds,
        cpu=found.cpu,
        layer=found.layer,
        named=named_how(found.layer, mutation),
        verified=found.verified,
        fix=found.fix,
        crash=found.outcome in ("crash", "no_error"),
        message=found.message,
    )
    if found.outcome in ("crash", "no_error"):
        verdict.detail = found.message
    if found.patch is None:
        return verdict
    try:
        patched, args, kwargs = apply_fix(mutation.mutated, mutation.shape, found.patch)
    except Exception as exc:
        verdict.crash, verdict.detail = True, f"patches.apply raised {_first_line(exc)}"
        return verdict
    plain = run_plain(patched, args, kwargs)
    want = subject.original(args, kwargs)
    _checked(verdict, plain, want, want.output if want.ok else subject.intended.output)
    if verdict.wrong and found.alternative is not None:
        verdict.alternative_runs = _runs_as_the_original(mutation, subject, found.alternative)
    return verdict


def _runs_as_the_original(mutation: Mutation, subject: Subject, patch: Any) -> bool:
    """Whether ``patch`` applied for real runs to the original model's output in plain torch."""
    assert mutation.mutated is not None
    try:
        patched, args, kwargs = apply_fix(mutation.mutated, mutation.shape, patch)
    except Exception:
        return False
    plain, want = run_plain(patched, args, kwargs), subject.original(args, kwargs)
    return plain.ok and plain.output == (want.output if want.ok else subject.intended.output)


@dataclass
class Case:
    """A mutation and its verdict."""

    mutation: Mutation
    verdict: Verdict

    def to_dict(self) -> dict[str, Any]:
        return {**self.mutation.describe(), **asdict(self.verdict)}


def measure(
    entries: list[Entry],
    seed: int = DEFAULT_SEED,
    kinds: tuple[str, ...] = KINDS,
    per_model: int = PER_MODEL,
    *,
    limit: int | None = None,
    report: Callable[[Subject, list[Case]], None] | None = None,
) -> Iterator[Case]:
    """Plant and judge, model by model, in order (at most ``limit`` cases)."""
    warm_up()
    count = 0
    for entry in entries:
        subject = prepare(entry)
        done = []
        for mutation in plant(subject, seed, kinds, per_model):
            if limit is not None and count >= limit:
                return
            case = Case(mutation, judge(mutation, subject))
            mutation.mutated = None
            count += 1
            done.append(case)
            yield case
        if report is not None:
            report(subject, done)


# -- the table ------------------------------------------------------------------------------------

HEADERS = (
    "kind",
    "cases",
    "named %",
    "verified %",
    "runs %",
    "exact %",
    "wrong",
    "crash",
    "TraceError",
    "median s",
    "p95 s",
)


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def _row(label: str, cases: list[Case]) -> list[Any]:
    verdicts = [c.verdict for c in cases]
    n = len(verdicts)

    def share(flag: Callable[[Verdict], bool]) -> float:
        return round(100 * sum(map(flag, verdicts)) / n, 1)

    times = [v.seconds for v in verdicts]
    return [
        label,
        n,
        share(lambda v: bool(v.named)),
        share(lambda v: v.verified),
        share(lambda v: v.runs),
        share(lambda v: v.exact),
        sum(v.wrong for v in verdicts),
        sum(v.crash for v in verdicts),
        sum(v.outcome == "trace_error" for v in verdicts),
        round(statistics.median(times), 3),
        round(_p95(times), 3),
    ]


def summary(cases: list[Case], by: str = "kind") -> list[list[Any]]:
    """One row per kind (in ``KINDS`` order) or per source (``tv``, ``timm``, ``corpus``), and overall."""

    def group(case: Case) -> str:
        return case.mutation.kind if by == "kind" else case.mutation.model.split(":")[0]

    labels = list(KINDS) if by == "kind" else list(dict.fromkeys(map(group, cases)))
    groups = {label: [c for c in cases if group(c) == label] for label in labels}
    rows = [_row(label, found) for label, found in groups.items() if found]
    return [*rows, _row("overall", cases)] if cases else []


def table(cases: list[Case], by: str = "kind") -> str:
    from tabulate import tabulate

    headers = (by, *HEADERS[1:])
    return tabulate(summary(cases, by), headers=headers, tablefmt="github")


def _resnet50_sized(params: int) -> bool:
    low, high = RESNET50_SIZED
    return low <= params <= high


def _times(cases: list[Case]) -> str:
    """Median and p95 of trace's wall and CPU time (CPU time is less sensitive to a busy machine),
    for every case and for the ResNet-50-sized models (``RESNET50_SIZED`` parameters)."""
    from tabulate import tabulate

    rows = []
    for label, chosen in (
        ("all cases", cases),
        ("ResNet-50-sized models", [c for c in cases if _resnet50_sized(c.mutation.params)]),
    ):
        for clock in ("wall", "cpu"):
            values = [c.verdict.seconds if clock == "wall" else c.verdict.cpu for c in chosen]
            if values:
                rows.append([f"{clock}, {label}", len(values), statistics.median(values), _p95(values)])
    return tabulate(
        rows, headers=("trace time", "cases", "median s", "p95 s"), floatfmt=".3f", tablefmt="github"
    )


def problems(cases: list[Case]) -> str:
    """Every wrong fix and every crash, with what plain torch and our code said."""
    lines = []
    for case in cases:
        v, m = case.verdict, case.mutation
        if v.wrong or v.crash:
            label = "WRONG" if v.wrong else "CRASH"
            beside = " (the 'or' shown beside it runs to the original output)" if v.alternative_runs else ""
            lines.append(f"{label} {m.key}: {m.change}; fix {v.fix!r}; {v.detail}{beside}")
    return "\n".join(lines)


# -- the command line -------------------------------------------------------------------------------


def _selected(entries: list[Entry], wanted: str | None) -> list[Entry]:
    if not wanted:
        return entries
    names = [w.strip() for w in wanted.split(",") if w.strip()]
    known = {e.name for e in entries} | {e.name.split(":")[0] for e in entries}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise SystemExit(f"unknown model(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return [e for e in entries if e.name in names or e.name.split(":")[0] in names]


def _kinds(wanted: str | None) -> tuple[str, ...]:
    if not wanted:
        return KINDS
    kinds = tuple(k.strip() for k in wanted.split(","))
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise SystemExit(f"unknown kind(s) {', '.join(unknown)}; kinds: {', '.join(KINDS)}")
    return kinds


def _progress(subject: Subject, cases: list[Case]) -> None:
    named = sum(bool(c.verdict.named) for c in cases)
    runs = sum(c.verdict.runs for c in cases)
    spent = sum(c.verdict.seconds for c in cases)
    print(
        f"  {subject.entry.name}: {len(cases)} cases, named {named}, runs {runs}, "
        f"{subject.discarded} discarded, trace {spent:.2f} s",
        flush=True,
    )


def _list(entries: list[Entry], seed: int, kinds: tuple[str, ...], per_model: int, limit: int | None) -> None:
    count = 0
    for entry in entries:
        subject = prepare(entry)
        for m in plant(subject, seed, kinds, per_model):
            if limit is not None and count >= limit:
                return
            count += 1
            print(f"{m.model:28s} {m.kind:12s} {m.module or '(input)':32s} {m.change}")
            print(f"{'':28s} fails in {m.failing or '(root)'!r}: {m.error[:100]}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--models", help="comma-separated names (tv:resnet18) or sources (tv, timm, corpus)")
    parser.add_argument("--kinds", help=f"comma-separated, of {', '.join(KINDS)}")
    parser.add_argument("--limit", type=int, help="stop after this many cases")
    parser.add_argument("--per-model", type=int, default=PER_MODEL)
    parser.add_argument(
        "--corpus-only", action="store_true", help="only the project's models (no torchvision)"
    )
    parser.add_argument("--json", type=Path, help="write every case here")
    parser.add_argument("--list", action="store_true", help="print the planted mutations, do not diagnose")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    entries = _selected(
        (corpus_models() if args.corpus_only else [*real_models(), *corpus_models()]), args.models
    )
    kinds = _kinds(args.kinds)
    if args.list:
        _list(entries, args.seed, kinds, args.per_model, args.limit)
        return
    start = time.perf_counter()
    print(f"seed {args.seed}, {len(entries)} models, torch {torch.__version__}", flush=True)
    cases = list(measure(entries, args.seed, kinds, args.per_model, limit=args.limit, report=_progress))
    elapsed = time.perf_counter() - start
    models = len({c.mutation.model for c in cases})
    print(f"\n{len(cases)} mutations in {models} models, {elapsed:.0f} s in all\n")
    print(table(cases))
    print()
    print(table(cases, by="source"))
    print("\n" + _times(cases))
    related = sum(c.verdict.named == "related" for c in cases)
    print(f"\nnamed through the container whose forward() failed (counted as named): {related}")
    found = problems(cases)
    print(("\n" + found) if found else "\nno wrong fix, no crash")
    if args.json is not None:
        data = {
            "seed": args.seed,
            "torch": torch.__version__,
            "seconds": round(elapsed, 1),
            "summary": [dict(zip(HEADERS, row, strict=True)) for row in summary(cases)],
            "by_source": [
                dict(zip(("source", *HEADERS[1:]), row, strict=True)) for row in summary(cases, "source")
            ],
            "cases": [c.to_dict() for c in cases],
        }
        args.json.write_text(json.dumps(data, indent=1, default=str) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
