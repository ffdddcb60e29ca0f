"""Losses the papers study, batched over a leading configuration axis.

Every problem takes parameters ``W`` of shape ``(K, d)`` -- K configurations at once --
and returns values of shape ``(K,)`` and gradients of shape ``(K, d)``. Penalty weights
may be scalars or tensors of shape ``(K,)``, so one call evaluates a whole sweep.

The gradient is the one PyTorch autodiff returns, kink conventions included:
``relu'(0) = 0`` and ``d|w|/dw (0) = sgn(0) = 0``. Where a closed form is cheaper it is
used, and the tests check it against ``torch.autograd`` bit for bit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "Problem",
    "L1Penalty",
    "ReLURegression",
    "ToyLasso",
    "Lasso",
    "HuberRegression",
    "Quadratic",
    "lambda_max",
    "soft_threshold",
]


def lambda_max(A: Tensor) -> float:
    """Largest eigenvalue of the symmetric matrix ``A`` (dense, float64)."""
    return float(torch.linalg.eigvalsh(A.to(torch.float64))[-1])


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


def _per_config(value: float | Tensor, like: Tensor) -> Tensor:
    """Broadcastable ``(K,)`` (or scalar) tensor of a per-configuration weight."""
    return torch.as_tensor(value, dtype=like.dtype, device=like.device)


def _col(v: Tensor) -> Tensor:
    """Turn a scalar or ``(K,)`` weight into something that broadcasts against ``(K, d)``."""
    return v if v.ndim == 0 else v[:, None]


@dataclass
class L1Penalty:
    r"""The penalty ``lam * ||w||_1`` and its calculus (skglm style).

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
    """

    lam: float | Tensor

    def value(self, W: Tensor) -> Tensor:
        return _per_config(self.lam, W) * W.abs().sum(-1)

    def grad(self, W: Tensor) -> Tensor:
        return _col(_per_config(self.lam, W)) * W.sgn()

    def prox(self, W: Tensor, step: float | Tensor) -> Tensor:
        return soft_threshold(W, _col(_per_config(self.lam, W) * _per_config(step, W)))

    def subdiff_distance(self, W: Tensor, smooth_grad: Tensor) -> Tensor:
        lam = _col(_per_config(self.lam, W))
        off = (smooth_grad + lam * W.sgn()).abs()
        on = (smooth_grad.abs() - lam).clamp_min(0)
        return torch.where(W != 0, off, on).amax(-1)

    @staticmethod
    def alpha_max(smooth_grad_at_zero: Tensor) -> Tensor:
        return smooth_grad_at_zero.abs().amax(-1)


class Problem:
    """A batched objective ``f(W) -> (K,)``.

    Subclasses implement `value` (and, when cheaper, `value_and_grad`). Known facts
    about the problem are attributes: `minimiser`, `optimal_value`, `lipschitz`
    (a bound ``G`` on subgradient norms, None if unbounded) and `smoothness`
    (``L`` with ``grad f`` L-Lipschitz, None if ``f`` is not C^{1,1}).
    """

    dim: int
    lipschitz: float | None = None
    smoothness: float | None = None

    def value(self, W: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def value_and_grad(self, W: Tensor) -> tuple[Tensor, Tensor]:
        """Value ``(K,)`` and the gradient autodiff returns ``(K, d)``."""
        return autograd_value_and_grad(self.value, W)

    def minimiser(self) -> Tensor | None:
        """A known global minimiser (shape ``(d,)``), or None when none is known."""
        return None

    def optimal_value(self) -> Tensor | float | None:
        """The known optimal value (scalar or per configuration), or None."""
        return None


def autograd_value_and_grad(fn, W: Tensor) -> tuple[Tensor, Tensor]:
    """Evaluate ``fn(W)`` (shape ``(K,)``) and its gradient with ``torch.autograd``.

    Configurations are independent, so the gradient of ``fn(W).sum()`` is the stack of
    per-configuration gradients.
    """
    with torch.enable_grad():
        Wg = W.detach().requires_grad_(True)
        v = fn(Wg)
        (g,) = torch.autograd.grad(v.sum(), Wg)
    return v.detach(), g


class ReLURegression(Problem):
    r"""Single-layer ReLU regression, sum-reduced (paper eq. 3).

    .. math:: L(w) = \sum_i (\mathrm{relu}(x_i \cdot w) - y_i)^2 + \lambda_1\|w\|_1 + \lambda_2\|w\|_2^2

    With every ``y_i <= 0`` the loss is convex and ``w* = 0`` is its unique minimiser,
    ``L(w*) = ||y||^2`` (Kumar 2023).

    Parameters
    ----------
    X : Tensor (n, d)
    y : Tensor (n,) or (n, 1)
    l1, l2 : float or Tensor (K,)
        Penalty weights per configuration.
    """

    def __init__(self, X: Tensor, y: Tensor, l1: float | Tensor = 0.0, l2: float | Tensor = 0.0):
        self.X = X
        self.y = y.reshape(-1, 1)
        self.l1 = l1
        self.l2 = l2
        self.dim = X.shape[1]
        self._Xt: Tensor | None = None  # X^T, made once for the batched path
        self._no_l2 = isinstance(l2, (int, float)) and l2 == 0
        # The loss is a quadratic composed with a kink: no global Lipschitz or smoothness constant.
        self.lipschitz = None
        self.smoothness = None

    def _penalty(self, W: Tensor) -> Tensor:
        l1 = _per_config(self.l1, W)
        l1_term = l1 * W.abs().sum(-1)
        if self._no_l2:
            return l1_term  # == 0 + l1_term, bit for bit
        return _per_config(self.l2, W) * W.pow(2).sum(-1) + l1_term

    def value(self, W: Tensor) -> Tensor:
        out = torch.relu(F.linear(self.X, W))  # (n, K): the same kernel as nn.Linear for K = 1
        return (out - self.y).pow(2).sum(0) + self._penalty(W)

    def value_and_grad(self, W: Tensor) -> tuple[Tensor, Tensor]:
        """Closed form of autograd's gradient.

        ``g = X^T [2 (relu(Xw) - y) * 1{Xw > 0}] + 2 l2 w + l1 sgn(w)``

        One configuration (``K = 1``) runs the very kernels ``nn.Linear`` + autograd run, in
        the same order, so a single run is bit-identical to a plain PyTorch loop (the capture
        protocol's printed number depends on the last bit). A batch runs row-major GEMMs
        (``W X^T`` and ``G X``), about twice as fast as ``F.linear`` on a ``(K, d)`` weight;
        its results agree with the single-run kernels to rounding.
        """
        zero = torch.zeros((), dtype=W.dtype, device=W.device)
        if W.shape[0] == 1:
            out = torch.relu(F.linear(self.X, W))  # (n, 1)
            resid = out - self.y
            value = resid.pow(2).sum(0) + self._penalty(W)
            grad = self.X.t().mm(torch.where(out > 0, 2 * resid, zero)).t()
        else:
            out = torch.relu(W @ self._xt())  # (K, n)
            resid = out - self._yt
            value = resid.pow(2).sum(-1) + self._penalty(W)
            grad = torch.where(out > 0, 2 * resid, zero) @ self.X
        penalty_grad = _col(_per_config(self.l1, W)) * W.sgn()
        if not self._no_l2:
            penalty_grad = penalty_grad + _col(_per_config(self.l2, W)) * (2 * W)
        return value, grad + penalty_grad

    def _xt(self) -> Tensor:
        if self._Xt is None:
            self._Xt = self.X.t().contiguous()
            self._yt = self.y.reshape(1, -1)
        return self._Xt

    def minimiser(self) -> Tensor | None:
        if bool((self.y <= 0).all()):
            return torch.zeros(self.dim, dtype=self.X.dtype, device=self.X.device)
        return None

    def optimal_value(self) -> float | None:
        if bool((self.y <= 0).all()):
            return float(self.y.pow(2).sum())
        return None


class ToyLasso(Problem):
    r"""The toy LASSO ``f(w) = lam * ||w||_1`` (paper eq. 7).

    NDGM on it is ``w_{k+1} = w_k - eta * lam * sgn(w_k)``. Minimiser 0, value 0,
    Lipschitz constant ``G = lam * sqrt(d)``; not differentiable at any ``w`` with a
    zero coordinate, so no smoothness constant.
    """

    def __init__(self, dim: int, lam: float | Tensor = 1.0):
        self.dim = dim
        self.lam = lam
        self.penalty = L1Penalty(lam)
        lam_max = float(torch.as_tensor(lam).abs().max())
        self.lipschitz = lam_max * math.sqrt(dim)
        self.smoothness = None

    def value(self, W: Tensor) -> Tensor:
        return self.penalty.value(W)

    def value_and_grad(self, W: Tensor) -> tuple[Tensor, Tensor]:
        return self.penalty.value(W), self.penalty.grad(W)

    def minimiser(self) -> Tensor:
        return torch.zeros(self.dim, dtype=torch.float64)

    def optimal_value(self) -> float:
        return 0.0


class Lasso(Problem):
    r"""The general LASSO ``L(w) = ||X w - y||^2 + lam ||w||_1`` (paper appendix B.2).

    The smooth part has gradient ``2 X^T (X w - y)``, Lipschitz with
    ``L = 2 lambda_max(X^T X)``; the penalty is exposed as `penalty` (an `L1Penalty`)
    for proximal methods and optimality certificates.
    """

    def __init__(self, X: Tensor, y: Tensor, lam: float | Tensor = 1.0):
        self.X = X
        self.y = y.reshape(-1)
        self.lam = lam
        self.penalty = L1Penalty(lam)
        self.dim = X.shape[1]
        self.smoothness = 2.0 * lambda_max(X.T @ X)
        self.lipschitz = None

    def smooth_value_and_grad(self, W: Tensor) -> tuple[Tensor, Tensor]:
        """``||X w - y||^2`` and its gradient ``2 X^T (X w - y)``, batched."""
        resid = W @ self.X.T - self.y  # (K, n)
        return resid.pow(2).sum(-1), 2 * resid @ self.X

    def value(self, W: Tensor) -> Tensor:
        return self.smooth_value_and_grad(W)[0] + self.penalty.value(W)

    def value_and_grad(self, W: Tensor) -> tuple[Tensor, Tensor]:
        v, g = self.smooth_value_and_grad(W)
        return v + self.penalty.value(W), g + self.penalty.grad(W)


class HuberRegression(Problem):
    r"""Huber regression ``L(w) = sum_i h_delta(y_i - x_i . w)`` (paper section 5).

    ``h_delta(r) = r^2 / 2`` if ``|r| <= delta`` else ``delta (|r| - delta / 2)``: C^1, not
    C^2. The gradient ``-X^T clip(r, -delta, delta)`` is bounded by
    ``G = delta sqrt(n) ||X||_2`` and Lipschitz with ``L = lambda_max(X^T X)``, which is
    also the sharpness at an interpolating minimiser. Overparameterised (``d > n``, ``X``
    of full row rank): the minimum is 0, attained at ``X^+ y`` among others.
    """

    def __init__(self, X: Tensor, y: Tensor, delta: float = 1.0):
        self.X = X
        self.y = y.reshape(-1)
        self.delta = float(delta)
        self.dim = X.shape[1]
        self.smoothness = lambda_max(X.T @ X)
        n = X.shape[0]
        self.lipschitz = self.delta * math.sqrt(n) * float(torch.linalg.matrix_norm(X.to(torch.float64), ord=2))

    def value(self, W: Tensor) -> Tensor:
        resid = self.y - W @ self.X.T  # (K, n)
        return F.huber_loss(resid, torch.zeros_like(resid), reduction="none", delta=self.delta).sum(-1)

    def value_and_grad(self, W: Tensor) -> tuple[Tensor, Tensor]:
        resid = self.y - W @ self.X.T
        value = F.huber_loss(resid, torch.zeros_like(resid), reduction="none", delta=self.delta).sum(-1)
        return value, -(resid.clamp(-self.delta, self.delta) @ self.X)

    def minimiser(self) -> Tensor | None:
        n, d = self.X.shape
        if d > n and int(torch.linalg.matrix_rank(self.X)) == n:
            return torch.linalg.pinv(self.X) @ self.y
        return None

    def optimal_value(self) -> float | None:
        return 0.0 if self.minimiser() is not None else None


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
