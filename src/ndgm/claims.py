"""A claim row: what the paper or the spec says, what a run measured, and the verdict.

`Claim` is the one record for a checked statement, whether an experiment just computed it
or it was read back from a run folder (`Claim.from_dict`); `verdict` is the one place that
turns ``passed`` into words. Experiments, the store, the CLI and the report all use these,
so this module imports nothing else from ndgm.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

__all__ = ["Claim", "VERDICTS", "verdict", "ledger_row"]

VERDICTS = {True: "reproduced", False: "differs", None: "not run"}


def verdict(passed: bool | None) -> str:
    """``'reproduced'`` (True), ``'differs'`` (False) or ``'not run'`` (None)."""
    return VERDICTS[passed]


@dataclass
class Claim:
    """One checked statement: what the paper or the spec says, and what this run measured.

    ``passed`` is True (reproduced), False (differs) or None (not run here; ``detail``
    says why).
    """

    claim: str
    source: str
    expected: Any
    measured: Any
    passed: bool | None
    detail: str = ""

    @property
    def verdict(self) -> str:
        return verdict(self.passed)

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, row: dict) -> Claim:
        """The claim in a stored row (``result.json`` or a ledger row); other keys are ignored."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in row.items() if k in names})


def ledger_row(experiment: str, claim: Claim | dict, **extra: Any) -> dict:
    """A row of the claims ledger: ``experiment``, the claim's fields, then ``extra``
    (``difference``, ``run``). ``claim`` may be a stored row."""
    if isinstance(claim, dict):
        claim = Claim.from_dict(claim)
    return {"experiment": experiment} | claim.as_dict() | extra
