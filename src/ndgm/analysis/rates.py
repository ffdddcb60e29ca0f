r"""Smooth vs non-smooth convergence rates (spec section 0): the worst-case bounds.

On consistent data ``y = X w*`` (``n >= d``, ``X`` of full column rank) two convex losses of
`ndgm.problems` share the unique minimiser ``w*`` and the optimal value 0:

* ``LeastSquares(X, y, scaling='mean')`` ``f(w) = ||X w - y||^2 / (2n)``: L-smooth,
  ``L = lambda_max(X^T X) / n``;
* ``LeastAbsoluteDeviations`` ``f(w) = ||X w - y||_1 / n``: G-Lipschitz, not differentiable
  where a residual is 0 (autodiff takes ``sgn(0) = 0`` there).

Worst-case iteration counts to reach ``f(w) - f* <= eps`` from ``||w_0 - w*|| = R``:

* GD with step ``1/L``: ``f(w_k) - f* <= L R^2 / (2k)``, so at most ``L R^2 / (2 eps)``;
* subgradient method with step ``eta = eps / G^2``: ``min_{j<k} f(w_j) - f* <=
  R^2 / (2 k eta) + G^2 eta / 2``, so at most ``R^2 G^2 / eps^2``.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "smooth_iterations_bound",
    "subgradient_iterations_bound",
    "subgradient_best_gap_bound",
    "iterations_to_reach",
    "loglog_slope",
]


def smooth_iterations_bound(L: float, R: float, eps: np.ndarray) -> np.ndarray:
    r"""GD with step ``1/L`` on a convex L-smooth loss: ``k <= L R^2 / (2 eps)`` iterations."""
    return L * R ** 2 / (2 * np.asarray(eps, dtype=float))


def subgradient_iterations_bound(G: float, R: float, eps: np.ndarray) -> np.ndarray:
    r"""Subgradient method, step ``eps / G^2``, convex G-Lipschitz loss: ``k <= R^2 G^2 / eps^2``."""
    return (R * G) ** 2 / np.asarray(eps, dtype=float) ** 2


def subgradient_best_gap_bound(G: float, R: float, eta: np.ndarray, k: int | np.ndarray) -> np.ndarray:
    r"""``min_{j<k} f(w_j) - f* <= R^2 / (2 k eta) + G^2 eta / 2`` (constant step ``eta``).

    Boyd, Xiao & Mutapcic (2003) for a convex G-Lipschitz loss and ``R = ||w_0 - w*||``;
    ``eta`` and ``k`` broadcast against each other.
    """
    eta = np.asarray(eta, dtype=float)
    return R ** 2 / (2 * k * eta) + G ** 2 * eta / 2


def iterations_to_reach(gap: np.ndarray, eps: np.ndarray) -> np.ndarray:
    """First iteration ``k`` with ``min_{j<=k} gap_j <= eps``, per column; ``-1`` if never.

    Parameters
    ----------
    gap : ndarray (T,) or (T, K)
        ``f(w_k) - f*`` per iteration (NaN after divergence counts as not reached).
    eps : ndarray (E,) (with a 1-D ``gap``) or (K,) (one tolerance per column)
    """
    gap = np.asarray(gap, dtype=float)
    eps = np.asarray(eps, dtype=float)
    best = np.fmin.accumulate(np.where(np.isfinite(gap), gap, np.inf), axis=0)
    hit = best[:, None] <= eps[None, :] if gap.ndim == 1 else best <= eps[None, :]
    first = hit.argmax(axis=0)
    return np.where(hit.any(axis=0), first, -1)


def loglog_slope(x: np.ndarray, y: np.ndarray) -> float:
    """Least-squares slope of ``log y`` against ``log x`` (points with ``y > 0``)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    ok = (x > 0) & (y > 0) & np.isfinite(y)
    if ok.sum() < 2:
        return float("nan")
    return float(np.polyfit(np.log(x[ok]), np.log(y[ok]), 1)[0])
