r"""Full-batch proximal solvers for the LASSO, batched over penalty weights (skglm style).

`ista` and `fista` take a datafit and a penalty, as ``skglm.solvers.FISTA`` does: a
`LeastSquares` datafit (any scaling; scikit-learn's is ``'mean'``) and an `L1Penalty` whose
weight holds K penalties, so that

.. math:: F_\alpha(w) = \frac{1}{2n}\|y - Xw\|_2^2 + \alpha \|w\|_1

is solved for K values of ``alpha`` at once (``W`` of shape ``(K, d)``). They take a gradient
step on the datafit and then soft-threshold, so the coordinates they set to zero are exactly
``0.0`` -- no thresholding after the fact. Each result carries the optimality certificate
``penalty.subdiff_distance(w, grad g(w))``, :math:`\mathrm{dist}(-\nabla g(w), \alpha\,\partial\|w\|_1)`,
which is zero exactly at a minimiser. `solve_lasso` builds the pair from ``(X, y, alpha)``.

They run on the whole problem, all K penalties in one batch (on a GPU, a whole path at once). The fast
exact solver for one penalty or a warm-started path is `ndgm.sparse.working_set.working_set_solver`
(screening, working sets, this FISTA inside, the duality gap as stopping rule); the estimator uses it.
The step ``1/L`` starts from ``L = lambda_max(X^T X)`` scaled by the datafit, found by Lanczos on
products with ``X`` (a few dozen mat-vecs: never ``X X^T`` or an eigendecomposition). ``X`` may be a
dense tensor or a sparse `Design`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ..errors import NdgmError, check_int, check_positive
from ..problems import L1Penalty, LeastSquares
from .design import Design, as_design

__all__ = ["SolverResult", "ista", "fista", "solve_lasso", "SOLVERS"]


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
        Final step size ``1 / L_k`` found by backtracking (NaN for `working_set_solver`, whose steps
        live on its working sets).
    dual_gap : Tensor (K,) or None
        Duality gap at ``coef`` in the datafit's scaling (`working_set_solver`, which stops on it).
    n_outer : Tensor (K,) of int, or None
        Outer iterations (working sets) of `working_set_solver`.
    """

    coef: Tensor
    objective: Tensor
    certificate: Tensor
    n_iter: Tensor
    converged: Tensor
    step: Tensor
    dual_gap: Tensor | None = None
    n_outer: Tensor | None = None


class _Backend:
    """The few array operations the solver loop needs, for numpy or torch arrays.

    On the CPU the loop runs in numpy on zero-copy views of the tensors: for d = 10 a numpy
    op costs under a microsecond and a torch op several, and a FISTA iteration is nothing
    but tiny ops. Other devices (and dtypes numpy lacks) run the same loop in torch.
    """

    def __init__(self, use_numpy: bool, dtype: torch.dtype, device: torch.device):
        self.numpy = use_numpy
        if use_numpy:
            self.mm, self.maximum, self.minimum = np.dot, np.maximum, np.minimum
            # np.vecdot (numpy >= 2) is one gufunc call instead of a product and a reduction.
            self.rowdot = getattr(np, "vecdot", None) or (lambda a, b: np.add.reduce(a * b, -1))
            self.array = lambda v: np.asarray(v, dtype=np.float64 if dtype == torch.float64 else np.float32)
            self.index = lambda v: np.asarray(v, dtype=np.int64)
            self.eye = lambda k: np.eye(k, dtype=self.array(0.0).dtype)
        else:
            self.mm, self.maximum, self.minimum = torch.matmul, torch.maximum, torch.minimum
            self.rowdot = torch.linalg.vecdot
            self.array = lambda v: torch.as_tensor(v, dtype=dtype, device=device)
            self.index = lambda v: torch.as_tensor(v, dtype=torch.long, device=device)
            self.eye = lambda k: torch.eye(k, dtype=dtype, device=device)


def _lipschitz(X) -> float:
    """``lambda_max(X^T X)`` by Lanczos on products with ``X`` (`Design.spectral_norm2`), raised by 1e-9
    relative so that it bounds the true value despite the iteration's tolerance: a few dozen
    mat-vecs, never ``X^T X`` or an eigendecomposition."""
    design = X if isinstance(X, Design) else Design(X)
    return design.spectral_norm2() * (1 + 1e-9)


def _numpy_backend(X) -> bool:
    """Run the solver loop in numpy (CPU float32/float64) rather than torch (a sparse `Design` runs in torch)."""
    return not isinstance(X, Design) and X.device.type == "cpu" and X.dtype in (torch.float32, torch.float64)


def _momentum_table(length: int) -> np.ndarray:
    r"""``beta[c] = (t_{c-1} - 1) / t_c`` for ``c >= 1`` and ``beta[0] = 0``, where ``t_0 = 1``,
    :math:`t_{c+1} = (1 + \sqrt{1 + 4 t_c^2}) / 2`: FISTA's extrapolation weight ``c`` steps after a (re)start."""
    global _MOMENTUM
    if _MOMENTUM.shape[0] < length:
        t, beta = 1.0, [0.0]
        for _ in range(1, max(length, 2 * _MOMENTUM.shape[0])):
            t_next = (1 + math.sqrt(1 + 4 * t * t)) / 2
            beta.append((t - 1) / t_next)
            t = t_next
        _MOMENTUM = np.asarray(beta)
    return _MOMENTUM


_MOMENTUM = np.zeros(0)


def _prepare(datafit: LeastSquares, penalty: L1Penalty, W0, max_iter, tol):
    if not isinstance(datafit, LeastSquares):
        raise NdgmError("ista/fista solve a LeastSquares datafit (the backtracking test and the Gram form use "
                        f"that it is quadratic), got {type(datafit).__name__}")
    if not isinstance(penalty, L1Penalty):
        raise NdgmError(f"ista/fista take an L1Penalty, got {type(penalty).__name__}")
    X, y = datafit.X, datafit.y
    a = torch.as_tensor(penalty.lam, dtype=X.dtype, device=X.device).reshape(-1)
    a_host = a.cpu().numpy()  # checked on the host: a few torch reductions would cost more than the solve
    if not (np.isfinite(a_host).all() and (a_host >= 0).all()):
        raise NdgmError(f"alpha must be finite and >= 0, got {a.tolist()}")
    K, d = a.shape[0], X.shape[1]
    if W0 is None:
        W = torch.zeros(K, d, dtype=X.dtype, device=X.device)
    else:
        W = torch.as_tensor(W0, dtype=X.dtype, device=X.device).reshape(-1, d).expand(K, d).clone()
        if not np.isfinite(W.cpu().numpy()).all():
            raise NdgmError("W0 must be finite")
    finite_X = X.all_finite() if isinstance(X, Design) else bool(torch.isfinite(X).all())
    if not (finite_X and np.isfinite(y.cpu().numpy()).all()):
        raise NdgmError("X and y must be finite")
    max_iter = check_int("max_iter", max_iter)
    tol = check_positive("tol", tol)
    return X, y, a, W, max_iter, tol


def _proximal_gradient(datafit, penalty, W0, max_iter, tol, accelerated, backtracking, check_every, gram):
    X, y, a, W, max_iter, tol = _prepare(datafit, penalty, W0, max_iter, tol)
    check_every = check_int("check_every", check_every)
    device, dtype = X.device, X.dtype
    n, d = X.shape
    K = a.shape[0]
    xp = _Backend(_numpy_backend(X), dtype, device)
    Xb, yb, ab, W = (X.numpy(), y.numpy(), a.numpy(), W.numpy()) if xp.numpy else (X, y, a, W)
    if gram is None:
        gram = n >= d  # then one (d, d) mat-vec is cheaper than two (n, d) ones
        if isinstance(X, Design):
            gram = gram and d <= 4096
    # g(w) = c ||Xw - y||^2 has gradient w H - b and Hessian H, with H = X^T X and b = X^T y scaled by the
    # datafit (scikit-learn's c = 1/2n: H = X^T X / n, b = X^T y / n).
    scale = datafit.scale_grad
    L_exact = scale(_lipschitz(X))  # lambda_max(H)
    if gram:
        if isinstance(X, Design):
            H, Xty = scale(X.gram(np.arange(d))), scale(X.rmatvec(y))
        else:
            H = scale(Xb.T @ Xb)
            Xty = scale(Xb.T @ yb)

        def grad(V):
            return xp.mm(V, H) - Xty

        def hess(D):
            return xp.mm(D, H)
    else:
        XT = Xb.T  # `@` rather than xp.mm: a sparse Design multiplies through its own operators

        def grad(V):
            return scale((V @ XT - yb) @ Xb)

        def hess(D):
            return scale((D @ XT) @ Xb)
    if not math.isfinite(L_exact):
        raise NdgmError("X and y must be finite")
    L_exact = L_exact if L_exact > 0 else 1.0  # X = 0: g is constant, any step is exact
    slack = 1 + 1e-12  # rounding allowance in the sufficient-decrease test

    out_W = W.copy() if xp.numpy else W.clone()
    out_L, out_cert, out_iter = [L_exact] * K, [float("nan")] * K, [max_iter] * K
    rows = list(range(K))  # configurations still running; converged ones leave the batch
    L = [L_exact] * K
    alpha = ab  # the running configurations' penalties
    alpha_col = ab[:, None]
    count = xp.index([[0]] * K)  # steps since the last (re)start, per configuration
    momentum = xp.array(_momentum_table(min(max_iter, 512) + 1))

    def configure():
        """Step-size dependent quantities for the current ``L`` (one per running configuration)."""
        nonlocal forward, margin, thr, neg_thr
        Lcol = xp.array(L)[:, None]
        thr = alpha_col / Lcol
        neg_thr = -thr
        if gram and min(L) == max(L):
            # The common case: one step for all. Fold the gradient step into one affine map,
            # z - grad(z)/L = z (I - H/L) + X^T y/(nL), and the test D^T H D <= L||D||^2 into
            # D^T (I - H/(L slack)) D >= 0.
            M = xp.eye(d) - H / L[0]
            shift = Xty / L[0]
            M_test = xp.eye(d) - H / (L[0] * slack)
            forward = lambda Z: xp.mm(Z, M) + shift  # noqa: E731
            margin = lambda D: xp.rowdot(D, xp.mm(D, M_test))  # noqa: E731
        else:
            step, L_test = 1.0 / Lcol, Lcol * slack
            forward = lambda Z: Z - grad(Z) * step  # noqa: E731
            margin = lambda D: xp.rowdot(D, L_test * D - hess(D))  # noqa: E731

    forward = margin = thr = neg_thr = None
    configure()


    Z = W
    for it in range(1, max_iter + 1):
        while True:
            V = forward(Z)  # the gradient step Z - grad g(Z) / L
            # Soft threshold S_thr(V) = V - clip(V, -thr, thr): exactly 0 where |V| <= thr.
            W_new = V - xp.minimum(xp.maximum(V, neg_thr), thr)
            D = W_new - Z
            if not backtracking:
                break
            # Sufficient decrease g(W_new) <= g(Z) + <grad g(Z), D> + (L/2)||D||^2. As g is quadratic the
            # left side minus the first two terms is exactly D^T H D / 2, so the test is L||D||^2 - D^T H D >= 0,
            # free of cancellation. L starts at lambda_max(H), where it always holds: this is the safeguard.
            q = margin(D)  # L||D||^2 - D^T H D per configuration
            if not min(q.tolist()) < 0:
                break
            for j, bad in enumerate((q < 0).tolist()):
                if bad:
                    L[j] *= 2
            configure()
        if accelerated:
            dW = W_new - W
            # Gradient restart (O'Donoghue & Candes 2015): drop the momentum where the step Z - W_new
            # points along the direction of travel W_new - W, i.e. where the momentum works against descent.
            r = xp.rowdot(D, dW)
            count += 1
            if min(r.tolist()) < 0:
                count[r < 0] = 0
            if it >= momentum.shape[0]:
                momentum = xp.array(_momentum_table(2 * it))
            Z = W_new + momentum[count] * dW
        else:
            Z = W_new
        W = W_new
        if it % check_every == 0 or it == max_iter:
            cert = L1Penalty(alpha).subdiff_distance(W, grad(W))  # dist(-grad g(w), alpha d||w||_1) per row
            finished = [True] * len(rows) if it == max_iter else (cert <= tol).tolist()
            if any(finished):
                cert_list = cert.tolist()
                for j, row in enumerate(rows):
                    if finished[j]:
                        out_W[row] = W[j]
                        out_cert[row], out_iter[row], out_L[row] = cert_list[j], it, L[j]
                running = [j for j, f in enumerate(finished) if not f]
                if not running:
                    break
                idx = xp.index(running)
                rows, L = [rows[j] for j in running], [L[j] for j in running]
                W, Z, count, alpha = W[idx], Z[idx], count[idx], alpha[idx]
                alpha_col = alpha[:, None]
                configure()
    # The objective from the residual: the Gram form c - b.w + w.Hw/2 would lose digits to cancellation.
    resid = out_W @ Xb.T - yb
    objective = datafit.scale_value(xp.rowdot(resid, resid)) + L1Penalty(ab).value(out_W)
    cert, n_iter, step = xp.array(out_cert), xp.index(out_iter), 1.0 / xp.array(out_L)
    if xp.numpy:
        out_W, objective, cert, n_iter, step = (torch.from_numpy(v) for v in (out_W, objective, cert, n_iter, step))
    return SolverResult(coef=out_W, objective=objective, certificate=cert, n_iter=n_iter,
                        converged=cert <= tol, step=step)


def ista(datafit: LeastSquares, penalty: L1Penalty, W0=None, max_iter: int = 100000, tol: float = 1e-10,
         backtracking: bool = True, check_every: int = 10, gram: bool | None = None) -> SolverResult:
    r"""Proximal gradient (ISTA) for ``datafit + penalty``, batched over the penalty's weights.

    :math:`w_{k+1} = S_{\alpha/L_k}\big(w_k - \nabla g(w_k)/L_k\big)` with ``g`` the datafit and
    soft thresholding :math:`S_\tau(v) = \mathrm{sgn}(v)\max(|v| - \tau, 0)` (the penalty's prox).
    ``L_k`` starts at the Lipschitz constant of ``grad g`` (``lambda_max(X^T X)/n`` for
    scikit-learn's scaling, by Lanczos, 1e-9 relative above the exact value); with ``backtracking`` it is doubled wherever the sufficient-decrease test
    :math:`g(w_{k+1}) \le g(w_k) + \langle\nabla g, w_{k+1} - w_k\rangle + \tfrac{L_k}{2}\|w_{k+1}-w_k\|^2`
    fails (evaluated exactly as :math:`D^\top H D \le L_k\|D\|^2`, ``D = w_{k+1} - w_k``, ``H`` the
    Hessian of ``g``). Every ``check_every`` iterations the certificate
    ``penalty.subdiff_distance(w, grad g(w))`` is computed and configurations with certificate
    ``<= tol`` stop.

    Parameters
    ----------
    datafit : LeastSquares
        Any scaling (``'mean'`` is scikit-learn's); quadratic, which the backtracking test and the
        Gram form use.
    penalty : L1Penalty
        ``lam`` a float or K weights (each >= 0): K problems solved in one batch.
    W0 : optional initial point ``(d,)`` or ``(K, d)``; zeros by default
    gram : use the Gram form (``H`` and ``X^T y`` scaled, formed once, so an iteration is a
        ``d x d`` mat-vec) or the data form (two ``n x d`` mat-vecs). Default: Gram form when ``n >= d``.
    """
    return _proximal_gradient(datafit, penalty, W0, max_iter, tol, False, backtracking, check_every, gram)


def fista(datafit: LeastSquares, penalty: L1Penalty, W0=None, max_iter: int = 100000, tol: float = 1e-10,
          backtracking: bool = True, check_every: int = 10, gram: bool | None = None) -> SolverResult:
    r"""FISTA (Beck & Teboulle 2009) with backtracking and adaptive restart, batched over the penalty's weights.

    :math:`w_{k+1} = S_{\alpha/L_k}(z_k - \nabla g(z_k)/L_k)`,
    :math:`t_{k+1} = (1 + \sqrt{1 + 4t_k^2})/2`,
    :math:`z_{k+1} = w_{k+1} + \tfrac{t_k - 1}{t_{k+1}}(w_{k+1} - w_k)`; the momentum is reset
    (``t = 1``, no extrapolation) whenever :math:`\langle z_k - w_{k+1}, w_{k+1} - w_k\rangle > 0`
    (gradient restart, O'Donoghue & Candes 2015), which keeps FISTA linearly convergent once the
    support is found. Step size, backtracking, stopping rule and other arguments as in `ista`.
    """
    return _proximal_gradient(datafit, penalty, W0, max_iter, tol, True, backtracking, check_every, gram)


SOLVERS = {"ista": ista, "fista": fista}


def solve_lasso(X, y, alpha, method: str = "fista", **kwargs) -> SolverResult:
    r"""`ista` or `fista` on scikit-learn's LASSO ``(1/2n)||y - Xw||^2 + alpha ||w||_1`` from arrays.

    ``X (n, d)`` and ``y (n,)`` are numpy arrays or tensors (integers become float64; scipy or torch sparse
    ``X`` becomes a `Design`), ``alpha`` a
    float or K penalties; ``kwargs`` go to the solver (``W0``, ``max_iter``, ``tol``, ...). Builds
    ``LeastSquares(X, y, scaling='mean')`` and ``L1Penalty(alpha)``.
    """
    if method not in SOLVERS:
        raise NdgmError(f"method must be one of {', '.join(SOLVERS)}, got {method!r}")
    X = as_design(X)
    y = torch.as_tensor(y, dtype=X.dtype, device=X.device)
    alpha = torch.as_tensor(alpha, dtype=X.dtype, device=X.device).reshape(-1)
    return SOLVERS[method](LeastSquares(X, y, scaling="mean"), L1Penalty(alpha), **kwargs)
