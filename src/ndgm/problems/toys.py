"""Small closed-form problems: the contrast quadratic and the toys of the non-singularity paper.

* `Quadratic`: ``1/2 w^T A w``, the smooth contrast of "GD doesn't make the cut" (Fig. 5).
* `Quartic1D`: the 1-D loss of paper Fig. 1, C^1 but not C^2, whose GD map at
  ``eta = 1/2`` collapses ``|t| > 2`` onto the local maximum 0.
* `TwoPointReLU`: the two-point ReLU toy of paper appendix C (Figs. 3 and 4),
  ``f(x) = relu(t2 relu(t1 x))`` on ``{(0.9, 0.9), (2.5, 2.5)}``, batched over a leading
  axis of ``(t1, t2)`` pairs.

All are `Problem`s (parameters ``(K, d)``, values ``(K,)``), so the engine and the GD-map
tools in `ndgm.analysis.gdmap` apply to them unchanged. The toys of the non-singularity paper
come from spec stability.md, sections 2 and 4.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..errors import NdgmError
from .base import Problem

__all__ = ["Quadratic", "Quartic1D", "TwoPointReLU", "TOY_X", "PAPER_SCALE"]

TOY_X = (0.9, 2.5)
#: ``(0.9^2 + 2.5^2) / 4``: the scale of ``L = c (1 - t1 t2)^2`` that the model actually has.
PAPER_SCALE = (TOY_X[0] ** 2 + TOY_X[1] ** 2) / 4


class Quadratic(Problem):
    r"""The convex quadratic ``f(w) = 1/2 w^T A w`` (paper Fig. 5 contrast).

    Gradient ``A w``; smoothness ``L = lambda_max(A)``; with ``A`` positive definite the
    unique minimiser is 0 and GD with ``eta < 2 / L`` converges.
    """

    def __init__(self, A: Tensor):
        if A.ndim != 2 or A.shape[0] != A.shape[1]:
            raise ValueError(f"A must be a square matrix, got shape {tuple(A.shape)}")
        self.A = 0.5 * (A + A.T)
        self.dim = A.shape[0]
        eig = torch.linalg.eigvalsh(self.A.to(torch.float64))
        self.smoothness = float(eig.abs().max())
        self.lambda_min = float(eig[0])
        self.lipschitz = None

    def value(self, W: Tensor) -> Tensor:
        return 0.5 * ((W @ self.A) * W).sum(-1)

    def value_and_grad(self, W: Tensor) -> tuple[Tensor, Tensor]:
        AW = W @ self.A
        return 0.5 * (AW * W).sum(-1), AW

    def minimiser(self) -> Tensor | None:
        return torch.zeros(self.dim, dtype=self.A.dtype) if self.lambda_min > 0 else None

    def optimal_value(self) -> float | None:
        return 0.0 if self.lambda_min > 0 else None


class Quartic1D(Problem):
    r"""Paper Fig. 1: ``L(t) = 0.5 t^4 - 3 t^2 + 8`` for ``|t| <= 2``, ``t^2`` otherwise.

    ``L'(t) = 2 t^3 - 6 t`` inside, ``2 t`` outside (continuous at ``+-2``: both 4 and 8 match
    ``L``, both 4 and 4 match ``L'``); ``L''`` jumps from 18 to 2 at ``|t| = 2``. Minima at
    ``+-sqrt(3)`` (``L'' = 12``), local maximum at 0 (``L'' = -6``).
    """

    dim = 1
    lipschitz = None
    smoothness = None

    def value(self, W: Tensor) -> Tensor:
        t = W[..., 0]
        return torch.where(t.abs() <= 2, 0.5 * t**4 - 3 * t**2 + 8, t**2)

    def value_and_grad(self, W: Tensor) -> tuple[Tensor, Tensor]:
        t = W[..., 0]
        inside = t.abs() <= 2
        v = torch.where(inside, 0.5 * t**4 - 3 * t**2 + 8, t**2)
        g = torch.where(inside, 2 * t**3 - 6 * t, 2 * t)
        return v, g[..., None]

    @staticmethod
    def hessian_1d(t: Tensor) -> Tensor:
        """``L''(t)``: ``6 t^2 - 6`` for ``|t| <= 2``, 2 outside (the one-sided value at +-2 from inside)."""
        return torch.where(t.abs() <= 2, 6 * t**2 - 6, torch.full_like(t, 2.0))

    def gd_map(self, t: Tensor, eta: float | Tensor) -> Tensor:
        """``G_eta(t) = t - eta L'(t)`` on a tensor of scalars ``t`` (any shape)."""
        return t - eta * self.value_and_grad(t[..., None])[1][..., 0]

    def minimiser(self) -> Tensor:
        return torch.tensor([math.sqrt(3.0)], dtype=torch.float64)

    def optimal_value(self) -> float:
        return 0.5 * 9 - 9 + 8  # L(sqrt 3) = 3.5


class TwoPointReLU(Problem):
    r"""Two-point ReLU toy (paper appendix C): ``L(t) = mean_i 1/2 (relu(t2 relu(t1 x_i)) - y_i)^2``.

    With ``x_i = y_i`` and ``t1, t2 > 0`` every per-sample loss is
    ``l_i = (x_i^2 / 2) (1 - t1 t2)^2`` and the mean is ``c (1 - t1 t2)^2`` with
    ``c = (0.81 + 6.25) / 4 = 1.765``. The paper prints ``3.53``; ``scale`` multiplies every
    per-sample loss by ``scale / 1.765`` so both readings are available (default 1.765, the
    only one under which the paper's figures come out).

    Outside the open positive quadrant the network outputs 0 and autodiff's gradient is 0
    (``relu'(0) = 0``): those points are fixed by GD.

    Parameters
    ----------
    scale : float
        The constant ``c`` in ``L = c (1 - t1 t2)^2``; must be > 0.
    """

    dim = 2
    lipschitz = None
    smoothness = None

    def __init__(self, scale: float = PAPER_SCALE):
        if not (isinstance(scale, (int, float)) and math.isfinite(scale) and scale > 0):
            raise NdgmError(f"scale must be a finite number > 0, got {scale!r}")
        self.scale = float(scale)
        factor = self.scale / PAPER_SCALE
        #: per-sample curvature constants ``a_i`` with ``l_i = (a_i / 2)(1 - t1 t2)^2`` on the quadrant
        self.sample_curvature = tuple(factor * x * x for x in TOY_X)

    # -- full-batch -----------------------------------------------------------------
    def value(self, W: Tensor) -> Tensor:
        """Through the actual network (used to check the closed forms against autograd)."""
        x = torch.tensor(TOY_X, dtype=W.dtype, device=W.device)
        out = torch.relu(W[:, 1:2] * torch.relu(W[:, 0:1] * x))  # (K, 2)
        per_sample = 0.5 * (out - x) ** 2 * (self.scale / PAPER_SCALE)
        return per_sample.mean(-1)

    def value_and_grad(self, W: Tensor) -> tuple[Tensor, Tensor]:
        """Closed form: ``L = c (1 - t1 t2)^2``, ``grad = -2 c (1 - t1 t2) (t2, t1)`` on the quadrant."""
        return self.batch_value_and_grad(W, None)

    def batch_value_and_grad(self, W: Tensor, which: Tensor | None) -> tuple[Tensor, Tensor]:
        """Value and gradient of the full loss (``which=None``) or of sample ``which[k]`` per row.

        ``which`` is a ``(K,)`` integer tensor of 0 (point ``(0.9, 0.9)``) or 1 (``(2.5, 2.5)``).
        """
        t1, t2 = W[:, 0], W[:, 1]
        on = (t1 > 0) & (t2 > 0)
        a0, a1 = self.sample_curvature
        if which is None:
            coef = torch.full_like(t1, 0.5 * (a0 + a1))
        else:
            coef = torch.where(which == 0, torch.full_like(t1, a0), torch.full_like(t1, a1))
        r = 1 - t1 * t2
        r_on = torch.where(on, r, torch.zeros_like(r))
        # Off the quadrant the output is 0: l_i = x_i^2 / 2 (times the scale factor), grad 0.
        value = torch.where(on, 0.5 * coef * r * r, 0.5 * coef)
        grad = (-coef * r_on)[:, None] * torch.stack([t2, t1], dim=-1)
        return value, grad

    def gd_map(self, W: Tensor, eta: float | Tensor) -> Tensor:
        """``G_eta(t) = t - eta grad L(t)`` on ``(K, 2)``; ``eta`` scalar or ``(K,)``."""
        eta = torch.as_tensor(eta, dtype=W.dtype, device=W.device)
        return W - (eta[:, None] if eta.ndim else eta) * self.value_and_grad(W)[1]

    def sgd_map(self, W: Tensor, eta: float | Tensor, which: Tensor) -> Tensor:
        """One batch-size-1 SGD step per row with the sample ``which[k]``."""
        eta = torch.as_tensor(eta, dtype=W.dtype, device=W.device)
        return W - (eta[:, None] if eta.ndim else eta) * self.batch_value_and_grad(W, which)[1]

    def hessian(self, W: Tensor) -> Tensor:
        r"""Hessian ``(K, 2, 2)`` on the open quadrant:

        ``2c [[t2^2, 2 t1 t2 - 1], [2 t1 t2 - 1, t1^2]]`` (zero outside).
        """
        t1, t2 = W[:, 0], W[:, 1]
        c2 = 2 * self.scale
        off = 2 * t1 * t2 - 1
        H = c2 * torch.stack([torch.stack([t2 * t2, off], -1), torch.stack([off, t1 * t1], -1)], -2)
        on = ((t1 > 0) & (t2 > 0))[:, None, None]
        return torch.where(on, H, torch.zeros_like(H))

    def gd_jacobian(self, W: Tensor, eta: float | Tensor) -> Tensor:
        """``D G_eta = I - eta H`` per row, ``(K, 2, 2)``."""
        eta = torch.as_tensor(eta, dtype=W.dtype, device=W.device)
        eye = torch.eye(2, dtype=W.dtype, device=W.device)
        return eye - (eta[:, None, None] if eta.ndim else eta) * self.hessian(W)

    def diagonal_map(self, t: Tensor, eta: float | Tensor) -> Tensor:
        """GD restricted to the invariant diagonal ``t1 = t2 = t``: ``t + 2 c eta t (1 - t^2)``."""
        return t + 2 * self.scale * eta * t * (1 - t * t)

    def minimiser(self) -> Tensor:
        return torch.tensor([1.0, 1.0], dtype=torch.float64)

    def optimal_value(self) -> float:
        return 0.0
