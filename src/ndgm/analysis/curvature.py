r"""Curvature of a model's loss: eigenvalues, trace, spectral density, preconditioned sharpness, tracking.

Two plain entry points take the objective exactly as the user writes it,
``loss_fn(model(inputs), targets)``, whatever its reduction (mean or sum), and never change
the model or its buffers:

* `eigenvalues` ``(model, loss_fn, inputs, targets, k=1, which="largest")``: the ``k``
  largest (or smallest) Hessian eigenvalues, a 1-D float64 array;
* `trace` ``(model, loss_fn, inputs, targets)``: ``(estimate, standard_error)`` of the
  Hessian trace (Hutch++).

Underneath, every quantity works on one symmetric operator -- a
`~ndgm.analysis.hessian.CurvatureOperator` such as ``ModelObjective(...).hessian(theta)`` --
or a plain ``v -> A v`` callable, and reports the products it used (``n_matvec``: Hessian-
vector products for a Hessian):

* `lanczos`: extreme eigenpairs (largest, smallest or largest-magnitude) by Lanczos with full
  reorthogonalisation, warm-startable; `power_iteration` for comparison;
* `hutchinson` and `hutchpp`: the trace with a standard error;
* `spectral_density`: stochastic Lanczos quadrature (SLQ), nodes and weights per probe, a
  smoothed density, moments and a trace estimate;
* `preconditioned_sharpness`: ``lambda_max(P^{-1/2} H P^{-1/2})`` with ``P`` read from a
  ``torch.optim`` Adam / AdamW / RMSprop / SGD state, and the stability threshold of that
  optimizer's update (``2/eta (1 + beta1)/(1 - beta1)`` for Adam);
* `SharpnessTracker`: a training callback recording all of this every ``every`` steps with
  warm starts, adapting ``every`` to a time budget, with a progress bar, a pandas export,
  TensorBoard scalars and a figure of sharpness against ``2/eta``;
* `count_kinks`: pre-activations of ``nn.ReLU`` layers that are exactly 0.

`ModelObjective` is the model, the loss and the data as a function of one flat parameter
vector (value, gradient, Hessian operator); see `ndgm.analysis.hessian.ModelLoss` for how the
reduction, the chunks, BatchNorm and the training mode are handled. Krylov bases are kept in
float64 where the model is float32 (products stay in the model's dtype). Second derivatives
are autodiff's: at a kink they follow the framework's convention (``relu'' = 0``, Huber's
second derivative is the indicator ``1{|r| <= delta}``).
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from scipy.linalg import eigh_tridiagonal
from torch import Tensor, nn

from ..errors import NdgmError, check_int, check_nonnegative, check_positive
from .hessian import (CurvatureOperator, ModelLoss, ParameterFlattener, PreconditionedOperator, as_operator,
                      cross_entropy_sum, mse_sum, resolve_mode)

__all__ = [
    "eigenvalues",
    "trace",
    "ModelObjective",
    "mse_sum",
    "cross_entropy_sum",
    "EigResult",
    "lanczos",
    "power_iteration",
    "TraceResult",
    "hutchinson",
    "hutchpp",
    "SpectralDensity",
    "spectral_density",
    "Preconditioner",
    "optimizer_preconditioner",
    "PreconditionedSharpness",
    "preconditioned_sharpness",
    "SharpnessTracker",
    "count_kinks",
]

Matvec = Callable[[Tensor], Tensor]
_LOW_PRECISION = (torch.float32, torch.float16, torch.bfloat16)


class ModelObjective(ModelLoss):
    r"""A model, a loss and a dataset as a function of one flat parameter vector.

    .. math:: L(\theta) = \frac{1}{s} \sum_{i=1}^{n} \mathrm{loss\_fn}(f_\theta(x_i), y_i)

    ``s = n`` for ``reduction='mean'`` (default), ``s = 1`` for ``'sum'``; ``reduction=None``
    is ``loss_fn(f_theta(X), Y)`` exactly as written. ``loss_fn`` may sum or average over the
    rows it gets (`mse_sum`, ``nn.CrossEntropyLoss()``, ...): that is detected, so the
    objective is the same either way. Gradients and Hessian-vector products are accumulated
    chunk by chunk. Curvature goes through the one Hessian operator: `hessian` returns a
    `ndgm.analysis.hessian.ModelHessian`. See `ndgm.analysis.hessian.ModelLoss` for the
    parameters (``chunk_size``, ``reduction``, ``loss_reduction``, ``mode``) and for what
    happens to BatchNorm and dropout; the module is only read (`set_params` writes a vector
    back into it).

    Attributes
    ----------
    dim : int
        Number of parameters.
    dtype, device
        Those of the parameters: vectors in parameter space use them.
    n_hvp : int
        Hessian-vector products computed so far (one per full-batch product).
    """

    def set_params(self, theta: Tensor) -> None:
        """Write the flat vector ``theta`` into the module's parameters."""
        self.flattener.write(theta)

    def _theta(self, theta: Tensor | None) -> Tensor:
        return self.params_vector() if theta is None else theta.detach().to(dtype=self.dtype, device=self.device)

    # -- value, gradient, Hessian-vector product ------------------------------------
    def value(self, theta: Tensor | None = None) -> float:
        """``L(theta)`` (the module's parameters when ``theta`` is None)."""
        t = self._theta(theta)
        with torch.no_grad():
            return float(sum(self.chunk_loss(t, Xc, Yc) for Xc, Yc in self.chunks()))

    def value_and_grad(self, theta: Tensor | None = None) -> tuple[float, Tensor]:
        """``L(theta)`` and ``grad L(theta)`` (flat, as autodiff returns it)."""
        t = self._theta(theta).clone().requires_grad_(True)
        total, grad = 0.0, torch.zeros_like(t)
        with torch.enable_grad():
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

    def matvec(self, theta: Tensor | None = None):
        """The Hessian at ``theta`` as a ``v -> H v`` callable (the operator itself, with its dtype)."""
        return self.hessian(theta)

    def dense_hessian(self, theta: Tensor | None = None) -> Tensor:
        """The dense ``(dim, dim)`` Hessian (``dim`` products of `hessian`; small models only)."""
        return self.hessian(theta).dense()


# -- operators and vectors ------------------------------------------------------------------

def _operator(A, dim, dtype, device) -> tuple[CurvatureOperator, torch.dtype, torch.device]:
    """The operator, and the dtype / device of the iteration.

    The basis dtype is ``dtype`` when given, else float64 where the operator works in a lower
    precision (products are cast to the operator's dtype and back), else the operator's.
    """
    op = as_operator(A, dim, None if dtype in _LOW_PRECISION else dtype, device)
    if dtype is None:
        dtype = torch.float64 if op.dtype in _LOW_PRECISION else op.dtype
    return op, dtype, torch.device(device) if device is not None else op.device


def _product(op: CurvatureOperator, V: Tensor, dtype: torch.dtype) -> Tensor:
    """``A V`` for a block ``(d, m)`` in the basis dtype (the operator casts to its own)."""
    return op.matmat(V).to(dtype)


def _randn(dim: int, cols: int | None, seed: int, dtype, device) -> Tensor:
    g = torch.Generator().manual_seed(int(seed))
    shape = (dim,) if cols is None else (dim, cols)
    return torch.randn(*shape, generator=g, dtype=torch.float64).to(dtype=dtype, device=device)


def _rademacher(dim: int, cols: int, seed: int, dtype, device) -> Tensor:
    g = torch.Generator().manual_seed(int(seed))
    return (2 * torch.randint(0, 2, (dim, cols), generator=g) - 1).to(dtype=dtype, device=device)


def _check_k(k: int, dim: int) -> int:
    k = check_int("k", k)
    if k > dim:
        raise NdgmError(f"k must be at most the number of parameters ({dim}), got k = {k}")
    return k


def _start_vector(dim: int, v0: Tensor | None, dtype, device, seed: int) -> Tensor:
    """A unit start vector: seeded Gaussian, or ``v0`` (``(dim,)``, or ``(dim, m)``: the sum of
    its unit columns, a warm start from ``m`` previous eigenvectors)."""
    if v0 is None:
        v = _randn(dim, None, seed, dtype, device)
    else:
        v0 = v0.detach().to(dtype=dtype, device=device)
        if v0.ndim == 2 and v0.shape[0] == dim:
            v = (v0 / torch.linalg.vector_norm(v0, dim=0, keepdim=True).clamp_min(torch.finfo(dtype).tiny)).sum(1)
        elif v0.shape == (dim,):
            v = v0.clone()
        else:
            raise NdgmError(f"v0 must have shape ({dim},) or ({dim}, m), got {tuple(v0.shape)}")
    nrm = torch.linalg.vector_norm(v)
    if not bool(torch.isfinite(nrm)) or float(nrm) == 0:
        raise NdgmError("v0 must be a finite, nonzero vector")
    return v / nrm


def _describe(op) -> dict:
    return dict(op.describe()) if hasattr(op, "describe") else {}


# -- Lanczos ----------------------------------------------------------------------------------

WHICH = {"LA": "LA", "largest": "LA", "SA": "SA", "smallest": "SA", "LM": "LM", "magnitude": "LM"}


def _which(which: str) -> str:
    if which not in WHICH:
        raise NdgmError(f"which must be one of 'largest' ('LA'), 'smallest' ('SA') or 'magnitude' ('LM'), "
                        f"got {which!r}")
    return WHICH[which]


def _order(theta: np.ndarray, which: str) -> np.ndarray:
    """Indices of the Ritz values, wanted first: descending (LA), ascending (SA), by magnitude (LM)."""
    if which == "LA":
        return np.argsort(-theta, kind="stable")
    if which == "SA":
        return np.argsort(theta, kind="stable")
    return np.argsort(-np.abs(theta), kind="stable")


class _Krylov:
    r"""Lanczos tridiagonalisation ``A Q_m = Q_m T_m + beta_m q_{m+1} e_m^T``, full reorthogonalisation.

    Every new vector is orthogonalised twice against all previous ones ("twice is enough"),
    so Ritz values do not duplicate. The basis grows by doubling, so a generous ``m_max``
    costs no memory until it is used. When the Krylov space becomes invariant (``beta`` tiny)
    `step` can continue with a fresh seeded direction orthogonal to it (``T`` gets a zero
    coupling) or report it.
    """

    def __init__(self, op: CurvatureOperator, q: Tensor, m_max: int, dtype, seed: int):
        self.op, self.dtype, self.seed, self.m_max = op, dtype, seed, m_max
        self.Q = torch.zeros(min(m_max + 1, 64), op.dim, dtype=dtype, device=q.device)
        self.Q[0] = q
        self.alphas: list[float] = []
        self.betas: list[float] = []
        self.beta = 0.0  # the last step's coupling to the next vector: residuals are |beta s_{m,i}|
        self.n = 0

    def step(self) -> bool:
        """One product; returns whether the Krylov space is now invariant."""
        j = len(self.alphas)
        Q = self.Q
        w = _product(self.op, Q[j][:, None], self.dtype)[:, 0]
        self.n += 1
        alpha = float(torch.dot(Q[j], w))
        w = w - alpha * Q[j]
        if j > 0:
            w = w - self.betas[-1] * Q[j - 1]
        for _ in range(2):
            w = w - Q[: j + 1].T @ (Q[: j + 1] @ w)
        self.alphas.append(alpha)
        self.beta = float(torch.linalg.vector_norm(w))
        self._w = w
        scale = max(max(abs(a) for a in self.alphas), max(self.betas, default=0.0), np.finfo(float).tiny)
        return self.beta <= 1e-12 * scale

    def advance(self, invariant: bool) -> None:
        """Append the next basis vector (a fresh orthogonal direction where the space is invariant)."""
        j = len(self.alphas)
        if j + 1 > self.Q.shape[0]:
            grow = min(self.Q.shape[0], self.m_max + 1 - self.Q.shape[0])
            self.Q = torch.cat([self.Q, torch.zeros(max(grow, 1), self.op.dim, dtype=self.dtype,
                                                    device=self.Q.device)])
        if invariant:
            w = _randn(self.op.dim, None, self.seed + 7919 * j, self.dtype, self.Q.device)
            for _ in range(2):
                w = w - self.Q[:j].T @ (self.Q[:j] @ w)
            self.betas.append(0.0)
            self.Q[j] = w / torch.linalg.vector_norm(w)
        else:
            self.betas.append(self.beta)
            self.Q[j] = self._w / self.beta

    def ritz(self) -> tuple[np.ndarray, np.ndarray]:
        """Eigenvalues and eigenvectors of ``T_m``."""
        return eigh_tridiagonal(np.asarray(self.alphas), np.asarray(self.betas))


@dataclass
class EigResult:
    """Extreme eigenpairs of a symmetric operator.

    Attributes
    ----------
    eigenvalues : ndarray (k,)
        Wanted first: descending (``which='LA'``), ascending (``'SA'``) or by descending
        magnitude (``'LM'``).
    eigenvectors : Tensor (dim, k)
        Unit Ritz vectors (in the Krylov basis' dtype: float64 for a float32 model).
    n_matvec : int
        Operator applications used (Hessian-vector products for a Hessian).
    residuals : ndarray (k,)
        ``||A u - theta u||`` bounds; for a symmetric ``A`` some eigenvalue lies within
        this distance of each ``theta``.
    converged : bool
    history : list of float
        First wanted estimate after each operator application (Lanczos: Ritz value; power:
        Rayleigh quotient).
    which : str
        ``'LA'``, ``'SA'`` or ``'LM'``.
    objective : dict
        What the operator is the Hessian of (reduction, mode, ...; `ModelLoss.describe`).
    """

    eigenvalues: np.ndarray
    eigenvectors: Tensor
    n_matvec: int
    residuals: np.ndarray
    converged: bool
    history: list[float] = field(default_factory=list)
    which: str = "LA"
    objective: dict = field(default_factory=dict)


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
    callback: Callable[[int, np.ndarray, np.ndarray], None] | None = None,
    progress: bool = False,
) -> EigResult:
    r"""Extreme eigenpairs of a symmetric operator by Lanczos with full reorthogonalisation.

    Builds an orthonormal Krylov basis ``Q_m`` of ``span{v0, A v0, ..., A^{m-1} v0}`` with
    ``A Q_m = Q_m T_m + beta_m q_{m+1} e_m^T`` (``T_m`` tridiagonal). The Ritz pair
    ``(theta_i, Q_m s_i)`` has residual ``r_i = |beta_m s_{m,i}|``, and some eigenvalue of
    ``A`` lies within ``r_i`` of ``theta_i``. The iteration stops when
    ``r_i <= tol * max_j |theta_j|`` (``tol`` relative to the spectral norm's estimate) for the
    k wanted pairs, or after ``max_iter`` products. Both ends of the spectrum converge from the
    same Krylov space: ``which='SA'`` gives the smallest (most negative) eigenvalues.

    A Krylov space holds one copy of each distinct eigenvalue. When it becomes invariant
    (exact arithmetic would stop), the iteration continues from a fresh seeded direction
    orthogonal to it, with a zero coupling in ``T``, and stops once such a restart adds
    nothing to the wanted set -- so exact multiplicities (``diag(5, 5, 1, ...)``, or the
    zero eigenvalues of parameters a ReLU network does not use) are counted. A run that
    converges before its space is invariant sees one copy of an exactly repeated eigenvalue;
    for generic Hessians (distinct eigenvalues) this does not arise.

    Parameters
    ----------
    A : CurvatureOperator or callable ``v -> A v``
        An unbatched operator (e.g. ``objective.hessian(theta)``, or ``.block(k)`` of a
        batched one), or a plain matvec on ``(dim,)`` tensors.
    dim : int
        Size of ``A``; required with a callable.
    k : int
        Number of eigenpairs, ``1 <= k <= dim``.
    v0 : Tensor (dim,) or (dim, m), optional
        Start vector; a block (previous eigenvectors, a warm start) starts from the sum of its
        unit columns. A seeded Gaussian vector when None.
    tol : float
        Residual tolerance relative to ``max |theta|``.
    max_iter : int, optional
        Most operator applications; default ``min(dim, max(300, 4 k))``.
    which : {'LA', 'SA', 'LM'} (or 'largest', 'smallest', 'magnitude')
        Largest algebraic eigenvalues (the sharpness), smallest algebraic, or largest magnitude.
    dtype, device
        Of the Krylov basis. Default: the operator's, except float64 for a float32 (or lower
        precision) operator, whose products are cast to its dtype and back; for a plain
        callable, float64 on the CPU.
    callback : callable ``(iteration, ritz_values, residuals)``, optional
        Called after every product with the k wanted Ritz values and their residuals.
    progress : bool
        A tqdm bar over the products.
    """
    op, dtype, device = _operator(A, dim, dtype, device)
    dim = op.dim
    k = _check_k(k, dim)
    tol = check_positive("tol", tol)
    which = _which(which)
    m_max = min(dim, max(300, 4 * k)) if max_iter is None else min(dim, check_int("max_iter", max_iter))
    m_max = max(m_max, k)
    kr = _Krylov(op, _start_vector(dim, v0, dtype, device, seed), m_max, dtype, seed)
    history: list[float] = []
    converged = False
    before_restart: np.ndarray | None = None  # wanted values when the last invariant space was left
    bar = _bar(progress, m_max, f"lanczos top-{k} ({which})")
    try:
        for j in range(m_max):
            invariant = kr.step()
            theta, s = kr.ritz()
            wanted = _order(theta, which)[:k]
            resid = np.abs(kr.beta * s[-1, wanted])
            history.append(float(theta[wanted[0]]))
            if callback is not None:
                callback(j, theta[wanted].copy(), resid.copy())
            if bar is not None:
                bar.update(1)
                bar.set_postfix(theta=f"{theta[wanted[0]]:.6g}", resid=f"{resid.max():.1e}", refresh=False)
            anorm = max(float(np.abs(theta).max()), np.finfo(float).tiny)
            if j + 1 == dim:  # the whole space: every Ritz value is an eigenvalue
                converged = True
                break
            if invariant:
                # The Ritz values are exact, but a Krylov space holds one copy of each distinct
                # eigenvalue: copies (multiplicities) live in the complement. Continue from a
                # fresh direction there until a restart adds nothing to the wanted set.
                now = theta[wanted]
                if before_restart is not None and j + 1 >= k and now.size == before_restart.size \
                        and bool(np.allclose(now, before_restart, rtol=0, atol=max(tol, 1e-10) * anorm)):
                    converged = True
                    break
                before_restart = now.copy()
            elif j + 1 >= k and bool(np.all(resid <= tol * anorm)):
                converged = True
                break
            if j + 1 < m_max:
                kr.advance(invariant)
    finally:
        if bar is not None:
            bar.close()
    m = len(kr.alphas)
    S = torch.as_tensor(s[:, wanted], dtype=dtype, device=device)
    vecs = kr.Q[:m].T @ S
    vecs = vecs / torch.linalg.vector_norm(vecs, dim=0, keepdim=True)
    return EigResult(theta[wanted].copy(), vecs, kr.n, resid, converged, history, which, _describe(op))


def _bar(progress: bool, total: int | None, desc: str):
    if not progress:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, leave=False, mininterval=0.5, dynamic_ncols=True)


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
        w = _product(op, v[:, None], dtype)[:, 0]
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
    return EigResult(np.array([history[-1]]), v[:, None], len(history), np.array([resid]), converged, history,
                     "LM", _describe(op))


# -- trace -------------------------------------------------------------------------------------

@dataclass
class TraceResult:
    """A stochastic trace estimate.

    Attributes
    ----------
    estimate : float
    standard_error : float
        Of the estimate, from the sample standard deviation of the Hutchinson terms
        (Hutch++: of the part not captured by the sketch, conditional on it; 0 when exact).
    n_matvec : int
        Operator applications used.
    method : str
        ``'hutchinson'``, ``'hutch++'`` or ``'exact'`` (``dim`` products of unit vectors).
    samples : ndarray
        The Hutchinson terms ``g^T A g`` (Hutch++: of the deflated probes).
    objective : dict
    """

    estimate: float
    standard_error: float
    n_matvec: int
    method: str
    samples: np.ndarray
    objective: dict = field(default_factory=dict)

    def __iter__(self):  # estimate, standard_error = result
        return iter((self.estimate, self.standard_error))


def _quadratic_forms(op, G: Tensor, dtype, block: int) -> np.ndarray:
    """``g_j^T A g_j`` for the columns of ``G``, ``block`` products at a time."""
    out = []
    for s in range(0, G.shape[1], block):
        Gb = G[:, s:s + block]
        out.append((Gb * _product(op, Gb, dtype)).sum(0))
    return torch.cat(out).double().cpu().numpy() if out else np.zeros(0)


def _exact_trace(op, dtype, device, block: int) -> TraceResult:
    eye = torch.eye(op.dim, dtype=dtype, device=device)
    diag = _quadratic_forms(op, eye, dtype, block)
    return TraceResult(float(diag.sum()), 0.0, op.dim, "exact", diag, _describe(op))


def _se(samples: np.ndarray) -> float:
    return float(samples.std(ddof=1) / math.sqrt(samples.size)) if samples.size > 1 else math.inf


def hutchinson(
    A: CurvatureOperator | Matvec,
    dim: int | None = None,
    probes: int = 100,
    *,
    se_target: float | None = None,
    max_probes: int = 10_000,
    block: int = 8,
    seed: int = 0,
    dtype: torch.dtype | None = None,
    device: str | torch.device | None = None,
) -> TraceResult:
    r"""Hutchinson's trace estimate ``tr A ~ (1/m) sum_j g_j^T A g_j`` with Rademacher ``g_j``.

    ``E[g^T A g] = tr A`` and ``Var[g^T A g] = 2 (||A||_F^2 - sum_i A_ii^2)``; the standard
    error is the sample standard deviation of the terms over ``sqrt(m)``. With ``se_target``
    probes are added ``block`` at a time (at least ``probes``) until the standard error is at
    most ``se_target`` or ``max_probes`` are used. One product per probe.
    """
    op, dtype, device = _operator(A, dim, dtype, device)
    probes = check_int("probes", probes, 2)
    block = check_int("block", block)
    if se_target is not None:
        se_target = check_positive("se_target", se_target)
    samples = _quadratic_forms(op, _rademacher(op.dim, probes, seed, dtype, device), dtype, block)
    draw = 1
    while se_target is not None and _se(samples) > se_target and samples.size < max_probes:
        more = _rademacher(op.dim, block, seed + 104729 * draw, dtype, device)
        samples = np.concatenate([samples, _quadratic_forms(op, more, dtype, block)])
        draw += 1
    return TraceResult(float(samples.mean()), _se(samples), int(samples.size), "hutchinson", samples, _describe(op))


def hutchpp(
    A: CurvatureOperator | Matvec,
    dim: int | None = None,
    probes: int = 99,
    *,
    se_target: float | None = None,
    max_probes: int = 10_000,
    block: int = 8,
    seed: int = 0,
    dtype: torch.dtype | None = None,
    device: str | torch.device | None = None,
) -> TraceResult:
    r"""Hutch++ (Meyer, Musco, Musco, Woodruff 2021): a sketch for the top of the spectrum, Hutchinson for the rest.

    With ``s = probes // 3``: ``Q = orth(A S)`` for a Rademacher ``S`` (``d x s``), then

    .. math:: \mathrm{tr} A \approx \mathrm{tr}(Q^T A Q)
              + \frac{1}{m} \sum_j g_j^T (I - QQ^T) A (I - QQ^T) g_j

    with ``m = probes - 2 s`` Rademacher ``g_j``: ``probes`` products in all. The first term
    captures the large eigenvalues exactly, so the variance is that of the deflated
    remainder -- far smaller than Hutchinson's for a Hessian dominated by a few outliers.
    ``standard_error`` is the remainder's (conditional on the sketch). With ``se_target``
    the remainder takes more probes until its standard error is at most ``se_target`` (or
    ``max_probes`` in all). When ``s >= dim`` the trace is computed exactly from ``dim``
    products (standard error 0).
    """
    op, dtype, device = _operator(A, dim, dtype, device)
    probes = check_int("probes", probes, 3)
    block = check_int("block", block)
    if se_target is not None:
        se_target = check_positive("se_target", se_target)
    d = op.dim
    s = probes // 3
    if s >= d:
        return _exact_trace(op, dtype, device, block)
    m = max(probes - 2 * s, 2)
    S = _rademacher(d, s, seed, dtype, device)
    Y = torch.cat([_product(op, S[:, i:i + block], dtype) for i in range(0, s, block)], 1)
    Q, _ = torch.linalg.qr(Y)
    AQ = torch.cat([_product(op, Q[:, i:i + block], dtype) for i in range(0, s, block)], 1)
    top = float((Q * AQ).sum())

    def deflated(G: Tensor) -> np.ndarray:
        G = G - Q @ (Q.T @ G)
        return _quadratic_forms(op, G, dtype, block)

    samples = deflated(_rademacher(d, m, seed + 1, dtype, device))
    draw = 1
    while se_target is not None and _se(samples) > se_target and 2 * s + samples.size < max_probes:
        samples = np.concatenate([samples, deflated(_rademacher(d, block, seed + 1 + 104729 * draw, dtype, device))])
        draw += 1
    return TraceResult(top + float(samples.mean()), _se(samples), 2 * s + int(samples.size), "hutch++", samples,
                       _describe(op))


# -- spectral density (stochastic Lanczos quadrature) ------------------------------------------

@dataclass
class SpectralDensity:
    r"""Stochastic Lanczos quadrature: per probe ``v_l``, Gauss quadrature nodes and weights.

    For a unit probe ``v`` and ``m`` Lanczos steps from it, the eigenvalues ``theta_j`` of
    ``T_m`` and the squared first components ``w_j = s_{1j}^2`` of its eigenvectors give
    ``v^T f(A) v = sum_j w_j f(theta_j)``, exact for polynomials of degree ``< 2m``. Over
    Rademacher probes, ``E[v^T f(A) v] = tr f(A) / d``: the density of the eigenvalues is
    ``phi(t) ~ (1/L) sum_l sum_j w_{lj} delta(t - theta_{lj})``.

    Attributes
    ----------
    nodes, weights : list of ndarray
        Per probe (``weights`` sum to 1 for each).
    dim : int
    n_matvec : int
    objective : dict
    """

    nodes: list[np.ndarray]
    weights: list[np.ndarray]
    dim: int
    n_matvec: int
    objective: dict = field(default_factory=dict)

    def moment(self, p: int) -> float:
        """``(1/L) sum_l sum_j w_{lj} theta_{lj}^p``: an estimate of ``tr(A^p) / d``."""
        return float(np.mean([np.sum(w * t ** p) for t, w in zip(self.nodes, self.weights)]))

    def trace(self) -> float:
        """``d`` times the first moment: the SLQ trace estimate."""
        return self.dim * self.moment(1)

    def density(self, grid: np.ndarray, sigma: float | None = None) -> np.ndarray:
        """The density on ``grid``, each node a Gaussian of width ``sigma`` (default: 1% of the
        nodes' range); integrates to about 1 over a grid covering the nodes."""
        grid = np.asarray(grid, dtype=np.float64)
        allnodes = np.concatenate(self.nodes)
        if sigma is None:
            sigma = 0.01 * max(float(np.ptp(allnodes)), 1e-12)
        sigma = check_positive("sigma", sigma)
        out = np.zeros_like(grid)
        for t, w in zip(self.nodes, self.weights):
            out += (w[None, :] * np.exp(-0.5 * ((grid[:, None] - t[None, :]) / sigma) ** 2)).sum(1)
        return out / (len(self.nodes) * sigma * math.sqrt(2 * math.pi))


def spectral_density(
    A: CurvatureOperator | Matvec,
    dim: int | None = None,
    probes: int | Tensor = 8,
    steps: int = 80,
    *,
    seed: int = 0,
    dtype: torch.dtype | None = None,
    device: str | torch.device | None = None,
    progress: bool = False,
) -> SpectralDensity:
    r"""Eigenvalue density by stochastic Lanczos quadrature (SLQ; Ghorbani, Krishnan, Xiao 2019).

    ``probes`` Rademacher start vectors (seeds ``seed, seed + 1, ...``), or given start
    vectors (a ``(dim, L)`` tensor, normalised here); ``steps`` Lanczos steps each (full
    reorthogonalisation; a run stops early when its Krylov space is invariant -- then its
    quadrature is exact for every ``f``). ``L * steps`` products at most.
    """
    op, dtype, device = _operator(A, dim, dtype, device)
    if isinstance(probes, Tensor):
        if probes.ndim != 2 or probes.shape[0] != op.dim:
            raise NdgmError(f"probe vectors must have shape ({op.dim}, L), got {tuple(probes.shape)}")
        V = probes.detach().to(dtype=dtype, device=device)
    else:
        V = _rademacher(op.dim, check_int("probes", probes), seed, dtype, device)
    steps = min(check_int("steps", steps), op.dim)
    nodes, weights, n = [], [], 0
    bar = _bar(progress, V.shape[1], "SLQ")
    for l in range(V.shape[1]):
        v = V[:, l] if isinstance(probes, Tensor) else _rademacher(op.dim, 1, seed + l, dtype, device)[:, 0]
        nrm = torch.linalg.vector_norm(v)
        if not bool(torch.isfinite(nrm)) or float(nrm) == 0:
            raise NdgmError("probe vectors must be finite and nonzero")
        kr = _Krylov(op, v / nrm, steps, dtype, seed + l)
        for j in range(steps):
            invariant = kr.step()
            if invariant or j + 1 == steps:
                break
            kr.advance(False)
        theta, s = kr.ritz()
        nodes.append(theta)
        weights.append(s[0, :] ** 2)
        n += kr.n
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    return SpectralDensity(nodes, weights, op.dim, n, _describe(op))


# -- preconditioned sharpness ------------------------------------------------------------------

@dataclass
class Preconditioner:
    r"""What an optimizer's update does to a quadratic, read from its state.

    Near a point the update is ``theta -= eta P^{-1} m`` with a diagonal ``P`` (frozen over a
    few steps) and a momentum ``m`` of the gradient ``g + c theta`` (``c``: coupled weight
    decay). In the eigenbasis of ``S = P^{-1/2} (H + c) P^{-1/2}`` every mode with eigenvalue
    ``a`` follows a two-term recurrence, stable exactly when ``0 < a < threshold``:

    * no momentum: ``2 / eta``;
    * heavy ball ``m <- mu m + g`` (SGD, RMSprop ``momentum``): ``2 (1 + mu) / eta``;
    * SGD with dampening ``tau``: ``2 (1 + mu) / (eta (1 - tau))``; Nesterov:
      ``2 (1 + mu) / (eta (1 + 2 mu))``;
    * EMA ``m <- beta1 m + (1 - beta1) g`` (Adam): ``2 (1 + beta1) / (eta (1 - beta1))``, i.e.
      ``38 / eta`` for ``beta1 = 0.9`` -- the threshold at which Cohen et al. (2022, "Adaptive
      gradient methods at the edge of stability", sec. 2 and 3) find the preconditioned
      sharpness ``lambda_1(P^{-1} H)`` of full-batch Adam equilibrating.

    (For the EMA: ``u' = beta1 u + (1 - beta1) a x``, ``x' = x - eta u'``; the companion matrix
    has determinant ``beta1`` and trace ``1 + beta1 - eta (1 - beta1) a``, and a real 2x2
    recurrence is stable iff ``|det| < 1`` and ``|trace| < 1 + det``.)

    Attributes
    ----------
    d : Tensor (dim,)
        ``(eta_g / eta)^{1/2} P^{-1/2}`` in the objective's parameter order (``eta_g``: the
        parameter's group learning rate, ``eta``: the first group's).
    shift : Tensor (dim,) or float
        Coupled weight decay ``c`` per coordinate (0 when none).
    threshold : float
        The stability threshold above for ``eta``.
    lr : float
        ``eta`` (the first group's learning rate).
    momentum : float
        ``beta1`` (Adam), ``mu`` (SGD / RMSprop) or 0.
    optimizer : str
    step : int
        The optimizer's step count (0 where it keeps none).
    note : str
        What is approximated (AdamW's decoupled decay, Adam's bias corrections).
    """

    d: Tensor
    shift: Tensor | float
    threshold: float
    lr: float
    momentum: float
    optimizer: str
    step: int
    note: str = ""


def _group_of(optimizer) -> dict[int, dict]:
    return {id(p): g for g in optimizer.param_groups for p in g["params"]}


def _scalar(x) -> float:
    return float(x.item()) if isinstance(x, Tensor) else float(x)


def optimizer_preconditioner(optimizer: torch.optim.Optimizer, objective: ModelLoss) -> Preconditioner:
    r"""The diagonal preconditioner, momentum and stability threshold of a ``torch.optim`` optimizer.

    ``P`` per parameter, as the optimizer applies it at its current state:

    * Adam / AdamW: ``P = (1 - beta1^t) (sqrt(v / (1 - beta2^t)) + eps)``, ``v`` the second-
      moment average (``max_exp_avg_sq`` with amsgrad) -- PyTorch's update is
      ``theta -= eta m / P`` with both bias corrections folded into ``P``;
    * RMSprop: ``P = sqrt(v) + eps`` (``sqrt(v - gbar^2) + eps`` when centered);
    * SGD: ``P = 1``.

    Parameters the objective differentiates must all be in the optimizer (a missing one has
    no ``P``), and the optimizer must have taken a step (it has no state before).
    """
    name = type(optimizer).__name__
    kinds = {"Adam": "adam", "AdamW": "adam", "RMSprop": "rmsprop", "SGD": "sgd"}
    if name not in kinds:
        raise NdgmError(f"optimizer must be one of torch.optim.{', '.join(kinds)}, got {name}")
    kind = kinds[name]
    groups = _group_of(optimizer)
    flat: ParameterFlattener = objective.flattener
    params = [flat.model.get_parameter(k) for k in flat.names]
    missing = [k for k, p in zip(flat.names, params) if id(p) not in groups]
    if missing:
        raise NdgmError(f"parameter {missing[0]!r} is not in the optimizer, so it has no preconditioner")
    g0 = optimizer.param_groups[0]
    lr = _scalar(g0["lr"])
    if lr <= 0:
        raise NdgmError(f"the optimizer's lr must be > 0, got {lr}")
    if any(g.get("maximize", False) for g in optimizer.param_groups):
        raise NdgmError("a maximizing optimizer has no stability threshold of this kind")

    def momentum_of(g) -> tuple:
        if kind == "adam":
            return (float(g["betas"][0]),)
        if kind == "rmsprop":
            return (float(g["momentum"]),)
        return (float(g["momentum"]), float(g["dampening"]), bool(g["nesterov"]))

    mom = {momentum_of(g) for g in optimizer.param_groups}
    if len(mom) > 1:
        raise NdgmError(f"the optimizer's groups have different momenta {sorted(mom)}: no single threshold")
    (mom,) = mom
    ds, shifts, steps, note = [], [], [], ""
    for p in params:
        g = groups[id(p)]
        st = optimizer.state.get(p, {})
        ratio = _scalar(g["lr"]) / lr
        wd = float(g.get("weight_decay", 0.0))
        decoupled = name == "AdamW" or bool(g.get("decoupled_weight_decay", False))
        if kind == "adam":
            if "exp_avg_sq" not in st:
                raise NdgmError(f"{name} has no state yet: take an optimizer step before asking for its preconditioner")
            t = _scalar(st["step"])
            b1, b2 = g["betas"]
            v = st["max_exp_avg_sq"] if g.get("amsgrad", False) else st["exp_avg_sq"]
            P = (1 - b1 ** t) * ((v / (1 - b2 ** t)).sqrt() + g["eps"])
            steps.append(int(t))
            if decoupled and wd:
                note = (f"decoupled weight decay {wd:g} not in the threshold (it multiplies theta by "
                        f"1 - eta wd = {1 - lr * wd:.6g} per step)")
                wd = 0.0
        elif kind == "rmsprop":
            if "square_avg" not in st:
                raise NdgmError(f"{name} has no state yet: take an optimizer step before asking for its preconditioner")
            v = st["square_avg"]
            if g.get("centered", False):
                v = v - st["grad_avg"] ** 2
            P = v.sqrt() + g["eps"]
            steps.append(int(_scalar(st.get("step", 0))))
        else:
            P = torch.ones_like(p)
            steps.append(0)
        ds.append((ratio / P).sqrt().reshape(-1))
        shifts.append(torch.full((p.numel(),), wd, dtype=p.dtype, device=p.device))
    d = torch.cat(ds).detach().to(dtype=objective.dtype, device=objective.device)
    shift_vec = torch.cat(shifts).to(dtype=objective.dtype, device=objective.device)
    shift: Tensor | float = float(shift_vec[0]) if bool((shift_vec == shift_vec[0]).all()) else shift_vec
    if kind == "adam":
        b1 = mom[0]
        threshold = 2 * (1 + b1) / (lr * (1 - b1))
    elif kind == "rmsprop":
        threshold = 2 * (1 + mom[0]) / lr
    else:
        mu, tau, nesterov = mom
        threshold = 2 * (1 + mu) / (lr * (1 + 2 * mu)) if nesterov else 2 * (1 + mu) / (lr * (1 - tau))
    return Preconditioner(d, shift, threshold, lr, mom[0], name, max(steps, default=0), note)


@dataclass
class PreconditionedSharpness:
    """Top eigenvalues of ``P^{-1/2} (H + c) P^{-1/2}`` against the optimizer's stability threshold.

    Attributes
    ----------
    eigenvalues : ndarray (k,)
    threshold : float
    ratio : float
        ``eigenvalues[0] / threshold``: 1 at the edge of stability.
    n_matvec : int
        Hessian-vector products.
    residuals : ndarray (k,)
    converged : bool
    eigenvectors : Tensor (dim, k)
    preconditioner : Preconditioner
    objective : dict
    """

    eigenvalues: np.ndarray
    threshold: float
    ratio: float
    n_matvec: int
    residuals: np.ndarray
    converged: bool
    eigenvectors: Tensor
    preconditioner: Preconditioner
    objective: dict = field(default_factory=dict)


def preconditioned_sharpness(objective: ModelLoss, optimizer: torch.optim.Optimizer, k: int = 1, *,
                             theta: Tensor | None = None, tol: float = 1e-6, max_iter: int | None = None,
                             v0: Tensor | None = None, seed: int = 0) -> PreconditionedSharpness:
    r"""``lambda_1..k(P^{-1/2} (H + c) P^{-1/2})`` (= eigenvalues of ``P^{-1}(H + c)``) by `lanczos`.

    ``P``, ``c`` and the threshold come from the optimizer's state (`optimizer_preconditioner`);
    ``H`` is the objective's Hessian at ``theta`` (the module's parameters when None). This is
    the sharpness an adaptive method actually sees (central flows; Cohen et al. 2022).
    """
    pre = optimizer_preconditioner(optimizer, objective)
    op = PreconditionedOperator(objective.hessian(theta), pre.d, pre.shift)
    res = lanczos(op, k=k, tol=tol, max_iter=max_iter, v0=v0, seed=seed)
    return PreconditionedSharpness(res.eigenvalues, pre.threshold, float(res.eigenvalues[0] / pre.threshold),
                                   res.n_matvec, res.residuals, res.converged, res.eigenvectors, pre, res.objective)


# -- the two plain entry points -----------------------------------------------------------------

def eigenvalues(model: nn.Module, loss_fn: Callable[[Tensor, Tensor], Tensor], inputs: Tensor, targets: Tensor,
                k: int = 1, which: str = "largest", *, mode: str = "auto", chunk_size: int | None = None,
                tol: float = 1e-10, max_iter: int | None = None, seed: int = 0) -> np.ndarray:
    r"""The ``k`` largest (or smallest) eigenvalues of the Hessian of ``loss_fn(model(inputs), targets)``.

    The objective is exactly as written, whatever ``loss_fn``'s reduction: ``nn.MSELoss()``
    gives the eigenvalues of the mean squared error, ``nn.MSELoss(reduction='sum')`` those of
    the sum (``n`` times larger). The model and its buffers are not changed (BatchNorm in train
    mode uses the batch's statistics and leaves its running statistics alone; ``mode='eval'``
    uses them instead; ``'auto'`` follows ``model.training``). Lanczos with full
    reorthogonalisation, residuals ``<= tol * ||H||`` (a warning when ``max_iter`` products do
    not get there), float64 Krylov basis.

    Parameters
    ----------
    which : {'largest', 'smallest', 'magnitude'}
    chunk_size : int, optional
        Rows per chunk of the products (None: all at once; see `ndgm.analysis.hessian.ModelLoss`).

    Returns
    -------
    ndarray (k,), float64
        Descending for ``'largest'``, ascending for ``'smallest'``.
    """
    obj = ModelObjective(model, loss_fn, inputs, targets, chunk_size=chunk_size, reduction=None, mode=mode)
    res = lanczos(obj.hessian(), k=k, which=which, tol=tol, max_iter=max_iter, seed=seed)
    if not res.converged:
        warnings.warn(f"Lanczos did not converge in {res.n_matvec} products: residual bounds "
                      f"{np.array2string(res.residuals, precision=2)} (raise max_iter)", RuntimeWarning, stacklevel=2)
    return np.asarray(res.eigenvalues, dtype=np.float64)


def trace(model: nn.Module, loss_fn: Callable[[Tensor, Tensor], Tensor], inputs: Tensor, targets: Tensor, *,
          probes: int = 99, method: str = "hutch++", se_target: float | None = None, mode: str = "auto",
          chunk_size: int | None = None, seed: int = 0) -> tuple[float, float]:
    r"""``(estimate, standard_error)`` of the Hessian trace of ``loss_fn(model(inputs), targets)``.

    The objective and the model are handled as in `eigenvalues`. ``method='hutch++'``
    (default, `hutchpp`) or ``'hutchinson'`` (`hutchinson`) with ``probes`` products (more
    with ``se_target``); exact (standard error 0) when ``probes // 3`` reaches the number of
    parameters under Hutch++.
    """
    if method not in ("hutch++", "hutchinson"):
        raise NdgmError(f"method must be 'hutch++' or 'hutchinson', got {method!r}")
    obj = ModelObjective(model, loss_fn, inputs, targets, chunk_size=chunk_size, reduction=None, mode=mode)
    est = (hutchpp if method == "hutch++" else hutchinson)(obj.hessian(), probes=probes, se_target=se_target,
                                                           seed=seed)
    return est.estimate, est.standard_error


# -- sharpness tracking -------------------------------------------------------------------------

class SharpnessTracker:
    r"""Training callback: every ``every`` steps, the top-k Hessian eigenvalues next to ``2/eta``, and more.

    Call ``tracker(step)`` after each step of any training loop (it skips steps that are not
    due). Each record holds the top-``k`` eigenvalues by `lanczos` (warm-started from the
    previous record's Ritz vectors plus a small seeded random part, so that the Krylov space
    does not collapse onto one old eigenvector), the threshold ``2/eta``, the
    Hessian-vector products and seconds it took, and on request the ``bottom`` smallest
    eigenvalues, the trace (`hutchpp`, ``trace_probes`` products) and the preconditioned
    sharpness of ``optimizer`` (`preconditioned_sharpness`, against that optimizer's
    threshold, e.g. ``38/eta`` for Adam). ``budget`` (a fraction of wall time) adapts
    ``every``: after a record that took more than ``budget`` of the time since the previous
    one, ``every`` doubles (up to ``max_every``); below ``budget / 4`` it halves (down to
    the initial value). Records export to a pandas DataFrame (`to_dataframe`, `to_csv`), to
    TensorBoard scalars (``tensorboard``: a log directory or a ``SummaryWriter``; needs the
    ``tensorboard`` package) and to a figure of sharpness against ``2/eta`` (`plot`).

    Parameters
    ----------
    lr : float, optional
        The step size ``eta`` (> 0); the threshold is ``2 / eta``. When None it is read from
        ``optimizer.param_groups[0]['lr']`` at every record (schedules are followed).
    every : int
        Record at steps ``0, every, 2 every, ...`` (with ``budget``: ``every`` steps after the
        previous record).
    k : int
        Top eigenvalues per record.
    tol : float
        Lanczos residual tolerance (relative to the largest Ritz value).
    warm_start : bool
    max_iter : int, optional
        Most products per Lanczos run.
    seed : int
    objective : ModelLoss, optional
        What to track when ``tracker(step)`` is called without one (see `for_model`).
    bottom : int
        Smallest eigenvalues per record (0: none).
    trace_probes : int
        Products for the Hutch++ trace per record (0: none).
    optimizer : torch.optim.Optimizer, optional
        Adam / AdamW / RMSprop / SGD: also record its preconditioned sharpness.
    budget : float, optional
        Largest fraction of wall time the tracker may use (None: ``every`` stays fixed).
    max_every : int, optional
        Cap on ``every`` under a budget (default ``64 * every``).
    progress : bool
        A tqdm bar over records, showing the last sharpness and ``2/eta``.
    tensorboard : str, Path or SummaryWriter, optional
    clock : callable
        Time source for the budget (``time.perf_counter``).

    Attributes
    ----------
    steps_ : list of int
    eigenvalues_ : list of ndarray (k,)
    n_hvp_ : list of int
        Hessian-vector products per record (all quantities).
    thresholds_ : list of float
        ``2 / eta`` at each record.
    rows_ : list of dict
        Everything recorded, one dict per record (`to_dataframe`).
    threshold_ : float
        ``2 / eta`` of the last record (of ``lr`` before any).
    every_ : int
        The current interval.
    """

    def __init__(self, lr: float | None = None, every: int = 10, k: int = 1, tol: float = 1e-6,
                 warm_start: bool = True, max_iter: int | None = None, seed: int = 0, *,
                 objective: ModelLoss | None = None, bottom: int = 0, trace_probes: int = 0,
                 optimizer: torch.optim.Optimizer | None = None, budget: float | None = None,
                 max_every: int | None = None, progress: bool = False, tensorboard=None,
                 clock: Callable[[], float] = time.perf_counter):
        if lr is None and optimizer is None:
            raise NdgmError("eta (lr) is required unless an optimizer is given to read it from")
        self.lr = None if lr is None else check_positive("eta (lr)", lr)
        self.every = check_int("every", every)
        self.k = check_int("k", k)
        self.tol = check_positive("tol", tol)
        self.warm_start = warm_start
        self.max_iter = max_iter
        self.seed = seed
        self.objective = objective
        self.bottom = check_int("bottom", bottom, 0)
        self.trace_probes = check_int("trace_probes", trace_probes, 0)
        if 0 < self.trace_probes < 3:
            raise NdgmError(f"trace_probes must be 0 or >= 3 (Hutch++), got {trace_probes}")
        self.optimizer = optimizer
        if budget is not None:
            budget = check_positive("budget", budget)
            if budget >= 1:
                raise NdgmError(f"budget must be a fraction of wall time in (0, 1), got {budget}")
        self.budget = budget
        self.max_every = check_int("max_every", max_every) if max_every is not None else 64 * self.every
        self.progress = progress
        self.clock = clock
        self._writer, self._own_writer = self._tensorboard(tensorboard)
        self.threshold_ = 2.0 / self.lr if self.lr is not None else math.nan
        self.every_ = self.every
        self.steps_: list[int] = []
        self.eigenvalues_: list[np.ndarray] = []
        self.n_hvp_: list[int] = []
        self.thresholds_: list[float] = []
        self.rows_: list[dict] = []
        self._vectors: dict[str, Tensor] = {}
        self._next_due: int | None = None
        self._last_end: float | None = None
        self._bar = None

    @classmethod
    def for_model(cls, model: nn.Module, loss_fn: Callable[[Tensor, Tensor], Tensor], inputs: Tensor,
                  targets: Tensor, lr: float | None = None, *, mode: str = "auto", chunk_size: int | None = None,
                  **kwargs) -> SharpnessTracker:
        """A tracker of ``loss_fn(model(inputs), targets)`` (as written, like `eigenvalues`) at the
        module's current parameters: call ``tracker(step)`` after each optimizer step."""
        obj = ModelObjective(model, loss_fn, inputs, targets, chunk_size=chunk_size, reduction=None, mode=mode)
        return cls(lr, objective=obj, **kwargs)

    @staticmethod
    def _tensorboard(target):
        if target is None:
            return None, False
        if hasattr(target, "add_scalar"):
            return target, False
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise NdgmError("tensorboard logging needs the tensorboard package (pip install tensorboard)") from None
        return SummaryWriter(log_dir=str(target)), True

    # -- recording ------------------------------------------------------------------------
    def due(self, step: int) -> bool:
        """Whether ``step`` gets a record."""
        if self.budget is None:
            return step % self.every == 0
        return self._next_due is None or step >= self._next_due

    def __call__(self, step: int, objective: ModelLoss | None = None, theta: Tensor | None = None,
                 lr: float | None = None) -> np.ndarray | None:
        """Record at ``step`` if it is due; return the top eigenvalues recorded (or None)."""
        if not self.due(step):
            return None
        return self.record(step, objective, theta, lr)

    def _lr(self, lr: float | None) -> float:
        if lr is not None:
            return check_positive("eta (lr)", lr)
        if self.optimizer is not None and self.lr is None:
            return check_positive("eta (lr)", _scalar(self.optimizer.param_groups[0]["lr"]))
        return self.lr

    def _warm(self, key: str, H: CurvatureOperator, step: int) -> Tensor | None:
        prev = self._vectors.get(key)
        if not self.warm_start or prev is None or prev.shape[0] != H.dim:
            return None
        noise = _randn(H.dim, None, self.seed + step, prev.dtype, prev.device)
        base = (prev / torch.linalg.vector_norm(prev, dim=0, keepdim=True)).sum(1)
        return base / torch.linalg.vector_norm(base) + 1e-3 * noise / torch.linalg.vector_norm(noise)

    def record(self, step: int, objective: ModelLoss | None = None, theta: Tensor | None = None,
               lr: float | None = None) -> np.ndarray:
        """Record now, whatever ``step`` is (e.g. at the final iterate)."""
        obj = objective if objective is not None else self.objective
        if obj is None:
            raise NdgmError("no objective: pass one to the call or build the tracker with SharpnessTracker.for_model")
        start = self.clock()
        eta = self._lr(lr)
        H = obj.hessian(theta)
        k = _check_k(self.k, H.dim)
        row: dict = {"step": int(step), "lr": eta, "threshold": 2.0 / eta}
        res = lanczos(H, k=k, v0=self._warm("top", H, step), tol=self.tol, max_iter=self.max_iter,
                      seed=self.seed + step)
        self._vectors["top"] = res.eigenvectors
        hvps = res.n_matvec
        for i, v in enumerate(res.eigenvalues):
            row[f"lambda_{i + 1}"] = float(v)
        row["residual_1"] = float(res.residuals[0])
        if self.bottom:
            low = lanczos(H, k=_check_k(self.bottom, H.dim), which="SA", v0=self._warm("bottom", H, step),
                          tol=self.tol, max_iter=self.max_iter, seed=self.seed + step + 1)
            self._vectors["bottom"] = low.eigenvectors
            hvps += low.n_matvec
            for i, v in enumerate(low.eigenvalues):
                row[f"lambda_min_{i + 1}"] = float(v)
        if self.trace_probes:
            tr = hutchpp(H, probes=self.trace_probes, seed=self.seed + step)
            hvps += tr.n_matvec
            row["trace"], row["trace_se"] = tr.estimate, tr.standard_error
        if self.optimizer is not None:
            pre = preconditioned_sharpness(obj, self.optimizer, k=k, theta=theta, tol=self.tol,
                                           max_iter=self.max_iter, v0=self._warm("precond", H, step),
                                           seed=self.seed + step + 2)
            self._vectors["precond"] = pre.eigenvectors
            hvps += pre.n_matvec
            for i, v in enumerate(pre.eigenvalues):
                row[f"precond_lambda_{i + 1}"] = float(v)
            row["precond_threshold"] = pre.threshold
        if isinstance(obj, ModelObjective):
            row["loss"] = obj.value(theta)
        end = self.clock()
        row.update(hvps=int(hvps), seconds=end - start, every=self.every_)
        row.update({f"objective_{key}": val for key, val in obj.describe().items()
                    if key in ("reduction", "mode")})
        self._adapt(step, start, end)
        self.steps_.append(int(step))
        self.eigenvalues_.append(res.eigenvalues)
        self.n_hvp_.append(int(hvps))
        self.thresholds_.append(2.0 / eta)
        self.threshold_ = 2.0 / eta
        self.rows_.append(row)
        self._log(row)
        return res.eigenvalues

    def _adapt(self, step: int, start: float, end: float) -> None:
        if self.budget is not None and self._last_end is not None:
            spent, training = end - start, max(start - self._last_end, 0.0)
            share = spent / max(spent + training, 1e-12)
            if share > self.budget:
                self.every_ = min(2 * self.every_, self.max_every)
            elif share < self.budget / 4:
                self.every_ = max(self.every_ // 2, self.every)
        self._last_end = end
        self._next_due = step + self.every_

    def _log(self, row: dict) -> None:
        if self.progress:
            if self._bar is None:
                from tqdm.auto import tqdm

                self._bar = tqdm(desc="sharpness", unit="record", mininterval=0.5, dynamic_ncols=True)
            self._bar.update(1)
            self._bar.set_postfix(step=row["step"], sharpness=f"{row['lambda_1']:.4g}",
                                  two_over_lr=f"{row['threshold']:.4g}", refresh=False)
        if self._writer is not None:
            for key, val in row.items():
                if key != "step" and isinstance(val, (int, float)) and not isinstance(val, bool):
                    self._writer.add_scalar(f"curvature/{key}", val, row["step"])

    def close(self) -> None:
        """Close the progress bar and flush (and close, if the tracker opened it) the TensorBoard writer."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        if self._writer is not None:
            self._writer.flush()
            if self._own_writer:
                self._writer.close()

    # -- export ----------------------------------------------------------------------------
    def to_dataframe(self):
        """The records as a pandas DataFrame, one row per record (columns: step, lr, threshold,
        lambda_1..k, residual_1, [lambda_min_i, trace, trace_se, precond_lambda_i,
        precond_threshold], loss, hvps, seconds, every, objective_reduction, objective_mode)."""
        import pandas as pd

        return pd.DataFrame(self.rows_)

    def to_csv(self, path: str | Path) -> Path:
        """Write `to_dataframe` as CSV; returns the path."""
        path = Path(path)
        self.to_dataframe().to_csv(path, index=False)
        return path

    def arrays(self) -> dict[str, np.ndarray]:
        """``sharpness_steps (R,)``, ``sharpness_eigs (R, k)``, ``sharpness_hvps (R,)``,
        ``sharpness_thresholds (R,)`` and, where recorded, ``sharpness_bottom (R, b)``,
        ``sharpness_trace (R, 2)`` (estimate, standard error), ``precond_eigs (R, k)``,
        ``precond_thresholds (R,)``, for the run store."""
        R = len(self.steps_)
        out = {"sharpness_steps": np.asarray(self.steps_, dtype=np.int64),
               "sharpness_eigs": np.asarray(self.eigenvalues_).reshape(R, -1),
               "sharpness_hvps": np.asarray(self.n_hvp_, dtype=np.int64),
               "sharpness_thresholds": np.asarray(self.thresholds_, dtype=np.float64)}

        def cols(prefix: str) -> np.ndarray:
            names = sorted({c for r in self.rows_ for c in r if c.startswith(prefix) and c[len(prefix):].isdigit()},
                           key=lambda c: int(c[len(prefix):]))
            return np.array([[r.get(c, np.nan) for c in names] for r in self.rows_], dtype=np.float64).reshape(R, -1)

        if self.bottom:
            out["sharpness_bottom"] = cols("lambda_min_")
        if self.trace_probes:
            out["sharpness_trace"] = np.array([[r["trace"], r["trace_se"]] for r in self.rows_]).reshape(R, 2)
        if self.optimizer is not None:
            out["precond_eigs"] = cols("precond_lambda_")
            out["precond_thresholds"] = np.array([r["precond_threshold"] for r in self.rows_], dtype=np.float64)
        return out

    def plot(self, path: str | Path) -> Path:
        """Sharpness (and preconditioned sharpness) against ``2/eta`` over training, saved to ``path``."""
        from ..figures.curvature import plot_tracker

        return plot_tracker(self.arrays(), Path(path))


# -- kinks -------------------------------------------------------------------------------------

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
    flat = ParameterFlattener(model)
    try:
        with torch.no_grad():  # a frozen-buffer call: the model is not changed
            flat.functional_call(flat.flatten(), X, mode=resolve_mode(model, "auto")) if flat.dim else model(X)
    finally:
        for h in handles:
            h.remove()
    return int(zeros), total
