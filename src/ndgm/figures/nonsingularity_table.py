"""The nonsingularity experiment's per-configuration table as Markdown (no matplotlib)."""

from __future__ import annotations

__all__ = ["nonsingularity_markdown"]


def _steps(v: list) -> str:
    return "none" if not v else ", ".join(f"{x:g}" for x in v)


def nonsingularity_markdown(rows: list[dict]) -> str:
    """One line per (architecture, activation, loss): what was tried and what was found."""
    head = ("| arch | activation | loss | d | spectra | points | eta per point | pairs | singular | "
            "min log10 sigma_min/tol | ball: one pattern | ball: persistent | ball: least move / rounding | "
            "dead layer: exceptional eta | dead: bias spread after/before eta=1 |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        lines.append(
            f"| {r['arch']} | {r['activation']} | {r['loss']} | {r['dim']} | {r['method']} | {r['points']} | "
            f"{r['step_sizes_per_point']} | {r['pairs']} | {r['singular']} | {r['min_log10_margin']:.1f} | "
            f"{'yes' if r['ball_same_pattern'] else 'no'} | {r['ball_persistent']} of {r['ball_candidates']} | "
            f"{r['ball_min_ratio']:.3g} | {_steps(r['dead_exceptional_steps'])} | {r['dead_collapse_ratio']:.2g} |")
    return "\n".join(lines)
