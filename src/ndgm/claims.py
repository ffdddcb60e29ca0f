r"""A claim row: what the paper or the spec says, what a run measured, the rule, the verdict.

`Claim` is the one record for a checked statement, whether an experiment just computed it
or it was read back from a run folder (`Claim.from_dict`). Every row states its decision
rule, in words and numbers, as one of three kinds:

* **exact** -- a value and a tolerance (`exact`), or a property that holds or not with the
  rule spelled out (`holds`);
* **bound** -- the measured value lies on the stated side of a bound (`bound`);
* **statistical** -- a statistic over ``n`` independent units (seeds, samples), its 95%
  interval and the margin the paper's text implies (`statistical`); the verdict is a
  decision on the whole interval (`decide`).

Verdicts, the four words and nothing else (`VERDICTS`):

* *reproduced* -- the rule holds (for a statistical row: the whole interval is on the
  paper's side of the margin);
* *contradicted* -- the rule fails (for a statistical row: the interval excludes the paper's
  claim);
* *inconclusive* -- a statistical row whose interval straddles the margin; its ``detail``
  says what would decide it;
* *not run* -- nothing was measured here; ``detail`` says why.

Experiments, the store, the CLI and the report all use this module, so it imports nothing
else from ndgm.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any, Sequence

__all__ = [
    "Claim",
    "VERDICTS",
    "REPRODUCED",
    "CONTRADICTED",
    "INCONCLUSIVE",
    "NOT_RUN",
    "RULE_KINDS",
    "TESTS",
    "decide",
    "exact",
    "holds",
    "bound",
    "statistical",
    "not_run",
    "ledger_row",
    "verdict_counts",
]

REPRODUCED, CONTRADICTED, INCONCLUSIVE, NOT_RUN = "reproduced", "contradicted", "inconclusive", "not run"
VERDICTS = (REPRODUCED, CONTRADICTED, INCONCLUSIVE, NOT_RUN)
RULE_KINDS = ("exact", "bound", "statistical")
#: Statistical tests: what the paper's text says about the statistic ``s`` and the margin ``m``.
TESTS = {"greater": "s > m", "less": "s < m", "within": "|s| < m", "contains": "s = m"}
# Verdict words of run folders written before the four-word model.
_LEGACY = {"differs": CONTRADICTED}


def _num(x: float) -> str:
    return f"{x:.4g}"


def decide(test: str, low: float, high: float, margin: float) -> str:
    """The verdict of a statistical rule from a ``[low, high]`` interval (95%).

    ``greater`` (the paper says ``s > margin``): reproduced when ``low > margin``,
    contradicted when ``high <= margin``; ``less`` mirrors it; ``within`` (equivalence,
    ``|s| < margin``): reproduced when the interval lies inside ``(-margin, margin)``,
    contradicted when it lies wholly outside; ``contains`` (consistent with a reference
    value ``margin``): reproduced when ``low <= margin <= high``, contradicted otherwise.
    Everything else is inconclusive.
    """
    if test not in TESTS:
        raise ValueError(f"test must be one of {', '.join(TESTS)}, got {test!r}")
    if not (math.isfinite(low) and math.isfinite(high)):
        return INCONCLUSIVE
    if test == "greater":
        return REPRODUCED if low > margin else CONTRADICTED if high <= margin else INCONCLUSIVE
    if test == "less":
        return REPRODUCED if high < margin else CONTRADICTED if low >= margin else INCONCLUSIVE
    if test == "within":
        if -margin < low and high < margin:
            return REPRODUCED
        return CONTRADICTED if (low >= margin or high <= -margin) else INCONCLUSIVE
    return REPRODUCED if low <= margin <= high else CONTRADICTED


@dataclass
class Claim:
    """One checked statement: the paper's statement, the measurement, the rule, the verdict.

    Attributes
    ----------
    claim, source : str
        The statement and where the paper (or the spec) makes it.
    expected, measured : object
        What the paper's text implies and what this run measured (numbers, or short text).
    verdict : str
        One of `VERDICTS`.
    rule : str
        The decision rule in words and numbers ("exact: |measured - 0.0106| <= 5e-05").
    kind : str
        ``'exact'``, ``'bound'`` or ``'statistical'`` (``''`` only for a row not run).
    detail : str
        Context: what the numbers are, why a row was not run, what would decide an
        inconclusive one.
    n : int or None
        Statistical rows: the number of independent units (seeds, samples).
    interval : [low, high] or None
        Statistical rows: the 95% interval of the statistic.
    margin : float or None
        Statistical rows: the margin the paper's text implies.
    values : list of float or None
        Statistical rows: the per-unit values (per-seed differences, say), drawn in the report.
    protocol : str or None
        Where a paper's protocol differs from the sound one: ``'paper'`` or ``'fresh'``.
    """

    claim: str
    source: str
    expected: Any
    measured: Any
    verdict: str
    rule: str = ""
    kind: str = ""
    detail: str = ""
    n: int | None = None
    interval: list[float] | None = None
    margin: float | None = None
    values: list[float] | None = None
    protocol: str | None = None

    def __post_init__(self):
        self.verdict = _LEGACY.get(self.verdict, self.verdict)
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {', '.join(VERDICTS)}, got {self.verdict!r}")
        if self.kind and self.kind not in RULE_KINDS:
            raise ValueError(f"kind must be one of {', '.join(RULE_KINDS)}, got {self.kind!r}")

    @property
    def passed(self) -> bool | None:
        """True (reproduced), False (contradicted or inconclusive), None (not run)."""
        return None if self.verdict == NOT_RUN else self.verdict == REPRODUCED

    def as_dict(self) -> dict:
        """The row as stored: every field, with ``n``/``interval``/``margin``/``values``/``protocol``
        only where set."""
        d = asdict(self)
        for k in ("n", "interval", "margin", "values", "protocol"):
            if d[k] is None:
                del d[k]
        return d

    @classmethod
    def from_dict(cls, row: dict) -> Claim:
        """The claim in a stored row (``result.json`` or a ledger row); other keys are ignored.

        Rows written before the four-word verdicts carry ``passed`` (and ``'differs'``); they
        are read as ``contradicted`` with an empty rule.
        """
        names = {f.name for f in fields(cls)}
        kw = {k: v for k, v in row.items() if k in names}
        if "verdict" not in kw:
            kw["verdict"] = {True: REPRODUCED, False: CONTRADICTED, None: NOT_RUN}[row.get("passed")]
        return cls(**kw)


def exact(claim: str, source: str, expected: Any, measured: Any, *, tol: float = 0.0, rel: bool = False,
          detail: str = "") -> Claim:
    """Exact rule: ``|measured - expected| <= tol`` (times ``|expected|`` when ``rel``); for
    non-numbers (text, booleans, lists), equality.

    ``tol = 0`` on floats means bit for bit.
    """
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (expected, measured))
    if numeric:
        scale = abs(expected) if rel else 1.0
        ok = math.isfinite(measured) and abs(measured - expected) <= tol * scale
        if tol == 0:
            rule = f"exact: measured == {expected!r} (bit for bit)"
        else:
            rule = f"exact: |measured - {_num(expected)}| <= {_num(tol)}" + (" x |expected|" if rel else "")
    else:
        ok = measured == expected
        rule = f"exact: measured == {expected!r}"
    return Claim(claim, source, expected, measured, REPRODUCED if ok else CONTRADICTED, rule, "exact", detail)


def holds(claim: str, source: str, expected: Any, measured: Any, ok: bool, rule: str, detail: str = "",
          kind: str = "exact", protocol: str | None = None) -> Claim:
    """A rule evaluated by the caller: ``ok`` decides, ``rule`` says in words and numbers what was checked."""
    return Claim(claim, source, expected, measured, REPRODUCED if bool(ok) else CONTRADICTED,
                 rule if rule.startswith(f"{kind}:") else f"{kind}: {rule}", kind, detail, protocol=protocol)


def bound(claim: str, source: str, measured: float, *, upper: float | None = None, lower: float | None = None,
          strict: bool = False, expected: Any = None, detail: str = "", name: str = "measured") -> Claim:
    """Bound rule: ``lower <= measured <= upper`` (``<`` with ``strict``); either side may be absent."""
    if upper is None and lower is None:
        raise ValueError("a bound needs upper or lower")
    lt = (lambda a, b: a < b) if strict else (lambda a, b: a <= b)
    sym = "<" if strict else "<="
    ok = isinstance(measured, (int, float)) and math.isfinite(measured)
    parts = []
    if lower is not None:
        ok = ok and lt(lower, measured)
        parts.append(f"{_num(lower)} {sym}")
    parts.append(name)
    if upper is not None:
        ok = ok and lt(measured, upper)
        parts.append(f"{sym} {_num(upper)}")
    rule = "bound: " + " ".join(parts)
    if expected is None:
        expected = " ".join(parts)
    return Claim(claim, source, expected, measured, REPRODUCED if ok else CONTRADICTED, rule, "bound", detail)


def statistical(claim: str, source: str, expected: Any, *, statistic: str, estimate: float, low: float,
                high: float, n: int, margin: float, test: str = "greater", method: str = "",
                values: Sequence[float] | None = None, detail: str = "", protocol: str | None = None,
                undecided: str = "") -> Claim:
    """Statistical rule: ``statistic`` over ``n`` units with a 95% interval ``[low, high]``,
    decided against ``margin`` by `decide` (``test``: greater, less, within, contains).

    ``measured`` becomes ``"estimate [low, high]"``. An inconclusive row's detail gets
    ``undecided`` (what would decide it; by default: more units).
    """
    verdict = decide(test, low, high, margin)
    rel = {"greater": f"> {_num(margin)}", "less": f"< {_num(margin)}", "within": f"within +-{_num(margin)}",
           "contains": f"interval contains {_num(margin)}"}[test]
    rule = (f"statistical: {statistic}, n = {n}, 95% interval{f' ({method})' if method else ''}; "
            f"reproduced when the interval is {rel}" if test != "contains" else
            f"statistical: {statistic}, n = {n}, 95% interval{f' ({method})' if method else ''}; "
            f"reproduced when the {rel}")
    if verdict == INCONCLUSIVE:
        detail = (detail + "; " if detail else "") + (undecided or f"the interval straddles {_num(margin)}: "
                                                      "more seeds would narrow it")
    return Claim(claim, source, expected, f"{_num(estimate)} [{_num(low)}, {_num(high)}]", verdict, rule,
                 "statistical", detail, n=int(n), interval=[float(low), float(high)], margin=float(margin),
                 values=None if values is None else [float(v) for v in values], protocol=protocol)


def not_run(claim: str, source: str, why: str, expected: Any = "-", protocol: str | None = None) -> Claim:
    """A row nothing was measured for: ``why`` says what it needs."""
    return Claim(claim, source, expected, "-", NOT_RUN, "", "", why, protocol=protocol)


def ledger_row(experiment: str, claim: Claim | dict, **extra: Any) -> dict:
    """A row of the claims ledger: ``experiment``, the claim's fields, then ``extra``
    (``difference``, ``run``, ``wall_s``). ``claim`` may be a stored row."""
    if isinstance(claim, dict):
        claim = Claim.from_dict(claim)
    return {"experiment": experiment} | claim.as_dict() | extra


def verdict_counts(rows: Sequence[Claim | dict]) -> dict[str, int]:
    """How many rows carry each verdict, in the order of `VERDICTS`."""
    counts = dict.fromkeys(VERDICTS, 0)
    for r in rows:
        v = r.verdict if isinstance(r, Claim) else Claim.from_dict(r).verdict
        counts[v] += 1
    return counts

