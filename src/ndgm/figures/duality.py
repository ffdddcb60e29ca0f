"""Figure of the duality experiment (``lasso-duality``), rebuilt from stored arrays."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from . import figure
from .common import plt, save


@figure("lasso_duality.png")
def plot_lasso_duality(arrays: dict, summary: dict, config: dict, path: Path) -> Path:
    """Dual functions flat in the multiplier (eq. 12 and the toy) next to the compact max-crossing box."""
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.6))
    ax = axes[0]
    lam1s, lam2s = np.asarray(arrays["lam1s"]), np.asarray(arrays["lam2s"])
    g = np.asarray(arrays["dual_grid"])
    yy = summary["y_norm_sq"]
    for j, l2 in enumerate(lam2s):
        ax.plot(lam1s, g[:, j], "o-", ms=4, lw=1, label=f"lam2 = {l2:g}")
    ax.axhline(summary["primal_numeric"], color="k", ls="--", lw=1, label="p* (constrained primal)")
    ax.set_xscale("symlog", linthresh=1e-3)
    ax.set_xlim(left=0)
    ax.set_ylim(0.5 * yy, 1.5 * yy)
    ax.set(title=f"Eq. (12): g(lam1, lam2) = ||y||^2 = {yy:.6g} for every multiplier\n"
                 f"max |g - ||y||^2| / ||y||^2 = {summary['dual_max_rel_error']:.2g}",
           xlabel="lam1 (symlog)", ylabel="dual function g")
    ax.legend(fontsize=8)
    ax = axes[1]
    mus = np.asarray(arrays["toy_mus"])
    ax.plot(mus, arrays["toy_dual"], "o-", label="g(mu) = inf_w mu ||w||_1 (LP)")
    ax.axhline(summary["toy_primal"], color="k", ls="--", lw=1, label="p* = 0")
    ax.set_xscale("symlog", linthresh=1e-2)
    ax.set_xlim(left=0)
    ax.set_ylim(-1, 1)
    ax.set(title="Toy LASSO read as a Lagrangian: g(mu) = 0 for every mu", xlabel="mu (symlog)", ylabel="g(mu)")
    ax.legend(fontsize=8)
    ax = axes[2]
    mu = np.asarray(arrays["mc_mu"])
    ok = np.asarray(arrays["mc_bounded"], dtype=bool)
    lam = config["toy_lam"]
    ax.plot(mu[ok, 0], mu[ok, 1], "o", ms=3, color="tab:green", label="q(mu) = 0 (LP optimal)")
    ax.plot(mu[~ok, 0], mu[~ok, 1], "x", ms=3, color="tab:red", label="q(mu) = -inf (LP unbounded)")
    ax.plot([-lam, lam, lam, -lam, -lam], [-lam, -lam, lam, lam, -lam], "k-", lw=1, label="||mu||_inf = lam")
    ax.set_aspect("equal")
    extra = "" if mu.shape[1] == 2 else f" (first 2 of {mu.shape[1]} coordinates)"
    ax.set(title=f"Max crossing of lam||w||_1: a compact box{extra}", xlabel="mu_1", ylabel="mu_2")
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=3)
    fig.suptitle("Strong duality (appendix A.3): flat dual functions when the constraints admit only w = 0")
    return save(fig, path)
