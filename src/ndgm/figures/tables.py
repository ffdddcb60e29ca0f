"""Text tables rebuilt from stored runs (no matplotlib: experiments import this to write summaries)."""

from __future__ import annotations

import numpy as np

__all__ = ["table2_markdown", "lo_arm", "prune_markdown"]


def lo_arm(optimizer: str, protocol: str, arms: list[str], carried: set[str] | None = None) -> int:
    """Index in ``arms`` of the smaller lam's run of ``optimizer`` under ``protocol``: the fresh run,
    or under the paper protocol the run with the state carried over when ``optimizer`` has one
    (``carried``; SGD and ProxSGD keep none, their paper-order run is the fresh one)."""
    carried = {"rmsprop", "adam"} if carried is None else carried
    if protocol == "paper" and optimizer in carried:
        return arms.index("lo_paper")
    return arms.index("lo")


def table2_markdown(summary: dict, percent: np.ndarray, pair: str, protocol: str,
                    what: str = "percent of parameters with |theta| < 1e-5") -> str:
    """Paper Table 2's layout for one pair of lams and one protocol: rows optimizers, columns
    (lam ascending, seed) with "alt" for seeds after the first.

    ``percent`` has shape (pair, optimizer, arm, seed) in the order of ``summary['pair_names']``,
    ``summary['optimizers']`` and ``summary['arms']`` (``hi``, ``lo``, ``lo_paper``). Under the
    paper protocol only the NDGM optimizers are listed (the paper ran no proximal method).
    """
    opts, seeds, arms = summary["optimizers"], summary["seeds"], summary["arms"]
    p = summary["pair_names"].index(pair)
    lam_hi, lam_lo = summary["pairs"][pair]
    cols = []
    for lam, arm in ((lam_lo, None), (lam_hi, "hi")):
        for si, _ in enumerate(seeds):
            cols.append((arm, si, f"lam={lam:g}" + ("" if si == 0 else " alt" + ("" if si == 1 else str(si)))))
    lines = [f"{what}, lam {lam_hi:g} vs {lam_lo:g}, {protocol} protocol", "",
             "| optimizer | " + " | ".join(c[2] for c in cols) + " |", "|---|" + "---|" * len(cols)]
    for oi, o in enumerate(opts):
        if protocol == "paper" and o.startswith("prox"):
            continue
        cells = []
        for arm, si, _ in cols:
            a = arms.index(arm) if arm else lo_arm(o, protocol, arms)
            v = percent[p, oi, a, si]
            cells.append("-" if not np.isfinite(v) else f"{v:.2f}")
        lines.append(f"| {o} | " + " | ".join(cells) + " |")
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
