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

Adam on the toy (appendix B.3.4, Props B.6-B.10): `adam_momentum_bound` (``|m_t| <= lam``),
`adam_second_moment` (``v_t = (1 - b2^t) lam^2``, so the denominator is exactly ``lam + eps``),
`adam_run_momentum` (B.10: ``m`` over a run of constant sign), `adam_toy_step` and
`adam_first_run_length` (the first run is NDGM with step ``eta lam / (lam + eps)``), and
`adam_toy_exact` (the recursion in rational arithmetic). Duality (appendix A.3):
`toy_lagrangian_dual`, `toy_max_crossing`, `relu_regression_dual`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from .rates import subgradient_best_gap_bound

__all__ = ["ToyLimit", "toy_limit", "toy_limit_exact", "toy_iterate_exact", "toy_loss_bound",
           "subgradient_bound", "subgradient_bound_limit", "rmsprop_toy_step", "toy_loss_bound_rmsprop",
           "adam_momentum_bound", "adam_second_moment", "adam_run_momentum", "adam_toy_step", "adam_first_run_length",
           "adam_toy_exact", "AdamExact", "toy_lagrangian_dual", "toy_max_crossing", "relu_regression_dual"]


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


# -- Adam on the toy LASSO (paper appendix B.3.4, Props B.6-B.10; spec 3.2) -------------------
#
# torch's Adam on f(w) = lam ||w||_1, per coordinate, with g_t = lam sgn(w_{t-1}):
#     m_t = b1 m_{t-1} + (1 - b1) g_t,   v_t = b2 v_{t-1} + (1 - b2) g_t^2,   m_0 = v_0 = 0,
#     w_t = w_{t-1} - eta (m_t / (1 - b1^t)) / (sqrt(v_t / (1 - b2^t)) + eps).


def adam_momentum_bound(t, beta1: float, lam: float):
    r"""Prop. B.6, sharpened: :math:`|m_t| \le \lambda(1 - \beta_1^t) < \lambda`.

    ``m_t = (1 - b1) sum_{i<=t} b1^{t-i} g_i`` with ``|g_i| <= lam`` and ``m_0 = 0``, so
    ``|m_t| <= lam (1 - b1) sum_{i<=t} b1^{t-i} = lam (1 - b1^t)``; the paper's bound ``lam``
    is its ``t -> inf`` limit. ``t`` may be an array.
    """
    return lam * (1.0 - np.power(beta1, np.asarray(t, dtype=np.float64)))


def adam_second_moment(t, beta2: float, lam: float):
    r"""Adam's second moment on the toy while no coordinate has hit 0:
    :math:`v_t = (1 - \beta_2^t)\lambda^2`.

    Every ``g_i^2 = lam^2``, so ``v_t = (1 - b2) lam^2 sum_{i<=t} b2^{t-i} = (1 - b2^t) lam^2``:
    the bias-corrected ``v_t / (1 - b2^t)`` is exactly ``lam^2`` and Adam's denominator is
    ``lam + eps`` at every step (the paper's eq. 24 used in B.10's eq. 39).
    """
    return (1.0 - np.power(beta2, np.asarray(t, dtype=np.float64))) * lam**2


def adam_run_momentum(m_start, k, beta1: float, lam: float, sign):
    r"""Prop. B.10: the first moment ``k`` steps into a run of constant sign ``s``.

    If ``sgn(w_{t0}) = ... = sgn(w_{t0+k-1}) = s`` then ``g_{t0+i} = lam s`` for ``i = 1..k``
    and unrolling ``m_{t0+i} = b1 m_{t0+i-1} + (1 - b1) lam s`` gives

    .. math:: m_{t_0+k} = \beta_1^k\, m_{t_0} + (1 - \beta_1^k)\,\lambda s .

    So over a long run ``m -> lam s`` and the step ``-> eta lam / (lam + eps) ~ eta``
    (RMSProp-like). Arguments broadcast (numpy).
    """
    bk = np.power(beta1, np.asarray(k, dtype=np.float64))
    return bk * np.asarray(m_start, dtype=np.float64) + (1.0 - bk) * lam * np.asarray(sign, dtype=np.float64)


def adam_toy_step(eta: float, lam: float, eps: float = 1e-8) -> float:
    r"""Adam's step length during its first run (and over any long run):
    :math:`c = \eta\lambda / (\lambda + \epsilon)`.

    From ``m_0 = 0`` the first run has ``m_k = (1 - b1^k) lam s`` (`adam_run_momentum` with
    ``m_start = 0``), so the bias-corrected ``m_k / (1 - b1^k) = lam s`` exactly, and with
    `adam_second_moment` the step is ``eta lam / (lam + eps)`` from the very first iteration:
    Adam's first run on the toy is NDGM with step ``c`` and penalty 1.
    """
    return eta * lam / (lam + eps)


def adam_first_run_length(w0, eta: float, lam: float, eps: float = 1e-8) -> np.ndarray:
    r"""Iterations until Adam first changes a coordinate's sign: :math:`\lfloor |w_0|/c \rfloor + 1`.

    By `adam_toy_step`, ``w_k = w0 - k c sgn(w0)`` for ``k`` up to the first sign change,
    ``c = eta lam / (lam + eps)``; that is ``k = floor(|w0| / c) + 1`` (when ``|w0| / c`` is an
    integer, ``w`` lands on 0 one step earlier; probability 0 for continuous ``w0``).
    """
    c = adam_toy_step(eta, lam, eps)
    return np.floor(np.abs(np.asarray(w0, dtype=np.float64)) / c).astype(np.int64) + 1


@dataclass
class AdamExact:
    """Adam on one toy coordinate in exact rational arithmetic (`adam_toy_exact`).

    Attributes
    ----------
    w, m : list of Fraction
        ``w_0 .. w_T`` and ``m_0 .. m_T``.
    """

    w: list
    m: list


def adam_toy_exact(w0, eta, lam, beta1, eps, steps: int) -> AdamExact:
    r"""Adam on ``lam |w|`` run ``steps`` times in exact rational arithmetic (`fractions.Fraction`).

    While ``w`` has not hit 0, `adam_second_moment` makes the denominator exactly
    ``lam + eps`` (no square root), so the recursion is rational:

    .. math:: m_t = \beta_1 m_{t-1} + (1 - \beta_1)\lambda\,\mathrm{sgn}(w_{t-1}), \qquad
              w_t = w_{t-1} - \frac{\eta\, m_t}{(1 - \beta_1^t)(\lambda + \epsilon)} .

    ``beta2`` drops out. Arguments are converted with ``Fraction(x)`` (a float is taken at its
    exact binary value, so the result is the exact image of the float64 inputs). Raises
    `ValueError` if ``w`` hits 0 (then ``v_t`` changes and the square root is irrational).
    """
    w0, eta, lam, b1, eps = (Fraction(x) for x in (w0, eta, lam, beta1, eps))
    w, m = [w0], [Fraction(0)]
    b1t = Fraction(1)
    for t in range(1, steps + 1):
        prev = w[-1]
        if prev == 0:
            raise ValueError(f"w hit 0 exactly at step {t - 1}: the rational recursion no longer applies")
        s = 1 if prev > 0 else -1
        b1t *= b1
        m_t = b1 * m[-1] + (1 - b1) * lam * s
        m.append(m_t)
        w.append(prev - eta * m_t / ((1 - b1t) * (lam + eps)))
    return AdamExact(w, m)


# -- Duality (paper appendix A.3) --------------------------------------------------------------
#
# A.3.4 reads the penalised objective as a Lagrangian: the L1 (and L2) weights are the
# multipliers of constraints that only w = 0 satisfies. Then the dual function is the
# infimum of the objective itself, and on these problems that infimum does not depend on the
# multiplier: strong duality holds with an unbounded set of dual solutions.


def toy_lagrangian_dual(mu) -> np.ndarray:
    r"""Dual function of ``min 0 s.t. ||w||_1 <= 0`` (the toy LASSO read as a Lagrangian, A.3.4).

    The Lagrangian is :math:`\mu\|w\|_1` -- the toy objective (paper eq. 7) with ``lam = mu`` --
    and :math:`g(\mu) = \inf_w \mu\|w\|_1 = 0` for every :math:`\mu \ge 0` (attained at
    ``w = 0``; ``-inf`` for ``mu < 0``). The primal optimum is ``p* = 0`` (``w = 0`` is the
    only feasible point): strong duality, ``d* = sup g = 0 = p*``, every ``mu >= 0`` optimal.
    """
    mu = np.asarray(mu, dtype=np.float64)
    return np.where(mu >= 0, 0.0, -np.inf)


def toy_max_crossing(mu, lam: float) -> np.ndarray:
    r"""Max-crossing (MC/MC) dual function of ``f(w) = lam ||w||_1`` (paper Props A.4, A.8).

    :math:`q(\mu) = \inf_w \{\lambda\|w\|_1 + \mu^\top w\} = -f^*(-\mu)`, and the conjugate of
    ``lam ||.||_1`` is the indicator of the box ``||y||_inf <= lam``, so ``q(mu) = 0`` when
    :math:`\|\mu\|_\infty \le \lambda` and ``-inf`` otherwise. ``q* = 0 = f(0)`` (strong
    duality) and the set of dual solutions is the box: non-empty and compact, as Prop. A.8
    says for a continuous convex function with a finite minimum. ``mu``: shape ``(..., d)``.
    """
    mu = np.asarray(mu, dtype=np.float64)
    return np.where(np.abs(mu).max(axis=-1) <= lam, 0.0, -np.inf)


def relu_regression_dual(y, lam1=0.0, lam2=0.0) -> np.ndarray:
    r"""Dual function of paper eq. (12): ``min sum_i (relu(x_i.w) - y_i)^2 s.t. ||w||_1 <= 0, ||w||_2^2 <= 0``.

    The Lagrangian with multipliers ``(lam1, lam2) >= 0`` is the paper's objective (3),
    :math:`\sum_i(\mathrm{relu}(x_i^\top w) - y_i)^2 + \lambda_1\|w\|_1 + \lambda_2\|w\|_2^2`.
    With every ``y_i <= 0``, :math:`(\mathrm{relu}(z) - y_i)^2 = y_i^2 + \mathrm{relu}(z)^2 +
    2|y_i|\,\mathrm{relu}(z) \ge y_i^2`, with equality at ``w = 0``, so

    .. math:: g(\lambda_1, \lambda_2) = \|y\|^2 \quad\text{for all } \lambda_1, \lambda_2 \ge 0,

    independent of the multipliers (paper eq. 14); ``p* = ||y||^2`` at the only feasible
    point ``w = 0``: strong duality with every multiplier optimal (an unbounded dual solution
    set, as Prop. A.6 allows for a function that is not continuous at its minimum). Arrays of
    ``lam1``, ``lam2`` broadcast.
    """
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    if np.any(y > 0):
        raise ValueError("the closed form needs every y_i <= 0 (Kumar 2023's convex case)")
    lam1, lam2 = np.broadcast_arrays(np.asarray(lam1, dtype=np.float64), np.asarray(lam2, dtype=np.float64))
    value = float(y @ y)
    return np.where((lam1 >= 0) & (lam2 >= 0), value, -np.inf)
