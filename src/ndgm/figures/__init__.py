"""Figures, each rebuilt from a run's stored arrays, summary and config (never by re-running).

A figure is a function ``(arrays, summary, config, path) -> Path | None`` registered under
the file name it writes, ``@figure("capture.png")``. An experiment declares those names;
the run folder records the files it got (``figures.json``); ``ndgm show RUN --plot`` and
the report rebuild them from ``metrics.npz`` through this registry alone, without importing
any experiment. A function returns None when the run has nothing to draw (a comparison the
run did not make). Artifacts that are not images (``table2.md``) register the same way.

The plotting modules import matplotlib, so they are imported on first use, not with this
package: `ndgm.figures.tables` (text tables) can be imported without it.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, Callable

from ..errors import NdgmError

__all__ = ["FIGURES", "figure", "get", "render", "write_figures"]

Figure = Callable[[dict, dict, dict, Path], "Path | None"]
FIGURES: dict[str, Figure] = {}
MODULES = ("capture", "lasso", "curvature", "deep", "stability", "nonsingularity", "adam", "duality", "prox",
           "meansquare", "prune")


def figure(filename: str) -> Callable[[Figure], Figure]:
    """Register the decorated function as the figure written to ``filename``."""
    def register(fn: Figure) -> Figure:
        if filename in FIGURES and FIGURES[filename] is not fn:
            raise ValueError(f"figure {filename!r} is registered twice")
        FIGURES[filename] = fn
        return fn
    return register


def get(name: str) -> Figure:
    """The figure function registered as ``name``; an unknown name is an `NdgmError`."""
    for module in MODULES:
        importlib.import_module(f"{__name__}.{module}")
    try:
        return FIGURES[name]
    except KeyError:
        raise NdgmError(f"unknown figure {name!r}; known: {', '.join(sorted(FIGURES))}") from None


def render(names, arrays: dict, summary: dict, config: dict, outdir: Path) -> list[Path]:
    """Write the figures ``names`` into ``outdir``; return the paths written."""
    out = []
    for name in names:
        path = get(name)(arrays, summary, config, Path(outdir) / name)
        if path is not None:
            out.append(Path(path))
    return out


def write_figures(result: Any, folder: Path) -> list[str]:
    """`ndgm.store.RunStore.save`'s hook: a `Result`'s figures, written into its run folder."""
    return [p.name for p in render(result.figures, result.arrays, result.summary, result.config, folder)]
