"""The L1 paradox beyond the toy: the general LASSO over a penalty grid, and real data.

* ``lasso-general`` (paper appendix B.2, spec 3.3): NDGM on ``||Xw - y||^2 + lam ||w||_1``
  with ``X, y ~ U(-1, 1)`` for a log-spaced penalty grid, all penalties in ONE batched
  run, against scikit-learn's exact solution path (``lasso_path`` with
  ``alpha = lam / (2n)``, the same objective divided by ``2n``) and against our batched
  FISTA. The paper's sizes, step and penalties are not recoverable; ours are parameters
  (defaults: n = 100, d = 20, eta = 1e-3, 5000 iterations, lam from 1e-2 to 1e3).
* ``lasso-real`` (spec 3.3/3.4 cure): scikit-learn's diabetes data, standardised, no
  intercept, ``(1/2n)||y - Xw||^2 + alpha ||w||_1``: exact zeros and objective gaps of
  full-batch SGD, Adam and RMSProp against ``sklearn.linear_model.Lasso``, and the
  proximal methods (ISTA, FISTA, ProxSGD, ProxAdam, accelerated RDA) that reach its solution
  with the same exact zeros; plain RDA (O(1/sqrt t)) is reported with its own looser gap.
"""

from __future__ import annotations

import numpy as np
import torch

from ..data.tabular import load_diabetes_standardised
from ..dynamics import GD, run_trajectory
from ..dynamics.rules import make_rule
from ..errors import NdgmError
from ..problems import Lasso
from ..sparse.estimator import L1Regression
from ..sparse.optim import RDA, AcceleratedRDA, ProxAdam, ProxSGD, fit_grouped
from ..sparse.solvers import fista, solve_lasso
from ..claims import Claim, bound, exact, holds, not_run
from .base import Context, Experiment, Param


def uniform_lasso_data(n: int, d: int, seed: int, dtype=torch.float64, device="cpu"):
    """``X ~ U(-1, 1)^{n x d}``, ``y ~ U(-1, 1)^n``, ``w0 ~ U(-1, 1)^d`` from one seeded torch generator."""
    g = torch.Generator().manual_seed(seed)
    X = torch.rand(n, d, generator=g, dtype=torch.float64) * 2 - 1
    y = torch.rand(n, generator=g, dtype=torch.float64) * 2 - 1
    w0 = torch.rand(d, generator=g, dtype=torch.float64) * 2 - 1
    return X.to(dtype=dtype, device=device), y.to(dtype=dtype, device=device), w0.to(dtype=dtype, device=device)


def exact_lasso_path(X: np.ndarray, y: np.ndarray, lams: np.ndarray) -> np.ndarray:
    """Exact minimisers of ``||Xw - y||^2 + lam ||w||_1`` for each ``lam`` (rows), by scikit-learn's
    coordinate descent: ``lasso_path`` with ``alpha = lam / (2n)``, tight tolerance."""
    from sklearn.linear_model import lasso_path

    n = X.shape[0]
    alphas = np.asarray(lams, dtype=np.float64) / (2 * n)
    order = np.argsort(-alphas)  # lasso_path wants decreasing alphas (warm starts)
    _, coefs, _ = lasso_path(X, y, alphas=alphas[order], tol=1e-14, max_iter=1_000_000)
    out = np.empty((len(lams), X.shape[1]))
    out[order] = coefs.T
    return out


class LassoGeneral(Experiment):
    name = "lasso-general"
    title = "General LASSO: NDGM's norm rises with the penalty while the exact solution shrinks to 0"
    source = "paper appendix B.2 (spec 3.3)"
    params = (
        Param("n", 100, "int", "samples (paper: not recoverable)"),
        Param("d", 20, "int", "features (paper: not recoverable)"),
        Param("lr", 1e-3, "pos", "NDGM step size eta (< 2/L of the smooth part)"),
        Param("iterations", 5000, "int", "NDGM iterations", quick=3000),
        Param("lam_min", 1e-2, "pos", "smallest penalty of the grid"),
        Param("lam_max", 1e3, "pos", "largest penalty of the grid (>= 1e4 * lam_min: four decades)"),
        Param("grid", 64, "int", "number of log-spaced penalties", minimum=2),
        Param("lam_pair", 1.0, "pos", "paper's pair: compare lam_pair with 1000 * lam_pair"),
    )
    overrides = {"device": "cpu"}
    threads = 1  # tiny tensors: a thread pool only adds overhead
    figures = ("lasso_general.png",)

    def validate(self, config):
        if config["lam_max"] < 1e4 * config["lam_min"] * (1 - 1e-12):
            raise NdgmError(f"--lam-max must be >= 1e4 * --lam-min (four decades), got {config['lam_min']:g}..{config['lam_max']:g}")
        X, y, _ = uniform_lasso_data(config["n"], config["d"], config["seed"])
        two_over_L = 2.0 / Lasso(X, y).smoothness
        if config["lr"] >= two_over_L:
            raise NdgmError(f"--lr must be < 2/L = {two_over_L:.4g} for this data (L = 2 lambda_max(X^T X)), got {config['lr']}")

    def compute(self, config: dict, ctx: Context):
        dtype, device, progress = ctx.dtype, ctx.device, ctx.progress
        n, d, eta, T = config["n"], config["d"], config["lr"], config["iterations"]
        X, y, w0 = uniform_lasso_data(n, d, config["seed"], dtype, device)
        grid = np.logspace(np.log10(config["lam_min"]), np.log10(config["lam_max"]), config["grid"])
        pair = np.array([config["lam_pair"], 1000 * config["lam_pair"]])
        lams = np.concatenate([grid, pair])
        lam_t = torch.tensor(lams, dtype=dtype, device=device)
        problem = Lasso(X, y, lam=lam_t)
        traj = run_trajectory(problem, w0.repeat(len(lams), 1), eta, T, GD(), progress=progress, desc="lasso-general")
        W_ndgm = traj.final
        Xn, yn = X.cpu().double().numpy(), y.cpu().double().numpy()
        W_exact = exact_lasso_path(Xn, yn, lams)
        fis = solve_lasso(X.double().cpu(), y.double().cpu(), torch.tensor(lams / (2 * n)), tol=1e-11)
        W_fista = fis.coef.numpy()

        objective = Lasso(torch.as_tensor(Xn), torch.as_tensor(yn), lams).value  # float64, on the numpy iterates

        lam_crit = float(np.abs(2 * Xn.T @ yn).max())  # the smallest lam with exact solution 0
        G = len(grid)  # rows [:G] are the grid, rows [G:] the pair
        ndgm_l1, exact_l1 = np.abs(W_ndgm).sum(1), np.abs(W_exact).sum(1)
        ndgm_obj, exact_obj = objective(W_ndgm)[:G], objective(W_exact)[:G]
        summary = {
            "n": n, "d": d, "lr": eta, "iterations": T, "lam_critical": lam_crit,
            "ndgm_l1": ndgm_l1[:G].tolist(), "exact_l1": exact_l1[:G].tolist(),
            "ndgm_exact_zeros": (W_ndgm == 0).sum(1)[:G].tolist(), "exact_zeros": (W_exact == 0).sum(1)[:G].tolist(),
            "fista_exact_zeros": (W_fista == 0).sum(1)[:G].tolist(),
            "ndgm_objective": ndgm_obj.tolist(), "exact_objective": exact_obj.tolist(),
            "fista_objective": objective(W_fista)[:G].tolist(),
            "pair_lams": pair.tolist(), "pair_ndgm_l1": ndgm_l1[G:].tolist(), "pair_exact_l1": exact_l1[G:].tolist(),
            "diverged": int(traj.diverged.sum()),
        }
        arrays = {"lams": grid, "ndgm_l1": ndgm_l1[:G], "exact_l1": exact_l1[:G],
                  "ndgm_support": (W_ndgm[:G] != 0).sum(1), "exact_support": (W_exact[:G] != 0).sum(1),
                  "ndgm_objective": ndgm_obj, "exact_objective": exact_obj,
                  "W_ndgm": W_ndgm, "W_exact": W_exact, "W_fista": W_fista, "l1_history": traj.l1}
        return arrays, summary

    def claims(self, s: dict, config: dict) -> list[Claim]:
        from scipy.stats import spearmanr  # here, not at module level: the CLI imports every experiment

        src = "paper appendix B.2 (spec 3.3)"
        nd, ex = np.asarray(s["ndgm_l1"]), np.asarray(s["exact_l1"])
        ex_obj, nd_obj, fi_obj = (np.asarray(s[k]) for k in ("exact_objective", "ndgm_objective", "fista_objective"))
        p_nd, p_ex = s["pair_ndgm_l1"], s["pair_exact_l1"]
        above = np.asarray(s["exact_zeros"]) == s["d"]
        rho = float(spearmanr(np.arange(int(above.sum())), nd[above]).statistic) if above.sum() > 2 else float("nan")
        rel_fista = float(np.max(np.abs(fi_obj - ex_obj) / ex_obj))
        lo, hi = s["pair_lams"]
        return [
            # The paper's 1.62 -> 25.4 (15.7x) comes from sizes, eta and lam it does not give: its magnitude
            # cannot be re-run, so the row tests the direction and reports this run's ratio as the finding.
            bound(f"1000x larger penalty ({lo:g} -> {hi:g}): NDGM's L1 norm grows (the paper's 15.7x is for its own, "
                  "unrecoverable sizes; this run's ratio is the finding)", src, p_nd[1] / p_nd[0], lower=1.0,
                  strict=True, name="||w(1000 lam)||_1 / ||w(lam)||_1",
                  expected="> 1x (paper: 1.62 -> 25.4 = 15.7x at n, d, eta, lam not given)",
                  detail=f"NDGM {p_nd[0]:.4g} -> {p_nd[1]:.4g} ({p_nd[1] / p_nd[0]:.3g}x) at n = {s['n']}, "
                         f"d = {s['d']}, eta = {s['lr']:g}; exact solution {p_ex[0]:.4g} -> {p_ex[1]:.4g}"),
            # The magnitude as a row of its own, so that no row passes on "> 1x" under the paper's "> 15x".
            not_run("the paper's magnitude: a 1000x larger penalty gives a > 15x larger NDGM L1 norm", src,
                    f"the paper gives neither n, d, eta nor lam (spec 3.3: not recoverable) and the ratio depends on "
                    f"them: this run's {p_nd[1] / p_nd[0]:.3g}x at n = {s['n']}, d = {s['d']}, eta = {s['lr']:g}, "
                    f"lam {lo:g} -> {hi:g} (the row above) neither reproduces nor contradicts it",
                    expected="> 15x (1.62 -> 25.4)"),
            bound("the exact solution's L1 norm never increases with lam", src, float(np.max(np.diff(ex), initial=0)),
                  upper=1e-9, expected="non-increasing (up to the solver's 1e-9)",
                  name="max_k ||w*(lam_(k+1))||_1 - ||w*(lam_k)||_1"),
            holds("beyond lam_critical = ||2 X^T y||_inf the exact solution is 0 while NDGM's norm rises", src,
                  "exact 0 there; NDGM's norm rank-correlated with lam (Spearman > 0.9), last > 10x first",
                  (f"{int(above.sum())} grid points above; NDGM {nd[above][0]:.3g} -> {nd[above][-1]:.3g}, Spearman {rho:.3f}"
                   if above.any() else "no grid point above"),
                  bool(above.sum() > 2 and np.all(ex[above] == 0) and rho > 0.9 and nd[above][-1] > 10 * nd[above][0]),
                  "exact: > 2 grid points with an all-zero exact solution; there the exact L1 norm == 0, Spearman's rho "
                  "of NDGM's L1 norm against lam > 0.9 and the last NDGM norm > 10 x the first"),
            exact("NDGM ends with no exact zeros at any penalty", src, 0, int(np.sum(s["ndgm_exact_zeros"])),
                  detail="final coordinates == 0.0, summed over the grid"),
            exact("exact solutions have exact zeros (all d at the largest lam)", src, s["d"], s["exact_zeros"][-1]),
            holds("NDGM's objective is never below the exact optimum", "optimality of the exact solution",
                  ">= exact", f"min gap {float(np.min(nd_obj - ex_obj)):.3g}", bool(np.all(nd_obj >= ex_obj * (1 - 1e-12))),
                  "NDGM objective >= exact objective x (1 - 1e-12) at every lam", kind="bound"),
            holds("batched FISTA matches scikit-learn: objective to 1e-8 relative, same exact zeros", "this tool",
                  "rel. gap <= 1e-8, zeros equal", f"max rel. gap {rel_fista:.2g}",
                  rel_fista <= 1e-8 and s["fista_exact_zeros"] == s["exact_zeros"],
                  "exact: max over lam of |f(FISTA) - f(sklearn)| / f(sklearn) <= 1e-8 and the exact-zero counts equal"),
        ]



REAL_SRC = "issue 3 / spec 3.3-3.4 (scikit-learn diabetes)"
# scikit-learn's own Lasso output on this data, recorded when the row was written: a cross-check
# that the data and the reference solver are the ones the other rows were checked against, not a
# value from the paper or the spec.
SKLEARN_LASSO_ZEROS = {0.01: 2, 0.05: 4, 0.2: 7}


class LassoReal(Experiment):
    name = "lasso-real"
    title = "Diabetes data: SGD/Adam/RMSProp find no zeros; Lasso and proximal methods find the exact ones"
    source = "spec 3.3-3.4 (scikit-learn diabetes, standardised)"
    params = (
        Param("alphas", (0.01, 0.05, 0.2), "floats", "penalties alpha (objective (1/2n)||y-Xw||^2 + alpha||w||_1)",
              item="nonneg"),
        Param("iterations", 20000, "int", "iterations of full-batch SGD / Adam / RMSProp (one batched run each)"),
        Param("sgd_lr", 0.0, "nonneg", "SGD step (0: 1/L, L = lambda_max(X^T X)/n)"),
        Param("adam_lr", 1e-3, "pos", "Adam and ProxAdam step"),
        Param("rmsprop_lr", 1e-3, "pos", "RMSProp step"),
        Param("prox_iterations", 20000, "int", "ProxSGD / ProxAdam / RDA / AC-RDA iterations (ProxSGD step 1/L)",
              quick=4000),
        Param("rda_lr", 1.0, "pos", "RDA's 1/gamma (beta_t = gamma sqrt(t), Xiao 2009)"),
        Param("acrda_lr", 0.0, "nonneg", "accelerated RDA's step 1/L (Xiao 2010 sec. 6; 0: 1/L, L = lambda_max(X^T X)/n)"),
    )
    overrides = {"device": "cpu"}
    threads = 1
    figures = ("lasso_real.png",)

    def compute(self, config: dict, ctx: Context):
        from sklearn.linear_model import Lasso as SkLasso

        dtype, progress = ctx.dtype, ctx.progress
        alphas = config["alphas"]
        X, y = load_diabetes_standardised(dtype=dtype)
        Xn, yn = X.double().numpy(), y.double().numpy()
        n, d = X.shape
        a_t = torch.tensor(alphas, dtype=dtype)
        problem = Lasso(X, y, a_t, scaling="mean")
        T = config["iterations"]
        coefs: dict[str, np.ndarray] = {}
        sk = np.stack([SkLasso(alpha=a, fit_intercept=False, tol=1e-14, max_iter=1_000_000).fit(Xn, yn).coef_
                       for a in alphas])
        coefs["lasso"] = sk
        lrs = {"sgd": config["sgd_lr"] or 1.0 / problem.smoothness, "adam": config["adam_lr"],
               "rmsprop": config["rmsprop_lr"]}
        for name, lr in lrs.items():
            tr = run_trajectory(problem, torch.zeros(len(alphas), d, dtype=dtype), lr, T, make_rule(name),
                                progress=progress, desc=f"lasso-real {name}")
            coefs[name] = tr.final
        coefs["fista"] = fista(problem.datafit, problem.penalty, tol=1e-12).coef.numpy()
        coefs["ista"] = np.stack([L1Regression(method="ista", alpha=a, fit_intercept=False, max_iter=100000,
                                               tol=1e-12, dtype=config["dtype"])
                                  .fit(Xn, yn).coef_ for a in alphas])
        P = config["prox_iterations"]
        coefs["proxsgd"] = fit_grouped(ProxSGD, X, y, alphas, P, lr=1.0 / problem.smoothness)[0]
        coefs["proxadam"] = fit_grouped(ProxAdam, X, y, alphas, P, lr=config["adam_lr"])[0]
        coefs["rda"] = fit_grouped(RDA, X, y, alphas, P, lr=config["rda_lr"])[0]
        acrda_lr = config["acrda_lr"] or 1.0 / problem.smoothness
        coefs["acrda"] = fit_grouped(AcceleratedRDA, X, y, alphas, P, lr=acrda_lr)[0]
        cert_problem = Lasso(torch.as_tensor(Xn), torch.as_tensor(yn), torch.tensor(alphas, dtype=torch.float64),
                             scaling="mean")
        table = {}
        for name, W in coefs.items():
            Wt = torch.as_tensor(W, dtype=torch.float64)
            obj = cert_problem.value(Wt).numpy()
            table[name] = {"exact_zeros": (W == 0).sum(1).tolist(), "below_1e-5": (np.abs(W) < 1e-5).sum(1).tolist(),
                           "objective": obj.tolist(), "certificate": cert_problem.certificate(Wt).numpy().tolist(),
                           "same_support_as_lasso": [bool(np.array_equal(W[k] == 0, sk[k] == 0)) for k in range(len(alphas))]}
        f_sk = np.asarray(table["lasso"]["objective"])
        for name in table:
            table[name]["rel_gap"] = ((np.asarray(table[name]["objective"]) - f_sk) / f_sk).tolist()
        lrs.update({"proxsgd": 1.0 / problem.smoothness, "proxadam": config["adam_lr"], "rda": config["rda_lr"],
                    "acrda": acrda_lr})
        summary = {"alphas": alphas, "n": n, "d": d, "iterations": T, "prox_iterations": P, "lrs": lrs, "table": table,
                   "table_markdown": self.table_markdown(alphas, table)}
        arrays = {"alphas": np.asarray(alphas), **{f"coef_{k}": v for k, v in coefs.items()}}
        return arrays, summary

    @staticmethod
    def table_markdown(alphas, table) -> str:
        lines = ["| method | alpha | exact zeros | abs < 1e-5 | objective | rel. gap to Lasso | certificate |",
                 "|---|---|---|---|---|---|---|"]
        for name, r in table.items():
            for k, a in enumerate(alphas):
                lines.append(f"| {name} | {a:g} | {r['exact_zeros'][k]} | {r['below_1e-5'][k]} | {r['objective'][k]:.12g} | "
                             f"{r['rel_gap'][k]:.3g} | {r['certificate'][k]:.3g} |")
        return "\n".join(lines)

    def claims(self, s: dict, config: dict) -> list[Claim]:
        t, alphas = s["table"], s["alphas"]
        out = []
        if all(a in SKLEARN_LASSO_ZEROS for a in alphas):
            exp = [SKLEARN_LASSO_ZEROS[a] for a in alphas]
            out.append(exact("cross-check: scikit-learn's Lasso gives the recorded exact zeros at each alpha",
                             "scikit-learn Lasso (recorded output; not a paper value)", exp, t["lasso"]["exact_zeros"],
                             detail="pins the data and the reference solver the other rows compare with"))
        for name in ("sgd", "adam"):
            out.append(holds(f"full-batch {name.upper() if name == 'sgd' else 'Adam'} finds no zeros, not even below 1e-5",
                             REAL_SRC, [0] * len(alphas), t[name]["below_1e-5"],
                             all(v == 0 for v in t[name]["below_1e-5"]) and all(v == 0 for v in t[name]["exact_zeros"]),
                             "exact: number of final |w_j| < 1e-5 == 0 (hence of exact zeros) at every alpha",
                             f"exact zeros {t[name]['exact_zeros']}, rel. objective gap {['%.2g' % g for g in t[name]['rel_gap']]}"))
        label = {"acrda": "acrda (accelerated RDA, Xiao 2010 sec. 6)"}
        for name in ("ista", "fista", "proxsgd", "proxadam", "acrda"):
            gap = max(abs(g) for g in t[name]["rel_gap"])
            ok = gap <= 1e-8 and all(t[name]["same_support_as_lasso"])
            out.append(holds(f"{label.get(name, name)}: sklearn objective to 1e-8 relative with the same exact zeros",
                             "issue 3 item 6", "rel. gap <= 1e-8, same support",
                             f"max rel. gap {gap:.2g}, zeros {t[name]['exact_zeros']}", ok,
                             "exact: max over alpha of |f - f(sklearn)| / f(sklearn) <= 1e-8 and the set of exact zeros "
                             "equals sklearn's at every alpha",
                             f"certificates {['%.2g' % c for c in t[name]['certificate']]}"))
        # Plain RDA converges at O(1/sqrt t): it finds the exact zeros early but not the 1e-8 gap in
        # these budgets (3.7e-5 after 4000 steps, 7e-6 after 20000); its claim says only what it does.
        gap = max(abs(g) for g in t["rda"]["rel_gap"])
        out.append(holds("plain rda: same exact zeros as Lasso; objective within 1e-4 (O(1/sqrt t), not 1e-8: see acrda)",
                         "Xiao 2009", "same support, rel. gap <= 1e-4",
                         f"max rel. gap {gap:.2g}, zeros {t['rda']['exact_zeros']}",
                         gap <= 1e-4 and all(t["rda"]["same_support_as_lasso"]),
                         "exact: max over alpha of |f - f(sklearn)| / f(sklearn) <= 1e-4 and the set of exact zeros "
                         "equals sklearn's at every alpha"))
        return out



GENERAL = LassoGeneral()
REAL = LassoReal()
