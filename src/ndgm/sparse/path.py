r"""Regularisation paths for every registered method, in ``sklearn.linear_model.lasso_path``'s conventions.

`l1_path(X, y, alphas=None, method='fista')` returns ``(alphas, coefs, dual_gaps)`` like
``lasso_path``: ``alphas`` decreasing (a grid of ``alphas`` points from
:math:`\alpha_{\max} = \|X^\top y\|_\infty / n` down to ``eps`` times it, geometrically spaced, when
not given), ``coefs`` of shape ``(n_features, n_alphas)``, and the duality gap of each solution in
scikit-learn's scaling; no intercept (centre ``X`` and ``y`` first, as ``lasso_path`` expects).

How the penalties are run depends on the method's family (`ndgm.registry`):

* exact solvers (``ista``, ``fista``): `working_set_solver`, one penalty after another, each
  warm-started from the previous solution (``batched=False``, the default on the CPU); or all
  penalties in ONE batched `fista`/`ista` run on the whole problem (``batched=True``, the default for
  dense data on a GPU, where a (K, d) x (d, n) product costs about what one row does);
* NDGM update rules (``sgd``, ``momentum``, ``rmsprop``, ``adam``): ONE batched
  `ndgm.dynamics.run_trajectory` over all penalties (the L1 paradox along a whole path at once);
* proximal optimizers (``prox-sgd``, ``prox-adam``, ``rda``, ``acrda``): one optimizer whose parameter
  groups carry the penalties.

`fit_path` is the same on a prepared (datafit, penalties) pair: the estimators call it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .. import registry
from ..device import torch_threads
from ..dynamics import run_trajectory
from ..errors import NdgmError, check_int, check_positive
from ..problems import Composite, L1Penalty, LeastSquares
from .design import Design
from .solvers import SOLVERS
from .working_set import canonical_factor, duality_gap, working_set_solver

__all__ = ["l1_path", "alpha_grid", "fit_path", "PathFit"]


@dataclass
class PathFit:
    """One fit per penalty: ``coef (K, d)`` and, per penalty, the iterations run, the duality gap, the
    objective and the certificate (all in the datafit's scaling) and whether the exact method met ``tol``
    (always False for the NDGM and proximal methods, which run a fixed number of steps)."""

    coef: np.ndarray
    n_iter: np.ndarray
    dual_gap: np.ndarray
    objective: np.ndarray
    certificate: np.ndarray
    converged: np.ndarray
    lr: float | None = None


def alpha_grid(datafit: LeastSquares, n_alphas: int = 100, eps: float = 1e-3, positive: bool = False) -> np.ndarray:
    r"""``lasso_path``'s grid: ``n_alphas`` values from :math:`\alpha_{\max}` (the smallest penalty whose
    solution is 0: :math:`\|\nabla f(0)\|_\infty`, ``max_j -grad_j`` with ``positive``) down to
    ``eps * alpha_max``, geometrically spaced; all ``finfo.resolution`` when ``alpha_max`` is (near) 0."""
    n_alphas = check_int("alphas", n_alphas)
    eps = check_positive("eps", eps)
    Xty = _as_design(datafit.X).rmatvec(datafit.y).double().cpu().numpy() * canonical_factor(datafit)
    alpha_max = max(float(Xty.max(initial=0.0)), 0.0) if positive else float(np.abs(Xty).max(initial=0.0))
    if alpha_max <= np.finfo(np.float64).resolution:
        return np.full(n_alphas, np.finfo(np.float64).resolution)
    return np.geomspace(alpha_max, alpha_max * eps, num=n_alphas)


def _as_design(X) -> Design:
    return X if isinstance(X, Design) else Design(X)


def default_lr(method: registry.Method, datafit: LeastSquares) -> float:
    """The registry's default step, or ``1/L`` with ``L`` the datafit's smoothness by Lanczos (a few
    dozen products with ``X``; scaled as the datafit is)."""
    if method.default_lr is not None:
        return float(method.default_lr)
    L = datafit.scale_grad(_as_design(datafit.X).spectral_norm2())
    return 1.0 / L if L > 0 else 1.0


def _report(datafit: LeastSquares, alphas: np.ndarray, W: np.ndarray, positive: bool):
    """Duality gap, objective and certificate of each row of ``W`` (one product ``X^T R`` for all)."""
    design = _as_design(datafit.X)
    factor = canonical_factor(datafit)
    Wt = torch.as_tensor(W, dtype=design.dtype, device=design.device)
    R = datafit.y - design.matvec(Wt)  # (K, n)
    C = design.rmatvec(R).double().cpu().numpy()
    Rh, yh = R.double().cpu().numpy(), datafit.y.double().cpu().numpy()
    gaps, objs, certs = (np.zeros(len(alphas)) for _ in range(3))
    for k, a in enumerate(alphas):
        lam = a / factor
        r2, ry, l1 = float(Rh[k] @ Rh[k]), float(Rh[k] @ yh), float(np.abs(W[k]).sum())
        gaps[k] = factor * duality_gap(lam, C[k], r2, ry, l1, positive)[0]
        objs[k] = factor * (0.5 * r2 + lam * l1)
        grad = -factor * C[k]
        certs[k] = float(L1Penalty(float(a)).subdiff_distance(W[k][None], grad[None])[0])
    return gaps, objs, certs


def fit_path(datafit: LeastSquares, alphas, method: str = "fista", W0=None, *, lr: float | None = None,
             max_iter: int = 10000, tol: float = 1e-8, positive: bool = False, batched: bool | None = None) -> PathFit:
    """Fit ``datafit + alpha ||w||_1`` for each ``alpha`` (in the given order) with ``method`` (any name of
    `ndgm.registry`); see the module for how each family runs. ``W0``: (d,) start of the first penalty
    (exact methods, then warm starts) or of all (NDGM, proximal), or (K, d) one per penalty."""
    m = registry.get(method)
    alphas = np.ascontiguousarray(np.asarray(alphas, dtype=np.float64).reshape(-1))
    K, d = alphas.shape[0], datafit.dim
    if positive and m.family != "solver":
        raise NdgmError(f"positive=True needs an exact method ({', '.join(registry.names(family='solver'))}): "
                        f"{m.name!r} has no constraint step")
    small = datafit.n * d * K <= 2_000_000
    with torch_threads(1 if small else 0):  # tiny tensors: a thread pool only adds overhead
        return _fit_path(m, datafit, alphas, W0, lr, max_iter, tol, positive, batched)


def _fit_path(m, datafit, alphas, W0, lr, max_iter, tol, positive, batched) -> PathFit:
    K, d = alphas.shape[0], datafit.dim
    design_dtype = datafit.X.dtype
    if m.family == "solver":
        is_dense = not isinstance(datafit.X, Design) or not datafit.X.is_sparse
        on_gpu = datafit.X.device.type != "cpu"
        if batched is None:
            batched = on_gpu and is_dense and K > 1
        penalty = L1Penalty(torch.as_tensor(alphas, dtype=design_dtype, device=datafit.X.device))
        if batched:
            # the certificate (gradient scale) stands in for the gap: stop at tol times alpha_max
            cert_tol = tol * max(float(np.max(alphas, initial=0.0)), np.finfo(np.float64).tiny)
            if positive:
                raise NdgmError("batched=True runs ista/fista on the whole problem, which has no positive option; "
                                "use batched=False")
            res = SOLVERS[m.name](datafit, penalty, W0, max_iter=max_iter, tol=cert_tol)
            W = res.coef.double().cpu().numpy()
            gaps, objs, certs = _report(datafit, alphas, W, positive)
            return PathFit(W, res.n_iter.cpu().numpy(), gaps, objs, certs, res.converged.cpu().numpy())
        res = working_set_solver(datafit, penalty, W0, inner=m.name, tol=tol, max_iter=max_iter, positive=positive)
        return PathFit(res.coef.double().numpy(), res.n_iter.numpy(), res.dual_gap.double().numpy(),
                       res.objective.double().numpy(), res.certificate.double().numpy(), res.converged.numpy())
    step = float(lr) if lr is not None else default_lr(m, datafit)
    W_start = torch.zeros(K, d, dtype=design_dtype, device=datafit.X.device)
    if W0 is not None:
        W_start = torch.as_tensor(np.asarray(W0), dtype=design_dtype, device=datafit.X.device).reshape(-1, d).expand(K, d).clone()
    if m.family == "ndgm":
        problem = Composite(datafit, L1Penalty(torch.as_tensor(alphas, dtype=design_dtype, device=datafit.X.device)))
        traj = run_trajectory(problem, W_start, step, max_iter, m.build_rule())
        if bool(np.asarray(traj.diverged).any()):
            k = int(np.flatnonzero(np.asarray(traj.diverged))[0])
            raise NdgmError(f"method {m.name!r} diverged at iteration {int(traj.diverged_at[k])} with lr={step:g} "
                            f"(alpha={alphas[k]:g}); lower lr")
        W = np.asarray(traj.final, dtype=np.float64).reshape(K, d)
    else:
        W = _prox_path(m, datafit, alphas, W_start, step, max_iter)
        if not np.isfinite(W).all():
            raise NdgmError(f"method {m.name!r} diverged with lr={step:g}; lower lr")
    gaps, objs, certs = _report(datafit, alphas, W, positive)
    return PathFit(W, np.full(K, max_iter), gaps, objs, certs, np.zeros(K, dtype=bool), lr=step)


def _prox_path(m: registry.Method, datafit: LeastSquares, alphas: np.ndarray, W_start, lr: float,
               max_iter: int) -> np.ndarray:
    """One proximal optimizer, one parameter group (weight vector, ``l1 = alpha``) per penalty; the
    gradient is the datafit's closed form, written into ``.grad`` (no autograd graph)."""
    weights = [W_start[k].clone() for k in range(len(alphas))]
    opt = m.optimizer_class()([{"params": [w], "l1": float(a)} for w, a in zip(weights, alphas)], lr=lr)

    def closure():
        W = torch.stack(weights)
        value, grad = datafit.value_and_grad(W)
        for w, g in zip(weights, grad):
            w.grad = g
        return value.sum()

    for _ in range(max_iter):
        if m.needs_closure:
            opt.step(closure)
        else:
            closure()
            opt.step()
    return torch.stack(weights).double().cpu().numpy()


def l1_path(X, y, *, alphas=None, eps: float = 1e-3, method: str = "fista", coef_init=None,
            return_n_iter: bool = False, positive: bool = False, tol: float = 1e-8, max_iter: int = 10000,
            lr: float | None = None, batched: bool | None = None, dtype: str = "float64", device: str = "cpu"):
    r"""The LASSO path of ``method`` in ``sklearn.linear_model.lasso_path``'s conventions.

    Parameters
    ----------
    X : array (n, d), scipy.sparse matrix or torch tensor (dense or sparse); y : array (n,)
        No intercept is fitted (centre the data first, as for ``lasso_path``).
    alphas : int, array or None
        The penalties (sorted decreasing, as ``lasso_path`` does), or how many on the default grid
        (None: 100) from ``alpha_max`` down to ``eps * alpha_max``.
    eps : float
        ``alpha_min / alpha_max`` of the default grid.
    method : str
        Any name of `ndgm.registry` (see the module for how each family runs).
    coef_init : array (d,), optional
        Start of the first penalty (exact methods; later ones are warm-started) or of all (NDGM, proximal).
    return_n_iter : bool
        Also return the iterations run per penalty.
    positive : bool
        ``w >= 0`` (exact methods only).
    tol, max_iter
        Duality-gap tolerance (scikit-learn's meaning: gap <= tol ||y||^2) and step budget per penalty
        for the exact methods; NDGM and proximal methods run ``max_iter`` steps.
    lr : float, optional
        Step of the NDGM and proximal methods (default: the registry's, else ``1/L``).
    batched : bool, optional
        Exact methods: all penalties in one batched FISTA/ISTA run instead of warm-started working sets
        (default: on a GPU with dense data).
    dtype, device
        Computation dtype (``'float64'``/``'float32'``) and device.

    Returns
    -------
    alphas : ndarray (n_alphas,)
    coefs : ndarray (n_features, n_alphas)
    dual_gaps : ndarray (n_alphas,)
    n_iters : ndarray (n_alphas,), if ``return_n_iter``
    """
    from .estimator import _prepare, _resolve, _validate_xy

    method_obj, torch_dtype, torch_device = _resolve(method, dtype, device)
    X, y = _validate_xy(X, y)
    datafit = _prepare(X, y, None, False, torch_dtype, torch_device).datafit
    if alphas is None or isinstance(alphas, (int, np.integer)):
        grid = alpha_grid(datafit, 100 if alphas is None else int(alphas), eps, positive)
    else:
        grid = np.sort(np.asarray(alphas, dtype=np.float64).reshape(-1))[::-1]
        if not (np.isfinite(grid).all() and (grid >= 0).all()):
            raise NdgmError(f"alphas must be finite and >= 0, got {grid.tolist()}")
    fit = fit_path(datafit, grid, method_obj.name, coef_init, lr=lr, max_iter=max_iter, tol=tol, positive=positive,
                   batched=batched)
    out = (grid, fit.coef.T.copy(), fit.dual_gap)
    return (*out, fit.n_iter) if return_n_iter else out

