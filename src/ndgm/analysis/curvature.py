r"""Curvature tools: the model objective, top eigenvalues, sharpness tracking, kinks.

* `ModelObjective` wraps an ``nn.Module``, a loss and a dataset as a function of one flat
  parameter vector ``theta`` (value and gradient over chunks of the data); its curvature is
  the one Hessian operator of `ndgm.analysis.hessian`: ``objective.hessian(theta)``
  (`~ndgm.analysis.hessian.ModelHessian`, chunked so that memory stays bounded).
* `lanczos` (full reorthogonalisation) and `power_iteration` find top eigenvalues of a
  symmetric operator -- a `~ndgm.analysis.hessian.CurvatureOperator` or a plain
  ``v -> A v`` callable -- and count the products used.
* `SharpnessTracker` is a training callback: every ``every`` steps it records the top-k
  Hessian eigenvalues next to ``2 / eta``, warm-starting Lanczos from the previous vectors.
* `count_kinks` counts pre-activations of ``nn.ReLU`` layers that are exactly 0, where
  autodiff silently takes ``relu'(0) = 0``.

Second derivatives are autodiff's: at a kink they follow the framework's convention
(``relu'' = 0``, Huber's second derivative is the indicator ``1{|r| <= delta}``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from scipy.linalg import eigh_tridiagonal
from torch import Tensor, nn

from ..errors import NdgmError, check_int, check_positive
from .hessian import CurvatureOperator, ModelLoss, as_operator, cross_entropy_sum, mse_sum

__all__ = [
    "ModelObjective",
    "mse_sum",
    "cross_entropy_sum",
    "EigResult",
    "lanczos",
    "power_iteration",
    "SharpnessTracker",
    "count_kinks",
]

Matvec = Callable[[Tensor], Tensor]


class ModelObjective(ModelLoss):
    r"""A model, a loss and a dataset as a function of one flat parameter vector.

    .. math:: L(\theta) = \frac{1}{s} \sum_{c} \ell\big(f_\theta(X_c), Y_c\big)

    where ``X_c`` are consecutive chunks of at most ``chunk_size`` rows, ``loss_fn``
    returns the *sum* of the per-sample losses of a chunk, and ``s = n`` for
    ``reduction='mean'`` (``s = 1`` for ``'sum'``). Gradients and Hessian-vector products
    are accumulated chunk by chunk, so memory is that of one chunk. Curvature goes through
    the one Hessian operator: `hessian` returns a `ndgm.analysis.hessian.ModelHessian`.

    Parameters
    ----------
    model : nn.Module
        Its parameters are the coordinates of ``theta`` (in ``named_parameters`` order,
        through a `ndgm.analysis.hessian.ParameterFlattener`); the module itself is only
        read (`set_params` writes a vector back into it).
    loss_fn : callable ``(outputs, targets) -> scalar``
        Sum over the chunk, e.g. `mse_sum` or `cross_entropy_sum`.
    X, Y : Tensor
        Inputs and targets (rows are samples).
    chunk_size : int
        Rows per chunk.
    reduction : {'mean', 'sum'}

    Attributes
    ----------
    dim : int
        Number of parameters.
    dtype, device
        Those of the parameters (of ``X`` when there are none): vectors in parameter space use them.
    n_hvp : int
        Hessian-vector products computed so far (one per full-batch product).
    """

    def set_params(self, theta: Tensor) -> None:
        """Write the flat vector ``theta`` into the module's parameters."""
        self.flattener.write(theta)

    def _theta(self, theta: Tensor | None) -> Tensor:
        return self.params_vector() if theta is None else theta.detach()

    # -- value, gradient, Hessian-vector product ------------------------------------
    def value(self, theta: Tensor | None = None) -> float:
        """``L(theta)`` (the module's parameters when ``theta`` is None)."""
        t = self._theta(theta)
        with torch.no_grad():
            return float(sum(self.chunk_loss(t, Xc, Yc) for Xc, Yc in self.chunks()))

    def value_and_grad(self, theta: Tensor | None = None) -> tuple[float, Tensor]:
        """``L(theta)`` and ``grad L(theta)`` (flat, as autodiff returns it)."""
        t = self._theta(theta).requires_grad_(True)
        total, grad = 0.0, torch.zeros_like(t)
        for Xc, Yc in self.chunks():
            loss = self.chunk_loss(t, Xc, Yc)
            (g,) = torch.autograd.grad(loss, t)
            total += float(loss.detach())
            grad += g
        return total, grad

    def hvp(self, v: Tensor, theta: Tensor | None = None) -> Tensor:
        r"""``H(theta) v``: one product of `hessian` ``(theta)``.

        Parameters
        ----------
        v : Tensor (dim,)
        theta : Tensor (dim,), optional
            Point of evaluation; the module's parameters when None.
        """
        return self.hessian(theta).matvec(v)

    def dense_hessian(self, theta: Tensor | None = None) -> Tensor:
        """The dense ``(dim, dim)`` Hessian (``dim`` products of `hessian`; small models only)."""
        return self.hessian(theta).dense()


# -- eigenvalue solvers -------------------------------------------------------------

@dataclass
class EigResult:
    """Top eigenpairs of a symmetric operator.

    Attributes
    ----------
    eigenvalues : ndarray (k,)
        Descending (``which='LA'``) or by descending magnitude (``'LM'``).
    eigenvectors : Tensor (dim, k)
        Unit Ritz vectors.
    n_matvec : int
        Operator applications used (Hessian-vector products for a Hessian).
    residuals : ndarray (k,)
        ``||A u - theta u||`` bounds; for a symmetric ``A`` some eigenvalue lies within
        this distance of each ``theta``.
    converged : bool
    history : list of float
        Top estimate after each operator application (Lanczos: top Ritz value; power:
        Rayleigh quotient).
    """

    eigenvalues: np.ndarray
    eigenvectors: Tensor
    n_matvec: int
    residuals: np.ndarray
    converged: bool
    history: list[float] = field(default_factory=list)


def _check_k(k: int, dim: int) -> int:
    k = check_int("k", k)
    if k > dim:
        raise NdgmError(f"k must be at most the number of parameters ({dim}), got k = {k}")
    return k


def _start_vector(dim: int, v0: Tensor | None, dtype, device, seed: int) -> Tensor:
    if v0 is None:
        g = torch.Generator().manual_seed(seed)
        v = torch.randn(dim, generator=g, dtype=torch.float64).to(dtype=dtype, device=device)
    else:
        if v0.shape != (dim,):
            raise NdgmError(f"v0 must have shape ({dim},), got {tuple(v0.shape)}")
        v = v0.detach().to(dtype=dtype, device=device).clone()
    nrm = torch.linalg.vector_norm(v)
    if not bool(torch.isfinite(nrm)) or float(nrm) == 0:
        raise NdgmError("v0 must be a finite, nonzero vector")
    return v / nrm


def _operator(A, dim, dtype, device) -> tuple[CurvatureOperator, torch.dtype, torch.device]:
    """The operator, and the dtype / device of the iteration (the operator's unless given)."""
    op = as_operator(A, dim, dtype, device)
    return op, dtype or op.dtype, torch.device(device) if device is not None else op.device


def lanczos(
    A: CurvatureOperator | Matvec,
    dim: int | None = None,
    k: int = 1,
    *,
    v0: Tensor | None = None,
    tol: float = 1e-8,
    max_iter: int | None = None,
    which: str = "LA",
    dtype: torch.dtype | None = None,
    device: str | torch.device | None = None,
    seed: int = 0,
) -> EigResult:
    r"""Top-k eigenpairs of a symmetric operator by Lanczos with full reorthogonalisation.

    Builds an orthonormal Krylov basis ``Q_m`` of ``span{v0, A v0, ..., A^{m-1} v0}`` with
    ``A Q_m = Q_m T_m + beta_m q_{m+1} e_m^T`` (``T_m`` tridiagonal). Every new vector is
    orthogonalised twice against all previous ones, so Ritz values do not duplicate. The
    Ritz pair ``(theta_i, Q_m s_i)`` has residual ``|beta_m s_{m,i}|``; the iteration stops
    when that is ``<= tol * |theta_i|`` for the k wanted pairs (then each ``theta_i`` is
    within a relative ``tol`` of an eigenvalue), when the Krylov space is invariant, or
    after ``max_iter`` products.

    Parameters
    ----------
    A : CurvatureOperator or callable ``v -> A v``
        An unbatched operator (e.g. ``objective.hessian(theta)``, or ``.block(k)`` of a
        batched one), or a plain matvec on ``(dim,)`` tensors.
    dim : int
        Size of ``A``; required with a callable.
    k : int
        Number of eigenpairs, ``1 <= k <= dim``.
    v0 : Tensor (dim,), optional
        Start vector (warm start); a seeded Gaussian one when None.
    tol : float
        Relative residual tolerance.
    max_iter : int, optional
        Most operator applications; default ``min(dim, max(300, 4 k))``.
    which : {'LA', 'LM'}
        Largest algebraic eigenvalues (the sharpness) or largest magnitude.
    dtype, device
        Of the Krylov basis: the operator's when None (float64 on the CPU for a callable);
        products are cast to ``dtype``.
    """
    op, dtype, device = _operator(A, dim, dtype, device)
    dim = op.dim
    k = _check_k(k, dim)
    tol = check_positive("tol", tol)
    if which not in ("LA", "LM"):
        raise NdgmError(f"which must be 'LA' or 'LM', got {which!r}")
    m_max = min(dim, max(300, 4 * k)) if max_iter is None else min(dim, check_int("max_iter", max_iter))
    m_max = max(m_max, k)
    q = _start_vector(dim, v0, dtype, device, seed)
    # The basis grows by doubling, so a generous max_iter costs no memory until it is used.
    Q = torch.zeros(min(m_max + 1, 64), dim, dtype=dtype, device=device)
    Q[0] = q
    alphas: list[float] = []
    betas: list[float] = []
    history: list[float] = []
    n = 0
    converged = False
    for j in range(m_max):  # m_max >= k >= 1: the loop body runs, so theta, s, top, resid are set
        if j + 1 >= Q.shape[0]:
            Q = torch.cat([Q, torch.zeros(min(Q.shape[0], m_max + 1 - Q.shape[0]), dim, dtype=dtype, device=device)])
        w = op.matvec(Q[j]).to(dtype)
        n += 1
        alpha = float(torch.dot(Q[j], w))
        w = w - alpha * Q[j] - (betas[-1] * Q[j - 1] if j > 0 else 0.0)
        for _ in range(2):  # full reorthogonalisation, twice ("twice is enough")
            w = w - Q[: j + 1].T @ (Q[: j + 1] @ w)
        beta = float(torch.linalg.vector_norm(w))
        alphas.append(alpha)
        theta, s = eigh_tridiagonal(np.asarray(alphas), np.asarray(betas))
        order = np.argsort(-theta if which == "LA" else -np.abs(theta))
        history.append(float(theta[order[0]]))
        top = order[:k]
        resid = np.abs(beta * s[-1, top])
        scale = np.maximum(np.abs(theta[top]), np.finfo(float).tiny)
        invariant = beta <= 1e-12 * max(np.abs(theta).max(), np.finfo(float).tiny)
        if j + 1 >= k and (invariant or bool(np.all(resid <= tol * scale))):
            converged = True
            break
        if invariant:
            # The Krylov space is invariant but holds fewer than k eigenpairs: continue
            # with a fresh random direction orthogonal to it (T gets a zero coupling).
            g = torch.Generator().manual_seed(seed + 7919 * (j + 1))
            w = torch.randn(dim, generator=g, dtype=torch.float64).to(dtype=dtype, device=device)
            for _ in range(2):
                w = w - Q[: j + 1].T @ (Q[: j + 1] @ w)
            betas.append(0.0)
            Q[j + 1] = w / torch.linalg.vector_norm(w)
            continue
        betas.append(beta)
        Q[j + 1] = w / beta
    m = len(alphas)
    S = torch.as_tensor(s[:, top], dtype=dtype, device=device)
    vecs = Q[:m].T @ S
    vecs = vecs / torch.linalg.vector_norm(vecs, dim=0, keepdim=True)
    return EigResult(theta[top].copy(), vecs, n, resid, converged, history)


def power_iteration(
    A: CurvatureOperator | Matvec,
    dim: int | None = None,
    *,
    v0: Tensor | None = None,
    tol: float = 1e-6,
    max_iter: int = 1000,
    dtype: torch.dtype | None = None,
    device: str | torch.device | None = None,
    seed: int = 0,
) -> EigResult:
    r"""Largest-magnitude eigenpair by power iteration (the comparison method).

    ``w = A v_j``, Rayleigh quotient ``rho_j = v_j . w``, ``v_{j+1} = w / ||w||``; one
    operator application per step. Stops when ``|rho_j - rho_{j-1}| <= tol |rho_j|`` --
    a test that cannot tell slow convergence (close top eigenvalues) from convergence.
    The error shrinks like ``(lambda_2 / lambda_1)^{2j}``. ``A``, ``dim``, ``dtype`` and
    ``device`` as in `lanczos`.
    """
    op, dtype, device = _operator(A, dim, dtype, device)
    dim = op.dim
    tol = check_positive("tol", tol)
    max_iter = check_int("max_iter", max_iter)
    v = _start_vector(dim, v0, dtype, device, seed)
    history: list[float] = []
    rho_prev = math.nan
    converged = False
    w = v
    for j in range(max_iter):
        w = op.matvec(v).to(dtype)
        rho = float(torch.dot(v, w))
        history.append(rho)
        nrm = torch.linalg.vector_norm(w)
        if float(nrm) == 0:
            converged = True
            break
        if j > 0 and abs(rho - rho_prev) <= tol * abs(rho):
            converged = True
            break
        rho_prev = rho
        v = w / nrm
    resid = float(torch.linalg.vector_norm(w - history[-1] * v))
    return EigResult(np.array([history[-1]]), v[:, None], len(history), np.array([resid]), converged, history)


# -- sharpness tracking -------------------------------------------------------------

class SharpnessTracker:
    r"""Training callback: every ``every`` steps, the top-k Hessian eigenvalues and ``2/eta``.

    Call ``tracker(step, objective)`` after each step (it skips steps that are not a
    multiple of ``every``). Lanczos is warm-started from the previous top Ritz vectors
    (their sum plus a small seeded random part, so that the Krylov space does not
    collapse onto one old eigenvector).

    Parameters
    ----------
    lr : float
        The step size ``eta`` (> 0); the stability threshold is ``2 / eta``.
    every : int
        Record at steps ``0, every, 2 every, ...``.
    k : int
        Eigenvalues per record.
    tol : float
        Lanczos relative residual tolerance.
    warm_start : bool

    Attributes
    ----------
    steps_ : list of int
    eigenvalues_ : list of ndarray (k,)
    n_hvp_ : list of int
        Hessian-vector products per record.
    threshold_ : float
        ``2 / eta``.
    """

    def __init__(self, lr: float, every: int = 10, k: int = 1, tol: float = 1e-6, warm_start: bool = True,
                 max_iter: int | None = None, seed: int = 0):
        self.lr = check_positive("eta (lr)", lr)
        self.every = check_int("every", every)
        self.k = check_int("k", k)
        self.tol = check_positive("tol", tol)
        self.warm_start = warm_start
        self.max_iter = max_iter
        self.seed = seed
        self.threshold_ = 2.0 / self.lr
        self.steps_: list[int] = []
        self.eigenvalues_: list[np.ndarray] = []
        self.n_hvp_: list[int] = []
        self._vectors: Tensor | None = None

    def __call__(self, step: int, objective: ModelObjective, theta: Tensor | None = None) -> np.ndarray | None:
        """Record at ``step`` if it is due; return the eigenvalues recorded (or None)."""
        if step % self.every:
            return None
        return self.record(step, objective, theta)

    def record(self, step: int, objective: ModelObjective, theta: Tensor | None = None) -> np.ndarray:
        """Record now, whatever ``step`` is (e.g. at the final iterate)."""
        H = objective.hessian(theta)
        k = _check_k(self.k, H.dim)
        v0 = None
        if self.warm_start and self._vectors is not None:
            g = torch.Generator().manual_seed(self.seed + step)
            noise = torch.randn(H.dim, generator=g, dtype=torch.float64).to(dtype=H.dtype, device=H.device)
            base = self._vectors.sum(1)
            v0 = base / torch.linalg.vector_norm(base) + 1e-3 * noise / torch.linalg.vector_norm(noise)
        res = lanczos(H, k=k, v0=v0, tol=self.tol, max_iter=self.max_iter, seed=self.seed + step)
        self._vectors = res.eigenvectors
        self.steps_.append(int(step))
        self.eigenvalues_.append(res.eigenvalues)
        self.n_hvp_.append(res.n_matvec)
        return res.eigenvalues

    def arrays(self) -> dict[str, np.ndarray]:
        """``steps (R,)``, ``eigenvalues (R, k)``, ``n_hvp (R,)`` for the run store."""
        return {"sharpness_steps": np.asarray(self.steps_, dtype=np.int64),
                "sharpness_eigs": np.asarray(self.eigenvalues_).reshape(len(self.steps_), -1),
                "sharpness_hvps": np.asarray(self.n_hvp_, dtype=np.int64)}


# -- kinks ---------------------------------------------------------------------------

def count_kinks(model: nn.Module, X: Tensor) -> tuple[int, int]:
    """Pre-activations entering ``nn.ReLU`` layers that are exactly 0, on inputs ``X``.

    At such an entry autodiff used ``relu'(0) = 0`` -- a convention, not a derivative.

    Returns
    -------
    (zeros, total) : tuple of int
        Exact zeros and number of pre-activations inspected (summed over ReLU layers).
    """
    zeros = torch.zeros((), dtype=torch.long, device=X.device)
    total = 0

    def hook(_module, inputs, _output):
        nonlocal zeros, total
        zeros = zeros + (inputs[0] == 0).sum()
        total += inputs[0].numel()

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.ReLU)]
    try:
        with torch.no_grad():
            model(X)
    finally:
        for h in handles:
            h.remove()
    return int(zeros), total
