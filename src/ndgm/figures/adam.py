"""Figure of the Adam-on-the-toy-LASSO experiment (``lasso-adam``), rebuilt from stored arrays."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from . import figure
from .common import plt, save


@figure("lasso_adam.png")
def plot_lasso_adam(arrays: dict, summary: dict, config: dict, path: Path) -> Path:
    """m_t / lam against the bound 1 - b1^t (B.6); w_t / eta in the tail; tail amplitudes per lam."""
    lams = np.asarray(arrays["lams"])
    w_tr, m_tr = np.asarray(arrays["w_trace"]), np.asarray(arrays["m_trace"])
    amp = np.asarray(arrays["tail_amplitude"])
    T = w_tr.shape[0] - 1
    k = len(lams) // 2  # the middle penalty for the traces
    lam, eta, b1 = lams[k], summary["lr"], summary["beta1"]
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.6))
    ax = axes[0]
    t = np.arange(T + 1)
    show = min(T + 1, 3 * summary["first_run_length_max"])
    for j in range(m_tr.shape[2]):
        ax.plot(t[:show], m_tr[:show, k, j] / lam, lw=1, label=f"coordinate {j}, w0 = {arrays['w0'][j]:.3f}")
    env = 1 - b1 ** t[:show].astype(float)
    ax.plot(t[:show], env, "k--", lw=1, label="+-(1 - b1^t): B.6, sharpened")
    ax.plot(t[:show], -env, "k--", lw=1)
    ax.axhline(1, color="gray", lw=0.8)
    ax.axhline(-1, color="gray", lw=0.8)
    ax.set(title=f"Adam's first moment, lam = {lam:g}: |m_t| <= lam", xlabel="iteration t", ylabel="m_t / lam")
    ax.legend(fontsize=7, loc="lower left")
    ax = axes[1]
    tail = min(60, T)
    for j in range(w_tr.shape[2]):
        ax.plot(t[-tail:], w_tr[-tail:, k, j] / eta, "o-", ms=2.5, lw=0.8)
    ax.axhline(1, color="gray", ls="--", lw=0.8)
    ax.axhline(-1, color="gray", ls="--", lw=0.8)
    ax.axhline(0, color="k", lw=0.5)
    ax.set(title="The last iterations: |w_t| below eta, never 0", xlabel="iteration t", ylabel="w_t / eta")
    ax = axes[2]
    bins = np.linspace(0, max(1.0, float(amp.max())), 41)
    for i, lv in enumerate(lams):
        ax.hist(amp[i], bins=bins, histtype="step", lw=1.2, label=f"lam = {lv:g}")
    ax.axvline(1, color="k", ls="--", lw=1, label="eta")
    ax.set(title=f"Final amplitude per coordinate (last {summary['tail']} iterations)",
           xlabel="amplitude / eta", ylabel="coordinates")
    ax.legend(fontsize=8)
    fig.suptitle(f"Adam on lam||w||_1, d = {summary['d']}, eta = {eta:g}, {T} iterations: "
                 f"{summary['w_zeros_fixed'] + summary['w_zeros_drawn']} exact zeros of w, "
                 f"{summary['m_zeros_drawn']} of m (b1 drawn per coordinate)")
    return save(fig, path)
