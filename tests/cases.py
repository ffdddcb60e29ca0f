"""One shared list of small problems (curvlinops style): every operator is tested on each."""

from __future__ import annotations

import torch

from ndgm.problems import HuberRegression, Lasso, Quadratic, ReLURegression, ToyLasso
from ndgm.toys import Quartic1D, TwoPointReLU


def _data(n, d, seed, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    X = torch.rand(n, d, generator=g, dtype=dtype) * 2 - 1
    y = torch.rand(n, generator=g, dtype=dtype) * 2 - 1
    return X, y


def relu_problem(l2=0.0):
    X, y = _data(30, 6, 1)
    return ReLURegression(X, y, l1=torch.tensor([0.0, 0.01, 0.5]), l2=l2)


def lasso_problem():
    X, y = _data(20, 5, 2)
    return Lasso(X, y, lam=torch.tensor([0.1, 1.0, 3.0]))


def huber_problem():
    X, y = _data(8, 12, 3)
    return HuberRegression(X, y, delta=0.3)


def quadratic_problem():
    g = torch.Generator().manual_seed(4)
    B = torch.randn(6, 6, generator=g, dtype=torch.float64)
    return Quadratic(B @ B.T + 0.1 * torch.eye(6, dtype=torch.float64))


def toy_problem():
    return ToyLasso(6, lam=torch.tensor([0.01, 1.0, 100.0]))


PROBLEMS = {
    "relu": relu_problem,
    "relu-l2": lambda: relu_problem(l2=torch.tensor([0.0, 0.2, 1.0])),
    "lasso": lasso_problem,
    "huber": huber_problem,
    "quadratic": quadratic_problem,
    "toy-lasso": toy_problem,
    "quartic": Quartic1D,
    "two-point-relu": TwoPointReLU,
}


def batch_points(problem, K=3, seed=5):
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(K, problem.dim, generator=g, dtype=torch.float64)
    if isinstance(problem, TwoPointReLU):
        # Its Hessian is 0 off the open positive quadrant: all points but the last go there.
        W[: max(K - 1, 1)] = W[: max(K - 1, 1)].abs()
    return W
