"""Speed of the L1-paradox tools (issue 3). Prints ratios measured in the same run; not a test.

1. The 64-point penalty grid of ``lasso-general`` (n = 100, d = 20, eta = 1e-3) as ONE batched
   ``run_trajectory`` against 64 sequential plain PyTorch loops (autograd + ``torch.optim.SGD``,
   one per penalty). Target: >= 10x.
2. FISTA (backtracking + restart) on the standardised diabetes data against scikit-learn's
   coordinate descent, both to the same objective (within 1e-10 relative of the best objective
   either finds, same exact zeros); see `fista_benchmark` for how the tolerances are matched.
   Target: FISTA within 3x of scikit-learn's time. Also printed: both at tol 1e-10.

Run: ``python benchmarks/bench_lasso.py [--iterations 2000] [--repeats 15] [--threads 1]``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from sklearn.linear_model import Lasso as SkLasso
from threadpoolctl import threadpool_limits

from ndgm.data.tabular import load_diabetes_standardised
from ndgm.dynamics import GD, run_trajectory
from ndgm.experiments.lasso_general import uniform_lasso_data
from ndgm.problems import Lasso
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iterations", type=int, default=2000)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (sklearn's CD is single-threaded)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    r1 = grid_benchmark(args.iterations, 2)
    r2 = fista_benchmark(args.repeats)
    print(f"\nSUMMARY batched-grid speed-up {r1:.1f}x (target >= 10x); FISTA / sklearn time, worst alpha {r2:.2f}x (target <= 3x)")


if __name__ == "__main__":
    main()
