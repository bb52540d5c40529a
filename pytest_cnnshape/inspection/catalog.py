"""The lint rules: stable ids, what each finds, why it matters, what it needs to run.

Torch-free, so ``[tool.cnnshape] lint.ignore`` is checked against these ids when
the config is read (a typo is a usage error, not a rule silently left on), and the
report can print a rule's rationale without loading torch. The checks themselves
live in ``rules_*`` modules; ``lint.CHECKS`` maps each id here to its check.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ..errors import ArgumentError, unknown

#: What a rule needs besides the model.
MODEL, INPUTS, OPTIMIZER, LOSS = "model", "inputs", "optimizer", "loss"


@dataclass(frozen=True)
class Rule:
    """One lint rule. ``id`` never changes once released: ignore lists name it."""

    id: str
    #: One line: what the rule finds.
    title: str
    #: The rationale, the same for every finding of the rule (``Finding.why``).
    why: str
    #: What the rule needs to run: ``model`` (nothing more), ``inputs`` (a forward),
    #: ``optimizer``, or ``loss`` (a forward and the training loss).
    needs: str


RULES: tuple[Rule, ...] = (
    Rule(
        "bias-before-batchnorm",
        "a Conv or Linear with a bias whose output goes straight into BatchNorm",
        "BatchNorm subtracts the per-channel mean (of the batch in training, the running "
        "mean in eval), which removes any constant added per channel just before it; its "
        "own shift (beta) does that job. The bias costs parameters, memory and optimizer "
        "state and learns nothing.",
        INPUTS,
    ),
    Rule(
        "weight-decay-on-norm-or-bias",
        "an optimizer param group that applies weight decay to biases or normalization weights",
        "Weight decay pulls weights towards zero to limit what a layer can fit. Biases and "
        "the scales and shifts of normalization layers add almost no capacity; decaying "
        "them drags BatchNorm scales towards zero and usually costs accuracy. Common "
        "training recipes keep them in a param group with weight_decay=0.",
        OPTIMIZER,
    ),
    Rule(
        "adam-weight-decay",
        "Adam (or NAdam, RAdam, Adamax) with weight_decay added to the gradient",
        "Adam's weight_decay adds decay * w to the gradient, which Adam then divides by "
        "the running gradient magnitude: weights with large gradients are barely decayed, "
        "so it is not the regularization it looks like. AdamW applies the decay to the "
        "weights directly, decoupled from the gradient (Loshchilov & Hutter, 2019).",
        OPTIMIZER,
    ),
    Rule(
        "dropout-probability",
        "a dropout layer with p = 0, p = 1 or p outside [0, 1]",
        "With p = 0 the layer does nothing (usually a leftover or a config value that did "
        "not arrive); with p = 1 it zeroes every activation in training, so nothing after "
        "it learns; a p outside [0, 1] (set after construction) makes the forward raise.",
        MODEL,
    ),
    Rule(
        "dropout-after-conv",
        "element-wise Dropout on a convolutional feature map, where Dropout2d is meant",
        "Neighbouring positions of a conv feature map are strongly correlated, so zeroing "
        "single elements removes little: the next convolution recovers them from their "
        "neighbours and the layer hardly regularizes. Dropout1d/2d/3d drop whole channels "
        "(spatial dropout, Tompson et al., 2015).",
        INPUTS,
    ),
    Rule(
        "softmax-before-cross-entropy",
        "a classifier ending in Softmax or LogSoftmax, trained with CrossEntropyLoss",
        "CrossEntropyLoss applies log-softmax itself and wants raw logits. After a Softmax "
        "it sees scores squashed into [0, 1], nearly uniform, so gradients shrink and "
        "training stalls; after a LogSoftmax the work is done twice. (NLLLoss is the "
        "opposite: it wants LogSoftmax, not Softmax.)",
        LOSS,
    ),
    Rule(
        "batchnorm-after-dropout",
        "BatchNorm right after a Dropout",
        "Dropout rescales the activations it keeps by 1/(1-p) in training and does nothing "
        "in eval, so the variance BatchNorm sees differs between the two modes: the running "
        "statistics learned in training do not fit eval inputs ('variance shift', Li et "
        "al., 2019) and eval accuracy drops. Dropout belongs after the last BatchNorm.",
        INPUTS,
    ),
    Rule(
        "batch-dimension-changed",
        "the output's first dimension differs from the input's batch size",
        "Every sample should pass through the model on its own. An output whose first "
        "dimension is not the batch size means samples were mixed or split, typically by "
        "x.view(-1, N) with the wrong N, which folds positions or channels into the batch: "
        "the model still runs and the loss pairs the wrong rows with the labels (or fails "
        "later with a confusing size error).",
        INPUTS,
    ),
    Rule(
        "unused-parameters",
        "a layer with parameters that the forward never reaches",
        "Parameters no forward uses get no gradient: they cost memory, optimizer state and "
        "checkpoint size, DistributedDataParallel raises unless find_unused_parameters=True, "
        "and the layer was usually meant to be used (a call forgotten in forward()).",
        INPUTS,
    ),
    Rule(
        "linear-fixed-input-size",
        "a Linear whose in_features fits only the input size it was written for",
        "A Linear after a flatten takes C*H*W features, which ties the model to one input "
        "size: any other size fails with 'mat1 and mat2 shapes cannot be multiplied'. An "
        "adaptive pooling layer before the flatten makes the feature count independent of "
        "the input size.",
        INPUTS,
    ),
)

RULES_BY_ID: dict[str, Rule] = {rule.id: rule for rule in RULES}
RULE_IDS: tuple[str, ...] = tuple(RULES_BY_ID)


def check_rule_ids(ids: Iterable[object], where: str) -> tuple[str, ...]:
    """The ids, validated and each once: an unknown id raises ArgumentError (a ValueError)
    naming it and the known ones.

    ``where`` says where the ids came from, e.g. ``"ignore="`` or
    ``"[tool.cnnshape] lint.ignore"``.
    """
    if isinstance(ids, str):
        raise ArgumentError(f"{where} must be a list of rule ids, e.g. [{ids!r}], not a string")
    checked: list[str] = []
    for rule_id in ids:
        if rule_id not in RULES_BY_ID:
            raise ArgumentError(
                f"{where} names an "
                + unknown(str(rule_id), RULE_IDS, noun="lint rule", listing="the rules are:")
            )
        checked.append(str(rule_id))
    return tuple(dict.fromkeys(checked))  # each once, in the order given


def tracks_use(ignore: Iterable[str]) -> bool:
    """Whether a lint run needs the parameters the forward uses (``unused-parameters``)."""
    return "unused-parameters" not in ignore
