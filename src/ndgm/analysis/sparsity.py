"""Sparsity audit of weights and a period-k detector for recorded iterates.

`sparsity_audit` answers "how sparse is this model, really?": exact zeros (what a pruning
step can drop without changing the function) next to the fractions below 1e-8, 1e-5 and
1e-3 (what a threshold would drop), per layer and overall. `small_fraction` and
`exact_zero_fraction` are the two overall numbers alone (paper Table 2's metric is
``small_fraction(model, 1e-5)``). `detect_period` finds the smallest ``p`` with
``w_{k+p} = w_k`` (to a tolerance) over a tail of recorded iterates: period 2 is NDGM's
cycle on the L1 kink.

Thresholds are compared in each tensor's own dtype, as ``p.abs() < 1e-5`` does in PyTorch
(the paper's code): the threshold is rounded to that dtype first, so a float32 weight equal
to ``float32(1e-5)`` is not below ``1e-5``, and a threshold under a dtype's smallest
subnormal (1e-8 in float16) rounds to 0 and counts nothing. Integer and boolean tensors
are compared as float64.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Iterable

import numpy as np
import torch

__all__ = ["LayerSparsity", "SparsityReport", "sparsity_audit", "small_fraction", "exact_zero_fraction",
           "PeriodReport", "detect_period"]

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


Weights = torch.nn.Module | Iterable | dict | torch.Tensor | np.ndarray


def _named(weights: Weights) -> list[tuple[str, torch.Tensor | np.ndarray]]:
    """``(name, tensor)`` pairs: a module's named parameters, a dict's items, or numbered tensors."""
    if isinstance(weights, torch.nn.Module):
        return list(weights.named_parameters())
    if isinstance(weights, dict):
        return list(weights.items())
    if isinstance(weights, (torch.Tensor, np.ndarray)):
        return [("tensor", weights)]
    return [(f"tensor{i}", t) for i, t in enumerate(weights)]


def _magnitudes(t: torch.Tensor | np.ndarray) -> torch.Tensor:
    """``|t|`` flattened, in ``t``'s own floating dtype (see the module docstring)."""
    a = torch.as_tensor(t).detach().reshape(-1)
    if not a.is_floating_point():
        a = a.to(torch.float64)
    return a.abs()


def _count_below(a: torch.Tensor, threshold: float) -> int:
    """How many magnitudes are ``< threshold``, compared in ``a``'s dtype."""
    return int((a < threshold).sum())


def _count_zeros(a: torch.Tensor) -> int:
    return int((a == 0).sum())


def _row(name: str, t: torch.Tensor | np.ndarray) -> LayerSparsity:
    a = _magnitudes(t)
    n = a.numel()
    below = {th: (_count_below(a, th) / n if n else 0.0) for th in THRESHOLDS}
    return LayerSparsity(name, n, _count_zeros(a), below, float(a.to(torch.float64).sum()))


def small_fraction(weights: Weights, threshold: float = 1e-5) -> float:
    """Fraction of all entries with ``|w| < threshold`` (paper Table 2, in [0, 1]; 0.0 when empty).

    ``weights``: an ``nn.Module`` (its parameters), a dict name -> tensor, a tensor or array,
    or a list of them. The comparison is in each tensor's dtype (module docstring).
    """
    mags = [_magnitudes(t) for _, t in _named(weights)]
    n = sum(a.numel() for a in mags)
    return sum(_count_below(a, threshold) for a in mags) / n if n else 0.0


def exact_zero_fraction(weights: Weights) -> float:
    """Fraction of all entries exactly equal to 0.0 (``-0.0`` included; 0.0 when empty).

    ``weights`` as in `small_fraction`.
    """
    mags = [_magnitudes(t) for _, t in _named(weights)]
    n = sum(a.numel() for a in mags)
    return sum(_count_zeros(a) for a in mags) / n if n else 0.0


def sparsity_audit(weights: Weights) -> SparsityReport:
    """Audit an ``nn.Module`` (its named parameters), a dict name -> tensor, or a list of tensors/arrays.

    Counts are exact (``== 0``), never thresholded; the thresholded fractions are reported
    beside them, compared in each tensor's own dtype (module docstring). The L1 norm is
    summed in float64.
    """
    rows = [_row(n, t) for n, t in _named(weights)]
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
