r"""`L1Regression` and `L1RegressionCV`: every registered method behind scikit-learn's interface.

Put ``L1Regression`` beside ``sklearn.linear_model.Lasso`` and see the L1 paradox on any data::

    from sklearn.linear_model import Lasso
    from ndgm.sparse import L1Regression
    for est in (Lasso(alpha=0.05), L1Regression(alpha=0.05, method="adam"), L1Regression(alpha=0.05)):
        print(type(est).__name__, (est.fit(X, y).coef_ == 0).sum(), "exact zeros")

The objective is scikit-learn's Lasso, with an unpenalised intercept (``fit_intercept=True``) and
sample weights:

.. math:: \min_{w, b}\ \frac{1}{2\sum_i s_i}\sum_i s_i (y_i - x_i\cdot w - b)^2 + \alpha\|w\|_1 .

The intercept is removed by centring (weighted means; a sparse ``X`` is centred implicitly, never
densified, see `ndgm.sparse.design.Design`) and weights become row scalings by :math:`\sqrt{s_i}`
(normalised to sum to ``n``, as scikit-learn does), so an integer weight is the same as repeating
the row. Every method then sees the same (datafit, penalty) pair:

* ``'fista'`` (default), ``'ista'``: exact, `working_set_solver` (gap-safe screening, working sets,
  the duality gap ``<= tol * ||y||^2`` as stopping rule, scikit-learn's meaning of ``tol``);
* ``'sgd'`` (``'gd'``, ``'ndgm'``), ``'momentum'``, ``'rmsprop'``, ``'adam'``: the NDGM update rules
  (the kink differentiated as autodiff does, ``sgn(0) = 0``), ``max_iter`` full-batch steps: no exact
  zeros -- the paradox;
* ``'prox-sgd'``, ``'prox-adam'``, ``'rda'``, ``'acrda'``: the proximal optimizers, ``max_iter`` steps.
"""

from __future__ import annotations

import numbers
import warnings
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import check_cv
from sklearn.utils.extmath import safe_sparse_dot
from sklearn.utils.validation import (_check_sample_weight, check_array, check_consistent_length, check_is_fitted,
                                      validate_data)

from .. import registry
from ..device import resolve_device
from ..errors import NdgmError, check_int, check_nonnegative, check_positive
from ..problems import LeastSquares
from .design import Design, is_sparse_tensor
from .path import alpha_grid, fit_path

__all__ = ["L1Regression", "L1RegressionCV"]

_DTYPES = {"float64": torch.float64, "float32": torch.float32}


def _host(A):
    """A torch tensor as what scikit-learn validates: numpy (dense) or scipy CSR (sparse); others unchanged."""
    if isinstance(A, torch.Tensor):
        if is_sparse_tensor(A):
            coo = A.detach().cpu().to_sparse_coo().coalesce()
            idx = coo.indices().numpy()
            return sp.csr_array((coo.values().numpy(), (idx[0], idx[1])), shape=tuple(coo.shape))
        return A.detach().cpu().numpy()
    return A


def _resolve(method, dtype, device):
    """The registry method, torch dtype and device named by the estimator's parameters (ValueErrors naming them)."""
    try:
        m = registry.get(method)
    except NdgmError:
        raise NdgmError(f"method must be one of {', '.join(registry.names())}, got {method!r}") from None
    if dtype not in _DTYPES:
        raise NdgmError(f"dtype must be 'float64' or 'float32', got {dtype!r}")
    return m, _DTYPES[dtype], resolve_device(device)


def _validate_xy(X, y):
    """``X`` (dense or CSR/CSC) and ``y`` (1-D float) checked as scikit-learn does, for `l1_path`."""
    X = check_array(_host(X), accept_sparse=["csr", "csc"], dtype=[np.float64, np.float32], force_writeable=True)
    y = check_array(_host(y), ensure_2d=False, dtype=np.float64).reshape(-1)
    check_consistent_length(X, y)
    return X, y


@dataclass
class _Prepared:
    """The centred, weighted problem every method solves, and what recovers the intercept."""

    datafit: LeastSquares
    X_offset: np.ndarray
    y_offset: float


def _prepare(X, y, sample_weight, fit_intercept: bool, dtype: torch.dtype, device) -> _Prepared:
    r"""Centre (weighted means) and scale rows by :math:`\sqrt{s_i}` (``s`` normalised to sum to n): the
    weighted, intercept-free problem as ``LeastSquares(X~, y~, 'mean')``. Dense ``X`` is copied only when
    it must change; sparse ``X`` keeps its nonzeros and is centred through `Design`'s rank-one offset."""
    n, d = X.shape
    sw = None
    if sample_weight is not None:
        sw = np.asarray(sample_weight, dtype=np.float64)
        sw = sw * (n / sw.sum())
    root = None if sw is None else np.sqrt(sw)
    y = np.asarray(y, dtype=np.float64)
    y_offset = float(np.average(y, weights=sw)) if fit_intercept else 0.0
    y_c = y - y_offset
    if root is not None:
        y_c = y_c * root
    np_dtype = np.float64 if dtype == torch.float64 else np.float32
    if sp.issparse(X):
        if fit_intercept:
            X_offset = np.asarray(X.mean(axis=0) if sw is None else (sw @ X) / n, dtype=np.float64).reshape(-1)
        else:
            X_offset = np.zeros(d)
        Xs = X
        if root is not None:  # scale the stored values row by row: the sparsity pattern is unchanged
            Xs = X.copy().astype(np_dtype)
            rows = Xs.indices if Xs.format == "csc" else np.repeat(np.arange(n), np.diff(Xs.indptr))
            Xs.data *= root[rows]
        design = Design(Xs, offset=X_offset if fit_intercept else None, row_weights=root, dtype=dtype, device=device)
        return _Prepared(LeastSquares(design, torch.as_tensor(y_c, dtype=dtype, device=device), "mean"), X_offset,
                         y_offset)
    X = np.asarray(X)
    X_offset = np.average(X, axis=0, weights=sw).astype(np.float64) if fit_intercept else np.zeros(d)
    Xc = X - X_offset.astype(X.dtype) if fit_intercept else X
    if root is not None:
        Xc = Xc * root[:, None].astype(X.dtype) if Xc is X else np.multiply(Xc, root[:, None], out=Xc, casting="unsafe")
    Xt = torch.from_numpy(np.asarray(Xc, dtype=np_dtype)).to(device)
    return _Prepared(LeastSquares(Xt, torch.as_tensor(y_c, dtype=dtype, device=device), "mean"), X_offset, y_offset)


class _L1Base(RegressorMixin, BaseEstimator):
    """What both estimators share: parameter checks, input validation, prediction, tags."""

    def _check_common(self):
        m, dtype, device = _resolve(self.method, self.dtype, self.device)
        if self.lr is not None:
            check_positive("lr", self.lr)
        check_int("max_iter", self.max_iter)
        check_positive("tol", self.tol)
        for name in ("fit_intercept", "positive"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise NdgmError(f"{name} must be True or False, got {getattr(self, name)!r}")
        if self.positive and m.family != "solver":
            raise NdgmError(f"positive=True needs an exact method ({', '.join(registry.names(family='solver'))}), "
                            f"got method={self.method!r}")
        return m, dtype, device

    def _validate_fit_input(self, X, y, sample_weight):
        X, y = validate_data(self, _host(X), _host(y), accept_sparse=["csr", "csc"], dtype=[np.float64, np.float32],
                             y_numeric=True, force_writeable=True, multi_output=False)
        if isinstance(sample_weight, numbers.Number):
            sample_weight = None
        if sample_weight is not None:
            sample_weight = _check_sample_weight(_host(sample_weight), X, dtype=np.float64, ensure_non_negative=True)
        return X, y, sample_weight

    def predict(self, X) -> np.ndarray:
        """``X @ coef_ + intercept_`` (dense or sparse ``X``)."""
        check_is_fitted(self)
        X = validate_data(self, _host(X), accept_sparse=["csr", "csc", "coo"], dtype=[np.float64, np.float32],
                          reset=False)
        return np.asarray(safe_sparse_dot(X, self.coef_.astype(np.float64), dense_output=True)).reshape(-1) \
            + self.intercept_

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags


class L1Regression(_L1Base):
    r"""L1-penalised least squares (scikit-learn's Lasso objective) fitted by any registered method.

    Parameters
    ----------
    alpha : float
        Penalty weight (>= 0), scikit-learn's scaling.
    method : str
        A name of `ndgm.registry` (canonical or alias); see the module. ``'fista'`` and ``'ista'`` are
        exact; the others run ``max_iter`` steps.
    fit_intercept : bool
        Fit an unpenalised intercept (by centring), as ``Lasso`` does.
    lr : float, optional
        Step of the NDGM and proximal methods; default the registry's ``default_lr`` (``1e-3`` for
        adam/rmsprop/prox-adam), else ``1/L`` with ``L = lambda_max(X~^T X~)/n`` by Lanczos. Unused by
        the exact methods.
    max_iter : int
        Steps run by the NDGM and proximal methods; the inner-step budget of the exact ones.
    tol : float
        Exact methods: stop when the duality gap is ``<= tol * ||y~||^2`` (``Lasso``'s rule; ``y~`` the
        centred, weighted target). A ``ConvergenceWarning`` says when ``max_iter`` ran out first.
    warm_start : bool
        Start from the previous ``coef_`` (all methods).
    positive : bool
        Constrain ``coef_ >= 0`` (exact methods).
    dtype : ``'float64'`` or ``'float32'``
        Computation dtype.
    device : str
        ``'cpu'``, ``'cuda'``, ``'auto'``...: where the solve runs.

    Attributes
    ----------
    coef_ : ndarray (n_features,)
    intercept_ : float
    n_iter_ : int
        Steps run (inner FISTA/ISTA steps over all working sets for the exact methods).
    dual_gap_ : float
        Duality gap at ``coef_`` (scikit-learn's scaling: divide the canonical gap by n), for every method.
    objective_ : float
        The objective above at ``coef_`` and ``intercept_``.
    certificate_ : float
        ``max_j dist(-grad_j, alpha d|coef_j|)``: 0 exactly at the minimiser.
    lr_ : float or None
        Step used by an NDGM or proximal method.
    n_features_in_ : int
    feature_names_in_ : ndarray of str (when ``X`` has column names)
    """

    def __init__(self, alpha: float = 1.0, *, method: str = "fista", fit_intercept: bool = True, lr: float | None = None,
                 max_iter: int = 10000, tol: float = 1e-8, warm_start: bool = False, positive: bool = False,
                 dtype: str = "float64", device: str = "cpu"):
        self.alpha = alpha
        self.method = method
        self.fit_intercept = fit_intercept
        self.lr = lr
        self.max_iter = max_iter
        self.tol = tol
        self.warm_start = warm_start
        self.positive = positive
        self.dtype = dtype
        self.device = device

    def fit(self, X, y, sample_weight=None) -> "L1Regression":
        """Fit on ``X (n, d)`` (array, DataFrame, scipy.sparse or torch, dense or sparse), ``y (n,)`` and
        optional ``sample_weight (n,)`` (>= 0, not all 0); returns ``self``."""
        m, dtype, device = self._check_common()
        alpha = check_nonnegative("alpha", self.alpha)
        X, y, sample_weight = self._validate_fit_input(X, y, sample_weight)
        prep = _prepare(X, y, sample_weight, bool(self.fit_intercept), dtype, device)
        W0 = None
        if self.warm_start and getattr(self, "coef_", None) is not None and np.shape(self.coef_) == (X.shape[1],):
            W0 = np.asarray(self.coef_, dtype=np.float64)
        fit = fit_path(prep.datafit, [alpha], m.name, W0, lr=self.lr, max_iter=self.max_iter, tol=self.tol,
                       positive=bool(self.positive))
        self.coef_ = fit.coef[0].astype(np.float64 if dtype == torch.float64 else np.float32)
        self.intercept_ = float(prep.y_offset - prep.X_offset @ fit.coef[0]) if self.fit_intercept else 0.0
        self.n_iter_ = int(fit.n_iter[0])
        self.dual_gap_ = float(fit.dual_gap[0])
        self.objective_ = float(fit.objective[0])
        self.certificate_ = float(fit.certificate[0])
        self.lr_ = fit.lr
        if m.family == "solver" and not bool(fit.converged[0]):
            warnings.warn(f"L1Regression(method={m.name!r}) stopped after max_iter={self.max_iter} steps with duality "
                          f"gap {self.dual_gap_:.3g} above tol; increase max_iter or tol", ConvergenceWarning,
                          stacklevel=2)
        return self


class L1RegressionCV(_L1Base):
    r"""`L1Regression` with the penalty chosen by cross-validation, in ``LassoCV``'s conventions.

    For each fold the whole path (``alphas``) is fitted on the training part with the fold's own centring
    and weights (`fit_path`: warm-started working sets for the exact methods, one batched run for the
    others) and scored by the (weighted) mean squared error on the held-out part; ``alpha_`` minimises
    the mean over folds and the model is refitted on all data.

    Parameters
    ----------
    eps : float
        ``alpha_min / alpha_max`` of the default grid.
    alphas : int, array or None
        The penalties, or how many on the default grid (None: 100).
    method, fit_intercept, lr, max_iter, tol, positive, dtype, device
        As for `L1Regression`.
    cv : int, splitter or iterable, optional
        ``LassoCV``'s ``cv`` (default 5-fold).
    n_jobs : int, optional
        Folds fitted in parallel (threads).

    Attributes
    ----------
    alpha_ : float
    alphas_ : ndarray (n_alphas,)
        Decreasing.
    mse_path_ : ndarray (n_alphas, n_folds)
    coef_, intercept_, dual_gap_, n_iter_, n_features_in_, feature_names_in_
        Of the final fit at ``alpha_``.
    """

    def __init__(self, *, eps: float = 1e-3, alphas=None, method: str = "fista", fit_intercept: bool = True,
                 lr: float | None = None, max_iter: int = 10000, tol: float = 1e-8, cv=None, n_jobs=None,
                 positive: bool = False, dtype: str = "float64", device: str = "cpu"):
        self.eps = eps
        self.alphas = alphas
        self.method = method
        self.fit_intercept = fit_intercept
        self.lr = lr
        self.max_iter = max_iter
        self.tol = tol
        self.cv = cv
        self.n_jobs = n_jobs
        self.positive = positive
        self.dtype = dtype
        self.device = device

    def fit(self, X, y, sample_weight=None) -> "L1RegressionCV":
        from joblib import Parallel, delayed

        m, dtype, device = self._check_common()
        check_positive("eps", self.eps)
        X, y, sample_weight = self._validate_fit_input(X, y, sample_weight)
        fit_intercept, positive = bool(self.fit_intercept), bool(self.positive)
        if self.alphas is None or isinstance(self.alphas, numbers.Integral):
            full = _prepare(X, y, sample_weight, fit_intercept, dtype, device)
            alphas = alpha_grid(full.datafit, 100 if self.alphas is None else int(self.alphas), self.eps, positive)
        else:
            alphas = np.sort(np.asarray(self.alphas, dtype=np.float64).reshape(-1))[::-1]
            if alphas.size == 0 or not (np.isfinite(alphas).all() and (alphas >= 0).all()):
                raise NdgmError(f"alphas must be finite and >= 0, got {alphas.tolist()}")
        folds = list(check_cv(self.cv).split(X, y))

        def fold_mse(train, test):
            sw_train = None if sample_weight is None else sample_weight[train]
            prep = _prepare(X[train], y[train], sw_train, fit_intercept, dtype, device)
            fit = fit_path(prep.datafit, alphas, m.name, None, lr=self.lr, max_iter=self.max_iter, tol=self.tol,
                           positive=positive)
            intercepts = prep.y_offset - fit.coef @ prep.X_offset  # (K,)
            pred = np.asarray(safe_sparse_dot(X[test], fit.coef.T, dense_output=True)) + intercepts
            resid2 = (pred - y[test][:, None]) ** 2
            weights = None if sample_weight is None else sample_weight[test]
            return np.average(resid2, axis=0, weights=weights)

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)  # judged by the held-out error, refitted below
            mse = Parallel(n_jobs=self.n_jobs, prefer="threads")(delayed(fold_mse)(tr, te) for tr, te in folds)
        self.mse_path_ = np.stack(mse, axis=1)  # (n_alphas, n_folds)
        self.alphas_ = alphas
        self.alpha_ = float(alphas[int(np.argmin(self.mse_path_.mean(axis=1)))])
        model = L1Regression(self.alpha_, method=self.method, fit_intercept=self.fit_intercept, lr=self.lr,
                             max_iter=self.max_iter, tol=self.tol, positive=self.positive, dtype=self.dtype,
                             device=self.device)
        model.fit(X, y, sample_weight=sample_weight)
        for name in ("coef_", "intercept_", "dual_gap_", "n_iter_", "objective_", "certificate_", "lr_"):
            setattr(self, name, getattr(model, name))
        return self
