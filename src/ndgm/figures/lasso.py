"""Figures of the L1-paradox experiments, each rebuilt from stored arrays and summaries."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from . import figure
from .common import is_plottable, note_if_empty, plottable, plt, save


def _diverged(summary: dict, labels) -> str:
    """``'; diverged: lam = 1 at k = 1, ...'`` for the configurations whose loss became inf/NaN."""
    at = summary.get("diverged_at") or []
    parts = [f"{lab} at k = {k}" for lab, k in zip(labels, at) if isinstance(k, int) and k >= 0]
    return ("; diverged (not drawn after): " + ", ".join(parts)) if parts else ""


@figure("lasso_toy.png")
def plot_lasso_toy(arrays: dict, summary: dict, config: dict, path: Path) -> Path:
    """Tail L1 norms against the closed-form 2-cycle levels; tail loss against d*eta*lam^2."""
    lams = np.asarray(arrays["lams"])
    l1 = np.asarray(arrays["l1"])
    T = l1.shape[0]
    tail = min(40, T)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6))
    ax = axes[0]
    it = np.arange(T - tail, T)
    W_tail = np.asarray(arrays["tail_weights"])
    for k, lam in enumerate(lams):
        line, = ax.semilogy(it, plottable(l1[-tail:, k]), "o-", ms=3, lw=0.8, label=f"lam = {lam:g}")
        for lvl in np.abs(W_tail[-2:, k]).sum(1):
            if is_plottable(lvl) and lvl > 0:
                ax.axhline(lvl, color=line.get_color(), ls=":", lw=0.8)
    note = _diverged(summary, [f"lam = {lam:g}" for lam in lams])
    ax.set(title="||w_k||_1 over the last iterations\n(dotted: the two states of the 2-cycle)",
           xlabel="iteration k", ylabel="||w_k||_1 (log)")
    ax.legend(fontsize=8, loc="center right")
    ax = axes[1]
    x = plottable(lams)
    ax.loglog(x, plottable(summary["tail_loss_max"]), "o-", label="NDGM: max loss, last 100 iterations")
    ax.loglog(x, plottable(summary["loss_bound_B11"]), "k--", label="bound d*eta*lam^2 (Prop. B.11)")
    ax.loglog(x, plottable(summary["subgradient_bound_limit"]), ":", color="tab:red",
              label="subgradient bound limit G^2 eta / 2")
    ax.set(title=f"Final loss grows with lam^2 (d = {summary['d']}, eta = {summary['lr']:g})",
           xlabel="penalty lam", ylabel="loss lam*||w||_1")
    ax.legend(fontsize=8)
    for a in axes:
        note_if_empty(a)
    if note:
        fig.suptitle(note.lstrip("; "), color="tab:red", fontsize=10)
    return save(fig, path)


@figure("lasso_2d.png")
def plot_lasso_2d(arrays: dict, summary: dict, config: dict, path: Path) -> Path:
    """The 2-D example: L1 norm for lam small and large, before and after the step reduction."""
    l1 = np.asarray(arrays["l1"])
    lams = np.asarray(arrays["lams"])
    T = int(arrays["phase_switch"])
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6))
    ax = axes[0]
    for k, lam in enumerate(lams):
        ax.semilogy(np.arange(l1.shape[0]), plottable(l1[:, k]), lw=1, label=f"lam = {lam:g}")
    ax.axvline(T, color="gray", ls="--", lw=1)
    ax.text(T, ax.get_ylim()[1], f" eta {config['lr']:g} -> {config['lr2']:g}", va="top", fontsize=8)
    ax.set(title="||w_k||_1 of the 2-D example", xlabel="iteration k", ylabel="||w_k||_1 (log)")
    ax.legend(fontsize=8)
    ax = axes[1]
    vals = [summary["phase1_small_tail_l1_max"], summary["phase1_large_tail_l1_min"],
            summary["phase2_small_tail_l1_max"], summary["phase2_large_tail_l1_min"]]
    labels = [f"eta={config['lr']:g}\nlam={lams[0]:g} (max)", f"eta={config['lr']:g}\nlam={lams[1]:g} (min)",
              f"eta={config['lr2']:g}\nlam={lams[0]:g} (max)", f"eta={config['lr2']:g}\nlam={lams[1]:g} (min)"]
    vals = plottable(vals)
    bars = ax.bar(range(4), np.where(np.isfinite(vals), vals, 0.0), color=["tab:blue", "tab:orange", "tab:blue", "tab:orange"])
    ax.set_yscale("log")
    for b, v in zip(bars, vals):
        if np.isfinite(v) and v > 0:
            ax.text(b.get_x() + b.get_width() / 2, v, f"{v:.4f}", ha="center", va="bottom", fontsize=9)
    ax.set_xticks(range(4), labels, fontsize=8)
    ax.set(title="Tail L1 norm: the larger penalty leaves the larger solution", ylabel="||w||_1 over the tail (log)")
    note_if_empty(axes[0])
    div = summary.get("diverged_at") or {}
    gone = [f"{phase}, lam = {lam:g} at k = {k}" for phase, ks in div.items() for lam, k in zip(lams, ks) if k >= 0]
    if gone:
        fig.suptitle("diverged (loss inf/NaN; not drawn after): " + "; ".join(gone), color="tab:red", fontsize=10)
    return save(fig, path)


@figure("lasso_variants.png")
def plot_lasso_variants(arrays: dict, summary: dict, config: dict, path: Path) -> Path:
    """Paper Fig. 6: NDGM vs RMSProp loss over the last 100 iterations, small and large lam, with bounds."""
    lams = summary["lams"]
    picks = [0, len(lams) - 1]
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.6), gridspec_kw={"width_ratios": [1, 1, 1.3]})
    T = summary["iterations"]
    for ax, k in zip(axes[:2], picks):
        nd, rm = arrays["ndgm_tail_loss"][:, k], arrays["rmsprop_tail_loss"][:, k]
        it = np.arange(T - nd.size, T)
        ax.semilogy(it, plottable(nd), "o", ms=2.5, label="NDGM")
        ax.semilogy(it, plottable(rm), "s", ms=2.5, label="RMSProp")
        for bound, colour, label in ((summary["bound_ndgm"][k], "tab:blue", "d*eta*lam^2"),
                                     (summary["bound_rmsprop"][k], "tab:orange", "d*eta*lam")):
            if is_plottable(bound) and bound > 0:
                ax.axhline(bound, color=colour, ls="--", lw=1, label=label)
        note_if_empty(ax)
        ax.set(title=f"lam = {lams[k]:g}: last {nd.size} iterations", xlabel="iteration", ylabel="loss lam*||w||_1 (log)")
        ax.legend(fontsize=8, loc="best", framealpha=0.9)
    ax = axes[2]
    ax.axis("off")
    rows = [[r["variant"], f"{r['zero_stays_sim']} ({100 * r['stayed_fraction']:.0f}%)", r["zero_stays_paper"],
             r["lam_changes_sim"], r["lam_changes_paper"]] for r in summary["table"]]
    tab = ax.table(cellText=rows, colLabels=["variant", "zero stays\n(sim.)", "(paper)", "lam changes\nfinal (sim.)", "(paper)"],
                   loc="center", cellLoc="center")
    tab.auto_set_font_size(False)
    tab.set_fontsize(9)
    tab.auto_set_column_width(col=list(range(5)))
    tab.scale(1, 2.2)
    z = summary["per_rule"]["rmsprop"]["final_exact_zeros"]
    ax.set_title(f"Table 1 by simulation\nfloat64 RMSProp exact zeros: {z} of {summary['d']}", fontsize=10)
    gone = [name for name, r in summary["per_rule"].items() if any(k >= 0 for k in r.get("diverged_at", []))]
    fig.suptitle(f"Toy LASSO variants, d = {summary['d']}, eta = {summary['lr']:g}, {T} iterations"
                 + (f"\ndiverged (loss inf/NaN, not drawn): {', '.join(gone)}" if gone else ""),
                 color="tab:red" if gone else "k")
    return save(fig, path)


@figure("lasso_general.png")
def plot_lasso_general(arrays: dict, summary: dict, config: dict, path: Path) -> Path:
    """NDGM's final L1 norm rising with lam where the exact solution's falls to 0; support sizes."""
    lams = np.asarray(arrays["lams"])
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.6))
    ax = axes[0]
    ax.loglog(lams, arrays["ndgm_l1"], "o-", ms=3, label="NDGM (final iterate)")
    ex = np.asarray(arrays["exact_l1"])
    pos = ex > 0
    ax.loglog(lams[pos], ex[pos], "s-", ms=3, label="exact (scikit-learn lasso_path)")
    ax.axvline(summary["lam_critical"], color="gray", ls="--", lw=1, label="lam_crit = ||2X^T y||_inf")
    ax.set(title="L1 norm of the solution (exact = 0 right of lam_crit)", xlabel="penalty lam", ylabel="||w||_1 (log)")
    ax.legend(fontsize=8)
    ax = axes[1]
    ax.semilogx(lams, arrays["ndgm_support"], "o-", ms=3, label="NDGM")
    ax.semilogx(lams, arrays["exact_support"], "s-", ms=3, label="exact")
    ax.set(title="Support size (nonzero coordinates, exact count)", xlabel="penalty lam", ylabel="# w_j != 0")
    ax.legend(fontsize=8)
    ax = axes[2]
    gap = (np.asarray(arrays["ndgm_objective"]) - np.asarray(arrays["exact_objective"])) / np.asarray(arrays["exact_objective"])
    ax.loglog(lams, np.maximum(gap, 1e-17), "o-", ms=3, color="tab:red")
    ax.set(title="NDGM's relative objective gap", xlabel="penalty lam", ylabel="(F_ndgm - F*) / F* (log)")
    fig.suptitle(f"||Xw - y||^2 + lam||w||_1, X, y ~ U(-1,1), n = {summary['n']}, d = {summary['d']}, "
                 f"eta = {summary['lr']:g}, {summary['iterations']} iterations, {lams.size} penalties in one batched run")
    return save(fig, path)


@figure("lasso_real.png")
def plot_lasso_real(arrays: dict, summary: dict, config: dict, path: Path) -> Path:
    """|coef_j| per method and alpha on a log scale; exact zeros drawn on a separate bottom row."""
    alphas = summary["alphas"]
    methods = [m for m in ("lasso", "sgd", "adam", "rmsprop", "fista", "proxsgd", "proxadam", "rda", "acrda")
               if f"coef_{m}" in arrays]
    fig, axes = plt.subplots(1, len(alphas), figsize=(5.2 * len(alphas), 4.8), squeeze=False)
    floor = 1e-12
    for j, (ax, a) in enumerate(zip(axes[0], alphas)):
        for i, m in enumerate(methods):
            c = np.abs(np.asarray(arrays[f"coef_{m}"])[j])
            zero = c == 0
            x = np.full(c.size, i) + np.linspace(-0.25, 0.25, c.size)
            ax.semilogy(x[~zero], c[~zero], "o", ms=4, color="tab:blue")
            ax.semilogy(x[zero], np.full(zero.sum(), floor), "x", ms=6, color="tab:red")
        ax.axhline(1e-5, color="gray", ls="--", lw=1)
        ax.text(len(methods) - 0.5, 1e-5, "1e-5", va="bottom", ha="right", fontsize=8, color="gray")
        ax.set_xticks(range(len(methods)), methods, rotation=30, fontsize=8)
        ax.set_ylim(floor / 10, 10)
        ax.set(title=f"alpha = {a:g}", ylabel="|coef_j| (log; x = exactly 0)")
    fig.suptitle("Diabetes (standardised, no intercept): coefficients by method; red x = exact zero")
    return save(fig, path)
