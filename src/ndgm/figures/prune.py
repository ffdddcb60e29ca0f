"""Figures of the prune experiment, rebuilt from stored arrays and summary.

* `plot_prune`: three panels -- exact-zero fraction against validation accuracy for every run (each
  arm's lam grid, the matched-accuracy lam circled), the fraction of channels `compact` removes, and the
  measured inference speed-up of the compacted model, per arm at its matched lam (one dot per seed).
* `write_prune_table`: ``prune_table.md``, the summary's table.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from . import figure
from .common import plt, save


@figure("prune.png")
def plot_prune(arrays: dict, summary: dict, config: dict, path: Path) -> Path:
    arms, matched = summary["arms"], summary["matched"]
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.4))
    ax = axes[0]
    for ai, arm in enumerate(arms):
        c = colors[ai % len(colors)]
        lams = list(summary["runs"][arm])
        for li, lam in enumerate(lams):
            acc = np.asarray(arrays["val_acc"][ai, li])
            zero = np.asarray(arrays["zero_frac"][ai, li])
            ax.scatter(100 * acc, 100 * zero, s=18 + 14 * li, color=c, alpha=0.75,
                       label=arm if li == 0 else None)
            if lam == matched[arm]["lam"]:
                ax.scatter(100 * acc, 100 * zero, s=110, facecolors="none", edgecolors=c, lw=1.2)
    for b, v in summary["dense_val_acc"].items():
        ax.axvline(100 * np.mean(v), color="grey", ls=":", lw=1)
        ax.text(100 * np.mean(v), ax.get_ylim()[1] * 0.97 if ax.get_ylim()[1] > 0 else 1, f" {b} dense",
                fontsize=7, color="grey", va="top")
    ax.set(xlabel="validation accuracy (%)", ylabel="penalised weights exactly 0 (%)",
           title="exact zeros vs accuracy (marker size: lam; circled: matched)")
    ax.legend(fontsize=7)
    x = np.arange(len(arms))
    for ax, key, label, title in ((axes[1], "channels_removed", "channels removed by compact (%)",
                                   "structured sparsity at matched accuracy"),
                                  (axes[2], "speedup", "inference speed-up (dense / compacted)",
                                   "measured speed-up at matched accuracy")):
        for ai, arm in enumerate(arms):
            li = list(summary["runs"][arm]).index(matched[arm]["lam"])
            v = np.asarray(arrays[key][ai, li]) * (100 if key == "channels_removed" else 1)
            ax.scatter(np.full(v.shape, ai), v, color=colors[ai % len(colors)], zorder=3)
            ax.plot([ai - 0.25, ai + 0.25], [np.nanmean(v)] * 2, color="k", lw=1.5)
        if key == "speedup":
            ax.axhline(1.0, color="grey", ls=":", lw=1)
        ax.set_xticks(x, arms, rotation=30, ha="right", fontsize=8)
        ax.set(ylabel=label, title=title)
    fig.suptitle(f"Small VGG ({config.get('arch')}, width {config.get('width')}) on {summary.get('data')} "
                 f"({summary.get('n_train')} training images), {len(summary['seeds'])} paired seeds")
    return save(fig, path)


@figure("prune_table.md")
def write_prune_table(arrays: dict, summary: dict, config: dict, path: Path) -> Path:
    from .tables import prune_markdown

    Path(path).write_text(prune_markdown(summary) + "\n")
    return Path(path)
