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


def render(names, arrays: dict, summary: dict, config: dict, outdir: Path, strict: bool = True) -> list[Path]:
    """Write the figures ``names`` into ``outdir``; return the paths written.

    ``strict=False`` (saving a run, ``ndgm show --plot``): a figure that fails to draw
    (values matplotlib cannot place, a key an old run lacks) does not cost the run; a PNG
    saying so takes its place and one ``ndgm: warning: figure ... could not be drawn`` line
    goes to stderr. ``strict`` (the default, for tests) raises.
    """
    import sys
    import warnings

    out = []
    for name in names:
        fn = get(name)
        target = Path(outdir) / name
        try:
            with warnings.catch_warnings():
                # matplotlib's notes on huge or non-finite data (a diverged run) are not news here
                warnings.simplefilter("ignore", RuntimeWarning)
                warnings.simplefilter("ignore", UserWarning)
                path = fn(arrays, summary, config, target)
        except Exception as e:  # noqa: BLE001
            if strict:
                raise
            reason = f"{type(e).__name__}: {' '.join(str(e).split())[:200]}"
            print(f"ndgm: warning: figure {name} could not be drawn ({reason})", file=sys.stderr)
            path = _placeholder(target, reason) if target.suffix.lower() == ".png" else None
        if path is not None:
            out.append(Path(path))
    return out


def _placeholder(path: Path, reason: str) -> Path | None:
    """A PNG that says the figure could not be drawn, and why."""
    try:
        from .common import plt, save

        plt.close("all")
        fig, ax = plt.subplots(figsize=(8, 2.5))
        ax.axis("off")
        ax.text(0.5, 0.5, f"{path.name} could not be drawn:\n{reason}", ha="center", va="center", wrap=True)
        return save(fig, path)
    except Exception:  # noqa: BLE001 - nothing more to do
        return None


def write_figures(result: Any, folder: Path) -> list[str]:
    """`ndgm.store.RunStore.save`'s hook: a `Result`'s figures, written into its run folder."""
    return [p.name for p in render(result.figures, result.arrays, result.summary, result.config, folder, strict=False)]
