"""The verdict model: every constructor states its rule, decisions on each side of a margin."""

import json
import math

import pytest

from ndgm.claims import (CONTRADICTED, INCONCLUSIVE, NOT_RUN, REPRODUCED, Claim, bound, decide, exact, holds,
                         ledger_row, not_run, statistical, verdict_counts)


def test_exact_bit_for_bit_and_with_tolerance():
    c = exact("loss", "Fig. 1", 4461.786221675728, 4461.786221675728)
    assert c.verdict == REPRODUCED and c.kind == "exact" and "bit for bit" in c.rule
    c = exact("loss", "Fig. 1", 4461.786221675728, math.nextafter(4461.786221675728, 0))
    assert c.verdict == CONTRADICTED
    c = exact("norm", "sec 3", 0.0106, 0.01061, tol=5e-5)
    assert c.verdict == REPRODUCED and "5e-05" in c.rule
    assert exact("x", "s", 1.0, 1.1, tol=0.05, rel=True).verdict == CONTRADICTED
    assert exact("x", "s", 1.0, float("nan"), tol=1.0).verdict == CONTRADICTED
    assert exact("flag", "s", True, True).verdict == REPRODUCED
    assert exact("flag", "s", True, False).verdict == CONTRADICTED


def test_bound_sides_and_strictness():
    assert bound("b", "s", 0.5, upper=1.0).verdict == REPRODUCED
    assert bound("b", "s", 1.0, upper=1.0).verdict == REPRODUCED
    assert bound("b", "s", 1.0, upper=1.0, strict=True).verdict == CONTRADICTED
    c = bound("b", "s", 3.0, lower=1.0, upper=2.0)
    assert c.verdict == CONTRADICTED and c.rule == "bound: 1 <= measured <= 2" and c.kind == "bound"
    assert bound("b", "s", float("inf"), lower=0.0).verdict == CONTRADICTED
    with pytest.raises(ValueError):
        bound("b", "s", 1.0)


@pytest.mark.parametrize("test,low,high,margin,want", [
    ("greater", 0.2, 0.5, 0.0, REPRODUCED), ("greater", -0.5, -0.1, 0.0, CONTRADICTED),
    ("greater", -0.1, 0.1, 0.0, INCONCLUSIVE), ("greater", -0.5, 0.0, 0.0, CONTRADICTED),
    ("less", -0.5, -0.2, 0.0, REPRODUCED), ("less", 0.1, 0.2, 0.0, CONTRADICTED),
    ("within", -0.05, 0.05, 0.1, REPRODUCED), ("within", 0.2, 0.3, 0.1, CONTRADICTED),
    ("within", 0.05, 0.2, 0.1, INCONCLUSIVE),
    ("contains", 0.56, 0.94, 0.8, REPRODUCED), ("contains", 0.0, 0.17, 0.8, CONTRADICTED),
    ("greater", float("nan"), 1.0, 0.0, INCONCLUSIVE),
])
def test_decide(test, low, high, margin, want):
    assert decide(test, low, high, margin) == want


def test_statistical_row_carries_n_interval_values_and_what_would_decide():
    c = statistical("GELU ahead", "Fig. 2", "> 0", statistic="mean paired difference", estimate=0.1,
                    low=-0.02, high=0.2, n=8, margin=0.0, method="paired bootstrap", values=[0.1] * 8)
    assert c.verdict == INCONCLUSIVE and c.n == 8 and c.interval == [-0.02, 0.2] and c.kind == "statistical"
    assert "n = 8" in c.rule and "> 0" in c.rule and "more seeds" in c.detail
    d = json.loads(json.dumps(c.as_dict()))
    assert Claim.from_dict(d) == c


def test_rows_without_statistics_omit_them_and_legacy_rows_read_back():
    row = ledger_row("capture", exact("x", "s", 1.0, 1.0), run="r")
    assert row["experiment"] == "capture" and row["verdict"] == REPRODUCED and row["rule"]
    assert "n" not in row and "interval" not in row and "passed" not in row
    old = {"claim": "c", "source": "s", "expected": 1, "measured": 2, "passed": False, "verdict": "differs"}
    assert Claim.from_dict(old).verdict == CONTRADICTED
    assert Claim.from_dict({k: v for k, v in old.items() if k != "verdict"}).verdict == CONTRADICTED
    with pytest.raises(ValueError):
        Claim("c", "s", 1, 1, "differs-ish")


def test_counts_and_not_run():
    rows = [exact("a", "s", 1, 1), exact("b", "s", 1, 2), not_run("c", "s", "needs a GPU"),
            holds("d", "s", "two bands", "found", True, "two bands separated by > 3 sd")]
    assert rows[2].verdict == NOT_RUN and rows[2].passed is None and rows[1].passed is False
    assert rows[3].rule.startswith("exact: ")
    assert verdict_counts(rows) == {REPRODUCED: 2, CONTRADICTED: 1, INCONCLUSIVE: 0, NOT_RUN: 1}
    assert verdict_counts([r.as_dict() for r in rows]) == verdict_counts(rows)
