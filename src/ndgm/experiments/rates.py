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

The worst-case bounds are upper bounds; on these instances the counts grow more slowly, and
the rows say how: least squares here is strongly convex (``mu = lambda_min(X^T X)/n > 0``), so
GD converges linearly and its count lies between two laws ``A + log(1/eps) / (-2 log(1 - mu/L))``
(``f_k <= (1 - mu/L)^{2k} f_0`` and ``f_k >= mu c_min^2 (1 - mu/L)^{2k} / 2``, ``c_min`` the start's
component on the bottom eigenvector); LAD is polyhedral, hence sharp, and the subgradient
method's count grows like ``1/eps`` (fitted exponent with a 95% interval, `slope_interval`).

Where the rates are attained -- one instance per eps, the way a worst case is shown (class
constants ``R = G = L = 1``, start ``R`` from the minimiser 0):

* subgradient method, step ``eps / G^2``, on ``f(w) = s |w|`` with ``s = 2 eps / R`` (G-Lipschitz):
  the step is set by the class's ``G``, the slope is ``eps``-small, and the count is
  ``ceil(R^2 G^2 / (4 eps^2))`` -- a quarter of the bound, exponent 2;
* GD, step ``1/L``, on the Huber function ``h_delta`` with ``delta = 2 eps / (L R)`` (L-smooth):
  it moves by ``delta`` per step and needs ``ceil(L R^2 / (4 eps) - 1/2)`` steps, i.e.
  ``f(w_k) = L R^2 / (4k + 2)``, the exact worst case of GD (Drori & Teboulle 2014), exponent 1.

The tolerances of each family are chosen so that its closed-form count runs from 25 to 2500.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..analysis.rates import iterations_to_reach, loglog_slope, smooth_iterations_bound, subgradient_iterations_bound
from ..analysis.stats import slope_interval
from ..dynamics import GD, run_trajectory
from ..errors import NdgmError
from ..problems import HuberRegression, LeastAbsoluteDeviations, LeastSquares, ToyLasso
from ..claims import Claim, bound, exact, holds, not_run, statistical
from .base import Context, Experiment, Param

SOURCE = "spec section 0 (rates the paper leans on)"
WORST_SOURCE = "spec section 0; worst cases (Drori & Teboulle 2014 for GD)"
# Worst-case families: eps relative to the class constants (R = G = L = 1), closed-form counts 25..2500.
WORST_SUBGRADIENT_EPS = (1e-1, 1e-2)
WORST_GD_EPS = (1e-2, 1e-4)
EXPONENT_MARGIN = 0.25  # "about 1/eps^k": the fitted exponent within k +- 0.25


def worst_case_subgradient(eps: np.ndarray, R: float = 1.0, G: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    r"""Counts of the subgradient method (step ``eps / G^2``) on ``f(w) = (2 eps / R) |w|`` from ``w0 = R``.

    One engine run, a row per ``eps``; returns the measured counts (first ``k`` with
    ``min_{j<=k} f(w_j) <= eps``) and the closed form ``ceil(R^2 G^2 / (4 eps^2))``.
    """
    eps = np.asarray(eps, dtype=np.float64)
    closed = np.ceil(R ** 2 * G ** 2 / (4 * eps ** 2))
    problem = ToyLasso(1, torch.as_tensor(2 * eps / R))
    W0 = torch.full((eps.size, 1), R, dtype=torch.float64)
    traj = run_trajectory(problem, W0, torch.as_tensor(eps / G ** 2), int(closed.max()) + 10, GD())
    return iterations_to_reach(traj.loss, eps), closed


def worst_case_gd(eps: np.ndarray, R: float = 1.0, L: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    r"""Counts of GD (step ``1/L``) on ``L h_delta(w)`` (Huber, ``delta = 2 eps / (L R)``) from ``w0 = R``.

    Returns the measured counts and the closed form ``ceil(L R^2 / (4 eps) - 1/2)``
    (``f(w_k) = L delta (R - k delta - delta/2)`` on the linear part).
    """
    eps = np.asarray(eps, dtype=np.float64)
    closed = np.ceil(L * R ** 2 / (4 * eps) - 0.5)
    counts = []
    for e, c in zip(eps, closed):
        problem = HuberRegression(torch.tensor([[math.sqrt(L)]], dtype=torch.float64),
                                  torch.zeros(1, dtype=torch.float64), 2 * e / (math.sqrt(L) * R))
        traj = run_trajectory(problem, torch.full((1, 1), R, dtype=torch.float64), 1.0 / L, int(c) + 10, GD())
        counts.append(int(iterations_to_reach(traj.loss[:, 0], np.array([e]))[0]))
    return np.asarray(counts), closed


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
        # GD's linear rate on this strongly convex least squares: f_k = sum_i lambda_i c_i^2 (1 - lambda_i/L)^(2k) / 2.
        evals, evecs = torch.linalg.eigh((X.T @ X).double() / config["n"])
        c = evecs.T @ (W0[0].double() - w_star.double())
        f0 = float((evals * c ** 2).sum() / 2)
        low0 = float(evals[0] * c[0] ** 2 / 2)
        rho = 1.0 - float(evals[0]) / L
        with np.errstate(divide="ignore"):
            per_log = 1.0 / (-2.0 * np.log(rho))
            upper = np.where(f0 > eps, np.ceil(np.log(f0 / eps) * per_log), 0.0)
            lower = np.where(low0 > eps, np.ceil(np.log(low0 / eps) * per_log), 0.0)
        w_eps_n = np.logspace(np.log10(WORST_SUBGRADIENT_EPS[0]), np.log10(WORST_SUBGRADIENT_EPS[1]), config["num_eps"])
        w_eps_s = np.logspace(np.log10(WORST_GD_EPS[0]), np.log10(WORST_GD_EPS[1]), config["num_eps"])
        w_counts_n, w_closed_n = worst_case_subgradient(w_eps_n)
        w_counts_s, w_closed_s = worst_case_gd(w_eps_s)
        summary = {
            "L": L, "G": G, "R": R, "iterations": T, "eps": eps.tolist(), "subgradient_steps": steps.tolist(),
            "counts_smooth": counts_smooth.tolist(), "counts_nonsmooth": counts_nonsmooth.tolist(),
            "bound_smooth": bound_s.tolist(), "bound_nonsmooth": bound_n.tolist(),
            "slope_smooth": loglog_slope(1 / eps[reached_s], counts_smooth[reached_s]),
            "slope_nonsmooth": loglog_slope(1 / eps[reached_n], counts_nonsmooth[reached_n]),
            "final_gap_smooth": float(straj.loss[-1, 0] - f_star),
            "final_best_gap_nonsmooth": np.nanmin(ntraj.loss, axis=0).tolist(),
            "linear_rate": {"mu": float(evals[0]), "rho": rho, "f0": f0, "lower_f0": low0,
                            "upper_counts": upper.astype(int).tolist(), "lower_counts": lower.astype(int).tolist()},
            "worst_subgradient": {"eps": w_eps_n.tolist(), "counts": w_counts_n.tolist(),
                                  "closed_form": w_closed_n.astype(int).tolist()},
            "worst_gd": {"eps": w_eps_s.tolist(), "counts": w_counts_s.tolist(),
                         "closed_form": w_closed_s.astype(int).tolist()},
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

    @staticmethod
    def _exponent(eps, counts):
        """`slope_interval` of log(count) on log(1/eps) over the reached tolerances, or None (< 3 of them)."""
        eps, counts = np.asarray(eps, float), np.asarray(counts, float)
        ok = counts > 0
        return slope_interval(np.log(1 / eps[ok]), np.log(counts[ok])) if ok.sum() >= 3 else None

    def _exponent_row(self, claim, source, eps, counts, target, detail):
        iv = self._exponent(eps, counts)
        if iv is None:
            return not_run(claim, source, "needs three or more reached tolerances (--num-eps >= 3)",
                           f"exponent {target} +- {EXPONENT_MARGIN}")
        return statistical(claim, source, f"exponent {target} +- {EXPONENT_MARGIN}",
                           statistic=f"fitted exponent of count in 1/eps, minus {target}",
                           estimate=iv.estimate - target, low=iv.low - target, high=iv.high - target, n=iv.n,
                           margin=EXPONENT_MARGIN, test="within", method=iv.method,
                           detail=f"exponent {iv.estimate:.4g} [{iv.low:.4g}, {iv.high:.4g}]; " + detail,
                           undecided="the interval straddles the margin: a smaller --eps-lo or more tolerances (--num-eps) "
                                     "would narrow it")

    def claims(self, s: dict, config: dict) -> list[Claim]:
        T = s["iterations"]
        ok_s, ratio_s = self._within(s["counts_smooth"], s["bound_smooth"], T)
        ok_n, ratio_n = self._within(s["counts_nonsmooth"], s["bound_nonsmooth"], T)
        cs, cn = np.asarray(s["counts_smooth"]), np.asarray(s["counts_nonsmooth"])
        unreached = int((cs < 0).sum() + (cn < 0).sum())
        eps = np.asarray(s["eps"])
        lr = s["linear_rate"]
        up, lo = np.asarray(lr["upper_counts"]), np.asarray(lr["lower_counts"])
        within_law = bool(np.all(cs >= 0) and np.all((lo <= cs) & (cs <= up)))
        out = [
            holds("GD, step 1/L, least squares: iterations to eps never exceed L R^2 / (2 eps)", SOURCE,
                  "count / bound <= 1", ratio_s, ok_s,
                  "every reached count <= L R^2 / (2 eps); an unreached one only if T - 1 < the bound", kind="bound",
                  detail=f"counts {s['counts_smooth']}"),
            holds("subgradient method, step eps/G^2, LAD: iterations to eps never exceed R^2 G^2 / eps^2", SOURCE,
                  "count / bound <= 1", ratio_n, ok_n,
                  "every reached count <= R^2 G^2 / eps^2; an unreached one only if T - 1 < the bound", kind="bound",
                  detail=f"counts {s['counts_nonsmooth']}"),
            exact("every tolerance is reached within the iteration budget", "protocol", 0, unreached,
                  detail=f"T = {T}; unreached tolerances over both methods"),
            holds("GD on this strongly convex least squares needs only log(1/eps) iterations: every count lies "
                  "between the two linear-rate laws", "linear convergence of GD (mu = lambda_min(X^T X)/n > 0)",
                  f"{lo.astype(int).tolist()} <= count <= {up.astype(int).tolist()}", s["counts_smooth"], within_law,
                  "ceil(log(mu c_min^2 / (2 eps)) / (-2 log rho)) <= count <= ceil(log(f_0 / eps) / (-2 log rho)), "
                  "rho = 1 - mu/L, at every eps", kind="bound",
                  detail=f"rho = {lr['rho']:.4g}: {1 / (-2 * np.log(lr['rho'])):.3g} more iterations per factor e in "
                         "eps"),
            self._exponent_row("subgradient method on this LAD: count grows like 1/eps (LAD is polyhedral, hence "
                               "sharp), not like the worst case 1/eps^2", "sharp minima (polyhedral losses)",
                               eps, cn, 1, f"counts {s['counts_nonsmooth']}"),
        ]
        both = (cs > 0) & (cn > 0)
        if both.sum() >= 3:
            iv = slope_interval(np.log(1 / eps[both]), np.log(cn[both] / cs[both]))
            out.append(statistical("non-smooth counts grow faster as eps shrinks (log-log slope against 1/eps)", SOURCE,
                                   "exponent(subgradient) - exponent(GD) > 0 (worst cases 2 and 1)",
                                   statistic="fitted exponent of count(subgradient) / count(GD) in 1/eps",
                                   **iv.claim_kwargs(), margin=0.0, test="greater",
                                   detail="least-squares fit of log(ratio of counts) on log(1/eps)"))
        else:
            out.append(not_run("non-smooth counts grow faster as eps shrinks (log-log slope against 1/eps)", SOURCE,
                               "needs three or more tolerances reached by both methods (--num-eps >= 3)"))
        for key, name, target, form in (
                ("worst_subgradient", "subgradient method (step eps/G^2) on s|w|, s = 2 eps/R", 2,
                 "ceil(R^2 G^2 / (4 eps^2))"),
                ("worst_gd", "GD (step 1/L) on the Huber function, delta = 2 eps/(L R)", 1,
                 "ceil(L R^2 / (4 eps) - 1/2)")):
            w = s[key]
            counts, closed = np.asarray(w["counts"]), np.asarray(w["closed_form"])
            out.append(holds(f"worst case: {name} needs {form} iterations", WORST_SOURCE, w["closed_form"], w["counts"],
                             bool(np.all(np.abs(counts - closed) <= 1)),
                             "exact: every count within 1 iteration of the closed form (rounding of the iterates)",
                             f"R = G = L = 1; eps from {w['eps'][0]:g} to {w['eps'][-1]:g}"))
            out.append(self._exponent_row(f"worst case: the {'subgradient method' if target == 2 else 'GD'} count "
                                          f"grows like 1/eps^{target}" if target == 2 else
                                          "worst case: the GD count grows like 1/eps", WORST_SOURCE,
                                          w["eps"], counts, target, f"counts {w['counts']}"))
        return out



EXPERIMENT = Rates()
