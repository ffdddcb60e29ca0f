"""Text tables rebuilt from stored runs (no matplotlib: experiments import this to write summaries)."""

from __future__ import annotations

import numpy as np

__all__ = ["table2_markdown", "prune_markdown"]


def table2_markdown(summary: dict, percent: np.ndarray, what: str = "percent of parameters with |theta| < 1e-5") -> str:
    """Paper Table 2's layout: rows optimizers, columns (lam ascending, seed) with "alt" for seeds > first."""
    opts, lams, seeds = summary["optimizers"], summary["lams"], summary["seeds"]
    order = np.argsort(lams)
    cols = []
    for li in order:
        for si, _ in enumerate(seeds):
            cols.append((li, si, f"lam={lams[li]:g}" + ("" if si == 0 else " alt" + ("" if si == 1 else str(si)))))
    lines = [f"{what}", "", "| optimizer | " + " | ".join(c[2] for c in cols) + " |",
             "|---|" + "---|" * len(cols)]
    for oi, o in enumerate(opts):
        lines.append(f"| {o} | " + " | ".join(f"{percent[oi, li, si]:.2f}" for li, si, _ in cols) + " |")
    return "\n".join(lines)


def prune_markdown(summary: dict) -> str:
    """The prune experiment's table: one row per arm at its matched-accuracy lam, means over seeds."""
    matched, runs = summary["matched"], summary["runs"]
    heads = ["arm", "lam", "val acc", "exact zeros", "< 1e-5", "channels removed", "parameters", "bytes",
             "speed-up"]
    lines = [f"means over {len(summary['seeds'])} seeds at matched accuracy (dense: {summary['params_dense']} "
             f"parameters, {summary['bytes_dense']} bytes; unpenalised accuracy "
             + ", ".join(f"{b} {100 * np.mean(v):.1f}%" for b, v in summary["dense_val_acc"].items()) + ")", "",
             "| " + " | ".join(heads) + " |", "|" + "---|" * len(heads)]
    for arm in summary["arms"]:
        lam = matched[arm]["lam"]
        r = {k: float(np.mean(v)) for k, v in runs[arm][lam].items()}
        mark = "" if matched[arm]["matched"] else " (not matched)"
        lines.append(f"| {arm} | {lam}{mark} | {100 * r['val_acc']:.1f}% | {100 * r['zero_frac']:.2f}% | "
                     f"{100 * r['small_frac']:.2f}% | {100 * r['channels_removed']:.1f}% | {r['params_after']:.0f} | "
                     f"{r['bytes_after']:.0f} | {r['speedup']:.2f}x |")
    return "\n".join(lines)
