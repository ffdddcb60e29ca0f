r"""Smooth vs non-smooth convergence rates (spec section 0): the problem pair and the bounds.

On consistent data ``y = X w*`` (``n >= d``, ``X`` of full column rank) two convex losses
share the unique minimiser ``w*`` and the optimal value 0:

* `LeastSquares` ``f(w) = ||X w - y||^2 / (2n)``: L-smooth, ``L = lambda_max(X^T X) / n``;
* `LeastAbsoluteDeviations` ``f(w) = ||X w - y||_1 / n``: G-Lipschitz, not differentiable
  where a residual is 0 (autodiff takes ``sgn(0) = 0`` there).

Worst-case iteration counts to reach ``f(w) - f* <= eps`` from ``||w_0 - w*|| = R``:

* GD with step ``1/L``: ``f(w_k) - f* <= L R^2 / (2k)``, so at most ``L R^2 / (2 eps)``;
* subgradient method with step ``eta = eps / G^2``: ``min_{j<k} f(w_j) - f* <=
  R^2 / (2 k eta) + G^2 eta / 2``, so at most ``R^2 G^2 / eps^2``.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from ..problems import Problem, lambda_max

__all__ = [
    "LeastSquares",
    "LeastAbsoluteDeviations",
    "smooth_iterations_bound",
    "subgradient_iterations_bound",
    "subgradient_best_gap_bound",
    "iterations_to_reach",
    "loglog_slope",
]


class _ConsistentRegression(Problem):
    """Shared parts of a regression loss on data ``y = X w*``: value from ``value_and_grad``,
    and the known minimiser ``w*`` when it is unique."""

    def value(self, W: Tensor) -> Tensor:
        return self.value_and_grad(W)[0]

    def minimiser(self) -> Tensor | None:
        return _consistent_minimiser(self.X, self.y)

    def optimal_value(self) -> float | None:
        w = self.minimiser()
        return None if w is None else float(self.value(w[None])[0])


class LeastSquares(_ConsistentRegression):
    r"""``f(w) = ||X w - y||^2 / (2 n)``, gradient ``X^T (X w - y) / n``, ``L = lambda_max(X^T X) / n``.

    With ``scale = 'sum'`` the ``1/n`` is dropped: ``f(w) = ||X w - y||^2 / 2``, the quadratic
    whose Hessian ``X^T X`` is the Huber loss's Hessian at an interpolating minimiser.
    """

    def __init__(self, X: Tensor, y: Tensor, scale: str = "mean"):
        self.X = X
        self.y = y.reshape(-1)
        self.dim = X.shape[1]
        self.c = 1.0 / X.shape[0] if scale == "mean" else 1.0
        self.smoothness = self.c * lambda_max(X.T @ X)
        self.lipschitz = None

    def value_and_grad(self, W: Tensor) -> tuple[Tensor, Tensor]:
        resid = W @ self.X.T - self.y  # (K, n)
        return 0.5 * self.c * resid.pow(2).sum(-1), self.c * (resid @ self.X)

class LeastAbsoluteDeviations(_ConsistentRegression):
    r"""``f(w) = ||X w - y||_1 / n``; subgradient ``X^T sgn(X w - y) / n`` (``sgn(0) = 0``).

    Lipschitz with ``G = sqrt(n) ||X||_2 / n`` (``||sgn(r)||_2 <= sqrt(n)``); no smoothness
    constant.
    """

    def __init__(self, X: Tensor, y: Tensor):
        self.X = X
        self.y = y.reshape(-1)
        self.dim = X.shape[1]
        n = X.shape[0]
        self.lipschitz = math.sqrt(n) * float(torch.linalg.matrix_norm(X.to(torch.float64), ord=2)) / n
        self.smoothness = None

    def value_and_grad(self, W: Tensor) -> tuple[Tensor, Tensor]:
        resid = W @ self.X.T - self.y
        n = self.X.shape[0]
        return resid.abs().sum(-1) / n, (resid.sgn() @ self.X) / n

def _consistent_minimiser(X: Tensor, y: Tensor) -> Tensor | None:
    """``w*`` with ``X w* = y`` when it is unique (full column rank and consistent data)."""
    n, d = X.shape
    if int(torch.linalg.matrix_rank(X)) < d:
        return None
    w = torch.linalg.lstsq(X, y[:, None]).solution[:, 0]
    resid = float(torch.linalg.vector_norm(X @ w - y))
    return w if resid <= 1e-10 * max(1.0, float(torch.linalg.vector_norm(y))) else None


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
