"""Figure of the soft-thresholding experiment (``prox-relu``), rebuilt from stored arrays."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from . import figure
from .common import plt, save

COLOURS = {"relu": "tab:blue", "softplus": "tab:green", "gelu": "tab:orange"}


@figure("prox_relu.png")
def plot_prox_relu(arrays: dict, summary: dict, config: dict, path: Path) -> Path:
    """ISTA's stationarity residual and objective along the run per network; |theta| after ISTA and NDGM."""
    it = np.asarray(arrays["checkpoints"])
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.6))
    for ax, key, title in ((axes[0], "residual_history", "Stationarity residual ||theta - S(theta - eta g)|| / eta\n"
                            "(median over seeds, band: min to max)"),
                           (axes[1], "objective_history", "Objective F along the constant-step run\n"
                            "(dash-dot: best found after the step halvings)")):
        for act in summary["activations"]:
            V = np.asarray(arrays[f"{act}_{key}"])[1:]  # the start has no step behind it
            V = np.where(np.isfinite(V), V, np.nan)  # a diverged seed leaves the band where it diverged
            ax.semilogy(it[1:], np.nanmedian(V, 1), "-", color=COLOURS[act], label=act)
            ax.fill_between(it[1:], np.nanmin(V, 1), np.nanmax(V, 1), color=COLOURS[act], alpha=0.15, lw=0)
            if key == "objective_history" and np.isfinite(summary[act]["best_found"]):
                ax.axhline(summary[act]["best_found"], color=COLOURS[act], ls="-.", lw=1)
        ax.set(title=title, xlabel="ISTA step", ylabel=key.split("_")[0] + " (log)")
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
