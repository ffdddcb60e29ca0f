"""Speed of the L1-paradox tools (issue 3). Prints ratios measured in the same run; not a test.

1. The 64-point penalty grid of ``lasso-general`` (n = 100, d = 20, eta = 1e-3) as ONE batched
   ``run_trajectory`` against 64 sequential plain PyTorch loops (autograd + ``torch.optim.SGD``,
   one per penalty). Target: >= 10x.
2. FISTA (backtracking + restart) on the standardised diabetes data against scikit-learn's
   coordinate descent, both to the same objective (relative difference <= 1e-10). Target:
   FISTA within 3x of scikit-learn's time.

Run: ``python benchmarks/bench_lasso.py [--iterations 2000] [--threads 1]``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from sklearn.linear_model import Lasso as SkLasso

from ndgm.data.tabular import load_diabetes_standardised
from ndgm.dynamics import GD, run_trajectory
from ndgm.experiments.lasso_general import uniform_lasso_data
from ndgm.problems import Lasso
from ndgm.sparse.solvers import fista, lasso_objective


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


def fista_benchmark(repeats: int) -> float:
    X, y = load_diabetes_standardised()
    Xn, yn = X.numpy(), y.numpy()
    ratios = []
    for alpha in (0.01, 0.05, 0.2):
        t_sk, sk = best_of(lambda: SkLasso(alpha=alpha, fit_intercept=False, tol=1e-10, max_iter=100000).fit(Xn, yn), repeats)
        t_fi, res = best_of(lambda: fista(X, y, alpha, tol=1e-9), repeats)
        f_sk, f_fi = lasso_objective(Xn, yn, sk.coef_, alpha), lasso_objective(Xn, yn, res.coef[0], alpha)
        assert abs(f_fi - f_sk) <= 1e-10 * f_sk, (f_fi, f_sk)
        ratios.append(t_fi / t_sk)
        print(f"[fista] alpha={alpha:g}: sklearn CD {1e3 * t_sk:.2f} ms ({sk.n_iter_} epochs), FISTA {1e3 * t_fi:.2f} ms "
              f"({int(res.n_iter[0])} iterations) -> FISTA/sklearn = {t_fi / t_sk:.2f}x (target <= 3x); "
              f"rel. objective difference {(f_fi - f_sk) / f_sk:.1e}")
    t_sk3, _ = best_of(lambda: [SkLasso(alpha=a, fit_intercept=False, tol=1e-10, max_iter=100000).fit(Xn, yn)
                                for a in (0.01, 0.05, 0.2)], repeats)
    t_fi3, _ = best_of(lambda: fista(X, y, [0.01, 0.05, 0.2], tol=1e-9), repeats)
    print(f"[fista] three alphas: 3 sklearn fits {1e3 * t_sk3:.2f} ms, one batched FISTA {1e3 * t_fi3:.2f} ms "
          f"-> {t_fi3 / t_sk3:.2f}x")
    return max(ratios)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iterations", type=int, default=2000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (sklearn's CD is single-threaded)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    r1 = grid_benchmark(args.iterations, max(1, args.repeats // 2))
    r2 = fista_benchmark(args.repeats)
    print(f"\nSUMMARY batched-grid speed-up {r1:.1f}x (target >= 10x); FISTA / sklearn time, worst alpha {r2:.2f}x (target <= 3x)")


if __name__ == "__main__":
    main()
