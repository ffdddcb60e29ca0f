"""Small fully connected networks for curvature studies, with a choice of activation.

``relu`` is the non-differentiable case (autodiff takes ``relu'(0) = 0``); ``gelu`` and
``tanh`` are smooth. Initialisation is PyTorch's default for ``nn.Linear`` drawn from a
local generator, so one seed gives one network whatever the global RNG state.
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import NdgmError, check_int
from . import count_parameters  # re-exported: tests and benchmarks import it from here

__all__ = ["ACTIVATIONS", "make_mlp", "count_parameters"]

ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh}


def make_mlp(
    in_dim: int,
    hidden: tuple[int, ...] | list[int],
    out_dim: int,
    activation: str = "relu",
    bias: bool = True,
    seed: int = 0,
    dtype: torch.dtype = torch.float64,
    device: str | torch.device = "cpu",
) -> nn.Sequential:
    """``Linear -> act -> ... -> Linear`` with widths ``in_dim, *hidden, out_dim``.

    Parameters
    ----------
    in_dim, out_dim : int
    hidden : sequence of int
        Hidden widths (empty: a linear model).
    activation : {'relu', 'gelu', 'tanh'}
    bias : bool
    seed : int
        Seed of the local generator the weights are drawn from (default ``nn.Linear``
        init: ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))`` for weights and biases).
    dtype, device
        Where the parameters live.
    """
    if activation not in ACTIVATIONS:
        raise NdgmError(f"activation must be one of {', '.join(ACTIVATIONS)}, got {activation!r}")
    widths = [check_int("in_dim", in_dim), *[check_int("hidden width", h) for h in hidden], check_int("out_dim", out_dim)]
    gen = torch.Generator().manual_seed(int(seed))
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        lin = nn.Linear(a, b, bias=bias, dtype=torch.float64)
        bound = 1.0 / a ** 0.5
        with torch.no_grad():
            lin.weight.uniform_(-bound, bound, generator=gen)
            if bias:
                lin.bias.uniform_(-bound, bound, generator=gen)
        layers.append(lin)
        if i < len(widths) - 2:
            layers.append(ACTIVATIONS[activation]())
    return nn.Sequential(*layers).to(device=device, dtype=dtype)
