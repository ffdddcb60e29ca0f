"""Intervals against closed forms and textbook values."""

import numpy as np
import pytest
from scipy import stats as sps

from ndgm.analysis.stats import (binomial_interval, bootstrap_interval, mean_interval, proportion_difference_interval,
                                slope_interval)
from ndgm.errors import NdgmError


def test_mean_interval_matches_scipy_t():
    x = np.array([1.0, 2.0, 4.0, 7.0, 11.0])
    iv = mean_interval(x)
    lo, hi = sps.t.interval(0.95, 4, loc=x.mean(), scale=sps.sem(x))
    assert iv.estimate == 5.0 and iv.n == 5
    assert iv.low == pytest.approx(lo, rel=1e-12) and iv.high == pytest.approx(hi, rel=1e-12)


def test_binomial_clopper_pearson_textbook():
    # Clopper-Pearson for 16/20 at 95%: [0.56339, 0.94267] (standard tables).
    iv = binomial_interval(16, 20)
    assert iv.estimate == 0.8
    assert iv.low == pytest.approx(0.56339, abs=5e-5) and iv.high == pytest.approx(0.94267, abs=5e-5)
    assert binomial_interval(0, 20).low == 0.0 and binomial_interval(20, 20).high == 1.0
    # 0 of 20: upper bound 1 - 0.025^(1/20)
    assert binomial_interval(0, 20).high == pytest.approx(1 - 0.025 ** (1 / 20), rel=1e-10)
    with pytest.raises(NdgmError):
        binomial_interval(3, 2)


def test_proportion_difference_matches_newcombe_1998_table_ii():
    # Newcombe (1998), Stat. Med. 17:873, Table II, method 10 (hybrid score).
    for (k1, n1, k2, n2), (lo, hi) in {(56, 70, 48, 80): (0.0524, 0.3339), (9, 10, 3, 10): (0.1705, 0.8090),
                                       (5, 56, 0, 29): (-0.0381, 0.1926), (0, 10, 0, 20): (-0.1611, 0.2775)}.items():
        iv = proportion_difference_interval(k1, n1, k2, n2)
        assert iv.estimate == pytest.approx(k1 / n1 - k2 / n2, abs=1e-15) and iv.n == n1
        assert iv.low == pytest.approx(lo, abs=5e-5) and iv.high == pytest.approx(hi, abs=5e-5)
    # the Monte Carlo reference of spec stability.md s.4: 16 of 20; 20 of 20 is still consistent, 10 of 20 is not
    assert proportion_difference_interval(20, 20, 16, 20).low < 0 < proportion_difference_interval(19, 20, 16, 20).high
    assert proportion_difference_interval(10, 20, 16, 20).high < 0
    with pytest.raises(NdgmError):
        proportion_difference_interval(3, 2, 1, 2)


def test_bootstrap_is_seeded_and_brackets_the_mean():
    rng = np.random.default_rng(1)
    x = rng.normal(2.0, 1.0, size=40)
    a, b = bootstrap_interval(x, seed=3), bootstrap_interval(x, seed=3)
    assert a == b
    assert a.low < x.mean() < a.high
    t = mean_interval(x)
    assert a.low == pytest.approx(t.low, abs=0.1) and a.high == pytest.approx(t.high, abs=0.1)
    med = bootstrap_interval(x, statistic=np.median, seed=0)
    assert med.estimate == np.median(x)


def test_slope_interval_exact_line_and_noise():
    x = np.log(np.array([1.0, 2, 4, 8, 16]))
    y = 2.0 * x + 0.5
    iv = slope_interval(x, y)
    assert iv.estimate == pytest.approx(2.0, abs=1e-12)
    assert iv.high - iv.low == pytest.approx(0.0, abs=1e-10)
    res = sps.linregress(x, y + np.array([0.1, -0.05, 0.02, -0.1, 0.04]))
    iv = slope_interval(x, y + np.array([0.1, -0.05, 0.02, -0.1, 0.04]))
    half = sps.t.ppf(0.975, 3) * res.stderr
    assert iv.estimate == pytest.approx(res.slope, rel=1e-12)
    assert iv.high - iv.estimate == pytest.approx(half, rel=1e-10)


def test_interval_feeds_a_statistical_claim():
    from ndgm.claims import statistical

    iv = binomial_interval(16, 20)
    c = statistical("16 of 20 converge", "spec 4", 0.8, statistic="fraction converged", margin=0.8,
                    test="contains", **iv.claim_kwargs())
    assert c.verdict == "reproduced" and c.n == 20 and c.interval == [iv.low, iv.high]
    assert "clopper-pearson" in c.rule
