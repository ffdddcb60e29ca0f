"""Figures of the capture experiment (paper Fig. 1 and its smooth contrast, Fig. 5)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.ticker import ScalarFormatter

from . import figure
from .common import is_plottable, note_if_empty, plottable, plt, save

TAIL = 1000


@figure("capture.png")
def plot_capture(arrays: dict, summary: dict, config: dict, path: Path) -> Path:
    """Paper Fig. 1: loss and L1 norm over the last 1000 iterations, plus the step size.

    A diverged run (``summary['diverged_at'] >= 0``) shows the last iterations before the
    divergence, a red line where it happened and says so in the title; the NaN padding
    after it is not drawn.
    """
    loss, l1, lr = arrays["loss"], arrays["l1"], arrays["lr"]
    T = loss.size
    k_div = summary.get("diverged_at", -1)
    k_div = int(k_div) if isinstance(k_div, (int, float)) and k_div == k_div and k_div >= 0 else -1
    end = k_div if k_div >= 0 else T  # the finite part of the run
    tail = max(1, min(TAIL, end))
    it = np.arange(end - tail, end) if end > 0 else np.arange(0, 1)
    window = slice(it[0], it[-1] + 1)
    fig, axes = plt.subplots(3, 1, figsize=(9, 10))
    ax = axes[0]
    y = plottable(loss[window])
    ax.plot(it, y, "o", ms=2.5, color="tab:blue")
    uniq = [u for u in summary.get("tail_losses_unique", []) if is_plottable(u)]
    constant = len(uniq) == 1 and k_div < 0
    if constant:
        # The paper's point is one exact value: print it in full rather than as an offset.
        fmt = ScalarFormatter(useOffset=False)
        fmt.set_scientific(False)
        ax.yaxis.set_major_formatter(fmt)
        ax.set_ylim(uniq[0] - 1e-9 * abs(uniq[0]), uniq[0] + 1e-9 * abs(uniq[0]))
        label = f"constant at {uniq[0]!r}"
    else:
        label = f"{len(uniq)} distinct finite value{'s' if len(uniq) != 1 else ''}"
    what = f"the last {tail} iterations" + (" before the divergence" if k_div >= 0 else "")
    ax.set(title=f"Loss over {what} ({label})", xlabel="iteration", ylabel="loss")

    ax = axes[1]
    x = plottable(l1[window])
    b = summary.get("bands", {})
    even = (it - it[0]) % 2 == 0
    hi_even = np.nanmedian(x[even]) > np.nanmedian(x[~even]) if np.isfinite(x).sum() > 1 and (~even).any() else True
    hi = even if hi_even else ~even
    ax.plot(it[hi], x[hi], "o", ms=2.5, color="tab:red", label="high band")
    ax.plot(it[~hi], x[~hi], "o", ms=2.5, color="tab:purple", label="low band")
    for key, c in (("high_centre", "tab:red"), ("low_centre", "tab:purple")):
        if is_plottable(b.get(key)):
            ax.axhline(b[key], color=c, lw=1, ls="--")
    title = f"L1 norm of the weights over {what}"
    if b.get("found"):
        title += f"\nbands {b['low_centre']:.3g} / {b['high_centre']:.3g}, gap {b['gap']:.2g}, alternation {b['alternation']:.2f}"
    elif b:
        title += "\nno two bands found"
    ax.set(title=title, xlabel="iteration", ylabel="||w||_1")
    ax.legend(loc="upper right", fontsize=8)

    ax = axes[2]
    ax.semilogy(np.arange(T), plottable(lr), color="tab:green")
    ax.set(title="Step size (x0.9 whenever the loss rose)", xlabel="iteration", ylabel="eta")
    for a in axes:
        if k_div >= 0:
            a.axvline(k_div, color="tab:red", lw=1.2, ls="--")
        note_if_empty(a)
    if k_div >= 0:
        fig.suptitle(f"DIVERGED at iteration {k_div}: the loss became inf/NaN (red line); nothing after it is drawn",
                     color="tab:red", fontsize=11)
    return save(fig, path)


@figure("quadratic_contrast.png")
def plot_quadratic_contrast(arrays: dict, summary: dict, config: dict, path: Path) -> Path:
    """Paper Fig. 5: GD on a convex quadratic; the 1-norm rises, then decays monotonically."""
    q = arrays["quad_l1"]
    k = summary.get("quad_monotone_after")
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, n, scale in ((axes[0], min(40, q.size), "linear"), (axes[1], q.size, "log")):
        ax.plot(np.arange(n), q[:n], "o-", ms=3, color="tab:blue")
        ax.set_yscale(scale)
        if k is not None and k < n:
            ax.axvline(k, color="tab:red", ls="--", lw=1, label=f"monotone from k* = {k}")
            ax.legend(fontsize=8)
        ax.set(xlabel="iteration", ylabel="||w||_1")
    axes[0].set_title(f"First {min(40, q.size)} iterations: the 1-norm rises")
    axes[1].set_title("Whole run: then decays monotonically")
    fig.suptitle(f"GD on 1/2 w^T A w, lambda_max(A) = {summary.get('quad_lambda_max', float('nan')):.3g}")
    return save(fig, path)
