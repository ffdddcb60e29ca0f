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

__all__ = ["ACTIVATIONS", "make_mlp", "ImageMLP", "count_parameters"]

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


class ImageMLP(nn.Sequential):
    """A fully connected classifier of images: ``AvgPool2d(pool)``, flatten, then ``Linear -> act``
    through ``hidden`` and a final ``Linear`` to ``num_classes``.

    The small network of the quick L1 study: on the digits (8 x 8 images stored as 3 x 32 x 32
    by repeating each pixel 4 x 4) ``pool = 4`` gives back the 8 x 8 pixels exactly, three times
    (one per channel), so the first layer has ``3 * 64`` inputs. PyTorch's default ``nn.Linear``
    initialisation, drawn from the global RNG (build it under `ndgm.training.seeded`).

    Parameters
    ----------
    image_shape : (channels, height, width)
    hidden : sequence of int
        Hidden widths.
    num_classes : int
    pool : int
        Average-pooling window and stride applied first (1: none).
    activation : {'relu', 'gelu', 'tanh'}
    """

    def __init__(self, image_shape: tuple[int, int, int] = (3, 32, 32), hidden: tuple[int, ...] = (256, 256, 256),
                 num_classes: int = 10, pool: int = 4, activation: str = "relu"):
        if activation not in ACTIVATIONS:
            raise NdgmError(f"activation must be one of {', '.join(ACTIVATIONS)}, got {activation!r}")
        c, h, w = (check_int("image size", v) for v in image_shape)
        pool = check_int("pool", pool)
        if h % pool or w % pool:
            raise NdgmError(f"pool {pool} must divide the image size {h} x {w}")
        widths = [c * (h // pool) * (w // pool), *[check_int("hidden width", v) for v in hidden],
                  check_int("num_classes", num_classes)]
        layers: list[nn.Module] = [nn.AvgPool2d(pool, pool)] if pool > 1 else []
        layers.append(nn.Flatten())
        for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
            layers.append(nn.Linear(a, b))
            if i < len(widths) - 2:
                layers.append(ACTIVATIONS[activation]())
        super().__init__(*layers)
