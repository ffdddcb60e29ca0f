"""`L1Regression`: NDGM, Adam, RMSProp and the proximal methods behind scikit-learn's interface.

>>> from sklearn.linear_model import Lasso
>>> from ndgm.sparse import L1Regression
>>> coefs = {m: L1Regression(method=m, alpha=0.05).fit(X, y).coef_ for m in ("sgd", "adam", "fista")}
>>> coefs["lasso"] = Lasso(alpha=0.05, fit_intercept=False).fit(X, y).coef_

The objective is scikit-learn's ``(1/2n)||y - Xw||^2 + alpha ||w||_1`` without intercept
(standardise ``X`` and ``y`` first, e.g. with `ndgm.data.tabular.standardise`).
"""

from __future__ import annotations

import numpy as np
import torch

from .. import registry
from ..device import torch_threads
from ..dynamics import run_trajectory
from ..errors import NdgmError, check_int, check_nonnegative, check_positive
from ..problems import Lasso
from .optim import fit_grouped

__all__ = ["L1Regression"]


class L1Regression:
    """L1-penalised least squares fitted by a chosen gradient or proximal method.

    Parameters
    ----------
    method : str
        A name of `ndgm.registry` (canonical or alias): ``'sgd'`` (aliases ``'ndgm'``, ``'gd'``:
        full-batch subgradient descent), ``'momentum'``, ``'adam'``, ``'rmsprop'`` (differentiate
        ``alpha*|w|`` with ``sgn(0) = 0``, as autograd does), ``'ista'``, ``'fista'`` (backtracking),
        ``'prox-sgd'`` (``'proxsgd'``), ``'prox-adam'`` (``'proxadam'``), ``'rda'`` (Xiao 2009,
        O(1/sqrt t)), ``'acrda'`` (`AcceleratedRDA`, O(L/t^2)).
    alpha : float
        Penalty weight (>= 0), scikit-learn's scaling.
    lr : float, optional
        Step size; default the method's ``default_lr`` in the registry: ``1e-3`` for
        adam/rmsprop/prox-adam, else ``1/L`` (``L = lambda_max(X^T X)/n``). Ignored by ista/fista
        (they backtrack).
    max_iter : int
        Iterations (the exact number run by the gradient methods; an upper bound for ista/fista).
    tol : float
        Certificate tolerance at which ista/fista stop.
    dtype : str
        ``'float64'`` (default) or ``'float32'``.

    Attributes
    ----------
    coef_ : ndarray (d,)
    n_iter_ : int
    objective_ : float
        ``(1/2n)||y - X coef_||^2 + alpha ||coef_||_1``.
    certificate_ : float
        ``max_j dist(-grad_j, alpha d|coef_j|)``: 0 exactly at the minimiser.
    """

    def __init__(self, method: str = "fista", alpha: float = 1.0, lr: float | None = None,
                 max_iter: int = 10000, tol: float = 1e-10, dtype: str = "float64"):
        self.method = method
        self.alpha = alpha
        self.lr = lr
        self.max_iter = max_iter
        self.tol = tol
        self.dtype = dtype

    def _validate(self, X, y):
        try:
            registry.get(self.method)
        except NdgmError:
            raise NdgmError(f"method must be one of {', '.join(registry.names())}, got {self.method!r}") from None
        alpha = check_nonnegative("alpha", self.alpha)
        if self.lr is not None:
            check_positive("lr", self.lr)
        check_int("max_iter", self.max_iter)
        check_positive("tol", self.tol)
        if self.dtype not in ("float64", "float32"):
            raise NdgmError(f"dtype must be 'float64' or 'float32', got {self.dtype!r}")
        dt = torch.float64 if self.dtype == "float64" else torch.float32
        X = torch.as_tensor(np.asarray(X, dtype=np.float64), dtype=dt)
        y = torch.as_tensor(np.asarray(y, dtype=np.float64), dtype=dt)
        if X.ndim != 2:
            raise NdgmError(f"X must be 2-D (n_samples, n_features), got shape {tuple(X.shape)}")
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]
        if y.ndim != 1 or y.shape[0] != X.shape[0]:
            raise NdgmError(f"X and y have inconsistent shapes: X {tuple(X.shape)}, y {tuple(y.shape)}")
        if not (bool(torch.isfinite(X).all()) and bool(torch.isfinite(y).all())):
            raise NdgmError("X and y must be finite (no NaN or inf)")
        return X, y, alpha

    def fit(self, X, y) -> "L1Regression":
        """Fit on ``X (n, d)``, ``y (n,)``; returns ``self``."""
        X, y, alpha = self._validate(X, y)
        with torch_threads(1):  # tiny tensors: a thread pool only adds overhead
            return self._fit(X, y, alpha)

    def _fit(self, X, y, alpha) -> "L1Regression":
        method = registry.get(self.method)
        problem = Lasso(X, y, alpha, scaling="mean")
        lr = float(self.lr) if self.lr is not None else (method.default_lr or 1.0 / problem.smoothness)
        d = X.shape[1]
        if method.family == "solver":
            res = method.solver_function()(problem.datafit, problem.penalty, max_iter=self.max_iter, tol=self.tol)
            w = res.coef[0]
            self.n_iter_ = int(res.n_iter[0])
        elif method.family == "ndgm":
            W0 = torch.zeros(1, d, dtype=X.dtype)
            traj = run_trajectory(problem, W0, lr, self.max_iter, method.build_rule())
            if traj.diverged[0]:
                raise NdgmError(f"method {self.method!r} diverged at iteration {int(traj.diverged_at[0])} with "
                                f"lr={lr:g}; lower lr")
            w = torch.as_tensor(traj.final[0])
            self.n_iter_ = int(self.max_iter)
        else:
            _, opt = fit_grouped(method.optimizer_class(), X, y, [alpha], self.max_iter, lr=lr)
            # the optimizer's own weight, not fit_grouped's float64 copy: a float32 fit stays float32
            w = opt.param_groups[0]["params"][0].detach()
            self.n_iter_ = int(self.max_iter)
        W = w.reshape(1, -1)
        self.coef_ = w.detach().cpu().numpy().copy()
        self.objective_ = float(problem.value(W)[0])
        self.certificate_ = float(problem.certificate(W)[0])
        self.n_features_in_ = d
        return self

    def predict(self, X) -> np.ndarray:
        """``X @ coef_``."""
        if not hasattr(self, "coef_"):
            raise NdgmError("this L1Regression is not fitted yet; call fit(X, y) first")
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.n_features_in_:
            raise NdgmError(f"X must have shape (n, {self.n_features_in_}), got {X.shape}")
        return X @ self.coef_

    def get_params(self, deep: bool = True) -> dict:
        return {k: getattr(self, k) for k in ("method", "alpha", "lr", "max_iter", "tol", "dtype")}

    def set_params(self, **params) -> "L1Regression":
        for k, v in params.items():
            if k not in self.get_params():
                raise NdgmError(f"unknown parameter {k!r} for L1Regression")
            setattr(self, k, v)
        return self

    def __repr__(self) -> str:
        return f"L1Regression(method={self.method!r}, alpha={self.alpha!r})"
