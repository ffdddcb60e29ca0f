"""Speed of the L1-paradox tools (issue 3). Prints ratios measured in the same run; not a test.

1. The 64-point penalty grid of ``lasso-general`` (n = 100, d = 20, eta = 1e-3) as ONE batched
   ``run_trajectory`` against 64 sequential plain PyTorch loops (autograd + ``torch.optim.SGD``,
   one per penalty). Target: >= 10x.
2. FISTA (backtracking + restart) on the standardised diabetes data against scikit-learn's
   coordinate descent, both to the same objective (within 1e-10 relative of the best objective
   either finds, same exact zeros); see `fista_benchmark` for how the tolerances are matched.
   Target: FISTA within 3x of scikit-learn's time. Also printed: both at tol 1e-10.

Issue 14 (the estimator and its exact working-set solver against scikit-learn, single thread, both
to a duality gap of ``tol = 1e-8`` in scikit-learn's meaning, gap <= tol ||y - mean(y)||^2):

3. ``L1Regression`` vs ``Lasso`` on diabetes (raw, with intercept), alpha_max/10 and /100;
4. dense ``make_regression(2000, 5000, n_informative=50)`` standardised: target <= 2x;
5. sparse ``scipy.sparse.random(5000, 20000, density=0.001)`` CSC design (never densified): target <= 3x;
6. a 10-alpha path (alpha_max down to alpha_max/100) on the dense case, ``l1_path`` vs ``lasso_path``:
   target <= 2x;
7. on a GPU (when ``torch.cuda.is_available()``): the dense case with ``device='cuda'`` and a 64-alpha
   path in ONE batched FISTA run against ``lasso_path``.

skglm's time is printed beside them when skglm is installed (``pip install .[bench]``). Every line also
prints how far the two solutions are apart (relative objective difference, differing zeros).

Run: ``python benchmarks/bench_lasso.py [--iterations 2000] [--repeats 15] [--threads 1]``;
``--only estimator --scale 0.05 --repeats 1`` checks the issue-14 sections at a tiny size.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.datasets import load_diabetes, make_regression
from sklearn.linear_model import Lasso as SkLasso
from sklearn.linear_model import lasso_path
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from ndgm.data.tabular import load_diabetes_standardised
from ndgm.dynamics import GD, run_trajectory
from ndgm.experiments.lasso_general import uniform_lasso_data
from ndgm.problems import Lasso
from ndgm.sparse import L1Regression, l1_path
from ndgm.sparse.solvers import solve_lasso


def lasso_objective(X, y, w, alpha: float) -> float:
    """scikit-learn's ``(1/2n)||y - Xw||^2 + alpha ||w||_1`` of one weight vector, in float64."""
    X, y, w = (torch.as_tensor(np.asarray(v, dtype=np.float64)) for v in (X, y, w))
    return float(Lasso(X, y, alpha, scaling="mean").value(w.reshape(1, -1))[0])


def best_of(fn, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def grid_benchmark(iterations: int, repeats: int) -> float:
    X, y, w0 = uniform_lasso_data(100, 20, 0)
    lams = torch.logspace(-2, 3, 64, dtype=torch.float64)
    eta = 1e-3

    def batched():
        return run_trajectory(Lasso(X, y, lam=lams), w0.repeat(64, 1), eta, iterations, GD()).final

    def sequential():
        finals = []
        for lam in lams.tolist():
            w = w0.clone().requires_grad_(True)
            opt = torch.optim.SGD([w], lr=eta)
            for _ in range(iterations):
                opt.zero_grad()
                loss = (X @ w - y).pow(2).sum() + lam * w.abs().sum()
                loss.backward()
                opt.step()
            finals.append(w.detach().numpy().copy())
        return np.stack(finals)

    t_b, W_b = best_of(batched, repeats)
    t_s, W_s = best_of(sequential, 1)
    ratio = t_s / t_b
    print(f"[grid] 64 penalties x {iterations} iterations: batched {t_b:.3f}s, 64 sequential loops {t_s:.3f}s "
          f"-> {ratio:.1f}x (target >= 10x); max |w_batched - w_sequential| = {np.abs(W_b - W_s).max():.2e}")
    return ratio


def interleaved_medians(fns: dict, repeats: int) -> dict:
    """Median wall time of each callable; one untimed warm-up call each, then the calls alternate
    so that both sides see the same machine load."""
    for fn in fns.values():
        fn()
    times = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
    return {k: float(np.median(v)) for k, v in times.items()}


TOL_LADDER = [10.0**-k for k in range(3, 13)]
TARGET_REL_GAP = 1e-10


def loosest_tol(solve, Xn, yn, alpha, f_star, zeros_ref):
    """The loosest tolerance on `TOL_LADDER` at which ``solve(tol)`` reaches ``f_star`` to
    `TARGET_REL_GAP` relative with the reference's exact zeros; ``(tol, coef)``."""
    for tol in TOL_LADDER:
        coef = solve(tol)
        if lasso_objective(Xn, yn, coef, alpha) - f_star <= TARGET_REL_GAP * f_star and np.array_equal(coef == 0, zeros_ref):
            return tol, coef
    raise AssertionError(f"no tolerance on the ladder reaches the reference objective at alpha={alpha}")


def fista_benchmark(repeats: int) -> float:
    """Time to the same objective: each solver runs at the loosest tolerance of one common ladder
    (1e-3 ... 1e-12) that brings it within 1e-10 (relative) of the best objective either solver finds
    at its tightest setting, with the same exact zeros. scikit-learn's ``tol`` bounds the duality gap,
    FISTA's the optimality certificate; choosing each by the objective reached makes them comparable.
    Both are then timed in the same run, interleaved, median of ``repeats`` after a warm-up, with
    BLAS held to one thread (scikit-learn's coordinate descent is single-threaded)."""
    X, y = load_diabetes_standardised()
    Xn, yn = X.numpy(), y.numpy()

    def sk_fit(alpha, tol):
        return SkLasso(alpha=alpha, fit_intercept=False, tol=tol, max_iter=1_000_000).fit(Xn, yn)

    ratios = []
    with threadpool_limits(limits=1):
        for alpha in (0.01, 0.05, 0.2):
            ref = sk_fit(alpha, 1e-15).coef_
            f_star = min(lasso_objective(Xn, yn, ref, alpha),
                         lasso_objective(Xn, yn, solve_lasso(X, y, alpha, tol=1e-14).coef[0], alpha))
            tol_sk, c_sk = loosest_tol(lambda t: sk_fit(alpha, t).coef_, Xn, yn, alpha, f_star, ref == 0)
            tol_fi, c_fi = loosest_tol(lambda t: solve_lasso(X, y, alpha, tol=t).coef[0].numpy(), Xn, yn, alpha, f_star, ref == 0)
            t = interleaved_medians({"sk": lambda: sk_fit(alpha, tol_sk), "fi": lambda: solve_lasso(X, y, alpha, tol=tol_fi)},
                                    repeats)
            strict = interleaved_medians({"sk": lambda: sk_fit(alpha, 1e-10), "fi": lambda: solve_lasso(X, y, alpha, tol=1e-10)},
                                         repeats)
            gap = {k: (lasso_objective(Xn, yn, c, alpha) - f_star) / f_star for k, c in (("sk", c_sk), ("fi", c_fi))}
            ratios.append(t["fi"] / t["sk"])
            print(f"[fista] alpha={alpha:g}: sklearn CD {1e3 * t['sk']:.3f} ms (tol {tol_sk:g}, {sk_fit(alpha, tol_sk).n_iter_} "
                  f"epochs, rel. gap {gap['sk']:.1e}), FISTA {1e3 * t['fi']:.3f} ms (tol {tol_fi:g}, "
                  f"{int(solve_lasso(X, y, alpha, tol=tol_fi).n_iter[0])} iterations, rel. gap {gap['fi']:.1e}) "
                  f"-> FISTA/sklearn = {ratios[-1]:.2f}x (target <= 3x); "
                  f"both at tol 1e-10: {1e3 * strict['sk']:.3f} vs {1e3 * strict['fi']:.3f} ms = {strict['fi'] / strict['sk']:.2f}x")
        alphas = [0.01, 0.05, 0.2]
        t3 = interleaved_medians({"sk": lambda: [sk_fit(a, 1e-10) for a in alphas],
                                  "fi": lambda: solve_lasso(X, y, alphas, tol=1e-10)}, repeats)
    print(f"[fista] three alphas at tol 1e-10: 3 sklearn fits {1e3 * t3['sk']:.3f} ms, one batched FISTA "
          f"{1e3 * t3['fi']:.3f} ms -> {t3['fi'] / t3['sk']:.2f}x")
    return max(ratios)


# -- issue 14: the estimator against scikit-learn -----------------------------------------------------------

GAP_TOL = 1e-8


def _skglm_lasso():
    """skglm's Lasso class, or None when skglm (the ``bench`` extra) is not installed."""
    try:
        from skglm import Lasso as SkglmLasso
    except ImportError:
        return None
    return SkglmLasso


def intercept_objective(X, y, coef, intercept: float, alpha: float) -> float:
    """``(1/2n)||y - X coef - intercept||^2 + alpha ||coef||_1`` in float64 (X dense or sparse)."""
    r = y - np.asarray(X @ coef).reshape(-1) - intercept
    return 0.5 * float(r @ r) / len(y) + alpha * float(np.abs(coef).sum())


def alpha_max_of(X, y) -> float:
    """The smallest alpha whose Lasso solution (with intercept) is 0: ``||X^T (y - mean y)||_inf / n``."""
    return float(np.abs(np.asarray(X.T @ (y - y.mean())).reshape(-1)).max()) / len(y)


def dense_regression(scale: float, seed: int = 0):
    n, d = max(20, int(2000 * scale)), max(50, int(5000 * scale))
    X, y = make_regression(n, d, n_informative=max(5, int(50 * scale)), noise=1.0, random_state=seed)
    X = StandardScaler().fit_transform(X)
    return X, (y - y.mean()) / y.std()


def sparse_regression(scale: float, seed: int = 0):
    n, d = max(50, int(5000 * scale)), max(200, int(20000 * scale))
    rng = np.random.default_rng(seed)
    X = sp.random(n, d, density=0.001 if scale >= 0.5 else 0.02, format="csc", random_state=rng,
                  data_rvs=rng.standard_normal)
    w = np.zeros(d)
    w[rng.choice(d, size=min(50, d // 4), replace=False)] = rng.standard_normal(min(50, d // 4))
    return X, np.asarray(X @ w).reshape(-1) + 0.1 * rng.standard_normal(n)


def compare_estimators(label: str, X, y, fractions, repeats: int, target: float | None, device: str = "cpu"):
    """``L1Regression`` (default method, working-set FISTA) against ``Lasso`` (and skglm) at
    ``alpha_max * f`` for each fraction; both with intercept, to a duality gap of `GAP_TOL`. Worst ratio."""
    a_max = alpha_max_of(X, y)
    skglm = _skglm_lasso()
    worst = 0.0
    for frac in fractions:
        alpha = a_max * frac
        fns = {"sk": lambda: SkLasso(alpha=alpha, tol=GAP_TOL, max_iter=1_000_000).fit(X, y),
               "ndgm": lambda: L1Regression(alpha, tol=GAP_TOL, max_iter=1_000_000, device=device).fit(X, y)}
        if skglm is not None:
            fns["skglm"] = lambda: skglm(alpha=alpha, tol=GAP_TOL).fit(X, y)
        t = interleaved_medians(fns, repeats)
        fits = {k: fn() for k, fn in fns.items()}
        objs = {k: intercept_objective(X, y, np.asarray(f.coef_, dtype=np.float64), float(f.intercept_), alpha)
                for k, f in fits.items()}
        f_best = min(objs.values())
        ours, ref = fits["ndgm"], fits["sk"]
        ratio = t["ndgm"] / t["sk"]
        worst = max(worst, ratio)
        extra = ""
        if "skglm" in t:
            extra = f", skglm {1e3 * t['skglm']:.1f} ms (rel. obj. {(objs['skglm'] - f_best) / f_best:.1e})"
        print(f"[{label}] alpha=alpha_max/{1 / frac:g}: sklearn {1e3 * t['sk']:.1f} ms, L1Regression "
              f"{1e3 * t['ndgm']:.1f} ms ({ours.n_iter_} inner steps, gap {ours.dual_gap_:.1e}) -> {ratio:.2f}x"
              f"{'' if target is None else f' (target <= {target:g}x)'}{extra}; nonzeros {int((ours.coef_ != 0).sum())} vs "
              f"{int((ref.coef_ != 0).sum())}, differing zeros {int(((ours.coef_ == 0) != (ref.coef_ == 0)).sum())}, "
              f"rel. obj. {(objs['ndgm'] - f_best) / f_best:.1e} vs sklearn {(objs['sk'] - f_best) / f_best:.1e}")
    return worst


def compare_paths(label: str, X, y, n_alphas: int, repeats: int, target: float | None, device: str = "cpu",
                  batched: bool | None = None) -> float:
    """``l1_path`` against ``lasso_path`` on the same explicit grid (alpha_max to alpha_max/100), both
    without intercept on centred data, to a duality gap of `GAP_TOL`."""
    Xc, yc = X - X.mean(axis=0), y - y.mean()
    a_max = alpha_max_of(Xc, yc)
    grid = np.geomspace(a_max, a_max / 100, n_alphas)
    fns = {"sk": lambda: lasso_path(Xc, yc, alphas=grid, tol=GAP_TOL, max_iter=1_000_000),
           "ndgm": lambda: l1_path(Xc, yc, alphas=grid, tol=GAP_TOL, max_iter=1_000_000, device=device, batched=batched)}
    t = interleaved_medians(fns, repeats)
    (_, c_sk, _), (_, c_nd, gaps) = fns["sk"](), fns["ndgm"]()
    rel = max((intercept_objective(Xc, yc, c_nd[:, k], 0.0, a) - intercept_objective(Xc, yc, c_sk[:, k], 0.0, a))
              / intercept_objective(Xc, yc, c_sk[:, k], 0.0, a) for k, a in enumerate(grid))
    ratio = t["ndgm"] / t["sk"]
    print(f"[{label}] {n_alphas} alphas: lasso_path {1e3 * t['sk']:.1f} ms, l1_path {1e3 * t['ndgm']:.1f} ms -> "
          f"{ratio:.2f}x{'' if target is None else f' (target <= {target:g}x)'}; worst rel. obj. vs lasso_path "
          f"{rel:.1e}, max gap {float(np.max(gaps)):.1e}, differing zeros {int(((c_nd == 0) != (c_sk == 0)).sum())}")
    return ratio


def estimator_benchmark(scale: float, repeats: int) -> dict:
    """Sections 3-7 (see the module); the worst ratio of each."""
    out = {}
    Xd, yd = load_diabetes(return_X_y=True)
    with threadpool_limits(limits=1):
        out["diabetes"] = compare_estimators("diabetes", Xd, yd, (0.1, 0.01), repeats, None)
        X, y = dense_regression(scale)
        out["dense"] = compare_estimators(f"dense {X.shape[0]}x{X.shape[1]}", X, y, (0.1, 0.01), repeats, 2.0)
        Xs, ys = sparse_regression(scale)
        out["sparse"] = compare_estimators(f"sparse {Xs.shape[0]}x{Xs.shape[1]} density {Xs.nnz / np.prod(Xs.shape):.4f}",
                                           Xs, ys, (0.1, 0.01), repeats, 3.0)
        out["path"] = compare_paths(f"path {X.shape[0]}x{X.shape[1]}", X, y, 10, repeats, 2.0)
    if torch.cuda.is_available():
        out["gpu dense"] = compare_estimators("gpu dense", X, y, (0.1, 0.01), repeats, None, device="cuda")
        out["gpu path64"] = compare_paths("gpu batched path", X, y, 64, repeats, None, device="cuda", batched=True)
    else:
        print("[gpu] no CUDA device: GPU rows not run")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iterations", type=int, default=2000)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (sklearn's CD is single-threaded)")
    ap.add_argument("--only", choices=("grid", "fista", "estimator"), action="append",
                    help="run only these sections (repeatable; default all)")
    ap.add_argument("--scale", type=float, default=1.0, help="size factor of the issue-14 problems (1 = as specified)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    only = set(args.only or ("grid", "fista", "estimator"))
    summary = []
    if "grid" in only:
        summary.append(f"batched-grid speed-up {grid_benchmark(args.iterations, 2):.1f}x (target >= 10x)")
    if "fista" in only:
        summary.append(f"FISTA / sklearn time, worst alpha {fista_benchmark(args.repeats):.2f}x (target <= 3x)")
    if "estimator" in only:
        ratios = estimator_benchmark(args.scale, max(1, min(args.repeats, 5)))
        targets = {"dense": 2.0, "sparse": 3.0, "path": 2.0}
        summary += [f"{k} {v:.2f}x" + (f" (target <= {targets[k]:g}x)" if k in targets else "") for k, v in ratios.items()]
    print("\nSUMMARY " + "; ".join(summary))


if __name__ == "__main__":
    main()
