"""``lint(model, inputs, optimizer)``: mistakes that run fine but train badly, with fixes.

Rules (ids, rationale: ``catalog.RULES``) that need a forward run on one observed
trace (``observe.observed_trace``: data flow, parameter use), on meta by default;
``linear-fixed-input-size`` traces once more at double the spatial size. Rules
that need what was not given (inputs, an optimizer, the loss) are listed in
``Findings.skipped`` rather than silently passing. Nothing changes the model.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from ..errors import LintError
from .catalog import INPUTS, LOSS, OPTIMIZER, RULES, check_rule_ids, tracks_use
from .context import LintContext, held_loss, parse_loss
from .findings import Finding, Findings
from .rules.flow import (
    batchnorm_after_dropout,
    bias_before_batchnorm,
    dropout_after_conv,
    softmax_before_cross_entropy,
)
from .rules.model import (
    batch_dimension_changed,
    dropout_probability,
    linear_fixed_input_size,
    unused_parameters,
)
from .rules.optim import adam_weight_decay, weight_decay_on_norm_or_bias

if TYPE_CHECKING:
    import torch
    from torch import nn

    from ..tracing.request import TraceRequest
    from .observe import Observation
    from .regularization import RegularizationReport

Check = Callable[[LintContext], Iterable[Finding]]

#: Rule id -> its check; every rule of ``catalog.RULES`` has one.
CHECKS: dict[str, Check] = {
    "bias-before-batchnorm": bias_before_batchnorm,
    "weight-decay-on-norm-or-bias": weight_decay_on_norm_or_bias,
    "adam-weight-decay": adam_weight_decay,
    "dropout-probability": dropout_probability,
    "dropout-after-conv": dropout_after_conv,
    "softmax-before-cross-entropy": softmax_before_cross_entropy,
    "batchnorm-after-dropout": batchnorm_after_dropout,
    "batch-dimension-changed": batch_dimension_changed,
    "unused-parameters": unused_parameters,
    "linear-fixed-input-size": linear_fixed_input_size,
}

NO_INPUTS = "no inputs= given"
NO_OPTIMIZER = "no optimizer= given"
NO_LOSS = "no loss= given and the model holds no CrossEntropyLoss/NLLLoss"
SCRIPTED = (
    "a TorchScript module hides its layers and their data flow (hooks do not fire inside it); "
    "lint the eager model (before torch.jit.script/trace)"
)


def _missing(needs: str, ctx: LintContext) -> str | None:
    """Why a rule cannot run in this context, or None when it can."""
    if needs in (INPUTS, LOSS) and ctx.observation is None:
        return NO_INPUTS
    if needs == OPTIMIZER and ctx.optimizer is None:
        return NO_OPTIMIZER
    if needs == LOSS and ctx.loss is None:
        return NO_LOSS
    return None


def check_batch_dim(batch_dim: object) -> int:
    """``batch_dim`` must be a whole number >= 0 (ArgumentError otherwise)."""
    from ..errors import ArgumentError

    if isinstance(batch_dim, bool) or not isinstance(batch_dim, int) or batch_dim < 0:
        raise ArgumentError(f"batch_dim={batch_dim!r} must be a whole number >= 0, e.g. batch_dim=1")
    return batch_dim


def needs_forward(ignore: Iterable[str]) -> bool:
    """True when a rule that is not ignored needs a forward."""
    skip = set(ignore)
    return any(rule.needs in (INPUTS, LOSS) and rule.id not in skip for rule in RULES)


def run_rules(
    model: nn.Module,
    observation: Observation | None,
    *,
    request: TraceRequest | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    loss: Any = None,
    ignore: tuple[str, ...] = (),
    batch_dim: int = 0,
    regularized: RegularizationReport | None = None,
) -> Findings:
    """Every rule not in ``ignore`` over one (unwrapped) model and its observed trace, if any;
    ``request``: the trace that observation made (None: no inputs were given);
    ``regularized``: the model's ``regularization(model, optimizer)``, when already made."""
    from ..tracing.modelview import ModelView
    from ..tracing.wrappers import is_script_module
    from .regularization import regularization_of

    view = ModelView.of(model)
    ctx = LintContext(
        model=model,
        view=view,
        regularization=regularized or regularization_of(model, optimizer),
        optimizer=optimizer,
        loss=parse_loss(loss) or held_loss(view),
        observation=observation,
        request=request,
        batch_dim=check_batch_dim(batch_dim),
    )
    findings: dict[tuple[str, str], Finding] = {}  # a layer called twice: one finding
    skipped: dict[str, str] = {}
    scripted = is_script_module(model)
    for rule in RULES:
        if rule.id in ignore:
            continue
        reason = SCRIPTED if scripted and rule.needs != OPTIMIZER else _missing(rule.needs, ctx)
        if reason is not None:
            skipped[rule.id] = reason
            continue
        for finding in CHECKS[rule.id](ctx):
            findings.setdefault((finding.rule, finding.layer), finding)
    return Findings(findings.values(), skipped=skipped, ignored=ignore)


def lint(
    model: nn.Module,
    inputs: Any = None,
    optimizer: torch.optim.Optimizer | None = None,
    *,
    loss: Any = None,
    ignore: Iterable[str] = (),
    device: str | torch.device = "auto",
    batch_dim: int = 0,
) -> Findings:
    """Find CNN mistakes that run but train badly; each finding says why and how to fix it.

    ``inputs`` (as for ``trace``) enables the rules that need a forward; without it
    they are listed in ``.skipped``. ``optimizer`` enables the weight-decay rules.
    ``loss`` says which loss trains the model (``nn.CrossEntropyLoss()``, its
    class, ``"cross_entropy"``, ``"nll"``); a CrossEntropyLoss/NLLLoss held by the
    model (``self.criterion = nn.CrossEntropyLoss()``) counts too. ``ignore``: rule
    ids to switch off. ``batch_dim``: the axis of the output that holds the batch, for a
    model that is sequence-first by design (``(T, B, C)`` for CTC: 1). Returns a list of
    ``Finding`` (empty when clean).
    A forward that fails raises ShapeMismatchError: fix that first.
    """
    from ..tracing.request import TraceRequest, check_model

    request = TraceRequest.of(model, inputs, device=device) if inputs is not None else None
    module = request.model if request is not None else check_model(model)
    return lint_model(module, request, optimizer, loss=loss, ignore=ignore, batch_dim=batch_dim)


def lint_model(
    model: nn.Module,
    request: TraceRequest | None,
    optimizer: torch.optim.Optimizer | None = None,
    *,
    loss: Any = None,
    ignore: Iterable[str] = (),
    batch_dim: int = 0,
    observation: Observation | None = None,
) -> Findings:
    """``lint`` of an unwrapped model, traced as ``request`` says (None: no inputs);
    ``observation``: that trace, observed with parameter use, when already made."""
    from ..tracing.wrappers import is_script_module
    from .observe import observed_trace
    from .regularization import check_optimizer

    ignored = check_rule_ids(ignore, "ignore=")
    if optimizer is not None:
        check_optimizer(optimizer)
    parse_loss(loss)
    check_batch_dim(batch_dim)
    if observation is None and request is not None and needs_forward(ignored) and not is_script_module(model):
        observation = observed_trace(request, parameter_use=tracks_use(ignored))
    return run_rules(
        model,
        observation,
        request=request,
        optimizer=optimizer,
        loss=loss,
        ignore=ignored,
        batch_dim=batch_dim,
    )


def assert_no_lint(
    model: nn.Module,
    inputs: Any = None,
    optimizer: torch.optim.Optimizer | None = None,
    *,
    loss: Any = None,
    ignore: Iterable[str] = (),
    device: str | torch.device = "auto",
    batch_dim: int = 0,
) -> Findings:
    """``lint`` that raises LintError (an AssertionError) listing every finding with its fix.

    Returns the (empty) findings, whose ``.skipped`` says which rules could not run.
    """
    __tracebackhide__ = True
    findings = lint(model, inputs, optimizer, loss=loss, ignore=ignore, device=device, batch_dim=batch_dim)
    if findings:
        raise LintError(type(model).__name__, findings)
    return findings
