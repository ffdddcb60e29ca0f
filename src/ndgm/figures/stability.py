"""Figures of the GD-map and stability experiments, each rebuilt from stored arrays."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from . import figure
from .common import plottable, plt, save

ORBIT_COLOURS = ("tab:red", "tab:blue", "tab:green")


def _cobweb(ax, orbit: np.ndarray, colour: str, label: str | None = None) -> None:
    """Vertical to the graph, horizontal to the diagonal: (t_k, t_k) -> (t_k, t_{k+1}) -> (t_{k+1}, t_{k+1})."""
    xs, ys = [orbit[0]], [orbit[0]]
    for a, b in zip(orbit[:-1], orbit[1:]):
        xs += [a, b]
        ys += [b, b]
    ax.plot(xs, ys, "-", color=colour, lw=1.1, alpha=0.9, label=label)
    ax.plot(orbit[0], orbit[0], "o", color=colour, ms=4)


@figure("gdmap_1d.png")
def plot_gdmap_1d(arrays: dict, summary: dict, config: dict, path: Path) -> Path:
    """Paper Fig. 1: the loss and cobweb plots of G_eta for the three step sizes."""
    grid, loss = plottable(arrays["grid"]), plottable(arrays["loss"])
    loss[loss > 1e3] = np.nan  # far above the panel's top (40): see the note on Agg below
    etas = arrays["etas"]
    fig, axes = plt.subplots(2, 2, figsize=(11, 9.5))
    ax = axes[0, 0]
    ax.plot(grid, loss, color="k")
    for x in (-2, 2):
        ax.axvline(x, color="grey", ls=":", lw=1)
    ax.plot([0], [8], "v", color="tab:red", label="local max t = 0")
    ax.plot([-np.sqrt(3), np.sqrt(3)], [3.5, 3.5], "^", color="tab:green", label="minima +-sqrt(3)")
    top = np.nanmax(loss) if np.isfinite(loss).any() else 40.0
    ax.set(title="L(t) = 0.5 t^4 - 3 t^2 + 8 on |t| <= 2, t^2 outside\n(L'' = 2 on |t| > 2)",
           xlabel="t", ylabel="L(t)", ylim=(0, min(40, top)))
    ax.legend(fontsize=8)
    texts = {
        "singular": "every |t| > 2 maps to 0 (singular)",
        "cycle": "G(t) = t/2 on |t| > 2; 2-cycle {1, 2}",
        "converge": "converges to +-sqrt(3)",
    }
    for ax, key, eta in zip((axes[0, 1], axes[1, 0], axes[1, 1]), ("singular", "cycle", "converge"), etas):
        # The panel shows |t_{k+1}| <= 6; points far outside it (t_max near 1e308) are left out:
        # Agg crawls over paths whose pixel coordinates are astronomically large.
        G = plottable(arrays[f"map_{key}"])
        G[np.abs(G) > 1e3] = np.nan
        diag = np.where(np.abs(grid) <= 1e3, grid, np.nan)
        ax.plot(grid, G, color="k", lw=1.5, label="G(t) = t - eta L'(t)")
        ax.plot(grid, diag, color="grey", ls="--", lw=1, label="G(t) = t")
        orbits = arrays[f"cobweb_{key}"]  # (steps + 1, 3)
        for j in range(orbits.shape[1]):
            _cobweb(ax, orbits[:, j], ORBIT_COLOURS[j], label=f"GD from t0 = {orbits[0, j]:g}")
        lo, hi = np.nanmin(grid, initial=np.inf), np.nanmax(grid, initial=-np.inf)
        ax.set(title=f"eta = {eta:g}: {texts[key]}", xlabel="t_k", ylabel="t_{k+1}",
               xlim=(lo, hi) if np.isfinite([lo, hi]).all() and hi > lo else (-6, 6), ylim=(-6, 6))
        ax.axhline(0, color="grey", lw=0.5)
        ax.legend(fontsize=7, loc="lower right")
    title = "GD map of a C^1 loss: the step 1/2 collapses |t| > 2 onto the local maximum"
    gone = {k: n for k, n in (summary.get("diverged_starts") or {}).items() if n}
    if gone:  # starts near 1e308 overflow: say so on the figure
        title += "\ndiverged (inf/NaN): " + ", ".join(f"{n} starts at eta {k}" for k, n in gone.items())
    fig.suptitle(title, fontsize=12, color="tab:red" if gone else "k")
    return save(fig, path)


def _shade(ax, intervals, colour, y0, y1, label, alpha=0.3):
    for i, (a, b) in enumerate(intervals):
        ax.axvspan(a, b, ymin=y0, ymax=y1, color=colour, alpha=alpha, lw=0, label=label if i == 0 else None)


@figure("stability_sets.png")
def plot_stability_sets(arrays: dict, summary: dict, config: dict, path: Path) -> Path:
    """Paper Fig. 4: mu(t1) and lambda(t1) on M with the GD- and SGD-stable sets shaded."""
    t1 = arrays["t1"]
    fig, axes = plt.subplots(1, 2, figsize=(13, 5))
    for k, ax in zip((1, 2), axes):
        P = summary[f"panel{k}"]
        lam, mu = arrays[f"lambda{k}"], arrays[f"mu{k}"]
        ax.plot(t1, np.clip(lam, -4, None), color="tab:blue", label="lambda (SGD Lyapunov exponent)")
        ax.plot(t1, np.clip(mu, -4, None), color="tab:orange", label=f"mu (GD), abar = {P['abar']:.4g}")
        ax.axhline(0, color="k", lw=0.8)
        # Full-height tint plus a solid strip at the bottom per set, so overlaps stay readable.
        _shade(ax, P["sgd_stable"], "tab:blue", 0.0, 1.0, None, alpha=0.12)
        _shade(ax, P["gd_stable"], "tab:orange", 0.0, 1.0, None, alpha=0.12)
        _shade(ax, P["sgd_stable"], "tab:blue", 0.0, 0.05, "SGD-stable set (lambda < 0)", alpha=0.8)
        _shade(ax, P["gd_stable"], "tab:orange", 0.06, 0.11, "GD-stable set (mu < 0)", alpha=0.8)
        ax.set_xscale("log")
        ax.set_xticks([0.25, 0.5, 1, 2, 4], labels=["0.25", "0.5", "1", "2", "4"])
        ax.minorticks_off()
        ax.set(xlabel="t1 on M = {t1 t2 = 1} (log scale)", ylabel="exponent (clipped at -4)", ylim=(-4, 3),
               title=f"eta = {P['eta']:g}, p = {P['p']:g}")
        ax.legend(fontsize=8, loc="upper center")
    ivs = ", ".join(f"({a:.3f}, {b:.3f})" for a, b in summary["panel1"]["sgd_not_gd"])
    fig.suptitle("Stable minima of the two-point ReLU toy (symmetric under t1 -> 1/t1)"
                 + (f"\nleft: SGD-stable but not GD-stable on {ivs} -- 'proper subset' only inside a window"
                    if ivs else ""), fontsize=11)
    return save(fig, path)


@figure("toy_trajectories.png")
def plot_toy_trajectories(arrays: dict, summary: dict, config: dict, path: Path) -> Path:
    """Paper Fig. 3 right: GD trajectories in the (t1, t2) plane with M = {t1 t2 = 1}."""
    traj = arrays["traj"]  # (T, 2 runs, 2)
    fig, ax = plt.subplots(figsize=(6.5, 6))
    t = np.linspace(0.3, 3.0, 400)
    ax.plot(t, 1 / t, color="k", lw=1, label="M: t1 t2 = 1")
    ax.plot([0, 3], [0, 3], color="grey", ls=":", lw=1, label="diagonal t1 = t2")
    end = summary["traj_end_0.25"]
    a, b = summary["traj_last_two_0.325"]
    for j, (eta, c, lab) in enumerate(((0.25, "tab:blue", f"eta = 0.25 -> ({end[0]:.5f}, {end[1]:.5f})"),
                                       (0.325, "tab:red", f"eta = 0.325 -> 2-cycle {a[0]:.5f} <-> {b[0]:.5f}"))):
        ax.plot(traj[:, j, 0], traj[:, j, 1], "o-", color=c, ms=2.5, lw=0.6, alpha=0.8, label=lab)
    ax.plot(*traj[0, 0], "s", color="k", ms=6, label="start (1.48, 1/1.48 + 0.1)")
    finite = traj[np.all(np.isfinite(traj), axis=-1)]
    lo, hi = min(0.5, finite.min()) - 0.05, max(1.6, finite.max()) + 0.05
    ax.set(xlabel="t1", ylabel="t2", xlim=(lo, hi), ylim=(lo, hi),
           title=f"GD on the two-point ReLU toy (first {traj.shape[0]} steps)")
    ax.legend(fontsize=8)
    return save(fig, path)


PERIOD_COLOURS = {1: "tab:blue", 2: "tab:green", 4: "tab:orange", 8: "tab:red", 16: "tab:purple"}


@figure("bifurcation.png")
def plot_bifurcation(arrays: dict, summary: dict, config: dict, path: Path) -> Path:
    """Paper Fig. 3 left: attractor points t (= t1 = t2) against eta, coloured by period."""
    eta, tail, period = arrays["eta"], arrays["tail_t"], arrays["period"]
    fig, ax = plt.subplots(figsize=(10, 6))
    groups: dict[str, tuple[str, list, list]] = {}
    for i in range(len(eta)):
        p = int(period[i])
        pts = tail[i, -p:] if p > 0 else tail[i]
        if p in PERIOD_COLOURS:
            c, lab = PERIOD_COLOURS[p], f"period {p}"
        elif p > 0:
            c, lab = "tab:brown", "period > 16"
        elif p == 0:
            c, lab = "0.5", "aperiodic (no period <= max)"
        else:
            c, lab = "k", "left the quadrant"
        g = groups.setdefault(lab, (c, [], []))
        g[1].append(np.full(pts.shape, eta[i]))
        g[2].append(pts)
    order = sorted(groups, key=lambda lab: (lab.startswith("aperiodic"), lab.startswith("left"),
                                            int(lab.split()[1]) if lab.split()[1].isdigit() else 99))
    for lab in order:
        c, xs, ys = groups[lab]
        small = lab.startswith("aperiodic")
        ax.scatter(np.concatenate(xs), np.concatenate(ys), s=0.2 if small else 2.0, color=c, lw=0,
                   label=lab, rasterized=True)
    for key, txt in (("threshold_fixed", "fixed point loses stability"),
                     ("threshold_period2", "period 2 loses stability")):
        v = summary.get(key)
        if v is not None:
            ax.axvline(v, color="k", ls="--", lw=0.8)
            ax.text(v, ax.get_ylim()[1], f" {txt}\n eta = {v:.5f}", va="top", fontsize=8)
    ax.set(xlabel="step size eta", ylabel="attractor t (t1 = t2)",
           title="GD on the diagonal of the two-point ReLU toy: t -> t + 2 c eta t (1 - t^2)")
    ax.legend(fontsize=8, loc="lower left", markerscale=6)
    return save(fig, path)


@figure("sgd_montecarlo.png")
def plot_sgd_montecarlo(arrays: dict, summary: dict, config: dict, path: Path) -> Path:
    """Distance to M over SGD steps for every run, and the final points in the (t1, t2) plane."""
    dist, conv = arrays["dist"], arrays["converged"].astype(bool)
    every = int(arrays["record_every"])
    K = dist.shape[1] // 2
    steps = np.arange(dist.shape[0]) * every
    fig, axes = plt.subplots(1, 2, figsize=(13, 5))
    ax = axes[0]
    for i, (label, c) in enumerate((("unstable", "tab:red"), ("stable", "tab:blue"))):
        r = summary[label]
        for j in range(K):
            ax.semilogy(steps, np.maximum(dist[:, i * K + j], 1e-17), color=c, lw=0.7, alpha=0.6,
                        label=None if j else (f"near t1 = {r['t1']:g} (lambda = {r['lambda']:+.4f}): "
                                              f"{r['converged']}/{r['runs']} converge"))
    ax.axhline(config.get("tol", 1e-8), color="k", ls="--", lw=0.8, label="convergence tolerance")
    ax.set(xlabel="SGD step", ylabel="|1 - t1 t2| (distance to M)",
           title=f"Batched SGD, eta = {config.get('eta')}, p = {config.get('p')}")
    ax.legend(fontsize=8)
    ax = axes[1]
    fin, st = arrays["final"], arrays["starts"]
    t = np.linspace(0.2, 4, 400)
    ax.plot(t, 1 / t, color="k", lw=1, label="M: t1 t2 = 1")
    ax.plot(st[:, 0], st[:, 1], "x", color="grey", ms=5, label="starts")
    ax.plot(fin[conv, 0], fin[conv, 1], "o", color="tab:blue", ms=5, label="final, converged")
    off = ~conv & np.all(np.isfinite(fin), axis=1)
    ax.plot(fin[off, 0], fin[off, 1], "o", mfc="none", color="tab:red", ms=5, label="final, not converged")
    ax.set(xlabel="t1", ylabel="t2", xlim=(-2, 4), ylim=(-2, 4), title="Start and end points")
    ax.axhline(0, color="grey", lw=0.5)
    ax.axvline(0, color="grey", lw=0.5)
    ax.legend(fontsize=8)
    return save(fig, path)
