"""Which minima GD and SGD can settle in (spec stability.md, section 3).

* `gd_mu`: Chemnitz--Engel's GD exponent ``mu = log rho(Q^T (I - eta H) Q)`` with ``Q`` an
  orthonormal basis of the normal space ``N`` of the manifold of minima.
* `lyapunov_exponents`: the SGD exponent ``lambda``, the top Lyapunov exponent of the random
  product ``Q^T (I - eta H_{B_n}) ... (I - eta H_{B_1}) Q``, by QR renormalisation over
  independent chains (one block each, so the standard error is over i.i.d. blocks).
  Without ``Q`` it refuses: tangent directions have multiplier exactly 1, so an unprojected
  estimate reads ``max(0, lambda)``.
* `lyapunov_exact_1d`: ``sum_b p_b log|1 - eta h_b|`` when every batch Hessian acts on one
  common normal line.
* `exponent_of_s`: the two-point toy's exponents ``sum_i w_i log|1 - eta a_i s|`` (`toy_mu`,
  `toy_lambda`), and `stable_intervals`: the sets ``{t1 : exponent(s(t1)) < 0}``, as exact
  intervals (root finding in ``s = t1^2 + t1^-2``).
* `wu_ma_e`: sharpness ``a`` and non-uniformity ``s`` of an ``nn.Module`` by Lanczos on
  per-sample Hessian-vector products (`ndgm.analysis.hessian.PerSampleHessian`), with the GD
  and SGD mean-square conditions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ..errors import NdgmError, check_positive
from .hessian import MatvecOperator, ModelLoss, mse_sum

__all__ = [
    "normal_basis",
    "gd_mu",
    "lyapunov_exponents",
    "LyapunovEstimate",
    "lyapunov_exact_1d",
    "exponent_of_s",
    "toy_mu",
    "toy_lambda",
    "stable_intervals",
    "s_of_t1",
    "WuMaE",
    "wu_ma_e",
]


def _check_p(p) -> np.ndarray:
    p = np.atleast_1d(np.asarray(p, dtype=np.float64))
    if np.any(~np.isfinite(p)) or np.any(p < 0) or np.any(p > 1):
        raise NdgmError(f"batch probabilities p must lie in [0, 1], got {p.tolist()}")
    if abs(p.sum() - 1) > 1e-12:
        raise NdgmError(f"batch probabilities p must sum to 1, got sum {p.sum()!r}")
    return p


def normal_basis(J: Tensor, rtol: float = 1e-10) -> Tensor:
    """Orthonormal basis ``(d, m)`` of the row space of ``J`` (``(n, d)``, per-sample output gradients).

    At an interpolating minimum of a squared loss this row space is the normal space ``N``
    of the manifold of minima. The rank cut is ``sigma > rtol * sigma_max``.
    """
    U, S, Vh = torch.linalg.svd(J.to(torch.float64), full_matrices=False)
    keep = S > rtol * (S[0] if S.numel() else 0)
    return Vh[keep].T.contiguous()


def _check_basis(Q: Tensor | None, d: int) -> Tensor:
    if Q is None:
        raise NdgmError("a normal-space basis Q is required: an unprojected estimate reads max(0, lambda) "
                        "because tangent directions have multiplier exactly 1")
    Q = torch.as_tensor(Q, dtype=torch.float64)
    if Q.ndim == 1:
        Q = Q[:, None]
    if Q.ndim != 2 or Q.shape[0] != d or Q.shape[1] < 1:
        raise NdgmError(f"Q must have shape (d={d}, m >= 1), got {tuple(Q.shape)}")
    if not torch.allclose(Q.T @ Q, torch.eye(Q.shape[1], dtype=Q.dtype), atol=1e-8):
        raise NdgmError("Q must have orthonormal columns (use normal_basis)")
    return Q


def gd_mu(H: Tensor, eta: float, Q: Tensor | None) -> float:
    r"""GD exponent ``mu = log rho(Q^T (I - eta H) Q)`` (Chemnitz--Engel).

    ``mu < 0`` (sharpness ``< 2 / eta`` on ``N``): GD converges near ``theta*`` with positive
    probability; ``mu > 0``: almost surely not.
    """
    eta = check_positive("eta", eta)
    H = torch.as_tensor(H, dtype=torch.float64)
    Q = _check_basis(Q, H.shape[-1])
    A = Q.T @ (torch.eye(H.shape[-1], dtype=H.dtype) - eta * H) @ Q
    return float(torch.log(torch.linalg.eigvals(A).abs().max()))


@dataclass
class LyapunovEstimate:
    """Lyapunov exponents of a random matrix product, with standard errors over blocks.

    Attributes
    ----------
    exponents : ndarray (m,)
        Estimates ``lambda_1 >= ... >= lambda_m`` (mean over blocks of ``log |R_jj|`` per step).
    stderr : ndarray (m,)
        Standard error of each over the independent blocks.
    top, top_stderr : float
        ``exponents[0]`` and ``stderr[0]``.
    """

    exponents: np.ndarray
    stderr: np.ndarray

    @property
    def top(self) -> float:
        return float(self.exponents[0])

    @property
    def top_stderr(self) -> float:
        return float(self.stderr[0])


def lyapunov_exponents(batch_hessians: Tensor, p, eta: float, Q: Tensor | None, steps: int = 20000,
                       blocks: int = 20, burn_in: int = 50, seed: int = 0) -> LyapunovEstimate:
    r"""SGD Lyapunov exponents of ``Q^T (I - eta H_{B_n}) ... (I - eta H_{B_1}) Q``.

    .. math:: \lambda = \lim_n \frac1n \log \| Q^T \prod_k (I - \eta H_{B_k}) Q \|

    Batches ``B_k`` are i.i.d. with probabilities ``p``. ``blocks`` independent chains run
    side by side (a leading batch axis), each for ``steps // blocks`` steps after
    ``burn_in`` steps that let the frame align; every step multiplies the ``(m, m)``
    projected matrix into an orthonormal frame and re-orthonormalises it by QR, adding
    ``log|diag R|``. Projecting first is exact at a minimum, where each ``H_b`` maps ``N`` into
    itself, and it keeps rounding from leaking into the tangent directions.

    Parameters
    ----------
    batch_hessians : Tensor (B, d, d)
    p : array (B,)
        Batch probabilities in [0, 1], summing to 1.
    eta : float > 0
    Q : Tensor (d, m)
        Orthonormal basis of the normal space. Required: ``None`` raises `NdgmError`.
    """
    eta = check_positive("eta", eta)
    Hb = torch.as_tensor(batch_hessians, dtype=torch.float64)
    if Hb.ndim != 3 or Hb.shape[1] != Hb.shape[2]:
        raise NdgmError(f"batch_hessians must have shape (B, d, d), got {tuple(Hb.shape)}")
    d = Hb.shape[-1]
    Q = _check_basis(Q, d)
    p = _check_p(p)
    if p.size != Hb.shape[0]:
        raise NdgmError(f"p has {p.size} entries for {Hb.shape[0]} batch Hessians")
    if blocks < 2 or steps < blocks:
        raise NdgmError(f"need blocks >= 2 and steps >= blocks, got steps={steps}, blocks={blocks}")
    m = Q.shape[1]
    A = Q.T @ (torch.eye(d, dtype=Hb.dtype) - eta * Hb) @ Q  # (B, m, m)
    gen = torch.Generator().manual_seed(int(seed))
    probs = torch.as_tensor(p, dtype=torch.float64)
    per_block = steps // blocks
    frame = torch.linalg.qr(torch.randn(blocks, m, m, generator=gen, dtype=torch.float64))[0]
    total = torch.zeros(blocks, m, dtype=torch.float64)
    for k in range(burn_in + per_block):
        idx = torch.multinomial(probs, blocks, replacement=True, generator=gen)
        frame, R = torch.linalg.qr(A[idx] @ frame)
        if k >= burn_in:
            total += torch.log(torch.diagonal(R, dim1=-2, dim2=-1).abs())
    rates = (total / per_block).numpy()  # (blocks, m)
    rates = -np.sort(-rates, axis=1)
    return LyapunovEstimate(rates.mean(0), rates.std(0, ddof=1) / math.sqrt(blocks))


def lyapunov_exact_1d(h, p, eta: float) -> float:
    """``lambda = sum_b p_b log|1 - eta h_b|``: exact when every ``H_b = h_b n n^T`` for one unit ``n``."""
    eta = check_positive("eta", eta)
    p = _check_p(p)
    h = np.asarray(h, dtype=np.float64)
    with np.errstate(divide="ignore"):
        return float(np.sum(p * np.log(np.abs(1 - eta * h))))


# -- the two-point ReLU toy on M = {t1 t2 = 1} ------------------------------------------

def s_of_t1(t1) -> np.ndarray:
    """``s = t1^2 + t1^-2``: the normal curvature factor on ``M`` (``H = a s`` along ``N``)."""
    t1 = np.asarray(t1, dtype=np.float64)
    return t1**2 + t1**-2


def _t1_of_s(s: float) -> tuple[float, float]:
    """The two solutions ``t1 <= 1 <= 1/t1`` of ``t1^2 + t1^-2 = s`` (``s >= 2``)."""
    u = (s + math.sqrt(max(s * s - 4, 0.0))) / 2  # t1^2 of the larger root
    hi = math.sqrt(u)
    return 1 / hi, hi


def exponent_of_s(s, eta: float, weights, curvature) -> np.ndarray:
    r"""``sum_i w_i log|1 - eta a_i s|``: a toy exponent as a function of ``s = t1^2 + t1^-2``.

    On ``M`` sample ``i`` has normal curvature ``a_i s``, so this is the SGD exponent ``lambda``
    with batch probabilities ``w_i``, and the GD exponent ``mu`` with the single term
    ``weights = (1,)``, ``curvature = (abar,)``. No range checks: `toy_mu`, `toy_lambda` and
    `stable_intervals` check theirs once, and root finding calls this many times.

    Parameters
    ----------
    s : array_like
        Curvature factors (``s >= 2`` on ``M``).
    eta : float
        Step size.
    weights, curvature : sequence of float
        ``w_i`` and ``a_i``, of the same length.

    Returns
    -------
    ndarray
        Shape of ``s``; ``-inf`` at a pole ``s = 1 / (eta a_i)``.
    """
    s = np.asarray(s, dtype=np.float64)
    with np.errstate(divide="ignore"):
        return sum(w * np.log(np.abs(1 - eta * a * s)) for w, a in zip(weights, curvature, strict=True))


def toy_mu(t1, eta: float, weights=(0.5, 0.5), curvature=(0.81, 6.25)) -> np.ndarray:
    """``mu = log|1 - eta abar s|``, ``abar = sum_i w_i a_i`` (uniform weights give 3.53)."""
    eta = check_positive("eta", eta)
    abar = float(np.dot(_check_p(weights), curvature))
    return exponent_of_s(s_of_t1(t1), eta, (1.0,), (abar,))


def toy_lambda(t1, eta: float, p: float, curvature=(0.81, 6.25)) -> np.ndarray:
    """``lambda = p log|1 - a_1 eta s| + (1 - p) log|1 - a_2 eta s|`` (batch size 1)."""
    eta = check_positive("eta", eta)
    _check_p([p, 1 - p])
    return exponent_of_s(s_of_t1(t1), eta, (p, 1 - p), curvature)


def stable_intervals(eta: float, weights, curvature, grid: int = 200_001) -> list[tuple[float, float]]:
    r"""The set ``{t1 > 0 : exponent_of_s(s(t1), eta, weights, curvature) < 0}`` as sorted open intervals.

    Beyond ``s_max = 2 / (eta min a_i)`` every term of the exponent is positive, so the search
    is on ``[2, s_max]``, split at the poles ``1 / (eta a_i)``; sign changes on a fine grid are
    refined by Brent's method to ~1e-14. Each ``s``-interval maps to the two mirror intervals
    ``t1 <-> 1/t1`` (one interval when it contains ``s = 2``, i.e. ``t1 = 1``).

    Parameters
    ----------
    eta : float
        Step size (> 0).
    weights : sequence of float
        ``w_i`` in [0, 1] summing to 1: batch probabilities (SGD), or ``(1,)`` with
        ``curvature = (abar,)`` (GD).
    curvature : sequence of float
        Per-sample curvature constants ``a_i > 0``.
    grid : int
        Total grid points over the pieces (at least 1001 per piece).

    Returns
    -------
    list of (float, float)
        Sorted intervals of ``t1``.
    """
    from scipy.optimize import brentq  # here, not at import: the CLI should not pay for scipy.optimize

    eta = check_positive("eta", eta)
    weights = _check_p(weights)

    def f(s):
        return exponent_of_s(s, eta, weights, curvature)

    s_max = 2 / (eta * min(curvature)) * (1 + 1e-9)
    poles = sorted(1 / (eta * a) for a in curvature if 2 < 1 / (eta * a) < s_max)
    edges = [2.0] + poles + [s_max]
    s_intervals: list[list[float]] = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        s = np.linspace(lo, hi, max(grid // len(edges), 1001))
        s[0], s[-1] = lo, hi
        with np.errstate(divide="ignore", invalid="ignore"):
            fs = f(s)
        # At a pole the exponent is -inf: negative by continuity.
        neg = fs < 0
        i = 0
        while i < len(s):
            if not neg[i]:
                i += 1
                continue
            j = i
            while j + 1 < len(s) and neg[j + 1]:
                j += 1
            a = lo if i == 0 else brentq(f, s[i - 1], s[i], xtol=1e-15, rtol=1e-15)
            b = hi if j == len(s) - 1 else brentq(f, s[j], s[j + 1], xtol=1e-15, rtol=1e-15)
            if s_intervals and abs(s_intervals[-1][1] - a) < 1e-12:
                s_intervals[-1][1] = b  # continues across a pole
            else:
                s_intervals.append([a, b])
            i = j + 1
    out: list[tuple[float, float]] = []
    for a, b in s_intervals:
        b_lo, b_hi = _t1_of_s(b)
        if a <= 2.0:
            out.append((b_lo, b_hi))
        else:
            a_lo, a_hi = _t1_of_s(a)
            out.extend([(b_lo, a_lo), (a_hi, b_hi)])
    return sorted(out)


# -- Wu--Ma--E for an nn.Module --------------------------------------------------------

@dataclass
class WuMaE:
    """Wu--Ma--E mean-square linear stability at a minimum.

    ``sharpness = lambda_max(H)``, ``nonuniformity = sqrt(lambda_max(mean_i H_i^2 - H^2))``;
    ``gd_stable``: ``a <= 2 / eta``; ``sgd_top``: top eigenvalue of
    ``(I - eta H)^2 + eta^2 (n - B) / (B (n - 1)) Sigma`` and ``sgd_stable``: ``sgd_top <= 1``;
    ``sgd_1d``: the 1-D form ``(1 - eta a)^2 + eta^2 (n-B)/(B(n-1)) s^2``; ``n_hvp``: the
    Hessian-vector products used, each one product with every sample's ``H_i`` (one
    `ndgm.analysis.hessian.PerSampleHessian` product, the cost of one full-batch HVP).
    """

    sharpness: float
    nonuniformity: float
    gd_stable: bool
    sgd_top: float
    sgd_stable: bool
    sgd_1d: float
    n_hvp: int = 0


def wu_ma_e(model: torch.nn.Module, X: Tensor, Y: Tensor, eta: float, batch_size: int,
            loss_fn=None, tol: float = 1e-10, mode: str = "auto") -> WuMaE:
    """Sharpness and non-uniformity by Lanczos (`ndgm.analysis.curvature.lanczos`) on per-sample HVPs.

    ``H_i = nabla^2 l_i``, ``l_i = loss_fn(model(x_i), y_i)`` (default `mse_sum`:
    ``1/2 ||f - y||^2``), are the blocks of a `ndgm.analysis.hessian.PerSampleHessian`
    (the model is evaluated in ``mode`` without being changed; BatchNorm needs ``'eval'``).
    All three operators (``H = mean_i H_i``, ``Sigma = mean_i H_i^2 - H^2`` and the SGD
    second-moment operator) are symmetric and applied matrix-free;
    ``Sigma v = mean_i H_i (H_i v) - H (H v)``. Each top eigenvalue is converged to a
    residual of ``tol`` relative to the operator's norm.
    """
    from .curvature import lanczos

    eta = check_positive("eta", eta)
    n = X.shape[0]
    if not (1 <= int(batch_size) <= n):
        raise NdgmError(f"batch_size must be in [1, n={n}], got {batch_size!r}")
    B = int(batch_size)
    Hs = ModelLoss(model, loss_fn or mse_sum, X, Y, mode=mode).per_sample_hessian()
    d = Hs.dim

    def H(v):
        return Hs.matvec(v).mean(0)

    def sigma_from(Hiv):
        """``Sigma v`` given the per-sample products ``Hiv = Hs @ v`` (rows ``H_i v``)."""
        HiHiv = Hs.matvec(Hiv)  # row i: H_i (H_i v)
        return HiHiv.mean(0) - H(Hiv.mean(0))

    def Sigma(v):
        return sigma_from(Hs.matvec(v))

    gamma = eta**2 * (n - B) / (B * (n - 1)) if n > 1 else 0.0

    def second_moment(v):
        Hiv = Hs.matvec(v)  # shared by H v and Sigma v
        w = v - eta * Hiv.mean(0)
        w = w - eta * H(w)
        return w + gamma * sigma_from(Hiv)

    def top(fn) -> float:
        op = MatvecOperator(fn, d, Hs.dtype, Hs.device)
        return float(lanczos(op, k=1, tol=tol, max_iter=d).eigenvalues[0])

    a = top(H)
    s2 = top(Sigma)
    s = math.sqrt(max(s2, 0.0))
    sgd_top = top(second_moment)
    return WuMaE(a, s, bool(a <= 2 / eta), sgd_top, bool(sgd_top <= 1 + 1e-12),
                 (1 - eta * a) ** 2 + gamma * s * s, Hs.n_products)
