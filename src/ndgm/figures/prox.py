"""Figure of the soft-thresholding experiment (``prox-relu``), rebuilt from stored arrays."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from . import figure
from .common import plt, save


@figure("prox_relu.png")
def plot_prox_relu(arrays: dict, summary: dict, config: dict, path: Path) -> Path:
    """Objective along the reference search; ReLU vs GELU gaps per seed; |theta| after ISTA and NDGM."""
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.6))
    ax = axes[0]
    colours = {"relu": "tab:blue", "softplus": "tab:green", "gelu": "tab:orange"}
    for act, style in zip(summary["activations"], ("-", "--", ":")):
        P = np.asarray(arrays[f"{act}_objective_path"])  # (halvings + 1, seeds)
        stages = np.arange(P.shape[0])
        for s in range(P.shape[1]):
            ax.semilogy(stages, P[:, s], style, lw=0.8, color=colours[act], label=act if s == 0 else None)
        ax.axhline(summary[act]["best_found"], color=colours[act], ls="-.", lw=1)
    ax.set(title="Objective F: ISTA's end point (stage 0), then the step halved at each stage\n"
                 "(dash-dot: best found over all seeds)", xlabel="stage (step eta / 2^stage)", ylabel="F (log)")
    ax.legend(fontsize=8)
    ax = axes[1]
    r = np.asarray(summary["relu"]["gap_to_best"])
    everything = [r]
    for act in summary["activations"][1:]:
        g = np.asarray(summary[act]["gap_to_best"])
        everything.append(g)
        ax.loglog(g, r, "o", ms=5, color=colours[act], label=f"x: {act}")
    lo = max(min(v.min() for v in everything) / 2, 1e-4)
    hi = max(v.max() for v in everything) * 2
    ax.plot([lo, hi], [lo, hi], "k--", lw=1, label="equal gaps")
    ax.set(title="Relative gap to the best found, per initialisation", xlabel="smooth twin", ylabel="ReLU")
    ax.legend(fontsize=8)
    ax = axes[2]
    floor = 1e-12
    bins = np.logspace(-12, 1, 40)
    for name, theta in (("ISTA", arrays["relu_theta_ista"]), ("NDGM", arrays["relu_theta_ndgm"])):
        a = np.abs(np.asarray(theta)).ravel()
        zeros = int((a == 0).sum())
        ax.hist(np.where(a == 0, floor, a), bins=bins, histtype="step", lw=1.3,
                label=f"{name}: {zeros} of {a.size} exactly 0 (drawn at 1e-12)")
    ax.set_xscale("log")
    ax.set(title="|theta| at the end, ReLU network, all seeds", xlabel="|theta_j| (log)", ylabel="parameters")
    ax.legend(fontsize=8)
    fig.suptitle(f"Soft thresholding on a 2-{config['hidden']}-1 network, lam = {summary['lam']:g}, "
                 f"eta = {summary['lr']:g}, {summary['iterations']} steps, {summary['seeds']} seeds")
    return save(fig, path)
