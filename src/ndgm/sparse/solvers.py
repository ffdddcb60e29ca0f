r"""Full-batch proximal solvers for the LASSO, batched over penalty weights.

The objective is scikit-learn's scaling,

.. math:: F_\alpha(w) = \frac{1}{2n}\|y - Xw\|_2^2 + \alpha \|w\|_1,

evaluated for K penalties at once (``W`` of shape ``(K, d)``, ``alpha`` of shape ``(K,)``).
ISTA and FISTA take a gradient step on the smooth part and then soft-threshold, so the
coordinates they set to zero are exactly ``0.0`` -- no thresholding after the fact.
Each result carries the optimality certificate
:math:`\mathrm{dist}(-\nabla g(w), \alpha\,\partial\|w\|_1)` from `L1Penalty.subdiff_distance`,
which is zero exactly at a minimiser.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ..errors import NdgmError, check_int, check_positive
from ..problems import L1Penalty, Problem, lambda_max

__all__ = ["LassoObjective", "SolverResult", "ista", "fista", "lasso_objective", "l1_certificate", "single_threaded"]


@contextmanager
def single_threaded():
    """Run the block with one intra-op torch thread, then restore the previous count.

    The L1 studies work on tiny tensors (d <= a few hundred) where each op takes microseconds:
    handing them to a thread pool costs more than it saves, and on a shared machine it can
    make a run many times slower.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class LassoObjective(Problem):
    r"""``F(w) = (1/2n)||y - X w||^2 + alpha ||w||_1`` batched over ``alpha`` (shape ``(K,)`` or scalar).

    The same objective as ``sklearn.linear_model.Lasso(fit_intercept=False)``. It equals
    ``Lasso(X, y, lam=2 n alpha)`` of `ndgm.problems` divided by ``2n``. The smooth part's
    gradient ``X^T (X w - y) / n`` is Lipschitz with ``L = lambda_max(X^T X) / n``.
    """

    def __init__(self, X: Tensor, y: Tensor, alpha: float | Tensor):
        if X.ndim != 2:
            raise NdgmError(f"X must be a 2-D array, got shape {tuple(X.shape)}")
        y = y.reshape(-1)
        if y.shape[0] != X.shape[0]:
            raise NdgmError(f"X and y have inconsistent numbers of samples: X has {X.shape[0]} rows, y has {y.shape[0]}")
        self.X, self.y = X, y
        self.n, self.dim = X.shape
        self.alpha = alpha
        self.penalty = L1Penalty(alpha)
        self.smoothness = lambda_max(X.T @ X) / self.n
        self.lipschitz = None

    def smooth_value_and_grad(self, W: Tensor) -> tuple[Tensor, Tensor]:
        resid = W @ self.X.T - self.y  # (K, n)
        return resid.pow(2).sum(-1) / (2 * self.n), (resid @ self.X) / self.n

    def smooth_value(self, W: Tensor) -> Tensor:
        return (W @ self.X.T - self.y).pow(2).sum(-1) / (2 * self.n)

    def value(self, W: Tensor) -> Tensor:
        return self.smooth_value(W) + self.penalty.value(W)

    def value_and_grad(self, W: Tensor) -> tuple[Tensor, Tensor]:
        v, g = self.smooth_value_and_grad(W)
        return v + self.penalty.value(W), g + self.penalty.grad(W)

    def certificate(self, W: Tensor) -> Tensor:
        """``dist(-grad g(W), alpha * d||W||_1)`` per configuration, shape ``(K,)``."""
        return self.penalty.subdiff_distance(W, self.smooth_value_and_grad(W)[1])


def lasso_objective(X, y, w, alpha: float) -> float:
    """``(1/2n)||y - X w||^2 + alpha ||w||_1`` for one weight vector (numpy or torch input), in float64."""
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    w = np.asarray(w, dtype=np.float64).reshape(-1)
    r = y - X @ w
    return float(r @ r / (2 * X.shape[0]) + alpha * np.abs(w).sum())


def l1_certificate(W: Tensor, smooth_grad: Tensor, l1: float | Tensor) -> Tensor:
    r"""Optimality certificate :math:`\max_j \mathrm{dist}(-g_j, l_1\,\partial|w_j|)` per row of ``W``.

    For ``w_j != 0`` it is ``|g_j + l1 sgn(w_j)|``; for ``w_j = 0`` it is ``max(|g_j| - l1, 0)``.
    Accepts 1-D tensors (one configuration) as well.
    """
    W2 = W.reshape(1, -1) if W.ndim == 1 else W
    G2 = smooth_grad.reshape(W2.shape)
    out = L1Penalty(l1).subdiff_distance(W2, G2)
    return out[0] if W.ndim == 1 else out


@dataclass
class SolverResult:
    """Output of `ista` / `fista`.

    Attributes
    ----------
    coef : Tensor (K, d)
        Final iterates; zeros are exact (from soft thresholding).
    objective : Tensor (K,)
        ``F_alpha(coef)``.
    certificate : Tensor (K,)
        ``dist(-grad g(coef), alpha d||coef||_1)``.
    n_iter : Tensor (K,) of int
        Iterations each configuration ran before meeting ``tol`` (or ``max_iter``).
    converged : Tensor (K,) of bool
    step : Tensor (K,)
        Final step size ``1 / L_k`` found by backtracking.
    """

    coef: Tensor
    objective: Tensor
    certificate: Tensor
    n_iter: Tensor
    converged: Tensor
    step: Tensor


def _prepare(X, y, alpha, W0, max_iter, tol):
    X = torch.as_tensor(X)
    if not X.is_floating_point():
        X = X.to(torch.float64)
    y = torch.as_tensor(y, dtype=X.dtype, device=X.device)
    a = torch.as_tensor(alpha, dtype=X.dtype, device=X.device).reshape(-1)
    if not bool(torch.isfinite(a).all()) or bool((a < 0).any()):
        raise NdgmError(f"alpha must be finite and >= 0, got {a.tolist()}")
    problem = LassoObjective(X, y, a)
    K, d = a.shape[0], X.shape[1]
    if W0 is None:
        W = torch.zeros(K, d, dtype=X.dtype, device=X.device)
    else:
        W = torch.as_tensor(W0, dtype=X.dtype, device=X.device).reshape(-1, d).expand(K, d).clone()
    max_iter = check_int("max_iter", max_iter)
    tol = check_positive("tol", tol)
    return problem, a, W, max_iter, tol


def _proximal_gradient(X, y, alpha, W0, max_iter, tol, accelerated, backtracking, check_every):
    problem, a, W, max_iter, tol = _prepare(X, y, alpha, W0, max_iter, tol)
    K = a.shape[0]
    dev, dt = W.device, W.dtype
    pen = problem.penalty
    L = torch.full((K,), problem.smoothness, dtype=dt, device=dev)
    if backtracking:
        L = L / 16  # start optimistic; the sufficient-decrease test doubles it where needed
    Z = W.clone()  # extrapolated point (FISTA); equals W for ISTA
    t_mom = torch.ones(K, dtype=dt, device=dev)
    active = torch.ones(K, dtype=torch.bool, device=dev)
    n_iter = torch.zeros(K, dtype=torch.long, device=dev)
    F_prev = problem.value(W)
    for it in range(1, max_iter + 1):
        gZ_val, gZ = problem.smooth_value_and_grad(Z)
        while True:
            W_new = pen.prox(Z - gZ / L[:, None], 1.0 / L)
            D = W_new - Z
            if not backtracking:
                break
            # Sufficient decrease: g(W_new) <= g(Z) + <grad, D> + L/2 ||D||^2 (with a rounding allowance).
            lhs = problem.smooth_value(W_new)
            rhs = gZ_val + (gZ * D).sum(-1) + 0.5 * L * D.pow(2).sum(-1)
            bad = active & (lhs > rhs + 1e-14 * gZ_val.abs())
            if not bool(bad.any()):
                break
            L = torch.where(bad, 2 * L, L)
        W_new = torch.where(active[:, None], W_new, W)
        if accelerated:
            F_new = problem.value(W_new)
            # Function-value restart (O'Donoghue & Candes 2015): keeps FISTA linear on strongly convex pieces.
            restart = F_new > F_prev
            t_next = (1 + torch.sqrt(1 + 4 * t_mom**2)) / 2
            beta = torch.where(restart, torch.zeros_like(t_mom), (t_mom - 1) / t_next)
            Z = torch.where(active[:, None], W_new + beta[:, None] * (W_new - W), Z)
            t_mom = torch.where(restart, torch.ones_like(t_mom), t_next)
            F_prev = torch.where(active, F_new, F_prev)
        else:
            Z = W_new
        W = W_new
        n_iter = torch.where(active, it, n_iter)
        if it % check_every == 0 or it == max_iter:
            active = active & (problem.certificate(W) > tol)
            if not bool(active.any()):
                break
            if accelerated:
                Z = torch.where(active[:, None], Z, W)
    cert = problem.certificate(W)
    return SolverResult(coef=W, objective=problem.value(W), certificate=cert, n_iter=n_iter,
                        converged=cert <= tol, step=1.0 / L)


def ista(X, y, alpha, W0=None, max_iter: int = 100000, tol: float = 1e-10, backtracking: bool = True,
         check_every: int = 10) -> SolverResult:
    r"""Proximal gradient (ISTA) for ``(1/2n)||y - Xw||^2 + alpha ||w||_1``, batched over ``alpha``.

    :math:`w_{k+1} = S_{\alpha/L_k}\big(w_k - \nabla g(w_k)/L_k\big)` with soft thresholding
    :math:`S_\tau(v) = \mathrm{sgn}(v)\max(|v| - \tau, 0)`; ``L_k`` is found by backtracking
    (doubled until :math:`g(w_{k+1}) \le g(w_k) + \langle\nabla g, w_{k+1} - w_k\rangle + \tfrac{L_k}{2}\|w_{k+1}-w_k\|^2`),
    or fixed at ``lambda_max(X^T X)/n`` without backtracking. Stops a configuration when
    its certificate is ``<= tol`` (checked every ``check_every`` iterations).

    Parameters
    ----------
    X : (n, d) array or tensor; y : (n,)
    alpha : float or sequence/tensor of K penalties (each >= 0)
    W0 : optional initial point ``(d,)`` or ``(K, d)``; zeros by default
    """
    return _proximal_gradient(X, y, alpha, W0, max_iter, tol, False, backtracking, check_every)


def fista(X, y, alpha, W0=None, max_iter: int = 100000, tol: float = 1e-10, backtracking: bool = True,
          check_every: int = 10) -> SolverResult:
    r"""FISTA (Beck & Teboulle 2009) with backtracking and function-value restart, batched over ``alpha``.

    :math:`w_{k+1} = S_{\alpha/L_k}(z_k - \nabla g(z_k)/L_k)`,
    :math:`t_{k+1} = (1 + \sqrt{1 + 4t_k^2})/2`,
    :math:`z_{k+1} = w_{k+1} + \tfrac{t_k - 1}{t_{k+1}}(w_{k+1} - w_k)`; the momentum is reset
    (``t = 1``) whenever the objective rises. Other arguments as in `ista`.
    """
    return _proximal_gradient(X, y, alpha, W0, max_iter, tol, True, backtracking, check_every)
