"""Lint rules about which layer follows which, read from the trace's call order.

Each rule looks at leaf calls in the order the forward ran them (``context.Leaf``);
a module called several times may yield the same finding again, which ``lint``
reports once.
Where a function between two layers would change the verdict (a ReLU between a
conv and its BatchNorm keeps the bias useful), the rule also requires the second
layer to consume the very tensor the first returned; where it would not (any
element-wise op between a conv and an element-wise Dropout), call order and
shapes are enough.
"""

from __future__ import annotations

from collections.abc import Iterator

from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.conv import _ConvNd
from torch.nn.modules.dropout import _DropoutNd

from ..context import CROSS_ENTROPY, NLL, Leaf, LintContext
from ..findings import Finding

#: Modules that keep a conv feature map a feature map (same rank, per-position work).
_FEATURE_MAP_MODULES = frozenset(
    {
        "torch.nn.modules.activation",
        "torch.nn.modules.pooling",
        "torch.nn.modules.batchnorm",
        "torch.nn.modules.instancenorm",
        "torch.nn.modules.normalization",
        "torch.nn.modules.dropout",
    }
)


def _size(value: object) -> str:
    """A kernel size as written: ``3`` for (3, 3), ``(1, 3)`` otherwise."""
    if isinstance(value, tuple) and len(set(value)) == 1:
        return str(value[0])
    return str(value)


def constructor(module: nn.Module, cls: str | None = None, **changes: object) -> str:
    """``nn.Conv2d(3, 16, 3, bias=False)``: how to write the layer with ``changes``.

    ``cls``: the class the user wrote, when the module has become another: a lazy
    layer (``LazyConv2d``, initialised on the trace's copy) infers its input size,
    so the call leaves it out.
    """
    cls = cls or type(module).__name__
    lazy = cls.startswith("Lazy")
    if isinstance(module, _ConvNd):
        args = [str(module.in_channels), str(module.out_channels), _size(module.kernel_size)][lazy:]
        if module.stride != (1,) * len(module.stride):
            args.append(f"stride={_size(module.stride)}")
        if isinstance(module.padding, str) or any(module.padding):
            args.append(
                f"padding={module.padding!r}"
                if isinstance(module.padding, str)
                else f"padding={_size(module.padding)}"
            )
    elif isinstance(module, nn.Linear):
        args = [str(module.in_features), str(module.out_features)][lazy:]
    else:
        args = []
    args += [f"{key}={value!r}" for key, value in changes.items()]
    return f"nn.{cls}({', '.join(args)})"


def bias_before_batchnorm(ctx: LintContext) -> Iterator[Finding]:
    for a, b in ctx.pairs():
        layer = a.module
        if not (
            b.fed_by_previous
            and isinstance(b.module, _BatchNorm)
            and isinstance(layer, (_ConvNd, nn.Linear))
            and layer.bias is not None
        ):
            continue
        yield ctx.finding(
            "bias-before-batchnorm",
            a.name,
            f"{a.name} ({a.type}) has a bias ({layer.bias.numel():,} parameters) and its output "
            f"goes straight into {b.name} ({b.type}), which cancels it",
            f"create {a.name} without it: {constructor(layer, a.type, bias=False)}",
        )


def _reaches_conv(leaves: list[Leaf], index: int, rank: int) -> Leaf | None:
    """The conv whose feature map reaches ``leaves[index]`` through per-position layers."""
    for prev in reversed(leaves[:index]):
        out = prev.output_shape
        if out is None or len(out) != rank:
            return None
        if isinstance(prev.module, _ConvNd):
            return prev
        if type(prev.module).__module__ not in _FEATURE_MAP_MODULES:
            return None
    return None


def dropout_after_conv(ctx: LintContext) -> Iterator[Finding]:
    leaves = ctx.leaves
    for index, drop in enumerate(leaves):
        module = drop.module
        if not isinstance(module, (nn.Dropout, nn.AlphaDropout)):
            continue
        shape = drop.input_shape
        if shape is None or not 3 <= len(shape) <= 5:
            continue
        conv = _reaches_conv(leaves, index, len(shape))
        if conv is None:
            continue
        spatial = len(shape) - 2
        better = (
            f"nn.FeatureAlphaDropout(p={module.p})"
            if isinstance(module, nn.AlphaDropout)
            else f"nn.Dropout{spatial}d(p={module.p})"
        )
        yield ctx.finding(
            "dropout-after-conv",
            drop.name,
            f"{drop.name} ({drop.type}) zeroes single elements of the feature map "
            f"{list(shape)} that {conv.name} ({conv.type}) produced",
            f"use {better}, which drops whole channels",
        )


def batchnorm_after_dropout(ctx: LintContext) -> Iterator[Finding]:
    for a, b in ctx.pairs():
        if not (isinstance(a.module, _DropoutNd) and isinstance(b.module, _BatchNorm)):
            continue
        p = a.module.p
        if not (isinstance(p, (int, float)) and p > 0) or a.output_shape != b.input_shape:
            continue
        yield ctx.finding(
            "batchnorm-after-dropout",
            b.name,
            f"{b.name} ({b.type}) normalizes what {a.name} ({a.type}, p={p}) lets through",
            f"move {a.name} after the last BatchNorm (e.g. right before the classifier), or "
            f"drop it: {b.name} regularizes on its own",
        )


def softmax_before_cross_entropy(ctx: LintContext) -> Iterator[Finding]:
    observation = ctx.observation
    if observation is None or not ctx.leaves:
        return
    root = observation.calls[0]
    last = ctx.leaves[-1]
    if root.returns_last_leaf and isinstance(last.module, (nn.Softmax, nn.LogSoftmax)):
        softmax = isinstance(last.module, nn.Softmax)
        name, kind, where = last.name, last.type, f"{last.name} ({last.type})"
        remove = f"remove {last.name}"
        dim = getattr(last.module, "dim", 1)
    elif root.returned_op in ("softmax", "log_softmax"):
        softmax = root.returned_op == "softmax"
        name, kind = "", f"F.{root.returned_op}"
        where = f"F.{root.returned_op} in its forward()"
        remove = f"drop the {kind} from forward()"
        dim = 1
    else:
        return
    if ctx.loss == CROSS_ENTROPY:
        what = "probabilities" if softmax else "log-probabilities"
        yield ctx.finding(
            "softmax-before-cross-entropy",
            name,
            f"the model ends in {where} and returns {what}, but it is "
            "trained with CrossEntropyLoss, which applies log-softmax to raw logits itself",
            f"{remove} and return the logits; apply softmax where probabilities are "
            "needed (at inference)" + ("" if softmax else ", or keep it and train with NLLLoss"),
        )
    elif ctx.loss == NLL and softmax:
        replacement = f"nn.LogSoftmax(dim={dim})" if name else f"F.log_softmax(x, dim={dim})"
        yield ctx.finding(
            "softmax-before-cross-entropy",
            name,
            f"the model ends in {where} but is trained with NLLLoss, which expects log-probabilities",
            f"replace {name or kind} by {replacement}, or remove it and train with CrossEntropyLoss",
        )
