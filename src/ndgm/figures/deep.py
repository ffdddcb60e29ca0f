"""Figures and tables of the deep-network experiments, rebuilt from stored arrays.

* `plot_activation_curves`: paper Fig. 2 -- one panel per (BatchNorm, depth), one line per
  activation, a loss against epochs (``activations_train_loss.png``, ``activations_val_loss.png``).
* `plot_activation_gaps`: the ReLU - GELU gap (mean over epochs) against depth, BN off/on.
* `plot_l1_deep`: paper Fig. 3 -- L1 norm of the weights per epoch, one panel per optimizer,
  one line per (lam, seed); plus the percent of small and of exactly-zero parameters.
* `write_table2`: ``table2.md``, paper Table 2's layout (`ndgm.figures.tables.table2_markdown`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from . import figure
from .common import plt, save
from .tables import table2_markdown

NICE = {"relu": "ReLU", "gelu": "GELU"}
LABELS = {"train_loss": "mean train loss", "val_loss": "validation loss", "val_acc": "validation accuracy"}


def plot_activation_curves(arrays: dict, summary: dict, key: str, path: Path) -> Path:
    """Loss ``key`` (``train_loss`` / ``val_loss``) against epoch, panels (BN, depth), lines = activations."""
    y = np.asarray(arrays[key])  # (n_bn, n_depth, n_act, epochs)
    depths, acts, bns = summary["depths"], summary["activations"], summary["batch_norm"]
    nb, nd = len(bns), len(depths)
    fig, axes = plt.subplots(nb, nd, figsize=(3.6 * nd + 0.6, 3.1 * nb + 0.6), squeeze=False, sharey="row")
    epochs = np.arange(1, y.shape[-1] + 1)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, bn in enumerate(bns):
        for j, d in enumerate(depths):
            ax = axes[i, j]
            for k, a in enumerate(acts):
                ax.plot(epochs, y[i, j, k], "o-", ms=3, color=colors[k % len(colors)], label=NICE.get(a, a))
            ax.set_title(f"{d.upper()} {'with' if bn else 'without'} BatchNorm", fontsize=10)
            ax.set_xlabel("epoch")
            if j == 0:
                ax.set_ylabel(LABELS.get(key, key))
            ax.grid(alpha=0.3)
    axes[0, -1].legend(fontsize=8, title="activation", title_fontsize=8)
    fig.suptitle(f"{LABELS.get(key, key).capitalize()} per epoch on {summary.get('data', '?')} "
                 f"({summary.get('n_train', '?')} training images), Adam, same seed per model")
    return save(fig, path)


@figure("activations_train_loss.png")
def plot_activation_train_loss(arrays: dict, summary: dict, config: dict, path: Path) -> Path:
    """Paper Fig. 2: the train loss per epoch."""
    return plot_activation_curves(arrays, summary, "train_loss", path)


@figure("activations_val_loss.png")
def plot_activation_val_loss(arrays: dict, summary: dict, config: dict, path: Path) -> Path:
    """The validation loss per epoch, laid out as Fig. 2."""
    return plot_activation_curves(arrays, summary, "val_loss", path)


@figure("activations_gap.png")
def plot_activation_gaps(arrays: dict, summary: dict, config: dict, path: Path) -> Path | None:
    """ReLU - GELU train-loss gap (mean over epochs) and epochs to target against depth
    (None when the run did not train both ReLU and GELU)."""
    if "gap_nobn" not in summary and "gap_bn" not in summary:
        return None
    target = summary.get("target_loss", config.get("target_loss"))
    depths = summary["depths"]
    x = np.arange(len(depths))
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    ax = axes[0]
    for sfx, label, c in (("nobn", "without BatchNorm", "tab:red"), ("bn", "with BatchNorm", "tab:blue")):
        if f"gap_{sfx}" in summary:
            ax.plot(x, summary[f"gap_{sfx}"], "o-", color=c, label=label)
    ax.axhline(0, color="k", lw=0.8)
    ax.set(xticks=x, xticklabels=[d.upper() for d in depths], xlabel="depth",
           ylabel="mean over epochs of loss(ReLU) - loss(GELU)", title="GELU's lead over ReLU (> 0: GELU ahead)")
    ax.legend(fontsize=8)
    ax = axes[1]
    w = 0.2
    for n, (sfx, act, c) in enumerate((("nobn", "relu", "tab:red"), ("nobn", "gelu", "salmon"),
                                       ("bn", "relu", "tab:blue"), ("bn", "gelu", "lightblue"))):
        key = f"epochs_{act}_{sfx}"
        if key in summary:
            ax.bar(x + (n - 1.5) * w, summary[key], w, color=c,
                   label=f"{NICE.get(act, act)} {'with' if sfx == 'bn' else 'without'} BN")
    E = config.get("epochs")
    if E:
        ax.axhline(E + 1, color="k", ls="--", lw=0.8, label=f"not reached in {E} epochs")
        ax.set_ylim(0, (E + 1) * 1.45)  # room for the legend above the censoring line
    ax.set(xticks=x, xticklabels=[d.upper() for d in depths], xlabel="depth", ylabel="epochs",
           title=f"Epochs to reach train loss {target:.3g}")
    ax.legend(fontsize=7, ncol=2)
    return save(fig, path)


@figure("table2.md")
def write_table2(arrays: dict, summary: dict, config: dict, path: Path) -> Path:
    """Paper Table 2's layout for the small and for the exactly-zero parameters (Markdown)."""
    path = Path(path)
    path.write_text("# Table 2 layout\n\n" + table2_markdown(summary, np.asarray(arrays["small_pct"])) + "\n\n"
                    + table2_markdown(summary, np.asarray(arrays["zero_pct"]), "percent of parameters exactly 0.0")
                    + "\n")
    return path


@figure("l1_deep.png")
def plot_l1_deep(arrays: dict, summary: dict, config: dict, path: Path) -> Path:
    """Paper Fig. 3: L1 norm per epoch per optimizer; bottom row: % small and % exactly zero."""
    l1 = np.asarray(arrays["l1"])  # (n_opt, n_lam, n_seed, epochs)
    small, zeros, acc = (np.asarray(arrays[k]) for k in ("small_pct", "zero_pct", "final_val_acc"))
    opts, lams, seeds = summary["optimizers"], summary["lams"], summary["seeds"]
    no = len(opts)
    fig = plt.figure(figsize=(3.3 * no + 0.5, 7.2))
    gs = fig.add_gridspec(2, no)
    epochs = np.arange(1, l1.shape[-1] + 1)
    colors = {li: c for li, c in zip(range(len(lams)), ("tab:red", "tab:blue", "tab:green", "tab:purple"))}
    for oi, o in enumerate(opts):
        ax = fig.add_subplot(gs[0, oi])
        for li, lam in enumerate(lams):
            for si, seed in enumerate(seeds):
                curve = l1[oi, li, si].copy()
                label = f"lam={lam:g}, seed {seed}"
                if (curve <= 0).any():  # a log axis cannot show 0: say when every weight became 0
                    label += f" (0 from epoch {int(np.argmax(curve <= 0)) + 1})"
                    curve[curve <= 0] = np.nan
                ax.plot(epochs, curve, "o-" if si == 0 else "s--", ms=3, color=colors.get(li, "k"), label=label)
        ax.set_yscale("log")
        ax.set(title=o, xlabel="epoch")
        if oi == 0:
            ax.set_ylabel("||theta||_1 after the epoch")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6)
    bottom = gs[1, :].subgridspec(1, 2)
    x = np.arange(no)
    w = 0.8 / max(len(lams), 1)
    panels = ((small, "% of parameters", "|theta| < 1e-5 (Table 2), mean over seeds"),
              (zeros, "% of parameters", "exactly 0.0, mean over seeds"))
    for col, (vals, ylabel, title) in enumerate(panels):
        ax = fig.add_subplot(bottom[0, col])
        for li, lam in enumerate(lams):
            ax.bar(x + (li - (len(lams) - 1) / 2) * w, vals[:, li].mean(axis=1), w, color=colors.get(li, "k"),
                   label=f"lam={lam:g}")
        for oi in range(no):
            for li in range(len(lams)):
                ax.text(x[oi] + (li - (len(lams) - 1) / 2) * w, vals[oi, li].mean(), f"{vals[oi, li].mean():.3g}",
                        ha="center", va="bottom", fontsize=7)
        ax.set(xticks=x, xticklabels=opts, ylabel=ylabel, title=title)
        ax.legend(fontsize=7)
    fig.suptitle(f"L1-penalised training, lr {summary.get('lr', '?')}: final val. accuracy "
                 + ", ".join(f"{o} {np.nanmean(acc[oi]):.2f}" for oi, o in enumerate(opts)), fontsize=10)
    return save(fig, path)
