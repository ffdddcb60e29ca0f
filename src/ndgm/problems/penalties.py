r"""Penalties that know their own calculus (skglm style).

A penalty carries what every method needs to treat its kink: its `value`, the gradient
autodiff returns (`grad`, ``sgn(0) = 0``: what NDGM uses), its proximal operator (`prox`: what
ProxSGD and ISTA use), the distance from a smooth gradient to its subdifferential
(`subdiff_distance`: an optimality certificate, zero exactly at a minimiser of
``datafit + penalty``) and the smallest weight whose minimiser is 0 (`alpha_max`).

Weights are scalars or one per configuration (shape ``(K,)``). `L1Penalty.value` and
`L1Penalty.subdiff_distance` also take numpy arrays (the full-batch solvers' CPU loop).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from .base import col, per_config

__all__ = ["L1Penalty", "L1L2Penalty", "soft_threshold"]


def soft_threshold(v: Tensor, tau: float | Tensor) -> Tensor:
    r""":math:`S_\tau(v) = \mathrm{sgn}(v)\max(|v| - \tau, 0)`; coordinates with :math:`|v| \le \tau` become exactly 0.

    Parameters
    ----------
    v : Tensor
        Points to threshold.
    tau : float or Tensor
        Threshold, broadcastable against ``v``.

    Returns
    -------
    Tensor
        ``S_tau(v)``, same shape as ``v``.
    """
    return v.sgn() * (v.abs() - tau).clamp_min(0)


@dataclass
class L1Penalty:
    r"""The penalty ``lam * ||w||_1`` and its calculus.

    Parameters
    ----------
    lam : float or Tensor of shape (K,)
        Penalty weight per configuration.

    Notes
    -----
    * ``value``: :math:`\lambda \|w\|_1`.
    * ``grad``: what autodiff returns, :math:`\lambda\,\mathrm{sgn}(w)` with ``sgn(0) = 0``.
    * ``prox``: soft thresholding, :math:`\mathrm{sgn}(w)\max(|w| - s\lambda, 0)`.
    * ``subdiff_distance``: :math:`\mathrm{dist}(-g, \lambda\,\partial\|w\|_1)` -- zero exactly
      at a minimiser of ``smooth + penalty`` when ``g`` is the smooth part's gradient.
    * ``alpha_max``: :math:`\|\nabla \text{smooth}(0)\|_\infty`, the smallest ``lam`` whose
      minimiser is ``0``.
    * ``lipschitz(d)``: :math:`\max\lambda\,\sqrt d`, the largest norm of a subgradient.
    """

    lam: float | Tensor

    def value(self, W):
        return per_config(self.lam, W) * abs(W).sum(-1)

    def grad(self, W: Tensor) -> Tensor:
        return col(per_config(self.lam, W)) * W.sgn()

    def prox(self, W: Tensor, step: float | Tensor) -> Tensor:
        return soft_threshold(W, col(per_config(self.lam, W) * per_config(step, W)))

    def subdiff_distance(self, W, smooth_grad):
        lam = col(per_config(self.lam, W))
        if isinstance(W, np.ndarray):
            off = abs(smooth_grad + lam * np.sign(W))
            on = np.maximum(abs(smooth_grad) - lam, 0.0)
            return np.maximum.reduce(np.where(W != 0, off, on), -1)
        off = (smooth_grad + lam * W.sgn()).abs()
        on = (smooth_grad.abs() - lam).clamp_min(0)
        return torch.where(W != 0, off, on).amax(-1)

    @staticmethod
    def alpha_max(smooth_grad_at_zero: Tensor) -> Tensor:
        return smooth_grad_at_zero.abs().amax(-1)

    def lipschitz(self, dim: int) -> float:
        return float(torch.as_tensor(self.lam).abs().max()) * math.sqrt(dim)


@dataclass
class L1L2Penalty:
    r"""The elastic-net penalty ``l1 * ||w||_1 + l2 * ||w||_2^2`` (paper eq. 3's two penalties).

    * ``value``: :math:`l_2\|w\|_2^2 + l_1\|w\|_1`; ``grad``: :math:`l_1\,\mathrm{sgn}(w) + 2 l_2 w`
      (the order of the sums is the one the ReLU regression has always used: bit for bit).
    * ``prox``: :math:`S_{s l_1}(w) / (1 + 2 s l_2)`.
    * ``subdiff_distance(W, g)``: the L1 part's distance for the smooth gradient ``g + 2 l_2 w``.
    * ``alpha_max``: as for `L1Penalty` (the squared norm has gradient 0 at 0).
    """

    l1: float | Tensor
    l2: float | Tensor

    def value(self, W: Tensor) -> Tensor:
        return per_config(self.l2, W) * W.pow(2).sum(-1) + per_config(self.l1, W) * W.abs().sum(-1)

    def grad(self, W: Tensor) -> Tensor:
        return col(per_config(self.l1, W)) * W.sgn() + col(per_config(self.l2, W)) * (2 * W)

    def prox(self, W: Tensor, step: float | Tensor) -> Tensor:
        step = per_config(step, W)
        return L1Penalty(self.l1).prox(W, step) / col(1 + 2 * step * per_config(self.l2, W))

    def subdiff_distance(self, W: Tensor, smooth_grad: Tensor) -> Tensor:
        return L1Penalty(self.l1).subdiff_distance(W, smooth_grad + col(per_config(self.l2, W)) * (2 * W))

    alpha_max = L1Penalty.alpha_max

    def lipschitz(self, dim: int) -> None:
        return None  # the squared norm's gradient is unbounded
