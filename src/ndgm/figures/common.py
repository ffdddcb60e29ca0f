"""What every plotting module shares: matplotlib without a display, and saving a figure."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

DPI = 120

__all__ = ["plt", "save", "DPI"]


def save(fig, path: Path) -> Path:
    """Lay out, write and close ``fig``; return ``path``."""
    path = Path(path)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path
