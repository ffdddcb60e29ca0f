r"""Intervals behind statistical verdicts.

A statistical claim row states a statistic over ``n`` independent units (seeds, samples,
runs), a 95% interval for it, and the margin the paper's text implies; `ndgm.claims.decide`
turns the interval into a verdict, never a point estimate.

The intervals: `mean_interval` (Student t), `bootstrap_interval` (percentile bootstrap of any
statistic; with paired per-seed differences it is the paired bootstrap), `binomial_interval`
(Clopper--Pearson, exact), `slope_interval` (ordinary least squares slope with a t interval,
for fitted exponents on log-log axes), `proportion_difference_interval` (Newcombe's hybrid
score interval for the difference of two binomial proportions, e.g. a Monte Carlo count
against a reference count that is itself a Monte Carlo estimate).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np

from ..errors import NdgmError

__all__ = [
    "Interval",
    "mean_interval",
    "bootstrap_interval",
    "binomial_interval",
    "slope_interval",
    "proportion_difference_interval",
]

@dataclass(frozen=True)
class Interval:
    """A point estimate with a two-sided confidence interval.

    Attributes
    ----------
    estimate : float
        The statistic on the data.
    low, high : float
        Interval bounds at confidence ``level``.
    n : int
        Number of independent units (seeds, samples) behind it.
    level : float
        Confidence level, 0.95 by default.
    method : str
        How the interval was made (``'t'``, ``'bootstrap'``, ``'clopper-pearson'``, ``'ols-t'``).
    """

    estimate: float
    low: float
    high: float
    n: int
    level: float = 0.95
    method: str = ""

    def as_list(self) -> list[float]:
        return [self.low, self.high]

    def as_dict(self) -> dict:
        return asdict(self)

    def claim_kwargs(self) -> dict:
        """The keywords `ndgm.claims.statistical` takes from an interval:
        ``statistical(..., **iv.claim_kwargs(), margin=m, test="greater")``."""
        return {"estimate": self.estimate, "low": self.low, "high": self.high, "n": self.n, "method": self.method}

    def __str__(self) -> str:
        return f"{self.estimate:.4g} [{self.low:.4g}, {self.high:.4g}] ({self.level:.0%}, n={self.n}, {self.method})"


def _values(values, name: str = "values", minimum: int = 2) -> np.ndarray:
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    if v.size < minimum:
        raise NdgmError(f"{name} needs at least {minimum} values, got {v.size}")
    if not np.isfinite(v).all():
        raise NdgmError(f"{name} must be finite, got {v.tolist()}")
    return v


def _check_level(level: float) -> float:
    if not 0 < level < 1:
        raise NdgmError(f"level must lie in (0, 1), got {level!r}")
    return float(level)


def mean_interval(values, level: float = 0.95) -> Interval:
    r"""Student-t interval for the mean: :math:`\bar x \pm t_{n-1, (1+\ell)/2}\, s / \sqrt n`."""
    from scipy.stats import t as student_t

    v, level = _values(values), _check_level(level)
    n = v.size
    mean = float(v.mean())
    half = float(student_t.ppf((1 + level) / 2, n - 1) * v.std(ddof=1) / math.sqrt(n))
    return Interval(mean, mean - half, mean + half, n, level, "t")


def bootstrap_interval(values, statistic: Callable[[np.ndarray], float] = np.mean, level: float = 0.95,
                       n_resamples: int = 10000, seed: int = 0) -> Interval:
    r"""Percentile bootstrap interval of ``statistic`` over the units in ``values``.

    Resample the ``n`` units with replacement ``n_resamples`` times (seeded, so the interval
    is reproducible) and take the ``(1-level)/2`` and ``(1+level)/2`` quantiles of the
    statistic. Given per-seed *differences* between two paired arms, this is the paired
    bootstrap: the pairing (same seed, same initial weights and batches) is kept because a
    unit is a pair.
    """
    v, level = _values(values), _check_level(level)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, v.size, size=(int(n_resamples), v.size))
    stats = np.apply_along_axis(statistic, 1, v[idx]) if statistic is not np.mean else v[idx].mean(axis=1)
    lo, hi = np.quantile(stats, [(1 - level) / 2, (1 + level) / 2])
    return Interval(float(statistic(v)), float(lo), float(hi), v.size, level, "bootstrap")


def binomial_interval(successes: int, trials: int, level: float = 0.95) -> Interval:
    r"""Clopper--Pearson (exact) interval for a proportion ``k / n``.

    :math:`[B((1-\ell)/2; k, n-k+1),\ B((1+\ell)/2; k+1, n-k)]` with ``B`` the beta quantile;
    the bounds are 0 and 1 when ``k = 0`` and ``k = n``.
    """
    from scipy.stats import beta

    level = _check_level(level)
    k, n = int(successes), int(trials)
    if n < 1 or not 0 <= k <= n:
        raise NdgmError(f"need 0 <= successes <= trials and trials >= 1, got {k} of {n}")
    a = 1 - level
    lo = 0.0 if k == 0 else float(beta.ppf(a / 2, k, n - k + 1))
    hi = 1.0 if k == n else float(beta.ppf(1 - a / 2, k + 1, n - k))
    return Interval(k / n, lo, hi, n, level, "clopper-pearson")


def slope_interval(x, y, level: float = 0.95) -> Interval:
    r"""Least-squares slope of ``y`` on ``x`` with a t interval (``n - 2`` degrees of freedom).

    For a growth exponent fit ``log(count)`` against ``log(1/eps)``: the slope is the exponent.
    """
    from scipy.stats import t as student_t

    x, y, level = _values(x, "x", 3), _values(y, "y", 3), _check_level(level)
    if x.size != y.size:
        raise NdgmError(f"x and y must have the same length, got {x.size} and {y.size}")
    n = x.size
    xc = x - x.mean()
    sxx = float(xc @ xc)
    if sxx == 0:
        raise NdgmError("x must not be constant")
    slope = float(xc @ (y - y.mean()) / sxx)
    resid = y - y.mean() - slope * xc
    se = math.sqrt(float(resid @ resid) / (n - 2) / sxx)
    half = float(student_t.ppf((1 + level) / 2, n - 2) * se)
    return Interval(slope, slope - half, slope + half, n, level, "ols-t")


def _wilson(k: int, n: int, z: float) -> tuple[float, float]:
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def proportion_difference_interval(successes: int, trials: int, ref_successes: int, ref_trials: int,
                                   level: float = 0.95) -> Interval:
    r"""Newcombe's hybrid score interval for ``p1 - p2``, ``p1 = k1/n1``, ``p2 = k2/n2`` (independent).

    With Wilson score intervals ``[l_i, u_i]`` for each proportion (Newcombe 1998, method 10):

    .. math:: \left[\hat p_1 - \hat p_2 - \sqrt{(\hat p_1 - l_1)^2 + (u_2 - \hat p_2)^2},\
              \hat p_1 - \hat p_2 + \sqrt{(u_1 - \hat p_1)^2 + (\hat p_2 - l_2)^2}\right]

    For comparing a Monte Carlo count with a reference that is itself a count over a few runs:
    the interval accounts for the sampling error of both. ``n`` of the result is ``trials``.
    """
    from scipy.stats import norm

    level = _check_level(level)
    k1, n1, k2, n2 = (int(v) for v in (successes, trials, ref_successes, ref_trials))
    if n1 < 1 or n2 < 1 or not (0 <= k1 <= n1 and 0 <= k2 <= n2):
        raise NdgmError(f"need 0 <= successes <= trials and trials >= 1, got {k1} of {n1} and {k2} of {n2}")
    z = float(norm.ppf((1 + level) / 2))
    p1, p2 = k1 / n1, k2 / n2
    l1, u1 = _wilson(k1, n1, z)
    l2, u2 = _wilson(k2, n2, z)
    d = p1 - p2
    lo = d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    hi = d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return Interval(d, lo, hi, n1, level, "newcombe")
