r"""Penalties that know their own calculus (skglm style).

A penalty carries what every method needs to treat its kink: its `value`, the gradient
autodiff returns (`grad`, ``sgn(0) = 0``: what NDGM uses), its proximal operator (`prox`: what
ProxSGD and ISTA use), the distance from a smooth gradient to its subdifferential
(`subdiff_distance`: an optimality certificate, zero exactly at a minimiser of
``datafit + penalty``) and the smallest weight whose minimiser is 0 (`alpha_max`).

Weights are scalars or one per configuration (shape ``(K,)``). `L1Penalty.value` and
`L1Penalty.subdiff_distance` also take numpy arrays (the full-batch solvers' CPU loop).

`TensorPenalty` and its kinds (`L1NormPenalty`, `GroupL2Penalty` over a chosen dimension,
`ElasticNetPenalty`, `SparseGroupPenalty`) act on one parameter tensor of any shape instead of a
batch of configurations: the penalties the proximal torch optimizers (`ndgm.sparse.optim`) apply,
with the same calculus plus `zeroing_lam`, the smallest weight that zeroes each group.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ..errors import NdgmError
from .base import col, per_config

__all__ = ["L1Penalty", "L1L2Penalty", "soft_threshold", "TensorPenalty", "L1NormPenalty", "GroupL2Penalty",
           "ElasticNetPenalty", "SparseGroupPenalty", "group_shrink"]


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


# ---------------------------------------------------------------------------------------------
# Penalties on one parameter tensor (any shape): what the proximal torch optimizers apply.
# ---------------------------------------------------------------------------------------------


def _as_groups(w: Tensor, dim: int, group_size: int) -> Tensor:
    """``w`` as a ``(G, n)`` matrix, one row per group: ``group_size`` consecutive indices along ``dim``
    (and everything along the other axes). A view when ``dim == 0`` and ``w`` is contiguous."""
    if w.ndim == 0:
        return w.reshape(1, 1)
    if not -w.ndim <= dim < w.ndim:
        raise NdgmError(f"group dim {dim} is out of range for a parameter of shape {list(w.shape)}")
    size = w.shape[dim]
    if size % group_size:
        raise NdgmError(f"group_size {group_size} does not divide the size {size} of dim {dim} "
                         f"of a parameter of shape {list(w.shape)}")
    return w.movedim(dim, 0).reshape(size // group_size, -1)


def _from_groups(g: Tensor, like: Tensor, dim: int) -> Tensor:
    """Inverse of `_as_groups`: the ``(G, n)`` matrix back in ``like``'s shape."""
    if like.ndim == 0:
        return g.reshape(())
    moved = like.movedim(dim, 0).shape
    return g.reshape(moved).movedim(0, dim)


def group_shrink(u: Tensor, step: float | Tensor, lam: float, max_iter: int = 50) -> Tensor:
    r"""Proximal operator of :math:`\lambda\|w\|_2` for each row of ``u`` (shape ``(G, n)``), in the metric
    :math:`\mathrm{diag}(1/t)`: :math:`\arg\min_w \lambda\|w\|_2 + \sum_j (w_j - u_j)^2 / (2 t_j)`.

    Zero exactly when :math:`\|u / t\|_2 \le \lambda` (the subgradient condition at 0). Otherwise
    :math:`w_j = u_j r / (r + \lambda t_j)` with :math:`r = \|w\|_2` the root of
    :math:`\|u / (r + \lambda t)\|_2 = 1`. A scalar ``t`` (or one per row, shape ``(G, 1)``) has the closed form
    :math:`w = u \max(0, 1 - \lambda t / \|u\|_2)`; a per-coordinate ``t`` is solved by Newton's method
    on :math:`1/\|u/(r + \lambda t)\|_2 - 1`, which is concave and increasing in ``r`` (the trust-region
    secular equation of Moré and Sorensen), so the iterates from ``r = 0`` rise monotonically to the
    root; they stop when a step changes ``r`` by less than the dtype's resolution.
    """
    t = torch.as_tensor(step, dtype=u.dtype, device=u.device)
    if t.numel() == 1 or (t.ndim == 2 and t.shape[1] == 1):
        norm = torch.linalg.vector_norm(u, dim=1, keepdim=True)
        # 1 - lam t / ||u|| <= 0 exactly when ||u|| <= lam t: those rows become exact zeros
        scale = (1 - (lam * t) / norm.clamp_min(torch.finfo(u.dtype).tiny)).clamp_min(0)
        return u * scale
    t = t.expand_as(u)
    work = torch.promote_types(u.dtype, torch.float32)  # Newton in at least float32 (bfloat16 parameters)
    uw, tw = u.to(work), t.to(work)
    zero = torch.linalg.vector_norm(uw / tw, dim=1) <= lam
    lt = lam * tw
    r = torch.zeros(u.shape[0], 1, dtype=work, device=u.device)
    u2 = uw * uw
    resolution = torch.finfo(work).eps
    for _ in range(max_iter):
        d = r + lt
        s = (u2 / (d * d)).sum(1, keepdim=True)  # ||u / (r + lam t)||^2
        ds = (u2 / (d * d * d)).sum(1, keepdim=True)
        inv = s.rsqrt()
        # h(r) = s^-1/2 - 1, h'(r) = s^-3/2 * sum u^2/(r + lam t)^3
        delta = torch.where(zero[:, None], torch.zeros_like(r), (1 - inv) / (inv * inv * inv * ds).clamp_min(
            torch.finfo(work).tiny))
        r = r + delta
        if bool((delta <= resolution * r.abs()).all()):
            break
    w = uw * r / (r + lt)
    return torch.where(zero[:, None], torch.zeros_like(w), w).to(u.dtype)


class TensorPenalty:
    r"""A penalty on one parameter tensor of any shape and its calculus (what the proximal optimizers use).

    :math:`P(w) = l_1\|w\|_1 + l_2\|w\|_2^2 + \lambda_g \sum_g \|w_g\|_2`, the groups ``w_g`` being
    ``group_size`` consecutive indices along ``dim`` (dim 0: a conv's output channels, a linear layer's
    rows; ``group_size = head_dim`` on a projection: attention heads). Subclasses set the three weights:
    `L1NormPenalty`, `GroupL2Penalty`, `ElasticNetPenalty`, and `SparseGroupPenalty` (all three).

    Unlike `L1Penalty` (batched over a leading configuration axis, reduced over the last one) these
    act on the whole tensor: `value` is a 0-d tensor. Steps are a float (the Euclidean metric
    :math:`I/s`) or a tensor broadcastable to ``w`` (the diagonal metric :math:`\mathrm{diag}(1/s)`,
    Adam's).

    * `value`: :math:`P(w)`.
    * `prox(w, s)`: :math:`\arg\min_x P(x) + \sum_j (x_j - w_j)^2/(2 s_j)`. Closed form
      (:math:`l_1` and the ridge are separable; the group part is a positive scaling per
      coordinate that keeps the signs, so the three compose):
      :math:`u = S_{s l_1}(w) / (1 + 2 s l_2)`, then `group_shrink` of ``u`` with step
      :math:`s / (1 + 2 s l_2)`.
    * `subdiff_distance(w, g)`: :math:`\max_{\text{groups}} \mathrm{dist}_2(-g_G, \partial P(w)_G)`, zero
      exactly at a stationary point of ``smooth + P`` when ``g`` is the smooth part's gradient (without a
      group term every coordinate is its own group: the largest coordinate residual, as `L1Penalty`).
    * `zeroing_lam(g)`: per group (per coordinate without a group term), the smallest value of this
      penalty's own weight at which the group is zero at a stationary point with smooth gradient ``g``
      -- equivalently the smallest weight at which ``prox(-s g, s)`` zeroes it. `alpha_max(g)`: its
      maximum, the smallest weight whose minimiser is 0 when ``g`` is the gradient at 0.
    """

    dim: int = 0
    group_size: int = 1

    @property
    def weights(self) -> tuple[float, float, float]:  # pragma: no cover - abstract
        """``(l1, l2, group)``."""
        raise NotImplementedError

    def _check(self):
        for name, v in zip(("l1", "l2", "group"), self.weights):
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
                raise NdgmError(f"{type(self).__name__}: {name} weight must be a finite number >= 0, got {v!r}")
        if not (isinstance(self.group_size, int) and self.group_size >= 1):
            raise NdgmError(f"{type(self).__name__}: group_size must be an integer >= 1, got {self.group_size!r}")

    def value(self, w: Tensor) -> Tensor:
        l1, l2, g = self.weights
        out = w.new_zeros(())
        if l1:
            out = out + l1 * w.abs().sum()
        if l2:
            out = out + l2 * w.pow(2).sum()
        if g:
            out = out + g * torch.linalg.vector_norm(_as_groups(w, self.dim, self.group_size), dim=1).sum()
        return out

    def prox(self, w: Tensor, step: float | Tensor) -> Tensor:
        l1, l2, g = self.weights
        s = step if isinstance(step, Tensor) else torch.as_tensor(float(step), dtype=w.dtype, device=w.device)
        u = soft_threshold(w, s * l1) if l1 else w
        if l2:
            scale = 1 + 2 * s * l2
            u = u / scale
            s = s / scale
        if not g:
            return u
        groups = _as_groups(u, self.dim, self.group_size)
        sg = s if s.numel() == 1 else _as_groups(s.expand_as(u), self.dim, self.group_size)
        return _from_groups(group_shrink(groups, sg, g), u, self.dim)

    def subdiff_distance(self, w: Tensor, smooth_grad: Tensor) -> Tensor:
        l1, l2, g = self.weights
        a = smooth_grad + 2 * l2 * w if l2 else smooth_grad
        if g:
            W = _as_groups(w, self.dim, self.group_size)
            A = _as_groups(a, self.dim, self.group_size)
            norm = torch.linalg.vector_norm(W, dim=1, keepdim=True)
            A = A + g * W / norm.clamp_min(torch.finfo(W.dtype).tiny)
        else:
            W, A = w.reshape(1, -1), a.reshape(1, -1)
        # coordinates away from 0: the subgradient of l1 |w_j| is l1 sgn(w_j); at 0 the box [-l1, l1]
        res = torch.where(W != 0, A + l1 * W.sgn(), soft_threshold(A, l1))
        if not g:
            return res.abs().amax() if res.numel() else w.new_zeros(())
        dist = torch.linalg.vector_norm(res, dim=1)
        # a zero group: the set is box + ball of radius g, at distance max(||S_l1(grad)|| - g, 0)
        at_zero = (torch.linalg.vector_norm(soft_threshold(_as_groups(smooth_grad, self.dim, self.group_size), l1),
                                            dim=1) - g).clamp_min(0)
        return torch.where(norm[:, 0] == 0, at_zero, dist).amax()

    def zeroing_lam(self, smooth_grad: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def alpha_max(self, smooth_grad_at_zero: Tensor) -> Tensor:
        return self.zeroing_lam(smooth_grad_at_zero).amax()

    def zero_groups(self, w: Tensor) -> Tensor:
        """Boolean per group (``(G,)``, along ``dim`` in blocks of ``group_size``): the group is exactly 0."""
        return (_as_groups(w, self.dim, self.group_size) == 0).all(1)


@dataclass(frozen=True)
class L1NormPenalty(TensorPenalty):
    r""":math:`\lambda\|w\|_1` on a whole tensor; prox: soft thresholding; `zeroing_lam`: :math:`|g_j|`."""

    lam: float

    def __post_init__(self):
        self._check()

    @property
    def weights(self):
        return (float(self.lam), 0.0, 0.0)

    def zeroing_lam(self, smooth_grad: Tensor) -> Tensor:
        return smooth_grad.abs()


@dataclass(frozen=True)
class GroupL2Penalty(TensorPenalty):
    r""":math:`\lambda\sum_g\|w_g\|_2` (group lasso, unweighted), groups of ``group_size`` indices along ``dim``.

    ``dim=0, group_size=1``: a conv's output channels or a linear layer's rows (neurons);
    ``group_size=head_dim`` on a ``(heads * head_dim, d)`` projection: attention heads.
    prox: :math:`w_g \max(0, 1 - s\lambda/\|w_g\|_2)` (block soft thresholding); `zeroing_lam`:
    :math:`\|g_g\|_2` per group, shape ``(G,)``.
    """

    lam: float
    dim: int = 0
    group_size: int = 1

    def __post_init__(self):
        self._check()

    @property
    def weights(self):
        return (0.0, 0.0, float(self.lam))

    def zeroing_lam(self, smooth_grad: Tensor) -> Tensor:
        return torch.linalg.vector_norm(_as_groups(smooth_grad, self.dim, self.group_size), dim=1)


@dataclass(frozen=True)
class ElasticNetPenalty(TensorPenalty):
    r""":math:`l_1\|w\|_1 + l_2\|w\|_2^2` on a whole tensor (`L1L2Penalty`'s convention, one configuration).

    prox: :math:`S_{s l_1}(w) / (1 + 2 s l_2)`; `zeroing_lam` (of ``l1``): :math:`|g_j|` (the ridge
    term has gradient 0 at 0).
    """

    l1: float
    l2: float

    def __post_init__(self):
        self._check()

    @property
    def weights(self):
        return (float(self.l1), float(self.l2), 0.0)

    def zeroing_lam(self, smooth_grad: Tensor) -> Tensor:
        return smooth_grad.abs()


@dataclass(frozen=True)
class SparseGroupPenalty(TensorPenalty):
    r""":math:`l_1\|w\|_1 + l_2\|w\|_2^2 + \lambda_g\sum_g\|w_g\|_2`: the general penalty of an optimizer's
    parameter group (group options ``l1``, ``l2``, ``group_l2``, ``group_dim``, ``group_size``).

    `zeroing_lam` (of the group weight, ``l1`` fixed): :math:`\|S_{l_1}(g_g)\|_2` per group (with
    ``group = 0``: :math:`|g_j|`, the smallest ``l1``).
    """

    l1: float = 0.0
    l2: float = 0.0
    group: float = 0.0
    dim: int = 0
    group_size: int = 1

    def __post_init__(self):
        self._check()

    @property
    def weights(self):
        return (float(self.l1), float(self.l2), float(self.group))

    def zeroing_lam(self, smooth_grad: Tensor) -> Tensor:
        if not self.group:
            return smooth_grad.abs()
        return torch.linalg.vector_norm(soft_threshold(_as_groups(smooth_grad, self.dim, self.group_size), self.l1),
                                        dim=1)
