"""Figures and tables of the deep-network experiments, rebuilt from stored arrays.

* `plot_activation_curves`: paper Fig. 2 -- one panel per (BatchNorm, depth), one colour per
  activation: the mean over seeds (thick) and every seed (thin), a loss against epochs
  (``activations_train_loss.png``, ``activations_val_loss.png``).
* `plot_activation_gaps`: the per-seed areas between the ReLU and GELU curves per depth,
  BN off and on, with their means and 95% bootstrap intervals; the epochs at which each
  model left the initial plateau (``activations_gap.png``).
* `plot_l1_deep`: paper Fig. 3 -- ``||theta||_1`` per epoch, one panel per (pair of lams,
  optimizer): the larger lam, the smaller with fresh state, the smaller after the larger with
  the state carried over (the paper's order), one line per seed (``l1_deep.png``).
* `plot_l1_deep_small`: Table 2's metric and the exact zeros per optimizer, lam and protocol,
  means over seeds with every seed as a dot, and validation accuracy (``l1_deep_small.png``).
* `write_table2`: ``table2.md``, paper Table 2's layout per pair and protocol.
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
    """Loss ``key`` against epoch, panels (BN, depth), colours = activations, thin lines = seeds."""
    y = np.asarray(arrays[key])  # (n_bn, n_depth, n_act, n_seed, epochs)
    depths, acts, bns = summary["depths"], summary["activations"], summary["batch_norm"]
    nb, nd = len(bns), len(depths)
    fig, axes = plt.subplots(nb, nd, figsize=(3.6 * nd + 0.6, 3.1 * nb + 0.6), squeeze=False, sharey="row")
    epochs = np.arange(1, y.shape[-1] + 1)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, bn in enumerate(bns):
        for j, d in enumerate(depths):
            ax = axes[i, j]
            for k, a in enumerate(acts):
                c = colors[k % len(colors)]
                for curve in y[i, j, k]:
                    ax.plot(epochs, curve, "-", lw=0.6, alpha=0.35, color=c)
                ax.plot(epochs, np.nanmean(y[i, j, k], axis=0), "o-", ms=3, lw=1.8, color=c, label=NICE.get(a, a))
            ax.set_title(f"{d.upper()} {'with' if bn else 'without'} BatchNorm", fontsize=10)
            ax.set_xlabel("epoch")
            if j == 0:
                ax.set_ylabel(LABELS.get(key, key))
            ax.grid(alpha=0.3)
    axes[0, -1].legend(fontsize=8, title="activation (mean; thin: seeds)", title_fontsize=7)
    fig.suptitle(f"{LABELS.get(key, key).capitalize()} per epoch on {summary.get('data', '?')} "
                 f"({summary.get('n_train', '?')} training images), Adam, {y.shape[3]} paired seeds")
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
    """Per-seed areas between the ReLU and GELU curves against depth (BN off / on), and the
    epochs at which each model left the initial plateau (None without ReLU and GELU)."""
    from ..analysis.stats import bootstrap_interval

    if not summary.get("area"):
        return None
    depths, bns = summary["depths"], summary["batch_norm"]
    x = np.arange(len(depths))
    fig, axes = plt.subplots(1, 2, figsize=(10.5, 3.9))
    ax = axes[0]
    for off, (bn, label, c) in zip((-0.12, 0.12), ((False, "without BatchNorm", "tab:red"),
                                                   (True, "with BatchNorm", "tab:blue"))):
        if bn not in bns:
            continue
        for j, d in enumerate(depths):
            v = np.asarray(summary["area"][f"{'bn' if bn else 'nobn'}/{d}"])
            ax.plot(np.full(v.size, x[j] + off), v, "o", ms=3, color=c, alpha=0.5)
            iv = bootstrap_interval(v)
            ax.errorbar(x[j] + off, iv.estimate, yerr=[[iv.estimate - iv.low], [iv.high - iv.estimate]], fmt="s",
                        color=c, capsize=4, label=label if j == 0 else None)
    m = config.get("equivalence_margin")
    if m and True in bns:
        ax.axhspan(-m, m, color="tab:blue", alpha=0.08, label=f"BN equivalence margin +-{m:g}")
    ax.axhline(0, color="k", lw=0.8)
    ax.set(xticks=x, xticklabels=[d.upper() for d in depths], xlabel="depth",
           ylabel="A = mean over epochs of loss(ReLU) - loss(GELU)",
           title="GELU's lead per seed (> 0: GELU ahead); mean, 95% interval")
    ax.legend(fontsize=7)
    ax = axes[1]
    E = config.get("epochs") or 0
    keys = [(bn, a) for bn in bns for a in ("relu", "gelu")]
    colors = {(False, "relu"): "tab:red", (False, "gelu"): "salmon", (True, "relu"): "tab:blue",
              (True, "gelu"): "lightblue"}
    w = 0.8 / len(keys)
    for n, (bn, a) in enumerate(keys):
        for j, d in enumerate(depths):
            v = np.asarray(summary["plateau_exit"][f"{'bn' if bn else 'nobn'}/{d}/{a}"])
            xs = np.full(v.size, x[j] + (n - (len(keys) - 1) / 2) * w)
            ax.plot(xs, v, "o", ms=3, color=colors[(bn, a)],
                    label=f"{NICE[a]} {'with' if bn else 'without'} BN" if j == 0 else None)
    if E:
        ax.axhline(E + 1, color="k", ls="--", lw=0.8, label=f"still on it after {E} epochs")
    ax.set(xticks=x, xticklabels=[d.upper() for d in depths], xlabel="depth", ylabel="epoch",
           title=f"Leaving the initial plateau (loss < {summary.get('plateau_loss', float('nan')):.3g}), per seed")
    ax.legend(fontsize=7, ncol=2)
    return save(fig, path)


def _tables(arrays: dict, summary: dict) -> str:
    parts = []
    for pair in summary["pair_names"]:
        for proto in summary["protocols"]:
            parts.append(table2_markdown(summary, np.asarray(arrays["small_pct"]), pair, proto))
            parts.append(table2_markdown(summary, np.asarray(arrays["zero_pct"]), pair, proto,
                                         "percent of parameters exactly 0.0"))
            parts.append(table2_markdown(summary, 100 * np.asarray(arrays["final_val_acc"]), pair, proto,
                                         "validation accuracy (percent)"))
    return "\n\n".join(parts)


@figure("table2.md")
def write_table2(arrays: dict, summary: dict, config: dict, path: Path) -> Path:
    """Paper Table 2's layout for the small and the exactly-zero parameters and the validation
    accuracy, per pair of lams and protocol (Markdown)."""
    path = Path(path)
    path.write_text("# Table 2 layout\n\n" + _tables(arrays, summary) + "\n")
    return path


ARM_STYLE = {"hi": ("tab:red", "-", "larger lam"), "lo": ("tab:blue", "-", "smaller lam, fresh state"),
             "lo_paper": ("tab:green", "--", "smaller lam after the larger, state carried (paper)")}


@figure("l1_deep.png")
def plot_l1_deep(arrays: dict, summary: dict, config: dict, path: Path) -> Path:
    """Paper Fig. 3: ``||theta||_1`` per epoch, panels (pair of lams, optimizer), one line per run and seed."""
    l1 = np.asarray(arrays["l1"])  # (pair, opt, arm, seed, epoch)
    opts, pairs, arms = summary["optimizers"], summary["pair_names"], summary["arms"]
    fig, axes = plt.subplots(len(pairs), len(opts), figsize=(3.2 * len(opts) + 0.5, 3.2 * len(pairs) + 0.6),
                             squeeze=False)
    epochs = np.arange(1, l1.shape[-1] + 1)
    for p, pair in enumerate(pairs):
        lam_hi, lam_lo = summary["pairs"][pair]
        for o, name in enumerate(opts):
            ax = axes[p, o]
            for a, arm in enumerate(arms):
                color, ls, label = ARM_STYLE[arm]
                lam = lam_hi if arm == "hi" else lam_lo
                for si in range(l1.shape[3]):
                    curve = l1[p, o, a, si].copy()
                    if not np.isfinite(curve).any():
                        continue
                    curve[curve <= 0] = np.nan  # a log axis cannot show 0
                    ax.plot(epochs, curve, ls, lw=1.0, color=color,
                            label=f"{label} ({lam:g})" if si == 0 else None)
            ax.set_yscale("log")
            ax.set_title(f"{name}, lam {lam_hi:g} / {lam_lo:g}", fontsize=9)
            ax.set_xlabel("epoch")
            if o == 0:
                ax.set_ylabel("||theta||_1 after the epoch")
            ax.grid(alpha=0.3)
            if o == 0:
                ax.legend(fontsize=6)
    fig.suptitle(f"L1-penalised training, lr {summary.get('lr', '?')}, {len(summary['seeds'])} seeds (one line each)",
                 fontsize=10)
    return save(fig, path)


@figure("l1_deep_small.png")
def plot_l1_deep_small(arrays: dict, summary: dict, config: dict, path: Path) -> Path:
    """Percent of parameters below the threshold (Table 2) and exactly 0, per optimizer and run,
    with the mean validation accuracy of each run above its bar."""
    small, zero, acc = (np.asarray(arrays[k]) for k in ("small_pct", "zero_pct", "final_val_acc"))
    opts, pairs, arms = summary["optimizers"], summary["pair_names"], summary["arms"]
    fig, axes = plt.subplots(len(pairs), 2, figsize=(12, 3.6 * len(pairs) + 0.4), squeeze=False)
    x = np.arange(len(opts))
    w = 0.8 / len(arms)
    for p, pair in enumerate(pairs):
        lam_hi, lam_lo = summary["pairs"][pair]
        for col, (vals, what) in enumerate(((small, f"|theta| < {config.get('threshold', 1e-5):g} (Table 2)"),
                                            (zero, "exactly 0.0"))):
            ax = axes[p, col]
            for a, arm in enumerate(arms):
                color, _, label = ARM_STYLE[arm]
                v = vals[p, :, a]  # (opt, seed)
                mean = np.array([np.nanmean(r) if np.isfinite(r).any() else np.nan for r in v])
                xs = x + (a - (len(arms) - 1) / 2) * w
                ax.bar(xs, np.nan_to_num(mean), w, color=color, alpha=0.7,
                       label=f"{label} ({lam_hi if arm == 'hi' else lam_lo:g})")
                for o in range(len(opts)):
                    if np.isfinite(v[o]).any():
                        ax.plot(np.full(v.shape[1], xs[o]), v[o], "k.", ms=3)
                        ax.text(xs[o], np.nanmax(v[o]), f"{np.nanmean(acc[p, o, a]):.2f}", ha="center", va="bottom",
                                fontsize=6)
            ax.set(xticks=x, xticklabels=opts, ylabel="% of parameters",
                   title=f"{what}, lam {lam_hi:g} / {lam_lo:g} (numbers: validation accuracy)")
            ax.legend(fontsize=6)
    return save(fig, path)
