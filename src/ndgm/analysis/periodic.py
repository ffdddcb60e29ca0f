"""Periodic orbits of the two-point ReLU toy's GD map and its bifurcation diagram (paper Fig. 3 left).

On the invariant diagonal ``t1 = t2 = t`` GD is the 1-D map ``g(t) = t + 2 c eta t (1 - t^2)``.
Period-k points are roots of ``g^k(t) - t`` (`periodic_orbits`); an orbit is stable when both
eigenvalues of the 2-D Jacobian ``D G^k = prod_j (I - eta H(t_j, t_j))`` have modulus below 1
(`orbit_multipliers`). A fixed point on the manifold of minima ``M`` always has one multiplier
exactly 1 (the tangent of ``M``); `orbit_multipliers` reports it and `is_stable` ignores it
("normally stable"), which is what Chemnitz--Engel's ``mu < 0`` means.

`attractors` iterates the full 2-D map for many step sizes at once (a leading axis of
``eta`` values) and reads off the period of the attractor from the tail.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import NdgmError, check_int, check_positive
from ..problems import TwoPointReLU

__all__ = ["periodic_orbits", "orbit_multipliers", "is_stable", "stability_threshold", "Attractors", "attractors"]

NEUTRAL_TOL = 1e-9


def _iterate(toy: TwoPointReLU, t: np.ndarray, eta: float, k: int) -> np.ndarray:
    for _ in range(k):
        t = toy.diagonal_map(t, eta)
    return t


def periodic_orbits(toy: TwoPointReLU, eta: float, k: int, t_range: tuple[float, float] = (0.05, 2.0),
                    grid: int = 20001) -> list[np.ndarray]:
    """Orbits of least period ``k`` on the diagonal, each an array of its sorted points.

    Roots of ``g^k(t) - t`` on ``t_range`` (sign changes on a grid, refined by Brent's method);
    roots of least period ``j < k`` (``j | k``) are dropped, and orbits that leave ``t > 0``
    (where the ReLUs die and the formula no longer is GD) are dropped.
    """
    from scipy.optimize import brentq  # here, not at import: the CLI should not pay for scipy.optimize

    k = check_int("period k", k, minimum=1)
    eta = check_positive("eta", eta)
    t = np.linspace(*t_range, grid)
    f = _iterate(toy, t, eta, k) - t
    roots = []
    for i in np.nonzero(np.sign(f[:-1]) * np.sign(f[1:]) <= 0)[0]:
        if f[i] == 0:
            r = t[i]
        else:
            r = brentq(lambda x: _iterate(toy, x, eta, k) - x, t[i], t[i + 1], xtol=1e-15, rtol=1e-15)
        roots.append(r)
    orbits: list[np.ndarray] = []
    for r in roots:
        pts = [r]
        for _ in range(k - 1):
            pts.append(float(toy.diagonal_map(pts[-1], eta)))
        pts = np.array(pts)
        if np.any(pts <= 0) or not np.all(np.isfinite(pts)):
            continue
        least = next(j for j in range(1, k + 1)
                     if k % j == 0 and abs(_iterate(toy, r, eta, j) - r) < 1e-9 * max(1, abs(r)))
        if least != k:
            continue
        pts = np.sort(pts)
        if not any(np.allclose(pts, o, atol=1e-8) for o in orbits):
            orbits.append(pts)
    return orbits


def orbit_multipliers(toy: TwoPointReLU, orbit, eta: float) -> np.ndarray:
    """Eigenvalues of the 2-D Jacobian of ``G^k`` along a diagonal orbit (points in orbit order
    or sorted: the product's spectrum does not depend on the starting point)."""
    start = float(np.asarray(orbit)[0])
    k = len(np.atleast_1d(orbit))
    W = torch.tensor([[start, start]], dtype=torch.float64)
    J = torch.eye(2, dtype=torch.float64)
    for _ in range(k):
        J = toy.gd_jacobian(W, eta)[0] @ J
        W = toy.gd_map(W, eta)
    return torch.linalg.eigvals(J).numpy()


def is_stable(multipliers: np.ndarray) -> bool:
    """All multipliers of modulus < 1, ignoring one exactly 1 (the tangent of a manifold of fixed points)."""
    mods = np.abs(multipliers)
    neutral = np.abs(multipliers - 1) < NEUTRAL_TOL
    return bool(np.all(mods[~neutral] < 1))


def _worst_modulus(toy, eta, k, t_range):
    best = math.inf  # also the answer when there is no orbit: nothing is stable
    for o in periodic_orbits(toy, eta, k, t_range):
        m = orbit_multipliers(toy, o, eta)
        keep = np.abs(m - 1) >= NEUTRAL_TOL
        best = min(best, float(np.abs(m[keep]).max()) if keep.any() else 0.0)
    return best


def stability_threshold(toy: TwoPointReLU, k: int, eta_lo: float, eta_hi: float,
                        t_range: tuple[float, float] = (0.05, 2.0)) -> float:
    """The step size in ``(eta_lo, eta_hi)`` where the most stable period-``k`` orbit loses stability.

    Brent's method on ``eta -> max |multiplier| - 1`` (the neutral tangent multiplier excluded);
    ``eta_lo`` must have a stable orbit and ``eta_hi`` none.
    """
    from scipy.optimize import brentq  # here, not at import: the CLI should not pay for scipy.optimize

    f = lambda eta: _worst_modulus(toy, eta, k, t_range) - 1  # noqa: E731
    flo, fhi = f(eta_lo), f(eta_hi)
    if not (flo < 0 < fhi):
        raise NdgmError(f"no loss of stability of a period-{k} orbit in ({eta_lo}, {eta_hi})")
    return brentq(f, eta_lo, eta_hi, xtol=1e-12)


@dataclass
class Attractors:
    """Long-iteration attractors for each step size.

    Attributes
    ----------
    eta : ndarray (K,)
    tail : ndarray (K, n_record, 2)
        The last iterates ``(t1, t2)``.
    period : ndarray (K,) of int
        Least period ``<= max_period`` of the tail, 0 when none (aperiodic or slower), -1 when
        the run left the quadrant or diverged.
    """

    eta: np.ndarray
    tail: np.ndarray
    period: np.ndarray

    def points(self, i: int) -> np.ndarray:
        """Sorted distinct ``t1`` values of the attractor of ``eta[i]`` (one period when periodic)."""
        p = int(self.period[i])
        x = self.tail[i, -p:, 0] if p > 0 else self.tail[i, :, 0]
        return np.sort(x)


def attractors(toy: TwoPointReLU, etas, start=(1.1, 1.1), transient: int = 4000, record: int = 256,
               max_period: int = 64, tol: float = 1e-9, device: str | torch.device = "cpu") -> Attractors:
    """Iterate the 2-D GD map for every ``eta`` at once (a ``(K, 2)`` state) and classify the tail."""
    etas_t = torch.as_tensor(np.asarray(etas, dtype=np.float64), device=device)
    if etas_t.ndim != 1 or not bool((etas_t > 0).all()):
        raise NdgmError("etas must be a 1-D array of step sizes > 0")
    transient = check_int("transient", transient, minimum=0)
    record = check_int("record", record, minimum=2)
    max_period = check_int("max_period", max_period, minimum=1)
    K = etas_t.shape[0]
    W = torch.tensor(start, dtype=torch.float64, device=device).expand(K, 2).clone()
    for _ in range(transient):
        W = toy.gd_map(W, etas_t)
    tail = torch.empty(K, record, 2, dtype=torch.float64, device=device)
    for j in range(record):
        tail[:, j] = W
        W = toy.gd_map(W, etas_t)
    tail_np = tail.cpu().numpy()
    period = np.zeros(K, dtype=np.int64)
    ok = np.all(np.isfinite(tail_np), axis=(1, 2)) & np.all(tail_np > 0, axis=(1, 2))
    found = ~ok
    period[~ok] = -1
    for k in range(1, min(max_period, record - 1) + 1):
        gap = np.abs(tail_np[:, k:] - tail_np[:, :-k]).max(axis=(1, 2))
        hit = (~found) & (gap < tol)
        period[hit] = k
        found |= hit
    return Attractors(etas_t.cpu().numpy(), tail_np, period)
