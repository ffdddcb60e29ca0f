"""The problem contract: a batched objective ``f(W) -> (K,)`` with the gradient autodiff returns.

Every problem takes parameters ``W`` of shape ``(K, d)`` -- K configurations at once --
and returns values of shape ``(K,)`` and gradients of shape ``(K, d)``. Weights inside a
problem (penalty weights, mostly) may be scalars or tensors of shape ``(K,)``, so one call
evaluates a whole sweep.

The gradient is the one PyTorch autodiff returns, kink conventions included:
``relu'(0) = 0`` and ``d|w|/dw (0) = sgn(0) = 0``. Where a closed form is cheaper it is
used, and the tests check it against ``torch.autograd``.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

__all__ = ["Problem", "autograd_value_and_grad", "lambda_max"]


def lambda_max(A: Tensor) -> float:
    """Largest eigenvalue of the symmetric matrix ``A`` (dense, float64)."""
    return float(torch.linalg.eigvalsh(A.to(torch.float64))[-1])


def per_config(value, like):
    """A weight (scalar or one per configuration, shape ``(K,)``) as an array of ``like``'s kind.

    ``like`` is a torch tensor (the weight becomes a tensor of its dtype and device) or a numpy
    array (the full-batch solvers' CPU loop): the calculus of a penalty serves both.
    """
    if isinstance(like, np.ndarray):
        return np.asarray(value, dtype=like.dtype)
    return torch.as_tensor(value, dtype=like.dtype, device=like.device)


def col(v):
    """Turn a scalar or ``(K,)`` weight into something that broadcasts against ``(K, d)``."""
    return v if v.ndim == 0 else v[:, None]


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
