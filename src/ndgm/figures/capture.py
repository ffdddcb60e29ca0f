"""Figures of the capture experiment (paper Fig. 1 and its smooth contrast, Fig. 5)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.ticker import ScalarFormatter

from . import figure
from .common import plt, save

TAIL = 1000


@figure("capture.png")
def plot_capture(arrays: dict, summary: dict, config: dict, path: Path) -> Path:
    """Paper Fig. 1: loss and L1 norm over the last 1000 iterations, plus the step size."""
    loss, l1, lr = arrays["loss"], arrays["l1"], arrays["lr"]
    T = loss.size
    tail = min(TAIL, T)
    it = np.arange(T - tail, T)
    fig, axes = plt.subplots(3, 1, figsize=(9, 9.5))
    ax = axes[0]
    ax.plot(it, loss[-tail:], "o", ms=2.5, color="tab:blue")
    fmt = ScalarFormatter(useOffset=False)
    fmt.set_scientific(False)
    ax.yaxis.set_major_formatter(fmt)
    ax.ticklabel_format(axis="y", useOffset=False, style="plain")
    uniq = summary.get("tail_losses_unique", [])
    label = f"constant at {uniq[0]!r}" if len(uniq) == 1 else f"{len(uniq)} distinct values"
    ax.set(title=f"Loss over the last {tail} iterations ({label})", xlabel="iteration", ylabel="loss")
    if len(uniq) == 1:
        ax.set_ylim(uniq[0] - 1e-9 * abs(uniq[0]), uniq[0] + 1e-9 * abs(uniq[0]))

    ax = axes[1]
    x = l1[-tail:]
    b = summary.get("bands", {})
    even = (it - it[0]) % 2 == 0
    hi_even = np.median(x[even]) > np.median(x[~even]) if x.size > 1 else True
    hi = even if hi_even else ~even
    ax.plot(it[hi], x[hi], "o", ms=2.5, color="tab:red", label="high band")
    ax.plot(it[~hi], x[~hi], "o", ms=2.5, color="tab:purple", label="low band")
    for key, c in (("high_centre", "tab:red"), ("low_centre", "tab:purple")):
        if key in b and np.isfinite(b[key]):
            ax.axhline(b[key], color=c, lw=1, ls="--")
    title = "L1 norm of the weights over the last %d iterations" % tail
    if b:
        title += f"\nbands {b['low_centre']:.3g} / {b['high_centre']:.3g}, gap {b['gap']:.2g}, alternation {b['alternation']:.2f}"
    ax.set(title=title, xlabel="iteration", ylabel="||w||_1")
    ax.legend(loc="upper right", fontsize=8)

    ax = axes[2]
    ax.semilogy(np.arange(T), lr, color="tab:green")
    ax.set(title="Step size (x0.9 whenever the loss rose)", xlabel="iteration", ylabel="eta")
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
