"""One shared list of small curvature cases (curvlinops style): model, loss, data, dtype.

Every module curvature operator (Hessian products chunked or not, dense form, GD-map
Jacobian, log-det, per-sample Hessians, Lanczos, power iteration, trace, spectral density,
preconditioned sharpness) is checked against the dense float64 Hessian on each case,
computed here independently of `ndgm.analysis.hessian` (`torch.autograd.functional.hessian`
of the plain loss, parameters split by hand, buffers copied). A new case tests them all.

A case states its objective: ``reduction`` (``'mean'`` or ``'sum'`` of the per-row losses)
and how ``loss_fn`` itself reduces over the rows it gets (``loss_reduction``), and the mode
the model is evaluated in (``'train'``: BatchNorm with batch statistics; ``'eval'``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn
from torch.func import functional_call
from torch.nn.attention import SDPBackend, sdpa_kernel

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
    in_shape: tuple[int, ...] | None = None  # one row's input shape; (in_dim,) when None
    loss_reduction: str = "sum"  # how loss_fn reduces over its rows
    reduction: str = "mean"  # the objective: mean or sum of the per-row losses
    mode: str = "auto"  # 'train', 'eval' or 'auto' (the model's own flag)

    def data(self, dtype=torch.float64):
        g = torch.Generator().manual_seed(100 + self.seed)
        X = torch.randn(self.n, *(self.in_shape or (self.in_dim,)), generator=g, dtype=torch.float64)
        if self.classes:
            Y = torch.randint(0, self.out_dim, (self.n,), generator=g)
        else:
            Y = torch.randn(self.n, self.out_dim, generator=g, dtype=torch.float64)
            Y = Y.to(dtype)
        return X.to(dtype), Y

    @property
    def batch_dependent(self) -> bool:
        """A row's output depends on the other rows (BatchNorm with batch statistics): no
        chunking, no per-sample Hessians."""
        model = self.make_model()
        train = self.mode == "train" or (self.mode == "auto" and model.training)
        return train and any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())

    def objective(self, chunk_size: int = 4096, dtype=torch.float64) -> ModelObjective:
        """The case's objective; a batch-dependent case ignores ``chunk_size`` (all rows at once)."""
        X, Y = self.data(dtype)
        return ModelObjective(self.make_model().to(dtype), self.loss_fn, X, Y,
                              chunk_size=None if self.batch_dependent else chunk_size,
                              reduction=self.reduction, mode=self.mode)


class SmallCNN(nn.Module):
    """``Conv2d(1, 3, 3) -> BatchNorm2d -> tanh -> Linear(27, 3)`` on 5x5 inputs (120 parameters).

    Made with non-trivial running statistics (two seeded batches through it in train mode),
    so eval mode differs from train mode.
    """

    def __init__(self, seed: int):
        super().__init__()
        torch.manual_seed(seed)
        self.conv = nn.Conv2d(1, 3, 3)
        self.bn = nn.BatchNorm2d(3)
        self.fc = nn.Linear(27, 3)
        self.double()
        g = torch.Generator().manual_seed(seed + 1)
        with torch.no_grad():
            self.bn.weight.copy_(1 + 0.3 * torch.randn(3, generator=g, dtype=torch.float64))
            self.bn.bias.copy_(0.2 * torch.randn(3, generator=g, dtype=torch.float64))
            for _ in range(2):
                self(1.5 * torch.randn(16, 1, 5, 5, generator=g, dtype=torch.float64) + 0.5)

    def forward(self, x):
        return self.fc(torch.tanh(self.bn(self.conv(x))).flatten(1))


class TinyAttention(nn.Module):
    """One softmax self-attention block on sequences ``(4, 4)``: ``MultiheadAttention(4, 2)``,
    residual, LayerNorm, mean over positions, ``Linear(4, 2)`` (98 parameters)."""

    def __init__(self, seed: int):
        super().__init__()
        torch.manual_seed(seed)
        self.attn = nn.MultiheadAttention(4, 2, batch_first=True)
        self.norm = nn.LayerNorm(4)
        self.fc = nn.Linear(4, 2)
        self.double()

    def forward(self, x):
        a, _ = self.attn(x, x, x, need_weights=False)
        return self.fc(self.norm(x + a).mean(1))


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
    # Torch loss modules that average (mean objective) or sum (sum objective), BatchNorm in
    # both modes, attention.
    CurvatureCase("mlp-tanh-msemean", lambda: make_mlp(4, (6,), 2, "tanh", seed=6), nn.MSELoss(), 12, 4, 2,
                  seed=5, loss_reduction="mean"),
    CurvatureCase("mlp-gelu-cemean", lambda: make_mlp(4, (6,), 3, "gelu", seed=7), nn.CrossEntropyLoss(), 14, 4, 3,
                  classes=True, seed=6, loss_reduction="mean"),
    CurvatureCase("mlp-tanh-msesum-sum", lambda: make_mlp(4, (5,), 2, "tanh", seed=8), nn.MSELoss(reduction="sum"),
                  10, 4, 2, seed=7, reduction="sum"),
    CurvatureCase("cnn-bn-train-cemean", lambda: SmallCNN(9), nn.CrossEntropyLoss(), 10, 25, 3, classes=True,
                  seed=8, in_shape=(1, 5, 5), loss_reduction="mean", mode="train"),
    CurvatureCase("cnn-bn-eval-cesum-sum", lambda: SmallCNN(10), nn.CrossEntropyLoss(reduction="sum"), 9, 25, 3,
                  classes=True, seed=9, in_shape=(1, 5, 5), reduction="sum", mode="eval"),
    CurvatureCase("attention-msemean", lambda: TinyAttention(11), nn.MSELoss(), 8, 16, 2, seed=10, in_shape=(4, 4),
                  loss_reduction="mean"),
]
CASE_IDS = [c.name for c in CASES]


def _split(model):
    names = [k for k, _ in model.named_parameters()]
    shapes = [p.shape for _, p in model.named_parameters()]
    sizes = [p.numel() for _, p in model.named_parameters()]
    theta = torch.cat([p.detach().reshape(-1) for _, p in model.named_parameters()])

    def params(t):
        state = {k: b.clone() for k, b in model.named_buffers()}
        state.update({k: v.view(s) for k, v, s in zip(names, t.split(sizes), shapes)})
        return state

    return params, theta


def _set_mode(model, mode):
    if mode == "train":
        model.train()
    elif mode == "eval":
        model.eval()
    return model


def _objective_scale(case, n):
    """``L = loss_fn(f(X), Y) * scale``: per-row sum from the loss's reduction, then the objective's."""
    per_row_sum = 1.0 if case.loss_reduction == "sum" else float(n)
    return per_row_sum / n if case.reduction == "mean" else per_row_sum


def reference_hessian(case, as_written: bool = False):
    """Dense ``(d, d)`` Hessian of the case's objective (mean or sum of per-row losses) by
    `torch.autograd.functional.hessian` of the plain loss, and the parameter vector.

    ``as_written``: of ``loss_fn(model(X), Y)`` itself, whatever its reduction (what
    `ndgm.analysis.curvature.eigenvalues` takes).
    """
    model = _set_mode(case.make_model(), case.mode)
    X, Y = case.data()
    params, theta = _split(model)
    scale = 1.0 if as_written else _objective_scale(case, X.shape[0])

    def loss(t):
        return case.loss_fn(functional_call(model, params(t), (X,)), Y) * scale

    with sdpa_kernel(SDPBackend.MATH):  # the fused attention kernels have no double backward
        return torch.autograd.functional.hessian(loss, theta), theta


def reference_value_and_grad(case):
    """The case's objective and its gradient by plain autograd on the module (buffers copied)."""
    model = _set_mode(case.make_model(), case.mode)
    X, Y = case.data()
    params, theta = _split(model)
    t = theta.clone().requires_grad_(True)
    loss = case.loss_fn(functional_call(model, params(t), (X,)), Y) * _objective_scale(case, X.shape[0])
    (g,) = torch.autograd.grad(loss, t)
    return float(loss), g


def reference_per_sample_hessians(case):
    """Dense ``(n, d, d)`` Hessians of each sample's loss ``loss_fn(f(x_i), y_i)`` (not divided by n)."""
    model = _set_mode(case.make_model(), case.mode)
    X, Y = case.data()
    params, theta = _split(model)

    def loss(t, i):
        return case.loss_fn(functional_call(model, params(t), (X[i:i + 1],)), Y[i:i + 1])

    with sdpa_kernel(SDPBackend.MATH):
        return torch.stack([torch.autograd.functional.hessian(lambda t: loss(t, i), theta)
                            for i in range(X.shape[0])])
