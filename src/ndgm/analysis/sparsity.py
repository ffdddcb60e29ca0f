"""Sparsity audit of weights and a period-k detector for recorded iterates.

`sparsity_audit` answers "how sparse is this model, really?": exact zeros (what a pruning
step can drop without changing the function) next to the fractions below 1e-8, 1e-5 and
1e-3 (what a threshold would drop), per layer and overall. `detect_period` finds the
smallest ``p`` with ``w_{k+p} = w_k`` (to a tolerance) over a tail of recorded iterates:
period 2 is NDGM's cycle on the L1 kink.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Iterable

import numpy as np
import torch

__all__ = ["LayerSparsity", "SparsityReport", "sparsity_audit", "PeriodReport", "detect_period"]

THRESHOLDS = (1e-8, 1e-5, 1e-3)


@dataclass
class LayerSparsity:
    """Sparsity of one tensor: ``numel``, ``exact_zeros`` (``w == 0``), ``below`` (threshold -> fraction
    of ``|w| < threshold``), ``l1`` (``sum |w|``)."""

    name: str
    numel: int
    exact_zeros: int
    below: dict[float, float]
    l1: float

    @property
    def exact_zero_fraction(self) -> float:
        return self.exact_zeros / self.numel if self.numel else 0.0


@dataclass
class SparsityReport:
    """Per-layer rows and the totals over all of them."""

    layers: list[LayerSparsity]
    total: LayerSparsity

    def as_dict(self) -> dict:
        return {"layers": [asdict(r) for r in self.layers], "total": asdict(self.total)}

    def table(self) -> str:
        """A Markdown table: one row per layer, then the total."""
        heads = ["layer", "numel", "exact zeros", *[f"< {t:g}" for t in THRESHOLDS], "L1 norm"]
        lines = ["| " + " | ".join(heads) + " |", "|" + "---|" * len(heads)]
        for r in [*self.layers, self.total]:
            cells = [r.name, str(r.numel), f"{r.exact_zeros} ({100 * r.exact_zero_fraction:.2f}%)",
                     *[f"{100 * r.below[t]:.2f}%" for t in THRESHOLDS], f"{r.l1:.6g}"]
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines)


def _row(name: str, t: torch.Tensor | np.ndarray) -> LayerSparsity:
    a = torch.as_tensor(t).detach().to(torch.float64).reshape(-1).abs()
    n = a.numel()
    below = {th: (float((a < th).sum()) / n if n else 0.0) for th in THRESHOLDS}
    return LayerSparsity(name, n, int((a == 0).sum()), below, float(a.sum()))


def sparsity_audit(weights: torch.nn.Module | Iterable | dict) -> SparsityReport:
    """Audit an ``nn.Module`` (its named parameters), a dict name -> tensor, or a list of tensors/arrays.

    Counts are exact (``== 0``), never thresholded; the thresholded fractions are reported
    beside them. Works in the tensor's own precision (the comparison is cast to float64).
    """
    if isinstance(weights, torch.nn.Module):
        items = [(n, p) for n, p in weights.named_parameters()]
    elif isinstance(weights, dict):
        items = list(weights.items())
    elif isinstance(weights, (torch.Tensor, np.ndarray)):
        items = [("tensor", weights)]
    else:
        items = [(f"tensor{i}", t) for i, t in enumerate(weights)]
    rows = [_row(n, t) for n, t in items]
    numel = sum(r.numel for r in rows)
    total = LayerSparsity(
        "total", numel, sum(r.exact_zeros for r in rows),
        {th: (sum(r.below[th] * r.numel for r in rows) / numel if numel else 0.0) for th in THRESHOLDS},
        sum(r.l1 for r in rows))
    return SparsityReport(rows, total)


@dataclass
class PeriodReport:
    """Result of `detect_period`.

    Attributes
    ----------
    period : int or None
        Smallest ``p`` in ``1..max_period`` with ``max_k ||w_{k+p} - w_k||_inf <= tol`` over the
        tail; None when there is none (not periodic, or still moving).
    exact : bool
        The repetition is bitwise (``tol`` not needed).
    residuals : dict
        ``p -> max_k ||w_{k+p} - w_k||_inf`` for each tried ``p``.
    """

    period: int | None
    exact: bool
    residuals: dict[int, float] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"period": self.period, "exact": self.exact, "residuals": {str(k): v for k, v in self.residuals.items()}}


def detect_period(iterates: np.ndarray, max_period: int = 16, tol: float = 0.0) -> PeriodReport:
    """Find period-``p`` behaviour in recorded iterates (shape ``(T,)`` or ``(T, d)``).

    ``p = 1`` means the iterates stopped moving (converged or stuck); ``p = 2`` is the
    two-point cycle of NDGM on a kink; larger ``p`` are the rotations that asymmetric
    subgradients produce. Needs ``T > 2 p`` recorded iterates to test ``p``.
    """
    W = np.asarray(iterates, dtype=np.float64)
    if W.ndim == 1:
        W = W[:, None]
    W = W.reshape(W.shape[0], -1)
    residuals: dict[int, float] = {}
    if not np.all(np.isfinite(W)):
        return PeriodReport(None, False, residuals)
    for p in range(1, max_period + 1):
        if W.shape[0] <= 2 * p:
            break
        r = float(np.abs(W[p:] - W[:-p]).max())
        residuals[p] = r
        if r <= tol:
            return PeriodReport(p, r == 0.0, residuals)
    return PeriodReport(None, False, residuals)
