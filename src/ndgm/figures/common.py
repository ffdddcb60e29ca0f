"""What every plotting module shares: matplotlib without a display, and saving a figure."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

DPI = 120

__all__ = ["plt", "save", "DPI", "plottable", "is_plottable", "note_if_empty", "LARGEST", "LARGEST_LOG"]

#: Beyond this magnitude matplotlib's tick and margin arithmetic overflows (a limit of 1e308
#: plus a 5% margin is inf): values past it are left out of a figure, and said so.
LARGEST = 1e305
#: The same on a log axis, whose tick locator steps whole strides of decades past the data
#: (a stride is about a tenth of the decades shown): 1e284 on a log axis already overflows.
LARGEST_LOG = 1e200


def plottable(x, largest: float = LARGEST) -> np.ndarray:
    """``x`` as float64 with inf, NaN and magnitudes beyond ``largest`` replaced by NaN (not drawn)."""
    a = np.array(x, dtype=np.float64, copy=True)
    with np.errstate(invalid="ignore"):
        a[~(np.abs(a) <= largest)] = np.nan
    return a


def is_plottable(v) -> bool:
    """Whether the single value ``v`` can be drawn (a finite number within `LARGEST`)."""
    try:
        return bool(abs(float(v)) <= LARGEST)
    except (TypeError, ValueError):
        return False


def save(fig, path: Path) -> Path:
    """Lay out, write and close ``fig``; return ``path``."""
    path = Path(path)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def note_if_empty(ax, text: str = "no finite values to draw (diverged)") -> None:
    """Write ``text`` across ``ax`` when none of its lines has a drawable point."""
    if not any(np.isfinite(np.asarray(line.get_ydata(), dtype=float)).any() for line in ax.get_lines()):
        ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", color="tab:red")
