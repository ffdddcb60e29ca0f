r"""Datafits: the data-dependent part of an objective, ``f(w) = sum_i loss(x_i . w, y_i)`` (skglm style).

Each datafit is a `Problem` on its own (batched values and the gradient autodiff returns) and
the first half of a `Composite` (``datafit + penalty``).

* `LeastSquares` with an explicit ``scaling``: ``'sum'`` ``||Xw - y||^2`` (paper appendix B.2),
  ``'half'`` ``||Xw - y||^2 / 2``, ``'mean'`` ``||Xw - y||^2 / (2n)`` (scikit-learn's);
* `LeastAbsoluteDeviations` ``||Xw - y||_1 / n`` (Lipschitz, not differentiable at a zero residual);
* `HuberRegression` ``sum_i h_delta(y_i - x_i . w)`` (paper section 5: C^1, not C^2);
* `ReLULeastSquares` ``sum_i (relu(x_i . w) - y_i)^2`` (paper eq. 3 without its penalties).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import NdgmError
from .base import Problem, lambda_max

__all__ = ["Datafit", "LeastSquares", "LeastAbsoluteDeviations", "HuberRegression", "ReLULeastSquares",
           "SCALINGS"]

#: LeastSquares scalings: name -> the objective it stands for.
SCALINGS = {"sum": "||Xw - y||^2", "half": "||Xw - y||^2 / 2", "mean": "||Xw - y||^2 / (2n)"}


class Datafit(Problem):
    """A loss of a linear model on data ``X (n, d)``, ``y (n,)``; checks their shapes once."""

    def __init__(self, X: Tensor, y: Tensor):
        if X.ndim != 2:
            raise NdgmError(f"X must be a 2-D array, got shape {tuple(X.shape)}")
        y = y.reshape(-1)
        if y.shape[0] != X.shape[0]:
            raise NdgmError(f"X and y have inconsistent numbers of samples: X has {X.shape[0]} rows, y has {y.shape[0]}")
        self.X, self.y = X, y
        self.n, self.dim = X.shape

    def value(self, W: Tensor) -> Tensor:
        return self.value_and_grad(W)[0]


def _consistent_minimiser(X: Tensor, y: Tensor) -> Tensor | None:
    """``w*`` with ``X w* = y`` when it is unique (full column rank and consistent data)."""
    n, d = X.shape
    if int(torch.linalg.matrix_rank(X)) < d:
        return None
    w = torch.linalg.lstsq(X, y[:, None]).solution[:, 0]
    resid = float(torch.linalg.vector_norm(X @ w - y))
    return w if resid <= 1e-10 * max(1.0, float(torch.linalg.vector_norm(y))) else None


class _ConsistentRegression(Datafit):
    """A regression loss whose minimum on data ``y = X w*`` is 0, attained at ``w*`` (unique when
    ``X`` has full column rank)."""

    def minimiser(self) -> Tensor | None:
        return _consistent_minimiser(self.X, self.y)

    def optimal_value(self) -> float | None:
        w = self.minimiser()
        return None if w is None else float(self.value(w[None])[0])


class LeastSquares(_ConsistentRegression):
    r"""Least squares with an explicit scaling, batched: residuals ``r = W X^T - y`` of shape ``(K, n)``.

    ============  ======================  ========================  ==========================
    ``scaling``   value                   gradient                  smoothness ``L``
    ============  ======================  ========================  ==========================
    ``'sum'``     ``||r||^2``             ``2 X^T r``               ``2 lambda_max(X^T X)``
    ``'half'``    ``||r||^2 / 2``         ``X^T r``                 ``lambda_max(X^T X)``
    ``'mean'``    ``||r||^2 / (2n)``      ``X^T r / n``             ``lambda_max(X^T X) / n``
    ============  ======================  ========================  ==========================

    ``'sum'`` is the paper's LASSO smooth part, ``'mean'`` scikit-learn's (``Lasso``,
    ``lasso_path``), ``'half'`` the quadratic whose Hessian ``X^T X`` is the Huber loss's at an
    interpolating minimiser. On consistent data ``y = X w*`` the minimum is 0 at ``w*``.

    `scale_value` and `scale_grad` apply the scaling to a sum of squares and to a quantity linear
    in ``X^T`` (a gradient, ``X^T X``, ``X^T y``), for torch or numpy arrays: the full-batch solvers
    build their Gram form from them.

    ``X`` may also be sparse (a torch sparse tensor or a scipy.sparse matrix, wrapped in an
    `ndgm.sparse.design.Design`, never densified) or a `Design` itself (e.g. implicitly centred).
    """

    def __init__(self, X: Tensor, y: Tensor, scaling: str = "mean"):
        if scaling not in SCALINGS:
            raise NdgmError(f"scaling must be one of {', '.join(SCALINGS)}, got {scaling!r}")
        if not isinstance(X, (Tensor, np.ndarray)) or (isinstance(X, Tensor) and X.layout != torch.strided):
            from ..sparse.design import as_design  # here: ndgm.sparse imports this module

            X = as_design(X)
        super().__init__(X, y)
        self.scaling = scaling
        self.lipschitz = None
        self._smoothness: float | None = None

    @property
    def smoothness(self) -> float:
        """``L``, the scaled ``lambda_max(X^T X)``: computed on first use (a solver finds its own)."""
        if self._smoothness is None:
            if isinstance(self.X, Tensor):
                self._smoothness = self.scale_grad(lambda_max(self.X.T @ self.X))
            else:  # a Design: Lanczos on its products, X^T X is never formed
                self._smoothness = self.scale_grad(self.X.spectral_norm2())
        return self._smoothness

    def scale_value(self, S):
        """The objective from the sum of squared residuals ``S``."""
        if self.scaling == "sum":
            return S
        if self.scaling == "half":
            return S / 2
        return S / (2 * self.n)

    def scale_grad(self, A):
        """The scaling of a quantity linear in ``X^T r`` (a gradient, a Hessian ``X^T X``, ``X^T y``)."""
        if self.scaling == "sum":
            return 2.0 * A
        if self.scaling == "half":
            return A
        return A / self.n

    def value(self, W: Tensor) -> Tensor:
        """Values ``(K,)`` for ``W (K, d)``; a single vector ``w (d,)`` gives a 0-d tensor through the
        mat-vec ``X w`` (the form an optimizer's closure differentiates). A numpy ``W`` is evaluated in
        numpy on the host (how the experiments score final iterates from several methods)."""
        if isinstance(W, np.ndarray):
            resid = W @ self.X.cpu().numpy().T - self.y.cpu().numpy()
            return self.scale_value((resid**2).sum(-1))
        resid = (self.X @ W if W.ndim == 1 else W @ self.X.T) - self.y
        return self.scale_value(resid.pow(2).sum(-1))

    def value_and_grad(self, W: Tensor) -> tuple[Tensor, Tensor]:
        resid = W @ self.X.T - self.y  # (K, n)
        if self.scaling == "sum":
            return resid.pow(2).sum(-1), 2 * resid @ self.X
        return self.scale_value(resid.pow(2).sum(-1)), self.scale_grad(resid @ self.X)


class LeastAbsoluteDeviations(_ConsistentRegression):
    r"""``f(w) = ||X w - y||_1 / n``; subgradient ``X^T sgn(X w - y) / n`` (``sgn(0) = 0``).

    Lipschitz with ``G = sqrt(n) ||X||_2 / n`` (``||sgn(r)||_2 <= sqrt(n)``); no smoothness
    constant.
    """

    def __init__(self, X: Tensor, y: Tensor):
        super().__init__(X, y)
        n = X.shape[0]
        self.lipschitz = math.sqrt(n) * float(torch.linalg.matrix_norm(X.to(torch.float64), ord=2)) / n
        self.smoothness = None

    def value_and_grad(self, W: Tensor) -> tuple[Tensor, Tensor]:
        resid = W @ self.X.T - self.y
        n = self.X.shape[0]
        return resid.abs().sum(-1) / n, (resid.sgn() @ self.X) / n


class HuberRegression(Datafit):
    r"""Huber regression ``L(w) = sum_i h_delta(y_i - x_i . w)`` (paper section 5).

    ``h_delta(r) = r^2 / 2`` if ``|r| <= delta`` else ``delta (|r| - delta / 2)``: C^1, not
    C^2. The gradient ``-X^T clip(r, -delta, delta)`` is bounded by
    ``G = delta sqrt(n) ||X||_2`` and Lipschitz with ``L = lambda_max(X^T X)``, which is
    also the sharpness at an interpolating minimiser. Overparameterised (``d > n``, ``X``
    of full row rank): the minimum is 0, attained at ``X^+ y`` among others.
    """

    def __init__(self, X: Tensor, y: Tensor, delta: float = 1.0):
        super().__init__(X, y)
        self.delta = float(delta)
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


class ReLULeastSquares(Datafit):
    r"""``L(w) = sum_i (relu(x_i . w) - y_i)^2``, sum-reduced: paper eq. 3 without its penalties.

    With every ``y_i <= 0`` it is convex and ``w* = 0`` is a minimiser, ``L(w*) = ||y||^2``
    (Kumar 2023). A quadratic composed with a kink: no global Lipschitz or smoothness constant.
    """

    def __init__(self, X: Tensor, y: Tensor):
        super().__init__(X, y)
        self.y = y.reshape(-1, 1)  # (n, 1): the layout of nn.Linear's output
        self._Xt: Tensor | None = None  # X^T, made once for the batched path
        self.lipschitz = None
        self.smoothness = None

    def value(self, W: Tensor) -> Tensor:
        out = torch.relu(F.linear(self.X, W))  # (n, K): the same kernel as nn.Linear for K = 1
        return (out - self.y).pow(2).sum(0)

    def value_and_grad(self, W: Tensor) -> tuple[Tensor, Tensor]:
        """Closed form of autograd's gradient, ``g = X^T [2 (relu(Xw) - y) * 1{Xw > 0}]``.

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
            return resid.pow(2).sum(0), self.X.t().mm(torch.where(out > 0, 2 * resid, zero)).t()
        if self._Xt is None:
            self._Xt = self.X.t().contiguous()
            self._yt = self.y.reshape(1, -1)
        out = torch.relu(W @ self._Xt)  # (K, n)
        resid = out - self._yt
        return resid.pow(2).sum(-1), torch.where(out > 0, 2 * resid, zero) @ self.X

    def minimiser(self) -> Tensor | None:
        if bool((self.y <= 0).all()):
            return torch.zeros(self.dim, dtype=self.X.dtype, device=self.X.device)
        return None

    def optimal_value(self) -> float | None:
        if bool((self.y <= 0).all()):
            return float(self.y.pow(2).sum())
        return None
