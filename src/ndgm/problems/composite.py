r"""Composite problems: a datafit plus a penalty, ``F(w) = f(w) + g(w)`` (skglm style).

`Composite` adds the two; the named problems of the papers are composites:

* `Lasso`: ``LeastSquares(scaling) + L1Penalty(lam)``; ``scaling='sum'`` is the paper's
  ``||Xw - y||^2 + lam ||w||_1`` (appendix B.2), ``scaling='mean'`` scikit-learn's
  ``||Xw - y||^2 / (2n) + alpha ||w||_1`` (the full-batch solvers' and the estimator's);
* `ToyLasso`: no datafit, ``lam ||w||_1`` alone (paper eq. 7);
* `ReLURegression`: ``ReLULeastSquares + L1Penalty`` (``+ L1L2Penalty`` with an L2 weight), eq. 3.

The gradient is the datafit's plus the penalty's ``grad`` (autodiff's, ``sgn(0) = 0``): NDGM on
the composite. Proximal methods use `datafit` and `penalty` separately.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .base import Problem
from .datafits import Datafit, LeastSquares, ReLULeastSquares
from .penalties import L1L2Penalty, L1Penalty

__all__ = ["Composite", "Lasso", "ToyLasso", "ReLURegression"]


class Composite(Problem):
    r"""``F(W) = datafit(W) + penalty(W)``, batched; ``datafit`` may be None (the penalty alone).

    ``smoothness`` is the datafit's (the step size ``1/L`` of a proximal method), ``lipschitz``
    the sum of both parts' when both are bounded. `certificate` is
    :math:`\mathrm{dist}(-\nabla f(w), \partial g(w))` from the penalty's `subdiff_distance`:
    zero exactly at a minimiser of a convex composite.
    """

    def __init__(self, datafit: Datafit | None, penalty):
        self.datafit = datafit
        self.penalty = penalty
        if datafit is not None:
            self.dim = datafit.dim
        bound = penalty.lipschitz(self.dim)
        if datafit is not None and bound is not None:
            bound = None if datafit.lipschitz is None else datafit.lipschitz + bound
        self.lipschitz = bound

    @property
    def smoothness(self) -> float | None:
        return None if self.datafit is None else self.datafit.smoothness

    def value(self, W: Tensor) -> Tensor:
        if self.datafit is None:
            return self.penalty.value(W)
        return self.datafit.value(W) + self.penalty.value(W)

    def value_and_grad(self, W: Tensor) -> tuple[Tensor, Tensor]:
        if self.datafit is None:
            return self.penalty.value(W), self.penalty.grad(W)
        v, g = self.datafit.value_and_grad(W)
        return v + self.penalty.value(W), g + self.penalty.grad(W)

    def certificate(self, W: Tensor) -> Tensor:
        """``dist(-grad f(W), d g(W))`` per configuration, shape ``(K,)``."""
        return self.penalty.subdiff_distance(W, self.datafit.value_and_grad(W)[1])

    def minimiser(self) -> Tensor | None:
        """0 when the datafit is minimised at 0 (the penalties here are minimised there too)."""
        if self.datafit is None:
            return torch.zeros(self.dim, dtype=torch.float64)
        w = self.datafit.minimiser()
        return w if w is not None and not bool(w.any()) else None

    def optimal_value(self) -> float | None:
        if self.datafit is None:
            return 0.0
        return self.datafit.optimal_value() if self.minimiser() is not None else None


class Lasso(Composite):
    r"""The LASSO ``LeastSquares(X, y, scaling) + L1Penalty(lam)``.

    ``scaling='sum'`` (default): ``||X w - y||^2 + lam ||w||_1`` (paper appendix B.2), smooth part
    ``2 X^T (X w - y)``, ``L = 2 lambda_max(X^T X)``. ``scaling='mean'``: scikit-learn's
    ``||X w - y||^2 / (2n) + lam ||w||_1`` (``sklearn.linear_model.Lasso(alpha=lam,
    fit_intercept=False)``), ``L = lambda_max(X^T X) / n``; the same minimiser as ``'sum'`` with
    ``lam_sum = 2 n lam_mean``. ``lam`` is a scalar or one weight per configuration.
    """

    def __init__(self, X: Tensor, y: Tensor, lam: float | Tensor = 1.0, scaling: str = "sum"):
        self.lam = lam
        super().__init__(LeastSquares(X, y, scaling), L1Penalty(lam))
        self.X, self.y = self.datafit.X, self.datafit.y


class ToyLasso(Composite):
    r"""The toy LASSO ``f(w) = lam * ||w||_1`` (paper eq. 7): a penalty without a datafit.

    NDGM on it is ``w_{k+1} = w_k - eta * lam * sgn(w_k)``. Minimiser 0, value 0,
    Lipschitz constant ``G = lam * sqrt(d)``; not differentiable at any ``w`` with a
    zero coordinate, so no smoothness constant.
    """

    def __init__(self, dim: int, lam: float | Tensor = 1.0):
        self.dim = dim
        self.lam = lam
        super().__init__(None, L1Penalty(lam))


class ReLURegression(Composite):
    r"""Single-layer ReLU regression, sum-reduced (paper eq. 3).

    .. math:: L(w) = \sum_i (\mathrm{relu}(x_i \cdot w) - y_i)^2 + \lambda_1\|w\|_1 + \lambda_2\|w\|_2^2

    `ReLULeastSquares` plus `L1Penalty(l1)` (`L1L2Penalty(l1, l2)` unless ``l2`` is the number 0).
    With every ``y_i <= 0`` the loss is convex and ``w* = 0`` is its unique minimiser,
    ``L(w*) = ||y||^2`` (Kumar 2023). One configuration runs the kernels of a plain PyTorch
    loop (``nn.Linear`` + autograd + ``torch.optim.SGD``), bit for bit.

    Parameters
    ----------
    X : Tensor (n, d)
    y : Tensor (n,) or (n, 1)
    l1, l2 : float or Tensor (K,)
        Penalty weights per configuration.
    """

    def __init__(self, X: Tensor, y: Tensor, l1: float | Tensor = 0.0, l2: float | Tensor = 0.0):
        self.l1 = l1
        self.l2 = l2
        no_l2 = isinstance(l2, (int, float)) and l2 == 0
        super().__init__(ReLULeastSquares(X, y), L1Penalty(l1) if no_l2 else L1L2Penalty(l1, l2))
        self.X, self.y = self.datafit.X, self.datafit.y
