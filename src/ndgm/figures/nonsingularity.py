"""Figures of the nonsingularity experiment (GD map of real networks; saddle avoidance).

* `plot_path`: the exceptional step sizes ``1/lambda_i`` (``lambda_i > 0``) along a straight path
  between two parameter points, one panel per activation.
* `plot_logdet`: histograms of ``log|det(I - eta H)|`` at random ``eta`` (GD and SGD maps), of
  the distance from numerical singularity ``log10(sigma_min / tol)``, and the log-determinants of
  the composed T-step maps.
* `plot_saddle`: distance from the network's strict saddle along GD (random ``eta`` and
  ``eta* = 1/lambda_max(H(saddle))``), and the escape fractions with their intervals next to the
  quartic's.
* `write_table`: ``nonsingularity.md``, one line per (architecture, activation, loss).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from . import figure
from .common import plt, save
from .nonsingularity_table import nonsingularity_markdown

NICE = {"relu": "ReLU", "leaky_relu": "leaky ReLU", "sigmoid": "sigmoid", "gelu": "GELU", "tanh": "tanh"}


@figure("nonsingularity_path.png")
def plot_path(arrays: dict, summary: dict, config: dict, path: Path) -> Path:
    """``1/lambda_i`` against the path parameter, log scale, within ``[eta_min, eta_max]``."""
    acts = [a for a in config["activations"] if f"path_eigs_{a}" in arrays]
    s = np.asarray(arrays["path_s"])
    info = summary["path"]
    fig, axes = plt.subplots(1, len(acts), figsize=(3.4 * len(acts) + 0.6, 3.6), squeeze=False, sharey=True)
    lo, hi = config["eta_min"], config["eta_max"]
    for ax, act in zip(axes[0], acts):
        lam = np.asarray(arrays[f"path_eigs_{act}"])  # (P, d), ascending per point
        with np.errstate(divide="ignore", invalid="ignore"):
            steps = np.where(lam >= 1.0 / hi, 1.0 / lam, np.nan)
        ax.plot(s, steps, color="tab:blue", lw=0.6, alpha=0.7)
        ax.set_yscale("log")
        shown = steps[np.isfinite(steps)]
        ax.set_ylim(max(lo, 0.5 * shown.min()) if shown.size else lo, hi)
        ax.set_xlabel("path  (1 - s) theta_a + s theta_b")
        changes = info[act]["pattern_changes"]
        ax.set_title(f"{NICE.get(act, act)}" + (f" ({changes} pattern changes)" if act in ("relu", "leaky_relu")
                                               else ""), fontsize=10)
    axes[0, 0].set_ylabel("exceptional step size 1/lambda_i")
    fig.suptitle(f"{info['arch']}, {info['loss']} loss: exceptional step sizes move along the path", fontsize=11)
    return save(fig, path)


@figure("nonsingularity_logdet.png")
def plot_logdet(arrays: dict, summary: dict, config: dict, path: Path) -> Path:
    """Histograms: log|det(I - eta H)| at random eta; log10(sigma_min / tol); T-step compositions."""
    gd = np.asarray(arrays["logdet_gd"]).ravel()
    sgd = np.asarray(arrays["logdet_sgd"]).ravel()
    mg = np.log10(np.asarray(arrays["margin_gd"]).ravel())
    ms = np.log10(np.asarray(arrays["margin_sgd"]).ravel())
    comp = np.asarray(arrays["comp_logdet"])  # (C, 2, K)
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    ax = axes[0]
    bins = np.linspace(min(gd.min(), sgd.min()), max(gd.max(), sgd.max()), 50)
    ax.hist(gd, bins=bins, alpha=0.6, label=f"GD maps ({gd.size})")
    ax.hist(sgd, bins=bins, alpha=0.6, label=f"SGD maps ({sgd.size})")
    ax.set_xlabel("log |det(I - eta H)| at random eta")
    ax.set_ylabel("pairs (point, eta)")
    ax.legend(fontsize=8)
    ax = axes[1]
    bins = np.linspace(min(0.0, mg.min(), ms.min()), max(mg.max(), ms.max()), 50)
    ax.hist(mg, bins=bins, alpha=0.6, label="GD")
    ax.hist(ms, bins=bins, alpha=0.6, label="SGD")
    ax.axvline(0.0, color="k", ls="--", lw=1)
    ax.text(0.0, ax.get_ylim()[1] * 0.9, " numerically\n singular", fontsize=8, va="top")
    ax.set_xlabel("log10( sigma_min(I - eta H) / (d eps sigma_max) )")
    ax.legend(fontsize=8)
    ax = axes[2]
    configs = summary["configs"]
    x = np.arange(len(configs))
    ax.plot(x, comp[:, 0, :], "o", ms=3, color="tab:blue")
    ax.plot(x, comp[:, 1, :], "s", ms=3, color="tab:orange")
    ax.plot([], [], "o", color="tab:blue", label="GD")
    ax.plot([], [], "s", color="tab:orange", label="SGD")
    ax.set_xticks(x, ["/".join(c) for c in configs], rotation=90, fontsize=6)
    ax.set_ylabel(f"sum_t log|det(I - eta H_t)|, T = {config['steps']}")
    ax.set_title("composed maps (one point per trajectory)", fontsize=10)
    ax.legend(fontsize=8)
    return save(fig, path)


@figure("nonsingularity_saddle.png")
def plot_saddle(arrays: dict, summary: dict, config: dict, path: Path) -> Path:
    """Distance from the saddle along GD (median, 10-90% band); escape fractions with 95% intervals."""
    sd = summary["saddle"]
    steps = np.asarray(arrays["saddle_record_steps"])
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    ax = axes[0]
    for arm, color, label in (("random", "tab:blue", "random eta"),
                              ("singular", "tab:red", f"eta* = 1/lambda_max = {sd['eta_star']:.3g}")):
        dist = np.asarray(arrays[f"saddle_dist_{arm}"])
        ax.plot(steps, np.median(dist, 0), color=color, label=label)
        ax.fill_between(steps, np.quantile(dist, 0.1, 0), np.quantile(dist, 0.9, 0), color=color, alpha=0.2)
    ax.axhline(config["escape_distance"], color="grey", ls=":", lw=1, label="escaped beyond")
    ax.set_xscale("symlog", linthresh=1)
    ax.set_xlim(0, steps.max())
    ax.set_yscale("log")
    ax.set_xlabel("GD step")
    ax.set_ylabel("distance from the saddle")
    ax.set_title(f"two-layer {config['saddle_activation']} net, zero hidden layer", fontsize=10)
    ax.legend(fontsize=8)
    ax = axes[1]
    q = sd["quartic"]
    rows = [("net, random eta", sd["random"]["escaped"] / sd["random"]["starts"], sd["random"]["interval"]),
            ("net, eta* (singular\nat the saddle only)", sd["singular"]["escaped"] / sd["singular"]["starts"],
             sd["singular"]["interval"]),
            ("quartic, random eta", 1 - q["random"]["at_maximum"] / q["random"]["starts"],
             q["random"]["interval_escaped"]),
            ("quartic, eta = 1/2\n(exceptional)", 1 - q["exceptional"]["at_maximum"] / q["exceptional"]["starts"],
             q["exceptional"]["interval_escaped"])]
    y = np.arange(len(rows))
    for i, (label, est, (lo, hi)) in enumerate(rows):
        ax.errorbar(est, i, xerr=[[est - lo], [hi - est]], fmt="o", color="tab:red" if "1/2" in label else "tab:blue",
                    capsize=4)
    ax.set_yticks(y, [r[0] for r in rows], fontsize=8)
    ax.set_xlim(-0.05, 1.05)
    ax.set_xlabel("fraction of starts that escape (95% Clopper-Pearson)")
    ax.invert_yaxis()
    return save(fig, path)


@figure("nonsingularity.md")
def write_table(arrays: dict, summary: dict, config: dict, path: Path) -> Path:
    """One line per (architecture, activation, loss) (Markdown)."""
    path = Path(path)
    path.write_text("# Non-singularity of the GD map, per architecture, activation and loss\n\n"
                    + nonsingularity_markdown(summary["table"]) + "\n")
    return path
