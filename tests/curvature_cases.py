"""One shared list of small curvature cases (curvlinops style): model, loss, data, dtype.

Every module curvature operator (Hessian products chunked or not, dense form, GD-map
Jacobian, log-det, per-sample Hessians, Lanczos, power iteration) is checked against the
dense float64 Hessian on each case, computed here independently of `ndgm.analysis.hessian`
(`torch.func.hessian` of the plain loss, parameters split by hand). A new case tests them all.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn
from torch.func import functional_call

from ndgm.analysis.curvature import ModelObjective, cross_entropy_sum, mse_sum
from ndgm.nets.mlp import make_mlp
from ndgm.nets import small as small_nets


def huber_sum(outputs, targets, delta=0.3):
    return nn.functional.huber_loss(outputs, targets.reshape(outputs.shape), reduction="sum", delta=delta)


@dataclass
class CurvatureCase:
    name: str
    make_model: Callable[[], nn.Module]
    loss_fn: Callable
    n: int
    in_dim: int
    out_dim: int
    classes: bool = False
    seed: int = 0

    def data(self, dtype=torch.float64):
        g = torch.Generator().manual_seed(100 + self.seed)
        X = torch.randn(self.n, self.in_dim, generator=g, dtype=torch.float64)
        if self.classes:
            Y = torch.randint(0, self.out_dim, (self.n,), generator=g)
        else:
            Y = torch.randn(self.n, self.out_dim, generator=g, dtype=torch.float64)
            Y = Y.to(dtype)
        return X.to(dtype), Y

    def objective(self, chunk_size: int = 4096, dtype=torch.float64) -> ModelObjective:
        X, Y = self.data(dtype)
        return ModelObjective(self.make_model().to(dtype), self.loss_fn, X, Y, chunk_size=chunk_size)


CASES = [
    CurvatureCase("mlp-tanh-mse", lambda: make_mlp(4, (6, 5), 2, "tanh", seed=1), mse_sum, 13, 4, 2),
    CurvatureCase("mlp-gelu-ce", lambda: make_mlp(4, (7,), 3, "gelu", seed=2), cross_entropy_sum, 11, 4, 3,
                  classes=True, seed=1),
    CurvatureCase("mlp-relu-mse", lambda: make_mlp(5, (8, 4), 2, "relu", seed=3), mse_sum, 17, 5, 2, seed=2),
    CurvatureCase("linear-mse", lambda: make_mlp(5, (), 1, seed=4), mse_sum, 9, 5, 1, seed=3),
    CurvatureCase("linear-huber", lambda: make_mlp(6, (), 1, seed=5, bias=False), huber_sum, 10, 6, 1, seed=4),
    # The nonsingularity experiment's architectures (flat inputs: a 4x4 image, 3 tokens of 2).
    CurvatureCase("mlp-leaky-relu-mse", lambda: small_nets.SmallMLP(4, (5,), 2, "leaky_relu", seed=6), mse_sum,
                  9, 4, 2, seed=5),
    CurvatureCase("cnn-sigmoid-ce", lambda: small_nets.SmallCNN(4, 2, 3, 3, "sigmoid", seed=7), cross_entropy_sum,
                  7, 16, 3, classes=True, seed=6),
    CurvatureCase("cnn-relu-mse", lambda: small_nets.SmallCNN(4, 2, 3, 2, "relu", seed=8), mse_sum, 6, 16, 2, seed=7),
    CurvatureCase("attention-gelu-mse", lambda: small_nets.TinyAttention(3, 2, 3, 4, 2, "gelu", seed=9), mse_sum,
                  6, 6, 2, seed=8),
    CurvatureCase("attention-relu-ce", lambda: small_nets.TinyAttention(3, 2, 3, 4, 3, "relu", seed=10),
                  cross_entropy_sum, 5, 6, 3, classes=True, seed=9),
]
CASE_IDS = [c.name for c in CASES]


def _split(model):
    names = [k for k, _ in model.named_parameters()]
    shapes = [p.shape for _, p in model.named_parameters()]
    sizes = [p.numel() for _, p in model.named_parameters()]
    theta = torch.cat([p.detach().reshape(-1) for _, p in model.named_parameters()])

    def params(t):
        return {k: v.view(s) for k, v, s in zip(names, t.split(sizes), shapes)}

    return params, theta


def reference_hessian(case):
    """Dense ``(d, d)`` Hessian of the mean loss by `torch.func.hessian`, and the parameter vector."""
    model = case.make_model()
    X, Y = case.data()
    params, theta = _split(model)

    def loss(t):
        return case.loss_fn(functional_call(model, params(t), (X,)), Y) / X.shape[0]

    return torch.func.hessian(loss)(theta), theta


def reference_per_sample_hessians(case):
    """Dense ``(n, d, d)`` Hessians of each sample's loss ``loss_fn(f(x_i), y_i)`` (not divided by n)."""
    model = case.make_model()
    X, Y = case.data()
    params, theta = _split(model)

    def loss(t, i):
        return case.loss_fn(functional_call(model, params(t), (X[i:i + 1],)), Y[i:i + 1])

    return torch.stack([torch.func.hessian(loss)(theta, i) for i in range(X.shape[0])])
