r"""The fast exact LASSO solver: gap-safe screening, working sets, FISTA inside, the duality gap to stop.

`working_set_solver(datafit, penalty)` solves

.. math:: \min_w\ f(w) + \alpha\|w\|_1, \qquad f(w) = c\,\|Xw - y\|_2^2

for a `LeastSquares` datafit (``c = 1/(2n)`` with scikit-learn's ``scaling='mean'``) and an
`L1Penalty` with one or K weights, on dense or sparse ``X`` (a `Design`), optionally with
``w >= 0``. Internally the problem is the canonical
:math:`P(w) = \tfrac12\|y - Xw\|^2 + \lambda\|w\|_1` with :math:`\lambda = \alpha / (2c)`.

Each outer iteration costs one product :math:`X^\top r` with the residual :math:`r = y - Xw`, which
gives everything at once (Fercoq, Gramfort & Salmon 2015; Massias, Gramfort & Salmon 2018, celer):

* a dual point :math:`\theta = s\,r`, :math:`s = \min(1, \lambda / \|X^\top r\|_\infty)`, and the
  duality gap :math:`G = P(w) - D(\theta)`, :math:`D(\theta) = -\tfrac{s^2}2\|r\|^2 + s\,r\cdot y`
  (scikit-learn's formula), which bounds :math:`P(w) - P^\star`. The solver stops when
  :math:`G \le \mathrm{tol}\,\|y\|^2`: scikit-learn's stopping rule, so ``tol`` means what it
  means for ``sklearn.linear_model.Lasso``;
* gap-safe screening: feature ``j`` is zero at every solution when
  :math:`1 - |x_j^\top r|\,s/\lambda > \sqrt{2G}\,\|x_j\|/\lambda`; it is set to zero and never
  looked at again (for this penalty);
* a working set: the current support plus the features closest to violating their constraint
  (smallest :math:`(1 - |x_j^\top\theta|/\lambda)/\|x_j\|`), of size
  :math:`\max(p_0, 2|\mathrm{supp}(w)|)`, doubled when an outer iteration made too little progress.

On the working set ``W`` the subproblem is solved in Gram form, :math:`\tfrac12 w^\top G w - b^\top w +
\lambda\|w\|_1` with :math:`G = X_W^\top X_W` (cached across outer iterations and penalties; only new
columns are multiplied) and :math:`b = X_W^\top y`, by FISTA (or ISTA) with gradient restart on the
Jacobi-scaled problem (columns of unit norm: coordinate descent's invariance to column scaling,
given to a gradient method). Its step is ``1/L`` with ``L`` from a few power-iteration products on the
small Gram and raised by backtracking whenever the sufficient-decrease test fails, which for a
quadratic is exactly :math:`d^\top G d \le L\|d\|^2`. Once the support and signs of the iterate stop
changing, one linear solve on the support, :math:`G_{SS} w_S = b_S - \lambda\,\mathrm{sgn}(w_S)`,
gives the subproblem's exact solution when the pattern is right; the subproblem's own duality gap
decides whether it is accepted, so a wrong pattern costs one solve and nothing else. Zeros are
exact throughout (soft thresholding, screening, the support solve).

For a sparse ``X`` on the CPU a working set of more than `GRAM_FREE_ABOVE` features never forms its Gram
(`_SparseSubproblem`): its columns are kept as a sparse block and :math:`G v = X_W^\top(X_W v)` (plus the
centring's rank-one terms) costs ``O(nnz(X_W) + n)``, where the dense Gram of a working set of ``k``
columns costs ``k^2`` to build, copy, scale and multiply and ``|S|^3`` to factor (at ``k`` ~ 4000 features,
seconds per outer iteration); the support solve is then conjugate gradients on the same operator,
warm-started at the iterate. Smaller working sets keep the Gram: there its cost is below the per-call
overhead of the sparse products.

With K penalties the problems are solved in the order given, each warm-started from the previous
solution (a path, as ``lasso_path`` does), sharing the Gram cache and ``X^T y``.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import scipy.linalg
import torch
from torch import Tensor

from ..errors import NdgmError, check_int, check_nonnegative, check_positive
from ..problems import L1Penalty, LeastSquares
from .design import Design
from .solvers import SolverResult, _momentum_table

__all__ = ["working_set_solver", "canonical_factor", "duality_gap"]

INNER = ("fista", "ista")
# Working sets of a sparse design (CPU) larger than this run on its columns (`_SparseSubproblem`); smaller ones
# on their cached dense Gram (8 MB at 1024), cheaper there than the per-call overhead of sparse products.
GRAM_FREE_ABOVE = 1024


def canonical_factor(datafit: LeastSquares) -> float:
    r"""``2c`` where ``f(w) = c ||Xw - y||^2``: the datafit is ``2c`` times :math:`\tfrac12\|Xw - y\|^2`."""
    return {"mean": 1.0 / datafit.n, "half": 1.0, "sum": 2.0}[datafit.scaling]


def duality_gap(lam: float, c: np.ndarray, r_norm2: float, r_dot_y: float, l1: float,
                positive: bool = False) -> tuple[float, float]:
    r"""Duality gap of :math:`\tfrac12\|y - Xw\|^2 + \lambda\|w\|_1` at ``w`` from ``c = X^T r``,
    ``||r||^2``, ``r.y`` and ``||w||_1``; returns ``(gap, s)`` with ``s`` the dual scaling.

    :math:`s = \min(1, \lambda/\|c\|_\infty)` (``max_j c_j`` with ``positive``),
    :math:`G = \tfrac12\|r\|^2 + \lambda\|w\|_1 + \tfrac{s^2}2\|r\|^2 - s\,r\cdot y`. With
    :math:`\lambda = 0` there is no dual; scikit-learn's criterion :math:`\|c\|_2^2` is returned.
    """
    if lam == 0:
        return float(c @ c), 1.0
    if c.size == 0:
        dual_norm = 0.0
    else:
        dual_norm = max(float(c.max()), 0.0) if positive else float(np.abs(c).max())
    s = 1.0 if dual_norm <= lam else lam / dual_norm
    primal = 0.5 * r_norm2 + lam * l1
    dual = -0.5 * s * s * r_norm2 + s * r_dot_y
    return primal - dual, s


def _lambda_max_estimate(matvec, dim: int, iterations: int = 30, rtol: float = 1e-3) -> float:
    """``||G x||`` after a few power iterations from the all-ones vector (``matvec(x) = G x``, G symmetric
    PSD of size ``dim``): a lower bound on ``lambda_max(G)`` that backtracking raises if a step shows it too low."""
    x = np.full(dim, 1.0 / math.sqrt(dim))
    est = 0.0
    for _ in range(iterations):
        gx = matvec(x)
        nrm = float(np.sqrt(gx @ gx))
        if nrm == 0.0:
            return 1.0
        x = gx / nrm
        if abs(nrm - est) <= rtol * nrm:
            return nrm
        est = nrm
    return est


class _Subproblem:
    r"""``1/2 v^T Gt v - bt^T v + sum_j lt_j |v_j|`` (+ ``v >= 0``): the working-set problem with unit-norm
    columns (``v = D w``, ``Gt = D^-1 G D^-1``, ``bt = D^-1 b``, ``lt = lam / D``, ``D = sqrt(diag G)``)."""

    def __init__(self, G: np.ndarray, b: np.ndarray, lam: float, y2: float, positive: bool):
        self.scale = np.sqrt(np.diag(G))
        inv = 1.0 / self.scale
        self.G = G * inv[:, None] * inv[None, :]
        self.b = b * inv
        self.lam = lam
        self.lt = lam * inv
        self.y2 = y2
        self.positive = positive

    def matvec(self, v: np.ndarray) -> np.ndarray:
        """``Gt v``."""
        return self.G @ v

    def gap(self, v: np.ndarray, Gv: np.ndarray) -> float:
        c = self.b - Gv  # X_W^T r, column-scaled
        r_norm2 = self.y2 - 2 * (self.b @ v) + v @ Gv
        r_dot_y = self.y2 - self.b @ v
        if self.lam == 0:
            return float(c @ c)
        ratio = c / self.lt  # x_j^T r / lam, scale-free
        dual_norm = max(float(ratio.max()), 0.0) if self.positive else float(np.abs(ratio).max())
        s = 1.0 if dual_norm <= 1.0 else 1.0 / dual_norm
        primal = 0.5 * r_norm2 + self.lt @ np.abs(v)
        return float(primal - (-0.5 * s * s * r_norm2 + s * r_dot_y))

    def support_solve(self, v: np.ndarray):
        """The exact minimiser if ``v``'s support and signs are the solution's: ``(v, Gv)`` or None."""
        S = np.flatnonzero(v)
        if S.size == 0 or S.size > 2500:
            return None
        signs = np.sign(v[S])
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # ill-conditioned: the gap test below decides
                vS = scipy.linalg.solve(self.G[np.ix_(S, S)], self.b[S] - self.lt[S] * signs, assume_a="pos",
                                        check_finite=False)
        except (np.linalg.LinAlgError, ValueError):
            return None
        if not (np.isfinite(vS).all() and np.array_equal(np.sign(vS), signs)):
            return None
        out = np.zeros_like(v)
        out[S] = vS
        return out, self.G[:, S] @ vS


class _SparseSubproblem(_Subproblem):
    r"""The same subproblem for a sparse design, with the Gram never formed: the working set's columns are
    kept as a scipy CSC block ``C`` (n x k, scaled to unit norm) and the centring as its rank-one term, so
    :math:`\tilde G v = \tilde C^\top(\tilde C v)` with :math:`\tilde C = C - u o^\top` costs
    ``O(nnz(C) + n)``. The Gram of ``k`` sparse columns is dense once centred (and ``k^2`` to build, copy and
    scale even when it is not); the products are what the solve needs. The support solve is conjugate
    gradients on the same operator restricted to the support, warm-started at the current iterate."""

    def __init__(self, data: "_Data", ws: np.ndarray, lam: float, positive: bool):
        self.scale = data.norms[ws]
        inv = 1.0 / self.scale
        C = data.design.host_columns(ws).astype(np.float64)  # a fresh copy: scaled in place below
        C.data *= np.repeat(inv, np.diff(C.indptr))
        self.C = C
        self.u = data.row_weights
        self.o = None if data.offset is None else data.offset[ws] * inv
        self.b = data.Xty[ws] * inv
        self.lam = lam
        self.lt = lam * inv
        self.y2 = data.y2
        self.positive = positive

    def _apply(self, C, o, v: np.ndarray) -> np.ndarray:
        t = C @ v
        if o is None:
            return C.T @ t
        t -= self.u * (o @ v)
        return C.T @ t - o * (self.u @ t)

    def matvec(self, v: np.ndarray) -> np.ndarray:
        return self._apply(self.C, self.o, v)

    def support_solve(self, v: np.ndarray):
        """Conjugate gradients on :math:`\tilde G_{SS} v_S = b_S - l_S\,\mathrm{sgn}(v_S)` from ``v_S``; like the
        dense solve, the result is kept only if its signs are right (and, by the caller, if its gap is lower)."""
        S = np.flatnonzero(v)
        if S.size == 0:
            return None
        signs = np.sign(v[S])
        C, o = self.C[:, S], None if self.o is None else self.o[S]
        rhs = self.b[S] - self.lt[S] * signs
        x = v[S].copy()
        res = rhs - self._apply(C, o, x)
        p, rr = res.copy(), float(res @ res)
        stop = (1e-14 * float(np.sqrt(rhs @ rhs))) ** 2
        for _ in range(min(2 * S.size, 2000)):
            if rr <= stop:
                break
            Ap = self._apply(C, o, p)
            pAp = float(p @ Ap)
            if not pAp > 0:  # singular direction (or rounding): stop where we are
                break
            step = rr / pAp
            x += step * p
            res -= step * Ap
            rr_new = float(res @ res)
            p = res + (rr_new / rr) * p
            rr = rr_new
        if not (np.isfinite(x).all() and np.array_equal(np.sign(x), signs)):
            return None
        out = np.zeros_like(v)
        out[S] = x
        return out, self.matvec(out)


def _inner_solve(sub: _Subproblem, v: np.ndarray, eps: float, max_iter: int, accelerated: bool,
                 check_every: int = 10) -> tuple[np.ndarray, int, float]:
    """FISTA/ISTA with backtracking, gradient restart and support solves on a `_Subproblem`, from ``v``,
    until its duality gap is ``<= eps`` or ``max_iter`` steps; ``(v, steps, gap)``."""
    b, positive, matvec = sub.b, sub.positive, sub.matvec
    Gv = matvec(v)
    gap = sub.gap(v, Gv)
    if gap <= eps or max_iter <= 0:
        return v, 0, gap
    L = _lambda_max_estimate(matvec, v.shape[0])
    thr = sub.lt / L
    momentum = _momentum_table(512)
    z, Gz, count = v, Gv, 0
    last_pattern, tried = None, set()
    it = 0
    while it < max_iter:
        it += 1
        while True:
            u = z - (Gz - b) / L
            v_new = np.maximum(u - thr, 0.0) if positive else u - np.clip(u, -thr, thr)
            Gv_new = matvec(v_new)
            step = v_new - z
            curvature = step @ (Gv_new - Gz)
            sq = step @ step
            # sufficient decrease for a quadratic: step^T G step <= L ||step||^2 (rounding allowance)
            if curvature <= L * sq * (1 + 1e-12):
                break
            L = max(1.1 * L, 1.01 * curvature / sq)
            thr = sub.lt / L
        if accelerated:
            travel = v_new - v
            if step @ travel < 0:  # gradient restart (O'Donoghue & Candes 2015)
                count = 0
                z, Gz = v_new, Gv_new
            else:
                count += 1
                if count >= momentum.shape[0]:
                    momentum = _momentum_table(2 * count)
                beta = momentum[count]
                z, Gz = v_new + beta * travel, Gv_new + beta * (Gv_new - Gv)
        else:
            z, Gz = v_new, Gv_new
        v, Gv = v_new, Gv_new
        if it % check_every == 0 or it == max_iter:
            gap = sub.gap(v, Gv)
            pattern = np.sign(v).tobytes()
            # Support and signs stable (or the target met): try the exact solve on the support. It costs
            # one small Cholesky; when the pattern is the solution's it ends the working set at rounding level.
            if (gap <= eps or pattern == last_pattern) and pattern not in tried:
                tried.add(pattern)
                exact = sub.support_solve(v)
                if exact is not None:
                    gap_exact = sub.gap(*exact)
                    if gap_exact < gap:
                        v, Gv = exact
                        gap = gap_exact
                        z, Gz, count = v, Gv, 0
            if gap <= eps:
                break
            last_pattern = pattern
    return v, it, gap


class _GramCache:
    """``X_A^T X_A`` for the features seen so far: a new working set multiplies only its new columns.

    For dense ``X`` the columns themselves are kept too, as contiguous rows (``A`` x n): the residual
    ``y - X_W w_W`` and the products with new columns then never touch ``X`` again."""

    def __init__(self, design: Design):
        self.design = design
        n, d = design.shape
        self.slot = np.full(d, -1, dtype=np.int64)
        self.features = np.zeros(0, dtype=np.int64)
        self.G = np.zeros((0, 0))
        self.rows = None if design.is_sparse else torch.zeros(0, n, dtype=design.dtype, device=design.device)
        # at most a quarter of X's size (dense) and 4096 columns
        self.limit = 4096 if design.is_sparse else max(64, min(4096, d // 4))

    def block(self, ws: np.ndarray) -> np.ndarray:
        new = ws[self.slot[ws] < 0]
        if new.size:
            if self.features.size + new.size > self.limit:  # forget the old columns rather than grow without bound
                self.slot[self.features] = -1
                self.features = np.zeros(0, dtype=np.int64)
                self.G = np.zeros((0, 0))
                if self.rows is not None:
                    self.rows = self.rows[:0]
                new = ws
            m, k = self.features.size, new.size
            G = np.empty((m + k, m + k))
            G[:m, :m] = self.G
            if self.rows is not None:
                fresh = self.design.columns_t(new)
                cross = (self.rows @ fresh.T).double().cpu().numpy() if m else None
                diag = (fresh @ fresh.T).double().cpu().numpy()
                self.rows = torch.cat([self.rows, fresh])
            else:  # one product X_new^T X_[old, new]: each column block is selected once
                both = self.design.gram(new, np.concatenate([self.features, new])).double().cpu().numpy()
                cross = both[:, :m].T if m else None
                diag = both[:, m:]
            if m:
                G[:m, m:] = cross
                G[m:, :m] = cross.T
            G[m:, m:] = diag
            self.G = G
            self.slot[new] = np.arange(m, m + k)
            self.features = np.concatenate([self.features, new])
        s = self.slot[ws]
        return self.G[np.ix_(s, s)]

    def product(self, ws: np.ndarray, w_ws: np.ndarray) -> Tensor | None:
        """``X_W w_W`` from the cached columns (dense ``X``, ``ws`` cached), else None."""
        if self.rows is None or (self.slot[ws] < 0).any():
            return None
        s = torch.as_tensor(self.slot[ws], device=self.rows.device)
        return torch.as_tensor(w_ws, dtype=self.rows.dtype, device=self.rows.device) @ self.rows[s]


class _Data:
    """What every penalty of one call shares: the design, y, ``X^T y``, column norms, the Gram cache."""

    def __init__(self, datafit: LeastSquares):
        X = datafit.X
        self.design = X if isinstance(X, Design) else Design(X)
        self.y = datafit.y.to(dtype=self.design.dtype, device=self.design.device)
        self.n, self.d = self.design.shape
        self.y2 = float(self.y @ self.y)
        self.Xty = self.design.rmatvec(self.y).double().cpu().numpy()
        self.norms2 = self.design.column_norms2().double().cpu().numpy()
        self.norms = np.sqrt(self.norms2)
        self.empty = self.norms2 <= 0.0  # a zero column's coefficient is 0 at every solution
        self.cache = _GramCache(self.design)
        self.eps = float(torch.finfo(self.design.dtype).eps)
        # sparse X on the CPU: the working sets run on its columns (`_SparseSubproblem`), never on a Gram
        self.gram_free = self.design.is_sparse and self.design.has_host_columns
        host = lambda t: None if t is None else t.double().cpu().numpy()  # noqa: E731
        self.offset, self.row_weights = host(self.design.offset), host(self.design.row_weights)

    def residual(self, w: np.ndarray, ws: np.ndarray | None = None) -> Tensor:
        """``y - X w`` (``w`` zero outside ``ws`` when given)."""
        if ws is None:
            ws = np.flatnonzero(w)
        if ws.size == 0:
            return self.y.clone()
        fit = self.cache.product(ws, w[ws])
        if fit is None:
            fit = self.design.matvec(torch.as_tensor(w, dtype=self.design.dtype, device=self.design.device))
        return self.y - fit


def _solve_one(data: _Data, lam: float, w: np.ndarray, tol_abs: float, max_iter: int, max_outer: int, p0: int,
               screening: bool, positive: bool, accelerated: bool):
    """One penalty: returns ``(w, gap, c, r_norm2, n_iter, n_outer)`` with ``c = X^T r`` at the returned ``w``."""
    d = data.d
    screened = data.empty.copy()
    w[screened] = 0.0
    r = data.residual(w)
    n_iter = 0
    prev_ws = None
    outer = 0
    best_gap, stalled = math.inf, 0
    while True:
        if outer == 0 and not w.any():  # at w = 0, X^T r = X^T y is known
            c = data.Xty
        else:
            c = data.design.rmatvec(r).double().cpu().numpy()
        r_norm2, r_dot_y = float(r @ r), float(r @ data.y)
        gap, s = duality_gap(lam, c, r_norm2, r_dot_y, float(np.abs(w).sum()), positive)
        # no progress in five outer iterations: the gap sits at rounding level above tol (report, don't spin)
        stalled = 0 if gap < 0.9 * best_gap else stalled + 1
        best_gap = min(best_gap, gap)
        if gap <= tol_abs or outer >= max_outer or n_iter >= max_iter or stalled >= 5:
            return w, gap, c, r_norm2, n_iter, outer
        outer += 1
        free = ~screened
        if lam > 0:
            corr = (c if positive else np.abs(c)) * (s / lam)  # x_j^T theta / lam, <= 1 (theta dual feasible)
            with np.errstate(divide="ignore", invalid="ignore"):
                score = (1.0 - corr) / data.norms  # distance of theta to feature j's constraint
            if screening:
                # gap-safe sphere test: |x_j^T theta'| < lam for every theta' within sqrt(2 gap) / lam of theta
                newly = free & (score > math.sqrt(2 * max(gap, 0.0)) / lam)
                if newly.any():
                    screened |= newly
                    free &= ~newly
                    if w[newly].any():
                        w[newly] = 0.0
                        r = data.residual(w)
        else:  # no dual to screen with: rank by the gradient alone
            with np.errstate(divide="ignore", invalid="ignore"):
                score = -np.abs(c) / data.norms
        n_free = int(free.sum())
        if n_free == 0:  # every feature screened: w = 0 is the solution
            w[:] = 0.0
            r = data.residual(w)
            continue
        support = w != 0
        ws_size = min(n_free, max(p0, 2 * int(support.sum())))
        priority = np.where(free, score, np.inf)
        priority[support] = -np.inf
        if ws_size < n_free:
            ws = np.sort(np.argpartition(priority, ws_size - 1)[:ws_size])
        else:
            ws = np.flatnonzero(free)
        if prev_ws is not None and np.array_equal(ws, prev_ws):
            # the same working set again (its subproblem was solved only to 0.3 gap): double it, so
            # that the working set reaches every unscreened feature in finitely many outer iterations
            ws_size = min(n_free, 2 * ws_size)
            ws = np.sort(np.argpartition(priority, ws_size - 1)[:ws_size]) if ws_size < n_free else np.flatnonzero(free)
        prev_ws = ws
        if data.gram_free and ws.size > GRAM_FREE_ABOVE:
            sub = _SparseSubproblem(data, ws, lam, positive)
        else:
            sub = _Subproblem(data.cache.block(ws), data.Xty[ws], lam, data.y2, positive)
        v0 = w[ws] * sub.scale
        eps = max(0.3 * gap, 0.5 * tol_abs)
        v, its, _ = _inner_solve(sub, v0, eps, max_iter - n_iter, accelerated)
        n_iter += its
        w[ws] = v / sub.scale
        r = data.residual(w, ws)


def working_set_solver(datafit: LeastSquares, penalty: L1Penalty, W0=None, *, inner: str = "fista", tol: float = 1e-8,
                       max_iter: int = 100000, max_outer: int = 100, p0: int = 10, screening: bool = True,
                       positive: bool = False) -> SolverResult:
    r"""Exact LASSO solution(s) by working sets, gap-safe screening and an inner FISTA/ISTA (see the module).

    Parameters
    ----------
    datafit : LeastSquares
        ``X`` a dense tensor or a `Design` (sparse and/or implicitly centred); any scaling.
    penalty : L1Penalty
        ``lam`` a float or K weights (>= 0), solved in the given order, each warm-started from the
        previous solution (give them decreasing, as ``lasso_path`` does).
    W0 : array (d,) or (K, d), optional
        Initial point of the first penalty (d,), or of each penalty (K, d); zeros by default.
    inner : ``'fista'`` or ``'ista'``
        The method on the working set.
    tol : float
        Stop when the duality gap of the canonical problem is ``<= tol * ||y||^2`` (scikit-learn's rule).
    max_iter : int
        Inner (FISTA/ISTA) steps per penalty, all working sets together.
    max_outer : int
        Outer iterations (products ``X^T r``) per penalty.
    p0 : int
        Smallest working set.
    screening : bool
        Gap-safe screening.
    positive : bool
        Constrain ``w >= 0``.

    Returns
    -------
    SolverResult
        ``coef (K, d)``, ``objective`` and ``dual_gap`` in the datafit's scaling (scikit-learn's
        ``dual_gap_`` for ``'mean'``), ``certificate`` (``dist(-grad f, alpha d||w||_1)``), ``n_iter``
        (inner steps), ``n_outer``, ``converged`` (gap within ``tol``), ``step`` (NaN: no single step).
    """
    if not isinstance(datafit, LeastSquares):
        raise NdgmError(f"working_set_solver solves a LeastSquares datafit, got {type(datafit).__name__}")
    if not isinstance(penalty, L1Penalty):
        raise NdgmError(f"working_set_solver takes an L1Penalty, got {type(penalty).__name__}")
    if inner not in INNER:
        raise NdgmError(f"inner must be one of {', '.join(INNER)}, got {inner!r}")
    tol = check_positive("tol", tol)
    max_iter = check_int("max_iter", max_iter, minimum=0)
    max_outer = check_int("max_outer", max_outer)
    p0 = check_int("p0", p0)
    lam = penalty.lam
    alphas = (lam.detach().cpu().double().reshape(-1).numpy() if isinstance(lam, torch.Tensor)
              else np.asarray(lam, dtype=np.float64).reshape(-1))  # a Python float stays float64
    for a in alphas:
        check_nonnegative("alpha", a)
    data = _Data(datafit)
    if not math.isfinite(data.y2) or not np.isfinite(data.Xty).all():
        raise NdgmError("X and y must be finite")
    K, d = alphas.shape[0], data.d
    if W0 is None:
        starts = None
        w = np.zeros(d)
    else:
        W0 = np.asarray(torch.as_tensor(W0).detach().cpu().double().numpy())
        if W0.ndim == 1:
            W0 = W0[None]
        if W0.shape[-1] != d or W0.shape[0] not in (1, K):
            raise NdgmError(f"W0 must have shape ({d},) or ({K}, {d}), got {W0.shape}")
        if not np.isfinite(W0).all():
            raise NdgmError("W0 must be finite")
        starts = W0 if W0.shape[0] == K else None
        w = W0[0].copy()
    if positive:
        w = np.maximum(w, 0.0)
    factor = canonical_factor(datafit)
    # below a few ulps of ||y||^2 the gap is rounding noise: ask for no more than the dtype can certify
    tol_abs = max(tol, 10 * data.eps) * data.y2
    coefs, gaps, objs, certs, iters, outers = (np.zeros((K, d)), *(np.zeros(K) for _ in range(3)),
                                                np.zeros(K, dtype=np.int64), np.zeros(K, dtype=np.int64))
    for k, alpha in enumerate(alphas):
        if starts is not None:
            w = np.maximum(starts[k], 0.0) if positive else starts[k].copy()
        lam = float(alpha) / factor
        w, gap, c, r_norm2, n_iter, n_outer = _solve_one(data, lam, w, tol_abs, max_iter, max_outer, p0, screening,
                                                          positive, inner == "fista")
        coefs[k] = w
        gaps[k] = factor * max(gap, 0.0)  # the gap is >= 0; a negative value is rounding in its two halves
        objs[k] = factor * (0.5 * r_norm2 + lam * np.abs(w).sum())
        grad = -factor * c  # gradient of the datafit: -2c X^T r
        certs[k] = float(L1Penalty(float(alpha)).subdiff_distance(w[None], grad[None])[0])
        if positive:  # the constraint's normal cone: a zero coordinate may have any gradient >= -alpha
            certs[k] = float(np.max(np.where(w > 0, np.abs(grad + alpha), np.maximum(-grad - alpha, 0.0)), initial=0.0))
        iters[k], outers[k] = n_iter, n_outer
        w = w.copy()
    dtype = data.design.dtype
    as_t = lambda a: torch.as_tensor(a, dtype=dtype)  # noqa: E731
    return SolverResult(coef=as_t(coefs), objective=as_t(objs), certificate=as_t(certs),
                        n_iter=torch.as_tensor(iters), converged=torch.as_tensor(gaps <= factor * tol_abs),
                        step=torch.full((K,), float("nan"), dtype=dtype), dual_gap=as_t(gaps),
                        n_outer=torch.as_tensor(outers))
