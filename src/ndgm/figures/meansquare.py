"""Figure of the Wu-Ma-E experiment (``wu-ma-e``), rebuilt from stored arrays."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from . import figure
from .common import plt, save


@figure("wu_ma_e.png")
def plot_wu_ma_e(arrays: dict, summary: dict, config: dict, path: Path) -> Path:
    """Both criteria against eta, the window between them, and where every SGD run ended."""
    etas = np.asarray(arrays["etas"])
    top, lyap, se = (np.asarray(arrays[k]) for k in ("sgd_top", "lyapunov", "lyapunov_stderr"))
    out = np.asarray(arrays["sgd_outcome"])
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.6))
    window = (top > 1) & (lyap + 3 * se < 0)
    for ax in axes[:2]:
        for e in etas[window]:
            ax.axvspan(e * 0.98, e * 1.02, color="tab:green", alpha=0.15, lw=0)
        ax.axvline(summary["gd_threshold"], color="gray", ls=":", lw=1)
    ax = axes[0]
    ax.semilogy(etas, top, "o-", label="Wu-Ma-E: top eigenvalue of E[(I - eta H_i)^2]")
    ax.axhline(1, color="tab:blue", ls="--", lw=1)
    ax2 = ax.twinx()
    ax2.errorbar(etas, lyap, yerr=3 * se, fmt="s-", color="tab:red", ms=4, label="Lyapunov exponent lambda (+-3 se)")
    ax2.axhline(0, color="tab:red", ls="--", lw=1)
    ax.set(title="Mean-square criterion vs Lyapunov exponent\n(green: mean-square unstable, lambda < 0; dotted: 2/a)",
           xlabel="step size eta", ylabel="mean-square top eigenvalue (log)")
    ax2.set_ylabel("lambda", color="tab:red")
    lines = ax.get_legend_handles_labels()
    lines2 = ax2.get_legend_handles_labels()
    ax.legend(lines[0] + lines2[0], lines[1] + lines2[1], fontsize=7, loc="upper left")
    ax = axes[1]
    R = out.shape[1]
    conv, esc = (out == -1).mean(1), (out == 1).mean(1)
    ax.plot(etas, conv, "o-", color="tab:blue", label="converged (distance / 100)")
    ax.plot(etas, esc, "s-", color="tab:red", label="escaped (distance x 100)")
    ax.set(title=f"SGD runs from the minimum + {config['delta']:g} ({R} per step size)", xlabel="step size eta",
           ylabel="fraction of runs", ylim=(-0.05, 1.05))
    ax.legend(fontsize=8)
    ax = axes[2]
    dist = np.asarray(arrays["final_distance"])
    rng = np.random.default_rng(0)
    for k, e in enumerate(etas):
        # exact arrivals (distance 0.0) drawn at 1e-30, divergence (inf, nan) at 1e30
        ratio = np.clip(np.nan_to_num(dist[k] / config["delta"], nan=1e30, posinf=1e30), 1e-30, 1e30)
        ax.semilogy(np.full(R, k) + rng.uniform(-0.25, 0.25, R), ratio, ".", ms=3,
                    color="tab:green" if window[k] else ("tab:blue" if top[k] <= 1 else "tab:red"))
    ax.axhline(100, color="gray", ls="--", lw=1)
    ax.axhline(0.01, color="gray", ls="--", lw=1)
    ax.set_xticks(range(len(etas)), [f"{e:.3g}" for e in etas], rotation=45, fontsize=8)
    ax.set(title=f"Final distance / initial after {summary['iterations']} steps\n(clipped to [1e-30, 1e30])",
           xlabel="step size eta", ylabel="ratio (log)", ylim=(1e-32, 1e32))
    fig.suptitle(f"Teacher-student tanh network ({summary['dim']} parameters, n = {summary['n']}) at its interpolating "
                 f"minimum: a = {summary['sharpness']:.4g}, s = {summary['nonuniformity']:.4g}")
    return save(fig, path)
