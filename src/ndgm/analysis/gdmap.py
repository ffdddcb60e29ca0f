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
