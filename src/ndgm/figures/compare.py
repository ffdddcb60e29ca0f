"""``ndgm compare``: the 1-D series of several stored runs of one experiment, overlaid."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .common import plt, save


def plot_compare(runs: list, path: Path, max_panels: int = 4) -> Path:
    """Overlay the 1-D series that every run of one experiment stored (``ndgm compare``).

    Each run is labelled by the config values in which the runs differ.
    """
    arrays = [r.arrays() for r in runs]
    common = [k for k, v in arrays[0].items() if v.ndim == 1 and v.size > 1 and all(k in a and a[k].ndim == 1 for a in arrays)]
    common.sort(key=lambda k: (k != "loss", k))
    common = common[:max_panels]
    if not common:
        common_2d = [k for k, v in arrays[0].items() if v.ndim == 2 and all(k in a for a in arrays)]
        common = common_2d[:1]
    cfgs = [r.config.get("config", {}) for r in runs]
    differ = [k for k in cfgs[0] if any(c.get(k) != cfgs[0].get(k) for c in cfgs)]
    labels = [", ".join(f"{k}={c.get(k)}" for k in differ) or r.run_id for r, c in zip(runs, cfgs)]
    fig, axes = plt.subplots(len(common), 1, figsize=(9, 3.2 * max(1, len(common))), squeeze=False)
    for ax, key in zip(axes[:, 0], common):
        for a, label in zip(arrays, labels):
            y = a[key] if a[key].ndim == 1 else a[key][:, 0]
            ax.plot(np.arange(y.size), y, lw=1.2, label=label)
        finite = np.concatenate([np.asarray(a[key], dtype=float).ravel() for a in arrays])
        finite = finite[np.isfinite(finite)]
        if finite.size and finite.min() > 0 and finite.max() / finite.min() > 1e3:
            ax.set_yscale("log")
        ax.set(title=key, xlabel="index (iteration)", ylabel=key)
        ax.legend(fontsize=8)
    fig.suptitle(f"{runs[0].experiment}: {len(runs)} runs")
    return save(fig, path)
