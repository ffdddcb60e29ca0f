"""Detectors for what a non-converging trajectory does: two-band oscillation, late monotonicity."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

__all__ = ["BandReport", "detect_two_bands", "monotone_after"]


@dataclass
class BandReport:
    """Period-2 (two-band) structure of a scalar series.

    Attributes
    ----------
    found : bool
        ``alternation >= min_alternation`` and the band centres are separated by more than
        ``min_separation`` pooled within-band standard deviations.
    low_centre, high_centre : float
        Medians of the two parity classes (``x[0::2]``, ``x[1::2]``), low one first.
    gap : float
        ``high_centre - low_centre``.
    overlap_gap : float
        ``min(high band) - max(low band)``: positive when the bands do not overlap at all.
    within_std : float
        Pooled standard deviation inside the bands.
    separation : float
        ``gap / within_std`` (inf when the bands are single values).
    alternation : float
        Fraction of consecutive differences whose sign flips (1.0 for a perfect 2-cycle).
    """

    found: bool
    low_centre: float
    high_centre: float
    gap: float
    overlap_gap: float
    within_std: float
    separation: float
    alternation: float

    def as_dict(self) -> dict:
        return asdict(self)


def detect_two_bands(x: np.ndarray, min_alternation: float = 0.9, min_separation: float = 2.0) -> BandReport:
    """Find period-2 behaviour in ``x``: does it alternate between a high and a low band?

    The bands are the two parity classes of the series (a period-2 orbit visits one on even
    and the other on odd steps). The series alternates when the successive differences
    ``x[t+1] - x[t]`` flip sign; the bands are distinct when their medians differ by more
    than ``min_separation`` times the pooled within-band standard deviation.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.size < 4 or not np.all(np.isfinite(x)):
        nan = float("nan")
        return BandReport(False, nan, nan, nan, nan, nan, nan, 0.0)
    even, odd = x[0::2], x[1::2]
    if np.median(even) > np.median(odd):
        high, low = even, odd
    else:
        high, low = odd, even
    low_c, high_c = float(np.median(low)), float(np.median(high))
    gap = high_c - low_c
    within = float(np.sqrt(0.5 * (low.var() + high.var())))
    separation = gap / within if within > 0 else (float("inf") if gap > 0 else 0.0)
    d = np.diff(x)
    flips = np.sign(d[1:]) * np.sign(d[:-1]) < 0
    alternation = float(flips.mean())
    found = bool(alternation >= min_alternation and separation >= min_separation)
    return BandReport(found, low_c, high_c, gap, float(high.min() - low.max()), within, float(separation), alternation)


def monotone_after(x: np.ndarray, strict: bool = False) -> int | None:
    """Smallest index ``k`` such that ``x[k:]`` is non-increasing (decreasing if ``strict``).

    Returns None when even the last two entries violate it.
    """
    x = np.asarray(x, dtype=np.float64)
    d = np.diff(x)
    bad = (d >= 0) if strict else (d > 0)
    if not bad.any():
        return 0
    last_bad = int(np.nonzero(bad)[0][-1])
    k = last_bad + 1
    return k if k < x.size - 1 else None
