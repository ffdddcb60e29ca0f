"""Version 1's capture claim (the infinity norm eventually exceeds 1 while the loss is monotone):
the summary it reads and its verdict, on constructed series and a tiny run. The paper-size
numbers (303 iterations above 1, all before the loss turns monotone at iteration 3875) are
asserted in ``test_capture.py``'s slow reproduction test."""

import numpy as np
import pytest

from ndgm.experiments import get_experiment
from ndgm.experiments.capture import _linf_claim, _linf_summary


def test_linf_summary_finds_the_monotone_stretch_and_the_excursions():
    loss = np.array([5.0, 9.0, 7.0, 8.0, 6.0, 6.0, 4.0])  # last rise 7 -> 8 at k = 3
    linf = np.array([0.9, 3.0, 1.5, 0.5, 0.2, 0.1, 0.1])
    s = _linf_summary(loss, linf)
    assert s["loss_monotone_from"] == 3
    assert (s["linf_above_one"], s["linf_above_one_first"], s["linf_above_one_last"]) == (2, 1, 2)
    assert s["linf_max_from_monotone"] == 0.5 and s["linf_max"] == 3.0 and s["linf_max_at"] == 1
    row = _linf_claim(s)
    assert row.verdict == "contradicted" and row.kind == "exact"
    assert "k0 = 3" in row.rule and "before the loss becomes monotone" in row.detail


@pytest.mark.parametrize("linf_late, verdict", [(1.2, "reproduced"), (0.99, "contradicted")])
def test_linf_claim_reproduced_only_by_an_excursion_after_the_loss_turns_monotone(linf_late, verdict):
    loss = np.array([3.0, 2.0, 2.0, 1.0])  # monotone from the start
    linf = np.array([0.5, 0.8, linf_late, 0.3])
    assert _linf_claim(_linf_summary(loss, linf)).verdict == verdict
    # a start outside the unit ball cannot support the contradiction
    assert _linf_claim(_linf_summary(loss, np.array([1.5, 0.8, linf_late, 0.3]))).verdict == "contradicted"


def test_tiny_capture_run_records_the_linf_row():
    exp = get_experiment("capture")
    res = exp.run(exp.config(iterations=50, n=40, d=6, quad_iterations=30))
    s = res.summary
    linf = res.arrays["linf"]
    assert s["linf_initial"] == linf[0] < 1 and s["linf_max"] == linf.max()
    assert s["linf_max_from_monotone"] == linf[s["loss_monotone_from"]:].max()
    assert np.all(np.diff(res.arrays["loss"][s["loss_monotone_from"]:]) <= 0)
    assert res.claims[-1].claim.startswith("version 1:")
