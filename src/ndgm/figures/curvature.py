"""Figures of the curvature experiments (eos-huber, rates, sharpness), from stored arrays."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from . import figure
from .common import LARGEST_LOG, plottable, plt, save

__all__ = ["plot_eos_huber", "plot_rates", "plot_sharpness", "plot_tracker", "draw_sharpness_history"]


def _pick(n: int, m: int = 4) -> list[int]:
    """Up to ``m`` indices spread over ``range(n)``."""
    return sorted(set(np.linspace(0, n - 1, min(m, n)).round().astype(int).tolist()))


@figure("eos_huber.png")
def plot_eos_huber(arrays: dict, summary: dict, config: dict, path: Path) -> Path:
    """Paper Fig. 4: Huber loss and sharpness against iteration, ``2/eta`` lines; the quadratic diverges."""
    loss, quad, sharp = arrays["huber_loss"], arrays["quad_loss"], arrays["sharpness"]
    fac, etas = arrays["eta_factors"], arrays["etas"]
    T, K = loss.shape
    it = np.arange(T)
    cmap = plt.get_cmap("viridis")
    colours = [cmap(i / max(K - 1, 1)) for i in range(K)]
    fig, axes = plt.subplots(2, 2, figsize=(13, 9))

    x = it + 1  # log-scaled iteration axes: the rise happens in the first few steps
    ax = axes[0, 0]
    for i in range(K):
        ax.loglog(x, np.maximum(loss[:, i], 1e-32), color=colours[i], lw=1, label=f"eta = {fac[i]:.3g} x 2/lam")
    ax.set(title=f"Huber loss (delta = {summary['delta']:g}): bounded at every eta",
           xlabel="iteration + 1", ylabel="loss (floored at 1e-32)")
    ax.legend(fontsize=7, ncol=2)

    ax = axes[0, 1]
    with np.errstate(divide="ignore", over="ignore"):
        thresholds = plottable(2 / np.asarray(etas, dtype=float))  # a tiny eta: 2/eta is inf, not drawn
    for i in _pick(K):
        ax.semilogx(x, plottable(sharp[:, i]), color=colours[i], lw=1.2, label=f"sharpness, eta = {fac[i]:.3g} x 2/lam")
        if np.isfinite(thresholds[i]):
            ax.axhline(thresholds[i], color=colours[i], ls="--", lw=1)
    ax.axhline(summary["lambda_max"], color="k", ls=":", lw=1, label="lambda_max(X^T X)")
    top = np.nanmax(thresholds, initial=summary["lambda_max"])
    ax.set_ylim(-0.05 * summary["lambda_max"], 1.25 * max(summary["lambda_max"], top))
    ax.set(title="Sharpness lambda_max(X^T D_k X); dashed: 2/eta (same colour)",
           xlabel="iteration + 1", ylabel="sharpness")
    ax.legend(fontsize=7, loc="center right")

    ax = axes[1, 0]
    xq = np.arange(quad.shape[0]) + 1
    for i in range(K):
        q = quad[:, i]
        ok = np.isfinite(q)
        # log10 on a linear axis: matplotlib's log locator overflows near the float64 maximum
        lq = np.log10(np.maximum(q[ok], 1e-32))
        ax.semilogx(xq[ok], lq, color=colours[i], lw=1)
        if int(arrays["quad_diverged_at"][i]) >= 0 and ok.any():
            ax.plot(xq[ok][-1], lq[-1], "x", color=colours[i], ms=8)
    ax.axhline(np.log10(np.finfo(np.float64).max), color="grey", ls=":", lw=1, label="float64 maximum")
    ax.legend(fontsize=7, loc="center right")
    ax.set(title="Least squares, same sharpness: loss overflows (x) for every eta > 2/lam",
           xlabel="iteration + 1", ylabel="log10 loss (floored at -32)")

    ax = axes[1, 1]
    ax.loglog(fac, np.maximum(summary["best_gap"], 1e-32), "o-", label="min_k L(w_k) - L*")
    ax.loglog(fac, summary["bound_G"], "s--", label="R^2/(2 T eta) + G^2 eta/2")
    ax.loglog(fac, summary["bound_observed"], "^--", label="(R^2 + eta^2 sum ||g_k||^2)/(2 eta T)")
    ax.axvline(1.0, color="grey", lw=1, ls=":", label="eta = 2/lambda_max")
    ax.set(title=f"Best loss vs the subgradient bounds (T = {T})", xlabel="eta / (2/lambda_max)",
           ylabel="loss gap")
    ax.legend(fontsize=7)
    return save(fig, path)


@figure("rates.png")
def plot_rates(arrays: dict, summary: dict, config: dict, path: Path) -> Path:
    """Iterations to reach eps against 1/eps, measured and worst-case, log-log."""
    # a tolerance near the float limit gives 1/eps and bounds (R^2 G^2 / eps^2) a log axis
    # cannot hold: those points are not drawn
    inv = plottable(1 / arrays["eps"], LARGEST_LOG)
    bound_s, bound_n = (plottable(arrays[k], LARGEST_LOG) for k in ("bound_smooth", "bound_nonsmooth"))
    cs, cn = arrays["counts_smooth"].astype(float), arrays["counts_nonsmooth"].astype(float)
    cs[cs < 0] = np.nan
    cn[cn < 0] = np.nan
    fig, axes = plt.subplots(1, 2, figsize=(13, 5))
    ax = axes[0]
    ax.loglog(inv, np.maximum(cs, 0.8), "o-", color="tab:blue",
              label=f"GD, step 1/L, least squares (slope {summary['slope_smooth']:.2f})")
    ax.loglog(inv, bound_s, "--", color="tab:blue", label="bound L R^2 / (2 eps)")
    ax.loglog(inv, np.maximum(cn, 0.8), "s-", color="tab:red",
              label=f"subgradient, step eps/G^2, LAD (slope {summary['slope_nonsmooth']:.2f})")
    ax.loglog(inv, bound_n, "--", color="tab:red", label="bound R^2 G^2 / eps^2")
    ax.set(title="Iterations to reach f - f* <= eps (count 0 drawn at 0.8)", xlabel="1 / eps",
           ylabel="iterations")
    ax.legend(fontsize=8)
    ax = axes[1]
    T = arrays["loss_smooth"].size
    it = np.arange(1, T + 1)
    ax.loglog(it, np.maximum(arrays["loss_smooth"], 1e-32), color="tab:blue", label="GD on least squares")
    ln = arrays["loss_nonsmooth"]
    for i in _pick(ln.shape[1], 3):
        best = np.fmin.accumulate(ln[:, i])
        ax.loglog(it, best, color=plt.get_cmap("Reds")(0.4 + 0.6 * i / max(ln.shape[1] - 1, 1)),
                  label=f"subgradient best so far, eps = {arrays['eps'][i]:.2g}")
    ax.set(title="Gap against iteration", xlabel="iteration + 1", ylabel="f - f* (floored at 1e-32)")
    ax.legend(fontsize=8)
    return save(fig, path)


def draw_sharpness_history(ax, steps, eigs, thresholds, *, label: str = "lambda", threshold_label: str = "2/eta",
                           colour: str = "tab:blue") -> None:
    """Tracked eigenvalues (columns of ``eigs``) against step, with the threshold as a step curve."""
    eigs = np.asarray(eigs).reshape(len(steps), -1)
    for j in range(eigs.shape[1]):
        ax.plot(steps, eigs[:, j], "o-", ms=3, lw=1.2, alpha=1.0 if j == 0 else 0.6,
                color=colour if j == 0 else None, label=f"{label}_{j + 1}")
    thresholds = np.asarray(thresholds, dtype=float)
    if thresholds.size and np.allclose(thresholds, thresholds[0]):
        ax.axhline(thresholds[0], color="k", ls="--", lw=1, label=f"{threshold_label} = {thresholds[0]:.4g}")
    elif thresholds.size:
        ax.step(steps, thresholds, "k--", where="post", lw=1, label=threshold_label)


def plot_tracker(arrays: dict, path: Path) -> Path:
    """A `SharpnessTracker`'s records: sharpness against ``2/eta`` (and, when recorded, the
    preconditioned sharpness against the optimizer's threshold) over training."""
    steps = arrays["sharpness_steps"]
    pre = "precond_eigs" in arrays
    fig, axes = plt.subplots(1, 2 if pre else 1, figsize=(12 if pre else 6.5, 4.5), squeeze=False)
    ax = axes[0, 0]
    draw_sharpness_history(ax, steps, arrays["sharpness_eigs"], arrays["sharpness_thresholds"])
    if "sharpness_bottom" in arrays:
        ax.plot(steps, arrays["sharpness_bottom"][:, 0], "v-", ms=3, color="tab:red", label="lambda_min")
    ax.set(title=f"Hessian sharpness ({int(arrays['sharpness_hvps'].sum())} HVPs in all)", xlabel="step",
           ylabel="eigenvalue")
    ax.legend(fontsize=8)
    if pre:
        ax = axes[0, 1]
        draw_sharpness_history(ax, steps, arrays["precond_eigs"], arrays["precond_thresholds"],
                               label="lambda(P^-1 H)", threshold_label="optimizer threshold", colour="tab:purple")
        ax.set(title="Preconditioned sharpness", xlabel="step", ylabel="eigenvalue")
        ax.legend(fontsize=8)
    return save(fig, path)


@figure("sharpness.png")
def plot_sharpness(arrays: dict, summary: dict, config: dict, path: Path) -> Path:
    """Training loss and tracked top Hessian eigenvalues against step with the 2/eta line; the
    top spectrum at the end; Adam's preconditioned sharpness against 2/eta (1+beta1)/(1-beta1);
    ReLU kinks hit."""
    loss = arrays["loss"]
    steps, eigs = arrays["sharpness_steps"], arrays["sharpness_eigs"]
    panels = ["loss", "sharpness"] + (["adam"] if "adam_precond" in arrays else []) \
        + (["kinks"] if "kinks_float32" in arrays else [])
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4.5), squeeze=False)
    axes = dict(zip(panels, axes[0]))
    ax = axes["loss"]
    ax.semilogy(np.arange(loss.size), loss, color="tab:blue", label="GD")
    if "adam_loss" in arrays:
        ax.semilogy(np.arange(arrays["adam_loss"].size), arrays["adam_loss"], color="tab:purple", label="Adam")
    ax.set(title=f"Training loss ({summary['activation']} MLP, {summary['dim']} parameters)",
           xlabel="step", ylabel="loss")
    ax.legend(fontsize=8)
    ax = axes["sharpness"]
    thr = summary["threshold_2_over_eta"]
    draw_sharpness_history(ax, steps, eigs, np.full(len(steps), thr), label="lambda")
    if "top_eigenvalues" in arrays:
        top = arrays["top_eigenvalues"]
        ax.plot(np.full(top.size, steps[-1]), top, "k_", ms=14, mew=2,
                label=f"top-{top.size} at the end: " + ", ".join(f"{v:.4g}" for v in top))
    ax.set(title=f"GD: top Hessian eigenvalues ({int(arrays['sharpness_hvps'].sum())} HVPs in all)",
           xlabel="GD step", ylabel="eigenvalue")
    ax.legend(fontsize=8)
    if "adam" in axes:
        ax = axes["adam"]
        draw_sharpness_history(ax, arrays["adam_steps"], arrays["adam_precond"], arrays["adam_thresholds"],
                               label="lambda(P^-1 H)", threshold_label="2/eta (1+b1)/(1-b1)", colour="tab:purple")
        ax.set(title=f"Adam (eta = {summary['adam_lr']:g}): preconditioned sharpness", xlabel="Adam step",
               ylabel="eigenvalue")
        ax.legend(fontsize=8)
    if "kinks" in axes:
        ax = axes["kinks"]
        for name, c in (("float32", "tab:orange"), ("float64", "tab:green")):
            k = arrays[f"kinks_{name}"]
            ax.plot(np.arange(k.size), k, color=c, label=f"{name}: {int(k.sum())} in all")
        top = max(int(arrays["kinks_float32"].max()), int(arrays["kinks_float64"].max()), 1)
        ax.set_ylim(-0.05 * top, 1.1 * top)
        ax.set(title="ReLU inputs exactly 0 per step", xlabel="GD step", ylabel="count")
        ax.legend(fontsize=8)
    return save(fig, path)
