r"""Closed forms for NDGM on the toy LASSO ``f(w) = lam ||w||_1`` (paper Props B.1, B.2, B.11).

NDGM is :math:`w_{k+1} = w_k - \eta\lambda\,\mathrm{sgn}(w_k)`, coordinate by coordinate.
For :math:`w_0 > 0` and :math:`q = w_0 / (\eta\lambda)` the coordinate descends by
:math:`c = \eta\lambda` for :math:`\lfloor q \rfloor` steps and then alternates forever between

.. math:: p_+ = w_0 - \lfloor q \rfloor c \in [0, c), \qquad p_- = p_+ - c,

mirrored for :math:`w_0 < 0`. When ``q`` is an integer :math:`p_+ = 0` and, since
``sgn(0) = 0``, the coordinate stays at 0. Every coordinate ends within ``c`` of 0, so
:math:`f(w_k) \le d\,\eta\lambda^2` eventually (B.11).

The functions work on numpy arrays (vectorised) and also on `fractions.Fraction`
scalars, so that the formula can be checked against the recursion in exact arithmetic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from .rates import subgradient_best_gap_bound

__all__ = ["ToyLimit", "toy_limit", "toy_limit_exact", "toy_iterate_exact", "toy_loss_bound",
           "subgradient_bound", "subgradient_bound_limit", "rmsprop_toy_step", "toy_loss_bound_rmsprop"]


@dataclass
class ToyLimit:
    """The 2-cycle NDGM reaches on ``lam ||w||_1``, per coordinate.

    Attributes
    ----------
    steps : ndarray of int
        Descent steps before the cycle starts, ``floor(|w0| / (eta lam))``.
    first, second : ndarray
        ``w`` at iteration ``steps`` (the point of the same sign as ``w0``, ``p+``) and at
        ``steps + 1`` (``p-``, across zero); both 0 for a coordinate that lands on 0.
    lands_on_zero : ndarray of bool
        ``|w0| / (eta lam)`` is an integer (including ``w0 = 0``).
    """

    steps: np.ndarray
    first: np.ndarray
    second: np.ndarray
    lands_on_zero: np.ndarray

    def at(self, k: int) -> np.ndarray:
        """The iterate at ``k >= max(steps)``: ``first`` when ``k - steps`` is even, else ``second``."""
        even = (k - self.steps) % 2 == 0
        return np.where(even, self.first, self.second)

    def l1_pair(self) -> tuple[float, float]:
        """``(||p+||_1, ||p-||_1)`` -- meaningful when every coordinate has the same ``steps`` parity."""
        return float(np.abs(self.first).sum()), float(np.abs(self.second).sum())


def toy_limit(w0, eta: float, lam: float) -> ToyLimit:
    """Closed-form 2-cycle of NDGM on ``lam ||w||_1`` from ``w0`` (Props B.1 / B.2), in float64.

    ``q = |w0| / (eta lam)``, ``steps = floor(q)``, ``p+ = sgn(w0)(|w0| - steps eta lam)``,
    ``p- = p+ - sgn(w0) eta lam`` (``p- = 0`` when ``p+ = 0``).
    """
    w0 = np.asarray(w0, dtype=np.float64)
    c = eta * lam
    a = np.abs(w0)
    q = a / c
    steps = np.floor(q).astype(np.int64)
    rem = a - steps * c
    s = np.sign(w0)
    zero = (rem == 0)
    first = s * rem
    second = np.where(zero, 0.0, s * (rem - c))
    return ToyLimit(steps, first, second, zero)


def toy_limit_exact(w0: Fraction, eta: Fraction, lam: Fraction) -> tuple[int, Fraction, Fraction]:
    """The same closed form for one coordinate in exact rational arithmetic: ``(steps, p+, p-)``."""
    w0, c = Fraction(w0), Fraction(eta) * Fraction(lam)
    s = (w0 > 0) - (w0 < 0)
    steps = math.floor(abs(w0) / c)
    rem = abs(w0) - steps * c
    first = s * rem
    second = Fraction(0) if rem == 0 else s * (rem - c)
    return steps, first, second


def toy_iterate_exact(w0: Fraction, eta: Fraction, lam: Fraction, k: int) -> Fraction:
    """``w_k`` of NDGM on ``lam |w|`` by running the recursion ``k`` times in exact arithmetic."""
    w, c = Fraction(w0), Fraction(eta) * Fraction(lam)
    for _ in range(k):
        w = w - c * ((w > 0) - (w < 0))
    return w


def toy_loss_bound(d: int, eta: float, lam: float) -> float:
    r"""Prop. B.11: eventually :math:`f(w_k) = \lambda\|w_k\|_1 \le d\,\eta\,\lambda^2`."""
    return d * eta * lam**2


def subgradient_bound(R: float, G: float, eta: float, k: int | np.ndarray) -> float | np.ndarray:
    r"""Constant-step subgradient bound (Boyd, Xiao & Mutapcic 2003):

    :math:`\min_{i \le k} f(w_i) - f^\star \le \dfrac{R^2}{2 k \eta} + \dfrac{G^2 \eta}{2}`,
    ``R = ||w0 - w*||``, ``G`` a bound on subgradient norms (toy: ``lam sqrt(d)``).
    `ndgm.analysis.rates.subgradient_best_gap_bound` computes it (arguments ``G, R`` there), in
    float64 also for `fractions.Fraction` inputs.
    """
    return subgradient_best_gap_bound(G, R, eta, k)


def subgradient_bound_limit(G: float, eta: float) -> float:
    r"""The ``k -> inf`` limit :math:`G^2\eta/2` of `subgradient_bound`: grows with ``lam^2`` on the toy."""
    return G**2 * eta / 2


def rmsprop_toy_step(eta: float, lam: float, t: int, alpha: float = 0.99, eps: float = 1e-8) -> float:
    r"""RMSProp's step length on the toy while every gradient is ``±lam``:

    :math:`v_t = (1 - \alpha^t)\lambda^2`, step :math:`\eta\lambda / (\sqrt{v_t} + \epsilon)
    \approx \eta / \sqrt{1 - \alpha^t}` -- independent of ``lam`` (spec section 3.2).
    """
    return eta * lam / (math.sqrt((1 - alpha**t) * lam**2) + eps)


def toy_loss_bound_rmsprop(d: int, eta: float, lam: float) -> float:
    r"""The RMSProp analogue of B.11 (spec 3.2, Fig. 6): coordinates end within about ``eta``
    of 0, so the loss is about :math:`\le d\,\eta\,\lambda`."""
    return d * eta * lam
