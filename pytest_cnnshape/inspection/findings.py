"""What lint returns: findings (plain data), the list that holds them, and their text.

Torch-free: a finding travels as JSON from an xdist worker to the report, and
``Finding.from_dict`` turns it back into the same text there.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Finding:
    """One problem lint found: which rule, where, what, why it matters, how to fix it."""

    #: Stable id of the rule (``catalog.RULES``), e.g. ``"bias-before-batchnorm"``.
    rule: str
    #: Qualified name of the layer concerned (``""`` for the root), or
    #: ``"optimizer"`` / ``"optimizer.param_groups[i]"`` for optimizer rules.
    layer: str
    #: What was found, with this model's names and numbers.
    message: str
    #: Why it matters (the rule's rationale).
    why: str
    #: A concrete change that removes the finding.
    fix: str

    def to_dict(self) -> dict[str, str]:
        """JSON-safe form (the report carries it)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Finding:
        return cls(**{k: str(data[k]) for k in ("rule", "layer", "message", "why", "fix")})

    def lines(self, *, why: bool = True) -> list[str]:
        """``[rule] layer: message``, then the fix (and the reason) indented."""
        where = self.layer if self.layer else "(root)"
        out = [f"[{self.rule}] {where}: {self.message}", f"    fix: {self.fix}"]
        if why:
            out.append(f"    why: {self.why}")
        return out

    def __str__(self) -> str:
        return "\n".join(self.lines())


class Findings(list[Finding]):
    """The findings of one lint run: a plain list, plus what did not run and why.

    ``skipped`` maps the id of each rule that could not run to the reason (no
    ``inputs=``, no ``optimizer=``, no loss); ``ignored`` lists the rules switched
    off for this run. An empty list with rules skipped is not a clean bill.
    """

    def __init__(
        self,
        findings: Iterable[Finding] = (),
        *,
        skipped: Mapping[str, str] | None = None,
        ignored: Iterable[str] = (),
    ) -> None:
        super().__init__(findings)
        self.skipped: dict[str, str] = dict(skipped or {})
        self.ignored: tuple[str, ...] = tuple(ignored)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form: the findings, the skipped rules with reasons, the ignored ones."""
        return {
            "findings": [f.to_dict() for f in self],
            "skipped": dict(sorted(self.skipped.items())),
            "ignored": sorted(self.ignored),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Findings:
        return cls(
            (Finding.from_dict(f) for f in data.get("findings", [])),
            skipped=data.get("skipped"),
            ignored=data.get("ignored", ()),
        )

    def text(self, *, why: bool = True) -> str:
        """Every finding, then a line naming the rules that did not run."""
        lines: list[str] = []
        for finding in self:
            lines.extend(finding.lines(why=why))
        if not self:
            lines.append("no lint findings")
        if self.skipped:
            lines.append(skipped_line(self.skipped))
        return "\n".join(lines)


def skipped_line(skipped: Mapping[str, str]) -> str:
    """``not run: rule-a, rule-b (no optimizer given); ...``, reasons grouped."""
    by_reason: dict[str, list[str]] = {}
    for rule, reason in sorted(skipped.items()):
        by_reason.setdefault(reason, []).append(rule)
    parts = [f"{', '.join(rules)} ({reason})" for reason, rules in by_reason.items()]
    return "not run: " + "; ".join(parts)
