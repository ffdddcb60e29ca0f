"""Smooth vs non-smooth rates (spec section 0): O(1/eps) for GD, O(1/eps^2) for subgradients.

Data: ``X_ij ~ N(0, 1)`` (``n x d``, ``n > d``), ``w* ~ N(0, I)``, ``y = X w*`` exactly, so
least squares ``||X w - y||^2 / (2n)`` (L-smooth) and least absolute deviations
``||X w - y||_1 / n`` (G-Lipschitz, kinked) share the unique minimiser ``w*`` and the optimal
value 0. Start ``w0 = 0``, so ``R = ||w*||``.

For each tolerance ``eps`` (log-spaced from ``--eps-hi`` down to ``--eps-lo``) we count the
iterations until ``min_{j<=k} f(w_j) - f* <= eps``:

* GD with step ``1/L`` on least squares (one run serves every eps), bound ``L R^2 / (2 eps)``;
* the subgradient method (= NDGM) with the recommended constant step ``eta = eps / G^2`` on
  LAD -- one configuration per eps, all in one batched engine run -- bound ``R^2 G^2 / eps^2``.

The worst-case bounds are upper bounds; on these (well-conditioned, sharp) instances the
measured counts grow more slowly. The fitted log-log slopes of count against ``1/eps`` are
reported, not forced to match 1 and 2.
"""

from __future__ import annotations

import numpy as np
import torch

from ..analysis.rates import iterations_to_reach, loglog_slope, smooth_iterations_bound, subgradient_iterations_bound
from ..dynamics import GD, run_trajectory
from ..errors import NdgmError
from ..problems import LeastAbsoluteDeviations, LeastSquares
from ..claims import Claim, legacy_claim
from .base import Context, Experiment, Param

SOURCE = "spec section 0 (rates the paper leans on)"


def rates_data(n: int, d: int, seed: int, dtype=torch.float64, device="cpu"):
    """``X ~ N(0, 1)^{n x d}``, ``w* ~ N(0, I_d)``, ``y = X w*`` (local generator)."""
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, d, generator=g, dtype=torch.float64)
    w_star = torch.randn(d, generator=g, dtype=torch.float64)
    y = X @ w_star
    cast = dict(dtype=dtype, device=device)
    return X.to(**cast), y.to(**cast), w_star.to(**cast)


class Rates(Experiment):
    name = "rates"
    title = "Iterations to reach eps: GD on a smooth loss vs the subgradient method on a Lipschitz one"
    source = SOURCE
    params = (
        Param("n", 200, "int", "samples n (> d)"),
        Param("d", 20, "int", "weights d"),
        Param("eps_hi", 1.0, "pos", "largest tolerance eps on f(w) - f*"),
        Param("eps_lo", 1e-3, "pos", "smallest tolerance eps", quick=1e-2),
        Param("num_eps", 8, "int", "number of tolerances (log-spaced)", minimum=2),
        Param("iterations", 10000, "int", "iteration budget T for both methods", quick=2000),
        Param("seed", 0, "int", "seed of the data", minimum=0),
    )
    overrides = {"device": "cpu"}
    figures = ("rates.png",)

    def validate(self, config):
        if config["n"] <= config["d"]:
            raise NdgmError(f"--n must exceed --d (a unique minimiser), got n = {config['n']}, d = {config['d']}")
        if config["eps_lo"] >= config["eps_hi"]:
            raise NdgmError(f"--eps-lo must be < --eps-hi, got {config['eps_lo']} and {config['eps_hi']}")

    def compute(self, config: dict, ctx: Context):
        dtype, device, progress = ctx.dtype, ctx.device, ctx.progress
        X, y, w_star = rates_data(config["n"], config["d"], config["seed"], dtype, device)
        smooth, lad = LeastSquares(X, y), LeastAbsoluteDeviations(X, y)
        L, G = smooth.smoothness, lad.lipschitz
        R = float(torch.linalg.vector_norm(w_star))
        eps = np.logspace(np.log10(config["eps_hi"]), np.log10(config["eps_lo"]), config["num_eps"])
        T = config["iterations"]
        d = config["d"]
        W0 = torch.zeros(eps.size, d, dtype=dtype, device=device)
        steps = eps / G ** 2
        ntraj = run_trajectory(lad, W0, torch.as_tensor(steps, dtype=dtype, device=device), T, GD(),
                               progress=progress, desc="subgradient")
        straj = run_trajectory(smooth, W0[:1], 1.0 / L, T, GD(), progress=progress, desc="GD")
        f_star = 0.0  # y = X w* exactly
        counts_nonsmooth = iterations_to_reach(ntraj.loss - f_star, eps)  # column i against eps_i
        counts_smooth = iterations_to_reach(straj.loss[:, 0] - f_star, eps)
        bound_s, bound_n = smooth_iterations_bound(L, R, eps), subgradient_iterations_bound(G, R, eps)
        reached_s, reached_n = counts_smooth >= 0, counts_nonsmooth >= 0
        summary = {
            "L": L, "G": G, "R": R, "iterations": T, "eps": eps.tolist(), "subgradient_steps": steps.tolist(),
            "counts_smooth": counts_smooth.tolist(), "counts_nonsmooth": counts_nonsmooth.tolist(),
            "bound_smooth": bound_s.tolist(), "bound_nonsmooth": bound_n.tolist(),
            "slope_smooth": loglog_slope(1 / eps[reached_s], counts_smooth[reached_s]),
            "slope_nonsmooth": loglog_slope(1 / eps[reached_n], counts_nonsmooth[reached_n]),
            "final_gap_smooth": float(straj.loss[-1, 0] - f_star),
            "final_best_gap_nonsmooth": np.nanmin(ntraj.loss, axis=0).tolist(),
        }
        arrays = {"eps": eps, "counts_smooth": counts_smooth, "counts_nonsmooth": counts_nonsmooth,
                  "bound_smooth": bound_s, "bound_nonsmooth": bound_n,
                  "loss_smooth": straj.loss[:, 0], "loss_nonsmooth": ntraj.loss}
        return arrays, summary

    @staticmethod
    def _within(counts, bounds, T) -> tuple[bool, float]:
        """Every reached count <= its bound; an unreached one is only consistent if T - 1 < bound."""
        counts, bounds = np.asarray(counts, float), np.asarray(bounds, float)
        reached = counts >= 0
        ok = bool(np.all(counts[reached] <= bounds[reached]) and np.all(T - 1 < bounds[~reached]))
        ratio = float(np.max(counts[reached] / bounds[reached])) if reached.any() else float("nan")
        return ok, ratio

    def claims(self, s: dict, config: dict) -> list[Claim]:
        T = s["iterations"]
        ok_s, ratio_s = self._within(s["counts_smooth"], s["bound_smooth"], T)
        ok_n, ratio_n = self._within(s["counts_nonsmooth"], s["bound_nonsmooth"], T)
        unreached = int((np.asarray(s["counts_smooth"]) < 0).sum() + (np.asarray(s["counts_nonsmooth"]) < 0).sum())
        ss, sn = s["slope_smooth"], s["slope_nonsmooth"]
        return [
            legacy_claim("GD, step 1/L, least squares: iterations to eps never exceed L R^2 / (2 eps)", SOURCE,
                  "count / bound <= 1", ratio_s, ok_s, f"counts {s['counts_smooth']}"),
            legacy_claim("subgradient method, step eps/G^2, LAD: iterations to eps never exceed R^2 G^2 / eps^2", SOURCE,
                  "count / bound <= 1", ratio_n, ok_n, f"counts {s['counts_nonsmooth']}"),
            legacy_claim("every tolerance is reached within the iteration budget", "protocol", "0 unreached",
                  f"{unreached} unreached", unreached == 0, f"T = {T}"),
            legacy_claim("non-smooth counts grow faster as eps shrinks (log-log slope against 1/eps)", SOURCE,
                  "slope(subgradient) > slope(GD); worst cases 2 and 1",
                  f"{sn:.3f} vs {ss:.3f}", bool(sn > ss), "least-squares fit of log count on log(1/eps)"),
        ]



EXPERIMENT = Rates()
