"""The GD map ``G_eta(theta) = theta - eta grad L(theta)`` and its (non-)singularity (spec section 1).

Where ``L`` is C^2, ``det D G_eta = det(I - eta H) = prod_i (1 - eta lambda_i(H))``: the map is
locally invertible unless ``eta = 1 / lambda_i``. When the Hessian is constant on an open
region, such an ``eta`` collapses that region onto a lower-dimensional set (a Lebesgue-null
image of a set of positive measure: a singular map). This module computes the map, its
Jacobian determinant for any batched `ndgm.problems.Problem` or small ``nn.Module`` (both
through the one Hessian operator of `ndgm.analysis.hessian`), the exceptional step sizes,
an empirical singularity probe and the saddle-avoidance demo (Lee et al. 2016) on a quadratic.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import Tensor

from ..errors import NdgmError
from ..problems import Problem, Quadratic
from .hessian import FunctionHessian, ParameterFlattener, ProblemHessian

__all__ = [
    "gd_map",
    "hessian",
    "jacobian_det",
    "module_jacobian_det",
    "exceptional_step_sizes",
    "SingularityReport",
    "singularity_probe",
    "saddle_avoidance",
]


def _eta_col(eta, W: Tensor) -> Tensor:
    eta = torch.as_tensor(eta, dtype=W.dtype, device=W.device)
    if not bool((eta > 0).all()) or not bool(torch.isfinite(eta).all()):
        raise NdgmError(f"eta must be finite and > 0, got {eta.tolist()}")
    return eta[:, None] if eta.ndim else eta


def gd_map(problem: Problem, W: Tensor, eta: float | Tensor) -> Tensor:
    """``G_eta(W) = W - eta grad L(W)`` for every row of ``W`` (``(K, d)``; ``eta`` scalar or ``(K,)``)."""
    return W - _eta_col(eta, W) * problem.value_and_grad(W)[1]


def hessian(problem: Problem, W: Tensor) -> Tensor:
    """Hessians ``(K, d, d)`` of ``problem.value`` at every row of ``W``: the dense form of
    `ndgm.analysis.hessian.ProblemHessian` (``d`` backward passes through ``grad(sum_k L_k)``).

    At a kink autodiff's convention applies (``relu'' = 0``).
    """
    return ProblemHessian(problem, W).dense()


def jacobian_det(problem: Problem, W: Tensor, eta: float | Tensor) -> Tensor:
    """``det D G_eta = det(I - eta H(W))`` per row, ``(K,)``; ``eta`` scalar or ``(K,)``."""
    return ProblemHessian(problem, W).gd_jacobian(eta).det()


def module_jacobian_det(model: torch.nn.Module, loss_of_output, eta: float) -> float:
    """``det(I - eta H)`` of the GD map of a small ``nn.Module`` at its current parameters.

    ``loss_of_output(model_fn)`` returns the scalar training loss given a callable that runs
    the model; the Hessian over the flattened parameters (`ParameterFlattener`) is dense.
    """
    flat = ParameterFlattener(model)
    H = FunctionHessian(lambda th: loss_of_output(lambda x: flat.functional_call(th, x)), flat.flatten())
    return float(H.gd_jacobian(float(eta)).det())


def exceptional_step_sizes(problem: Problem, points: Tensor, rtol: float = 1e-10) -> np.ndarray:
    """Step sizes ``1 / lambda`` that are singular on the whole sampled region.

    The Hessian eigenvalues at every row of ``points`` are compared; an eigenvalue
    ``lambda > 0`` shared by all of them (to ``rtol`` relative) is a candidate for
    ``1/eta`` "identically on an open region" -- where ``det(I - eta H)`` vanishes on the
    region and the map collapses it. Eigenvalues that vary over the region give bad
    ``eta`` only on a null set and are not returned. Sorted ascending.
    """
    eig = torch.linalg.eigvalsh(hessian(problem, points)).cpu().numpy()  # (K, d)
    ref = eig[0]
    out = []
    for lam in np.unique(np.round(ref, 12)):
        if lam <= 0:
            continue
        shared = np.all(np.any(np.abs(eig - lam) <= rtol * max(abs(lam), 1.0), axis=1))
        if shared:
            out.append(1.0 / lam)
    return np.array(sorted(out))


@dataclass
class SingularityReport:
    """What the singularity probe measured on a box region.

    Attributes
    ----------
    region_measure, image_measure : float
        Covering-count measures of the sample and of its image: the number of grid cells
        of side ``cell`` that contain a point, times ``cell^d``.
    ratio : float
        ``image_measure / region_measure``. For an injective C^1 map it estimates
        ``mean |det D G|``; a collapse drives it towards 0.
    mean_abs_det : float
        Monte Carlo mean of ``|det(I - eta H)|`` over the sample (area formula: the image
        measure counted with multiplicity is ``region_measure * mean_abs_det``).
    collapsed_fraction : float
        Fraction of samples with ``|det| <= det_tol``.
    singular : bool
        ``collapsed_fraction >= min_fraction``: the Jacobian vanishes on a set of positive
        measure, whose image is null, so the preimage of a null set is not null.
    """

    region_measure: float
    image_measure: float
    ratio: float
    mean_abs_det: float
    collapsed_fraction: float
    singular: bool
    cell: float
    samples: int

    def as_dict(self) -> dict:
        return asdict(self)


def singularity_probe(problem: Problem, eta: float, low, high, samples: int = 20000, seed: int = 0,
                      det_tol: float = 1e-12, min_fraction: float = 0.01) -> SingularityReport:
    """Sample the box ``[low, high]`` uniformly, map it by ``G_eta`` and compare measures.

    Two estimates, documented in `SingularityReport`: covering counts on a grid with about
    8 samples per cell of the region (so the region itself is almost fully covered and
    the biases of the two counts match), and Monte Carlo ``|det D G|``.
    """
    low = np.atleast_1d(np.asarray(low, dtype=np.float64))
    high = np.atleast_1d(np.asarray(high, dtype=np.float64))
    d = problem.dim
    if low.shape != (d,) or high.shape != (d,) or np.any(high <= low):
        raise NdgmError(f"region must be a box with low < high in {d} dimensions, got {low} .. {high}")
    if samples < 8:
        raise NdgmError(f"samples must be >= 8, got {samples}")
    gen = torch.Generator().manual_seed(int(seed))
    U = torch.rand(samples, d, generator=gen, dtype=torch.float64)
    X = torch.as_tensor(low) + U * torch.as_tensor(high - low)
    Y = gd_map(problem, X, eta)
    det = jacobian_det(problem, X, eta).abs().numpy()
    per_axis = max(int((samples / 8) ** (1 / d)), 1)
    cell = float(np.min(high - low)) / per_axis

    def covered(P: np.ndarray) -> float:
        P = P[np.all(np.isfinite(P), axis=1)]
        idx = np.floor(P / cell).astype(np.int64)
        return len(np.unique(idx, axis=0)) * cell**d

    region = covered(X.numpy())
    image = covered(Y.numpy())
    frac = float(np.mean(det <= det_tol))
    return SingularityReport(region, image, image / region, float(det.mean()), frac,
                             bool(frac >= min_fraction), cell, samples)


def saddle_avoidance(a, eta: float, starts: int = 1000, iterations: int = 200, seed: int = 0,
                     tol: float = 1e-8) -> dict:
    """GD on ``f = 1/2 sum_i a_i x_i^2`` (``a`` with a negative entry: 0 is a strict saddle).

    ``x_i(k) = (1 - eta a_i)^k x_i(0)``: from a random start (``U(-1, 1)^d``) the unstable
    coordinates grow, so no run ends within ``tol`` of the saddle. With ``eta = 1 / a_i`` the
    first step sends every start onto ``{x_i = 0}``: the returned ``max_abs_collapsed``
    measures how far the image of all starts lies from that hyperplane.

    Returns a dict: ``converged_to_saddle`` (count), ``min_final_norm``,
    ``singular_steps`` (``1/a_i`` for ``a_i > 0``), ``max_abs_collapsed`` (per singular step,
    ``max |x_i|`` after one step), ``det_at_singular`` (``det(I - eta A)``).
    """
    a_t = torch.as_tensor(np.asarray(a, dtype=np.float64))
    if not bool((a_t < 0).any()):
        raise NdgmError("a must contain a negative entry (a strict saddle at 0)")
    problem = Quadratic(torch.diag(a_t))
    d = a_t.numel()
    gen = torch.Generator().manual_seed(int(seed))
    X0 = torch.rand(starts, d, generator=gen, dtype=torch.float64) * 2 - 1
    X = X0.clone()
    for _ in range(iterations):
        X = gd_map(problem, X, eta)
    final = torch.linalg.vector_norm(X, dim=1)
    steps, collapsed, dets = [], [], []
    for i in range(d):
        if a_t[i] > 0:
            eta_i = 1.0 / float(a_t[i])
            X1 = gd_map(problem, X0, eta_i)
            steps.append(eta_i)
            collapsed.append(float(X1[:, i].abs().max()))
            dets.append(float(torch.linalg.det(torch.eye(d, dtype=torch.float64) - eta_i * problem.A)))
    return {
        "converged_to_saddle": int((final < tol).sum()),
        "min_final_norm": float(final.min()),
        "singular_steps": steps,
        "max_abs_collapsed": collapsed,
        "det_at_singular": dets,
        "starts": starts,
        "iterations": iterations,
    }


# -- networks: step-size scans and exceptional step sizes from Hessian spectra ---------------

@dataclass
class StepSizeScan:
    r"""``I - eta H`` at many step sizes, from the eigenvalues of ``H`` (symmetric).

    The factors ``1 - eta lambda_i`` are the eigenvalues of ``I - eta H``, so its singular values
    are ``|1 - eta lambda_i|``. Arrays have the shape of the step sizes (``(..., E)``).

    Attributes
    ----------
    log_abs_det : ndarray
        ``log|det(I - eta H)| = sum_i log|1 - eta lambda_i|``; NaN where only part of the
        spectrum is known (a Lanczos spectrum).
    sigma_min, sigma_max : ndarray
        ``min_i |1 - eta lambda_i|`` and ``max_i |1 - eta lambda_i|``: the extreme singular values.
    tol : ndarray
        ``sigma_max * d * eps`` (float64 ``eps``): the rank tolerance of
        `numpy.linalg.matrix_rank`. A computed eigenvalue of a symmetric ``H`` is exact for a
        matrix within about ``d eps ||H||`` of it, so ``sigma_min`` below ``tol`` cannot be told
        from 0: the pair is *numerically singular*.
    singular : ndarray of bool
        ``sigma_min <= tol`` (and decided).
    decided : ndarray of bool
        False where a partial spectrum cannot bound ``sigma_min`` (see `scan_step_sizes`).
    """

    log_abs_det: np.ndarray
    sigma_min: np.ndarray
    sigma_max: np.ndarray
    tol: np.ndarray
    singular: np.ndarray
    decided: np.ndarray

    @property
    def margin(self) -> np.ndarray:
        """``sigma_min / tol``: how far a pair is from numerical singularity (``<= 1``: singular)."""
        return self.sigma_min / self.tol


def scan_step_sizes(eigenvalues, etas, dim: int | None = None, complete_from=None, eig_error=None) -> StepSizeScan:
    r"""`StepSizeScan` of ``I - eta H`` for every step size in ``etas``.

    Parameters
    ----------
    eigenvalues : array (..., m)
        Eigenvalues of ``H``: the whole spectrum (``m = d``), or -- with ``complete_from`` -- a
        part of it that contains the largest and the smallest eigenvalue.
    etas : array (..., E)
        Step sizes (> 0), broadcast against the leading axes of ``eigenvalues``.
    dim : int, optional
        ``d``, the size of ``H`` (default ``m``), for the tolerance ``sigma_max d eps``.
    complete_from : array (...), optional
        For a partial spectrum: a value ``c`` such that every eigenvalue ``>= c`` is in
        ``eigenvalues`` (the smallest of Lanczos' top ``k``). For ``eta <= 1/c`` the factor of any
        missing eigenvalue ``lambda < c`` is ``1 - eta lambda > 1 - eta c >= 0``, no smaller than a
        factor that is present, so ``sigma_min`` is exact there; larger ``eta`` are undecided.
        ``sigma_max`` is exact either way (the extremes are present); ``log_abs_det`` is NaN.
    eig_error : array (...), optional
        A bound on the error of each eigenvalue (a Lanczos residual): the tolerance becomes
        ``max(sigma_max d eps, eta * eig_error)``, as ``|1 - eta lambda|`` is then known to
        within ``eta * eig_error``.
    """
    lam = np.asarray(eigenvalues, dtype=np.float64)
    eta = np.asarray(etas, dtype=np.float64)
    if np.any(~np.isfinite(eta)) or np.any(eta <= 0):
        raise NdgmError("etas must be finite and > 0")
    d = lam.shape[-1] if dim is None else int(dim)
    factors = np.abs(1.0 - eta[..., :, None] * lam[..., None, :])  # (..., E, m)
    smin, smax = factors.min(-1), factors.max(-1)
    tol = smax * d * np.finfo(np.float64).eps
    if eig_error is not None:
        tol = np.maximum(tol, eta * np.asarray(eig_error, dtype=np.float64)[..., None])
    if complete_from is None:
        with np.errstate(divide="ignore"):
            logdet = np.log(factors).sum(-1)
        decided = np.ones(smin.shape, dtype=bool)
    else:
        c = np.asarray(complete_from, dtype=np.float64)[..., None]
        logdet = np.full(smin.shape, np.nan)
        decided = (c <= 0) | (eta * c <= 1.0)
    return StepSizeScan(logdet, smin, smax, tol, (smin <= tol) & decided, decided)


@dataclass
class RegionSpectrumReport:
    r"""Which eigenvalues of ``H`` stay put over a set of points (a small ball): candidates for
    ``1/eta`` "identically on an open region".

    Attributes
    ----------
    candidates : ndarray (c,)
        The eigenvalues ``>= lam_min`` at the first point (the centre).
    displacement : ndarray (c,)
        For each candidate ``lambda``: ``max_j min_l |lambda_l(theta_j) - lambda|``, how far the
        nearest eigenvalue at the farthest other point lies (index-free: eigenvalues may swap).
    rounding : float
        ``d eps max_j ||H(theta_j)||_2``: the rounding level of a computed eigenvalue.
    persistent : ndarray of bool (c,)
        ``displacement <= rounding``: the eigenvalue is the same at every point to rounding.
    """

    candidates: np.ndarray
    displacement: np.ndarray
    rounding: float
    persistent: np.ndarray

    @property
    def steps(self) -> np.ndarray:
        """Exceptional step sizes on the region: ``1/lambda`` of the persistent eigenvalues, ascending."""
        return np.sort(1.0 / self.candidates[self.persistent])

    @property
    def min_ratio(self) -> float:
        """``min displacement / rounding`` over the candidates (inf when there are none): how many
        times rounding the least-moving eigenvalue moved."""
        return float((self.displacement / self.rounding).min()) if self.candidates.size else float("inf")


def region_spectrum(eigenvalues, lam_min: float, dim: int | None = None) -> RegionSpectrumReport:
    r"""Compare the spectra of ``H`` at ``M >= 2`` points (``eigenvalues``: ``(M, m)``, row 0 the centre).

    Only eigenvalues ``>= lam_min > 0`` are candidates: they are the ``1/eta`` of step sizes
    ``eta <= 1/lam_min``. A candidate that every other point also has, to the rounding level
    ``d eps ||H||``, is *persistent*: if it stays so on an open region, ``eta = 1/lambda`` is
    exceptional there (``det(I - eta H) = 0`` on the region, which the GD map collapses). An
    eigenvalue that moves by many times the rounding level is a continuous function that is not
    constant on the region, and exceptional at most on a null set.
    """
    lam = np.asarray(eigenvalues, dtype=np.float64)
    if lam.ndim != 2 or lam.shape[0] < 2:
        raise NdgmError(f"eigenvalues must have shape (M >= 2, m), got {lam.shape}")
    if not lam_min > 0:
        raise NdgmError(f"lam_min must be > 0, got {lam_min}")
    d = lam.shape[1] if dim is None else int(dim)
    rounding = d * np.finfo(np.float64).eps * float(np.abs(lam).max())
    cand = lam[0][lam[0] >= lam_min]
    dist = np.abs(lam[1:, None, :] - cand[None, :, None]).min(-1)  # (M-1, c)
    disp = dist.max(0) if cand.size else np.zeros(0)
    return RegionSpectrumReport(cand, disp, rounding, disp <= rounding)


def module_gd_map(loss, thetas: Tensor, eta) -> Tensor:
    r"""``G_eta(theta_k) = theta_k - eta_k grad L(theta_k)`` for every row of ``thetas`` (``(K, d)``).

    ``loss`` is a `ndgm.analysis.hessian.ModelLoss` (full batch, or a minibatch's: the SGD map);
    the gradients are vectorised over the points (`ndgm.analysis.hessian.model_gradients`);
    ``eta`` is a scalar or ``(K,)``.
    """
    from .hessian import model_gradients

    return thetas - _eta_col(eta, thetas) * model_gradients(loss, thetas)


__all__ += ["StepSizeScan", "scan_step_sizes", "RegionSpectrumReport", "region_spectrum", "module_gd_map"]
