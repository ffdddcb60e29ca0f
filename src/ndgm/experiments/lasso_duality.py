"""Strong duality with a multiplier-free dual function (paper appendix A.3), checked numerically.

Appendix A.3.4 reads the penalised objective as a Lagrangian: the L1 (and L2) weights are the
multipliers of constraints only ``w = 0`` satisfies. For the ReLU regression of eq. (3) with
``y <= 0`` (eq. 12: ``min sum_i (relu(x_i.w) - y_i)^2 s.t. ||w||_1 <= 0, ||w||_2^2 <= 0``) the
dual function is ``g(lam1, lam2) = ||y||^2`` for every multiplier (eq. 14): strong duality
holds and every multiplier is dual-optimal (an unbounded dual solution set, as Prop. A.6
allows for a function that is not continuous at its minimum). The toy LASSO (eq. 7) read the
same way (``min 0 s.t. ||w||_1 <= 0``) has ``g(mu) = 0`` for every ``mu``. In contrast the
max-crossing dual of ``lam ||w||_1`` itself (Props A.4, A.8) is 0 exactly on the box
``||mu||_inf <= lam`` and ``-inf`` outside: a non-empty compact set of dual solutions.

Numerically: each dual value is an infimum computed by an optimiser from a random start --
linear programmes (HiGHS) for the toy, a quadratic programme (SLSQP) for the ReLU regression,
reformulated exactly with ``t_i >= max(0, x_i.w)`` and ``u >= |w|``, whose value at the point
found bounds the infimum from above while an LP relaxation (dropping the non-negative
quadratic terms) bounds it from below -- and the primal optima are solved the same way. The
closed forms are in `ndgm.analysis.lasso_theory`.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linprog, minimize
from threadpoolctl import threadpool_limits  # a dependency of scikit-learn

from ..analysis.lasso_theory import relu_regression_dual, toy_lagrangian_dual, toy_max_crossing
from ..claims import Claim, exact, holds
from ..errors import NdgmError
from .base import Context, Experiment, Param
from .capture import capture_data

SRC = "paper appendix A.3"
QP_TOL = 1e-8  # relative accuracy asked of the QP solver (and allowed by the rules)
LP_TOL = 1e-12


def _toy_lagrangian_lp(mu: float, d: int) -> tuple[float, int]:
    """``inf_w mu ||w||_1`` as an LP over ``(w, u)``: min mu sum(u) s.t. |w| <= u. Value and status."""
    eye = np.eye(d)
    A = np.block([[eye, -eye], [-eye, -eye]])
    res = linprog(np.r_[np.zeros(d), np.full(d, mu)], A_ub=A, b_ub=np.zeros(2 * d), bounds=(None, None),
                  method="highs")
    return (float(res.fun) if res.status == 0 else -np.inf), int(res.status)


def _toy_primal_lp(d: int) -> float:
    """``min 0 s.t. ||w||_1 <= 0`` as an LP: feasible only at ``w = 0``; its optimal value."""
    eye = np.eye(d)
    A = np.block([[eye, -eye], [-eye, -eye], [np.zeros((1, d)), np.ones((1, d))]])
    res = linprog(np.zeros(2 * d), A_ub=A, b_ub=np.zeros(2 * d + 1), bounds=(None, None), method="highs")
    if res.status != 0:
        raise NdgmError(f"the toy primal LP failed: {res.message}")
    return float(res.fun)


def _max_crossing_lp(mu: np.ndarray, lam: float) -> tuple[float, int]:
    """``q(mu) = inf_w lam ||w||_1 + mu.w`` as an LP; status 3 (unbounded) means ``-inf``."""
    d = mu.size
    eye = np.eye(d)
    A = np.block([[eye, -eye], [-eye, -eye]])
    res = linprog(np.r_[mu, np.full(d, lam)], A_ub=A, b_ub=np.zeros(2 * d), bounds=(None, None), method="highs")
    return (float(res.fun) if res.status == 0 else -np.inf), int(res.status)


def relu_lagrangian(X: np.ndarray, y: np.ndarray, w: np.ndarray, lam1: float, lam2: float) -> float:
    """The paper's objective (3) at ``w``: ``sum_i (relu(x_i.w) - y_i)^2 + lam1 ||w||_1 + lam2 ||w||^2``."""
    r = np.maximum(X @ w, 0.0) - y
    return float(r @ r + lam1 * np.abs(w).sum() + lam2 * w @ w)


def _relu_qp(X, y, lam1: float, lam2: float, w_start: np.ndarray, constrained: bool = False) -> np.ndarray:
    """Minimise eq. (3)'s objective (``constrained``: ``L0`` subject to ``||w||_1 <= 0``, eq. 12) by SLSQP.

    Variables ``(w, t, u)``: ``min sum_i t_i^2 + 2|y_i| t_i + lam1 sum u + lam2 ||w||^2`` with
    ``t >= Xw``, ``t >= 0``, ``u >= +-w``. Since every ``y_i <= 0`` the objective grows with
    ``t``, so at the optimum ``t = relu(Xw)``, ``u = |w|``: the same infimum (minus the constant
    ``||y||^2``). Returns the ``w`` found.
    """
    n, d = X.shape
    a = 2 * np.abs(y)
    nz = 2 * d + n

    def split(z):
        return z[:d], z[d:d + n], z[d + n:]

    scale = 1.0 / max(1.0, lam1, lam2)  # large multipliers otherwise stall SLSQP's line search

    def f(z):
        w, t, u = split(z)
        return scale * float(t @ t + a @ t + lam1 * u.sum() + lam2 * w @ w)

    def grad(z):
        w, t, u = split(z)
        return scale * np.r_[2 * lam2 * w, 2 * t + a, np.full(d, lam1)]

    eye, zero_nd, zero_dn = np.eye(d), np.zeros((n, d)), np.zeros((d, n))
    A = np.block([[-X, np.eye(n), zero_nd],  # t - Xw >= 0
                  [-eye, zero_dn, eye],  # u - w >= 0
                  [eye, zero_dn, eye]])  # u + w >= 0
    cons = [{"type": "ineq", "fun": lambda z: A @ z, "jac": lambda z: A}]
    if constrained:  # ||w||_1 <= 0 through u: -sum(u) >= 0
        c = np.r_[np.zeros(d + n), -np.ones(d)]
        cons.append({"type": "ineq", "fun": lambda z: np.array([c @ z]), "jac": lambda z: c[None]})
    z0 = np.r_[w_start, np.maximum(X @ w_start, 0) + 0.1, np.abs(w_start) + 0.1]
    bounds = [(None, None)] * d + [(0, None)] * n + [(None, None)] * d
    res = minimize(f, z0, jac=grad, constraints=cons, bounds=bounds, method="SLSQP",
                   options={"ftol": 1e-13, "maxiter": 2000})
    # Status 8 ("positive directional derivative in the line search") is SLSQP at its precision
    # limit; the caller evaluates the true objective at the w found, an upper bound either way.
    if res.status not in (0, 8) or not np.all(np.isfinite(res.x)):
        raise NdgmError(f"SLSQP failed on the ReLU Lagrangian (lam1={lam1}, lam2={lam2}): {res.message}")
    return split(res.x)[0]


def _relu_lp_lower_bound(X, y, lam1: float) -> float:
    """A lower bound on ``inf_w`` of eq. (3)'s objective by an LP: drop the non-negative terms
    ``sum t_i^2`` and ``lam2 ||w||^2`` of `_relu_qp`'s reformulation; add back ``||y||^2``."""
    n, d = X.shape
    eye, zero_nd, zero_dn = np.eye(d), np.zeros((n, d)), np.zeros((d, n))
    A = np.block([[X, -np.eye(n), zero_nd], [eye, zero_dn, -eye], [-eye, zero_dn, -eye]])  # <= 0
    c = np.r_[np.zeros(d), 2 * np.abs(y), np.full(d, lam1)]
    bounds = [(None, None)] * d + [(0, None)] * n + [(None, None)] * d
    res = linprog(c, A_ub=A, b_ub=np.zeros(n + 2 * d), bounds=bounds, method="highs")
    if res.status != 0:
        raise NdgmError(f"the LP lower bound failed (lam1={lam1}): {res.message}")
    return float(res.fun) + float(y @ y)


class LassoDuality(Experiment):
    name = "lasso-duality"
    title = "Strong duality for the toy LASSO and eq. (3), with a dual function free of the multiplier"
    source = "paper appendix A.3 (A.3.4, eqs. 12-14; Props A.4, A.6, A.8)"
    params = (
        Param("n", 40, "int", "samples of the ReLU regression (the capture protocol's data, smaller)"),
        Param("d", 8, "int", "weights of the ReLU regression"),
        Param("lam1s", (0.0, 0.001, 0.1, 1.0, 10.0, 1000.0), "floats", "L1 multipliers of the dual grid",
              item="nonneg", distinct=True),
        Param("lam2s", (0.0, 0.01, 1.0, 100.0), "floats", "L2 multipliers of the dual grid", item="nonneg",
              distinct=True),
        Param("mus", (0.0, 0.01, 1.0, 100.0, 10000.0), "floats", "multipliers of the toy's Lagrangian dual",
              item="nonneg", distinct=True),
        Param("toy_d", 2, "int", "dimension of the toy LASSO"),
        Param("toy_lam", 1.0, "pos", "lam of the toy LASSO lam ||w||_1 (max-crossing check)"),
        Param("samples", 400, "int", "random multipliers mu for the max-crossing check", quick=200),
        Param("seed", 42, "int", "seed of the data (capture protocol) and of the random starts", minimum=0),
    )
    fixed = {"dtype": "float64", "device": "cpu"}
    fixed_reason = "scipy's LP and QP solvers work in float64 on the CPU"
    figures = ("lasso_duality.png",)

    def validate(self, config):
        if config["n"] < 2:
            raise NdgmError(f"--n must be >= 2, got {config['n']}")

    def compute(self, config: dict, ctx: Context):
        # Dozens of small dense solves: a BLAS thread pool only adds contention (5x slower on 2 busy cores).
        with threadpool_limits(1):
            return self._compute(config)

    def _compute(self, config: dict):
        rng = np.random.default_rng(config["seed"])
        Xt, yt, _ = capture_data(config["n"], config["d"], config["seed"])
        X, y = Xt.numpy(), yt.numpy().reshape(-1)
        yy = float(y @ y)
        lam1s, lam2s = config["lam1s"], config["lam2s"]

        # Eq. (12)-(14): the dual function on a grid of multipliers, each an infimum from a random start.
        # Upper bound: the objective at the w SLSQP finds; lower bound: an LP relaxation.
        g = np.empty((len(lam1s), len(lam2s)))
        g_low = np.empty_like(g)
        w_norm = np.empty_like(g)
        for i, l1 in enumerate(lam1s):
            low = _relu_lp_lower_bound(X, y, l1)  # lam2 ||w||^2 >= 0 is dropped: one LP per lam1
            for j, l2 in enumerate(lam2s):
                w = _relu_qp(X, y, l1, l2, rng.uniform(-1, 1, config["d"]))
                g[i, j] = relu_lagrangian(X, y, w, l1, l2)
                g_low[i, j] = low
                w_norm[i, j] = np.abs(w).max()
        g_closed = relu_regression_dual(y, np.asarray(lam1s)[:, None], np.asarray(lam2s)[None, :])
        w_p = _relu_qp(X, y, 0.0, 0.0, rng.uniform(-1, 1, config["d"]), constrained=True)
        primal = relu_lagrangian(X, y, w_p, 0.0, 0.0)

        # The toy read as a Lagrangian: g(mu) = inf_w mu ||w||_1, and its primal min 0 s.t. ||w||_1 <= 0.
        toy = [_toy_lagrangian_lp(mu, config["toy_d"]) for mu in config["mus"]]
        toy_g = np.array([v for v, _ in toy])
        toy_primal = _toy_primal_lp(config["toy_d"])

        # Max crossing of lam ||w||_1: bounded (value 0) exactly on the box ||mu||_inf <= lam.
        lam = config["toy_lam"]
        mus = rng.uniform(-2 * lam, 2 * lam, size=(config["samples"], config["toy_d"]))
        mc = [_max_crossing_lp(mu, lam) for mu in mus]
        q = np.array([v for v, _ in mc])
        q_closed = toy_max_crossing(mus, lam)
        in_box = np.abs(mus).max(1) <= lam
        bounded = np.isfinite(q)

        summary = {
            "y_norm_sq": yy, "y_max": float(y.max()),
            "dual_grid_min": float(g.min()), "dual_grid_max": float(g.max()),
            "dual_max_rel_error": float(max(np.abs(g - g_closed).max(), np.abs(g_low - g_closed).max()) / yy),
            "dual_upper_excess_rel": float((g - yy).max() / yy), "dual_lower_gap_rel": float((yy - g_low).max() / yy),
            "dual_spread_rel": float((g.max() - g.min()) / yy),
            "dual_argmin_w_inf_max": float(w_norm.max()),
            "primal_numeric": primal, "primal_w_inf": float(np.abs(w_p).max()),
            "duality_gap_rel": float(abs(primal - g.max()) / yy),
            "multipliers": len(lam1s) * len(lam2s), "lam1s": lam1s, "lam2s": lam2s,
            "toy_dual": toy_g.tolist(), "toy_dual_closed": toy_lagrangian_dual(config["mus"]).tolist(),
            "toy_dual_max_abs": float(np.abs(toy_g).max()), "toy_lp_status": [s for _, s in toy],
            "toy_primal": toy_primal, "toy_duality_gap": float(abs(toy_primal - toy_g.max())),
            "mc_samples": int(config["samples"]), "mc_in_box": int(in_box.sum()),
            "mc_mismatches": int((bounded != in_box).sum()),
            "mc_bounded_max_abs": float(np.abs(q[bounded]).max()) if bounded.any() else 0.0,
            "mc_closed_form_mismatches": int((np.isfinite(q_closed) != bounded).sum()),
        }
        arrays = {"dual_grid": g, "lam1s": np.asarray(lam1s), "lam2s": np.asarray(lam2s),
                  "toy_mus": np.asarray(config["mus"]), "toy_dual": toy_g, "mc_mu": mus, "mc_bounded": bounded}
        return arrays, summary

    def claims(self, s: dict, config: dict) -> list[Claim]:
        yy = s["y_norm_sq"]
        k = s["multipliers"]
        return [
            exact("toy LASSO as a Lagrangian (min 0 s.t. ||w||_1 <= 0): g(mu) = inf_w mu ||w||_1 = 0 for every mu",
                  f"{SRC}.4, eq. 14 (toy)", 0.0, s["toy_dual_max_abs"], tol=LP_TOL,
                  detail=f"max over mu in {config['mus']} of |g(mu)|, each an LP (HiGHS); independent of mu"),
            exact("toy LASSO: strong duality, p* = max_mu g(mu) = 0", f"{SRC}.2, Prop. A.3", 0.0,
                  s["toy_duality_gap"], tol=LP_TOL,
                  detail=f"p* = {s['toy_primal']:g} (LP of the constrained primal), d* = max of the dual grid"),
            holds("max crossing of lam ||w||_1: solutions are the box ||mu||_inf <= lam -- non-empty and compact "
                  "(Prop. A.8)", f"{SRC}.2, Props A.4, A.8", 0, s["mc_mismatches"],
                  s["mc_mismatches"] == 0 and s["mc_bounded_max_abs"] <= LP_TOL and s["mc_in_box"] > 0,
                  f"exact: q(mu) = inf_w lam||w||_1 + mu.w is bounded (LP optimal, |q| <= {LP_TOL:g}) exactly when "
                  f"||mu||_inf <= lam, over {s['mc_samples']} random mu; count of disagreements == 0",
                  f"{s['mc_in_box']} of {s['mc_samples']} samples in the box, the rest unbounded (LP status 3)"),
            exact("eq. (14): the dual function of eq. (12) is ||y||^2 for every multiplier (lam1, lam2)",
                  f"{SRC}.4, eqs. 12-14", 0.0, s["dual_max_rel_error"], tol=QP_TOL,
                  detail=f"max over {k} multipliers (lam1 in {s['lam1s']}, lam2 in {s['lam2s']}) of "
                         f"|g_numeric - ||y||^2| / ||y||^2 for both numerical bounds on g: from above the objective "
                         f"at the w SLSQP finds from a random start (excess {s['dual_upper_excess_rel']:.2g}), from "
                         f"below an LP relaxation (gap {s['dual_lower_gap_rel']:.2g}); ||y||^2 = {yy:.10g}; "
                         f"spread max g - min g = {s['dual_spread_rel']:.2g} ||y||^2: every multiplier is "
                         "dual-optimal, an unbounded dual solution set (Prop. A.6)"),
            exact("eq. (12): strong duality, p* = max g = ||y||^2", f"{SRC}.4", 0.0, s["duality_gap_rel"], tol=QP_TOL,
                  detail=f"|p* - d*| / ||y||^2 with p* = {s['primal_numeric']:.12g} solved as the constrained QP "
                         f"(w found: ||w||_inf = {s['primal_w_inf']:.2g}) and d* the largest dual value on the grid"),
        ]


EXPERIMENT = LassoDuality()
