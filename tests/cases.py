"""One shared list of small problems (curvlinops style): every problem-level check runs on each.

``PROBLEMS`` maps a case name to a factory of a fresh problem; ``batch_points(problem, K, seed)``
gives ``K`` float64 points where the problem's gradient (and Hessian) is the one its closed form
describes. A new problem goes here once and every test parametrised over ``PROBLEMS`` checks it.
"""

from __future__ import annotations

import torch

from ndgm.problems import (HuberRegression, Lasso, LeastAbsoluteDeviations, LeastSquares, Quadratic, Quartic1D,
                           ReLURegression, ToyLasso, TwoPointReLU)


def _data(n, d, seed, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    X = torch.rand(n, d, generator=g, dtype=dtype) * 2 - 1
    y = torch.rand(n, generator=g, dtype=dtype) * 2 - 1
    return X, y


def relu_problem(l2=0.0):
    X, y = _data(30, 6, 1)
    return ReLURegression(X, y, l1=torch.tensor([0.0, 0.01, 0.5]), l2=l2)


def lasso_problem(scaling="sum"):
    X, y = _data(20, 5, 2)
    return Lasso(X, y, lam=torch.tensor([0.1, 1.0, 3.0]), scaling=scaling)


def huber_problem():
    X, y = _data(8, 12, 3)
    return HuberRegression(X, y, delta=0.3)


def quadratic_problem():
    g = torch.Generator().manual_seed(4)
    B = torch.randn(6, 6, generator=g, dtype=torch.float64)
    return Quadratic(B @ B.T + 0.1 * torch.eye(6, dtype=torch.float64))


def toy_problem():
    return ToyLasso(6, lam=torch.tensor([0.01, 1.0, 100.0]))


def least_squares_problem(scaling):
    X, y = _data(25, 4, 6)
    return LeastSquares(X, y, scaling=scaling)


def lad_problem():
    X, y = _data(25, 4, 7)
    return LeastAbsoluteDeviations(X, y)


PROBLEMS = {
    "relu": relu_problem,
    "relu-l2": lambda: relu_problem(l2=torch.tensor([0.0, 0.2, 1.0])),
    "lasso": lasso_problem,
    "lasso-mean": lambda: lasso_problem("mean"),
    "least-squares-sum": lambda: least_squares_problem("sum"),
    "least-squares-half": lambda: least_squares_problem("half"),
    "least-squares-mean": lambda: least_squares_problem("mean"),
    "lad": lad_problem,
    "huber": huber_problem,
    "quadratic": quadratic_problem,
    "toy-lasso": toy_problem,
    "two-point-relu": TwoPointReLU,
    "quartic": Quartic1D,
}


def batch_points(problem, K=3, seed=5):
    """``K`` points ``(K, problem.dim)`` in float64.

    The two-point ReLU toy's closed forms describe its network on the open positive quadrant;
    elsewhere every unit is dead and gradient and Hessian are 0: all its points but the last lie in
    the quadrant (the last is wherever it falls, so the dead region is checked too). The quartic's
    points are spread over ``(-3.6, 3.6)``, on both sides of its C^2 break at ``|t| = 2``.
    """
    g = torch.Generator().manual_seed(seed)
    if isinstance(problem, Quartic1D):
        jitter = 0.2 * torch.rand(K, 1, generator=g, dtype=torch.float64) - 0.1
        return torch.linspace(-3.5, 3.5, K, dtype=torch.float64)[:, None] + jitter
    W = torch.randn(K, problem.dim, generator=g, dtype=torch.float64)
    if isinstance(problem, TwoPointReLU):
        W[: max(K - 1, 1)] = W[: max(K - 1, 1)].abs()
    return W
