"""Text tables rebuilt from stored runs (no matplotlib: experiments import this to write summaries)."""

from __future__ import annotations

import numpy as np

__all__ = ["table2_markdown"]


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
