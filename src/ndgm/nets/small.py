r"""Small real architectures for the non-singularity theorem: an MLP, a CNN, a softmax-attention block.

The non-singularity paper's theorem covers networks of fully connected, convolutional and
softmax-attention layers with piecewise-analytic activations. These three models are the
smallest members of each family that still have every ingredient, sized so that a dense
Hessian (a few hundred parameters) is cheap:

* `SmallMLP`: ``Linear(p, h_1) -> act -> ... -> Linear(h_L, out)``.
* `SmallCNN`: the flat input viewed as a ``1 x s x s`` image, ``Conv2d(1, c, k)`` (no padding)
  ``-> act ->`` flatten ``-> Linear(c (s-k+1)^2, out)``.
* `TinyAttention`: the flat input viewed as ``T`` tokens of ``p`` features (the image rows);
  embedding ``E = X W_e + b_e`` (``T x m``); one head of softmax attention
  ``A = softmax(Q K^T / sqrt(m)) V`` with ``Q, K, V = E W_{q,k,v} + b_{q,k,v}``; a fully
  connected layer with the activation, ``act(A W_1 + b_1)`` (``T x h``); mean over tokens;
  ``Linear(h, out)``. No residual path, so the activation layer is the only way to the output
  (as in the MLP and the CNN, where a dead last hidden layer cuts the input off).

Every model takes flat inputs ``(n, in_dim)`` (the shared curvature case list feeds flat
rows), is built in float64 from a local generator (PyTorch's default ``U(-1/sqrt(fan_in),
1/sqrt(fan_in))`` for every weight and bias, so one seed gives one network whatever the global
RNG state), and is written without in-place operations or data-dependent control flow, so
`torch.func.vmap` batches it over samples and over parameter points.

``last_hidden_bias`` names the bias of the layer that feeds the last activation: shifting it
down by more than the largest pre-activation on the data makes that whole layer dead for
ReLU (`kill_last_hidden_layer`); ``output_bias`` names the bias of the output layer.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ..errors import NdgmError, check_int

__all__ = [
    "NS_ACTIVATIONS",
    "ANALYTIC_ACTIVATIONS",
    "ARCHITECTURES",
    "activation_module",
    "SmallMLP",
    "SmallCNN",
    "TinyAttention",
    "make_small_net",
    "hidden_preactivations",
    "kill_last_hidden_layer",
]

#: The activations of the theorem's experiment: two with a kink, two analytic.
NS_ACTIVATIONS = ("relu", "leaky_relu", "sigmoid", "gelu")
#: Analytic everywhere (no kink): their Hessian is analytic in the parameters.
ANALYTIC_ACTIVATIONS = ("sigmoid", "gelu", "tanh")
ARCHITECTURES = ("mlp", "cnn", "attention")
LEAKY_SLOPE = 0.01


def activation_module(name: str) -> nn.Module:
    """``relu``, ``leaky_relu`` (slope 0.01), ``sigmoid``, ``gelu`` (exact, erf) or ``tanh``."""
    table = {"relu": nn.ReLU, "leaky_relu": lambda: nn.LeakyReLU(LEAKY_SLOPE), "sigmoid": nn.Sigmoid,
             "gelu": nn.GELU, "tanh": nn.Tanh}
    if name not in table:
        raise NdgmError(f"activation must be one of {', '.join(table)}, got {name!r}")
    return table[name]()


def _init_(module: nn.Module, gen: torch.Generator) -> None:
    """PyTorch's default bound ``1/sqrt(fan_in)`` for every weight and bias, drawn from ``gen``."""
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, (nn.Linear, nn.Conv2d)):
                fan_in = m.weight[0].numel()
                bound = 1.0 / math.sqrt(fan_in)
                m.weight.uniform_(-bound, bound, generator=gen)
                if m.bias is not None:
                    m.bias.uniform_(-bound, bound, generator=gen)


class SmallMLP(nn.Module):
    """``Linear -> act -> ... -> Linear`` with widths ``in_dim, *hidden, out_dim`` (``hidden`` non-empty)."""

    def __init__(self, in_dim: int, hidden: tuple[int, ...], out_dim: int, activation: str = "relu", seed: int = 0):
        super().__init__()
        widths = [check_int("in_dim", in_dim), *[check_int("hidden width", h) for h in hidden],
                  check_int("out_dim", out_dim)]
        if len(widths) < 3:
            raise NdgmError("SmallMLP needs at least one hidden layer")
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
            layers.append(nn.Linear(a, b, dtype=torch.float64))
            if i < len(widths) - 2:
                layers.append(activation_module(activation))
        self.net = nn.Sequential(*layers)
        self.activation = activation
        self.last_hidden_bias = f"net.{len(layers) - 3}.bias"
        self.output_bias = f"net.{len(layers) - 1}.bias"
        _init_(self, torch.Generator().manual_seed(int(seed)))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class SmallCNN(nn.Module):
    """``(n, s*s)`` viewed as ``(n, 1, s, s)``; ``Conv2d(1, channels, kernel) -> act -> flatten -> Linear``."""

    def __init__(self, side: int, channels: int, kernel: int, out_dim: int, activation: str = "relu", seed: int = 0):
        super().__init__()
        self.side, self.kernel = check_int("side", side), check_int("kernel", kernel)
        if self.kernel > self.side:
            raise NdgmError(f"kernel ({kernel}) must not exceed the image side ({side})")
        self.conv = nn.Conv2d(1, check_int("channels", channels), self.kernel, dtype=torch.float64)
        self.act = activation_module(activation)
        self.head = nn.Linear(channels * (self.side - self.kernel + 1) ** 2, check_int("out_dim", out_dim),
                              dtype=torch.float64)
        self.activation = activation
        self.last_hidden_bias = "conv.bias"
        self.output_bias = "head.bias"
        _init_(self, torch.Generator().manual_seed(int(seed)))

    def forward(self, x: Tensor) -> Tensor:
        z = self.act(self.conv(x.reshape(x.shape[0], 1, self.side, self.side)))
        return self.head(z.flatten(1))


class TinyAttention(nn.Module):
    r"""One softmax-attention head, one activation layer, mean pooling, a linear head.

    ``(n, T*p)`` is viewed as ``(n, T, p)`` tokens; ``E = X W_e + b_e``,
    ``A = softmax(Q K^T / sqrt(m)) V``, ``Z = act(A W_1 + b_1)``, output
    ``mean_t(Z_t) W_o + b_o``.
    """

    def __init__(self, tokens: int, token_dim: int, model_dim: int, hidden: int, out_dim: int,
                 activation: str = "relu", seed: int = 0):
        super().__init__()
        self.tokens, self.token_dim = check_int("tokens", tokens), check_int("token_dim", token_dim)
        m = check_int("model_dim", model_dim)
        self.embed = nn.Linear(token_dim, m, dtype=torch.float64)
        self.query = nn.Linear(m, m, dtype=torch.float64)
        self.key = nn.Linear(m, m, dtype=torch.float64)
        self.value = nn.Linear(m, m, dtype=torch.float64)
        self.ff = nn.Linear(m, check_int("hidden", hidden), dtype=torch.float64)
        self.act = activation_module(activation)
        self.head = nn.Linear(hidden, check_int("out_dim", out_dim), dtype=torch.float64)
        self.scale = 1.0 / math.sqrt(m)
        self.activation = activation
        self.last_hidden_bias = "ff.bias"
        self.output_bias = "head.bias"
        _init_(self, torch.Generator().manual_seed(int(seed)))

    def forward(self, x: Tensor) -> Tensor:
        e = self.embed(x.reshape(x.shape[0], self.tokens, self.token_dim))
        scores = self.query(e) @ self.key(e).transpose(-1, -2) * self.scale
        a = torch.softmax(scores, dim=-1) @ self.value(e)
        return self.head(self.act(self.ff(a)).mean(1))


def make_small_net(arch: str, activation: str, in_side: int = 4, out_dim: int = 10, seed: int = 0,
                   width: int = 8) -> nn.Module:
    """The experiment's three architectures on ``in_side x in_side`` images (flat rows).

    ``mlp``: ``s^2 -> width -> out``; ``cnn``: ``Conv2d(1, 4, 3)`` on the ``s x s`` image, head
    ``4 (s-2)^2 -> out``; ``attention``: ``s`` tokens (the image rows) of ``s`` pixels, model
    width ``s``, activation layer ``width``, head ``width -> out``.
    """
    if arch == "mlp":
        return SmallMLP(in_side * in_side, (width,), out_dim, activation, seed)
    if arch == "cnn":
        return SmallCNN(in_side, 4, min(3, in_side), out_dim, activation, seed)
    if arch == "attention":
        return TinyAttention(in_side, in_side, in_side, width, out_dim, activation, seed)
    raise NdgmError(f"architecture must be one of {', '.join(ARCHITECTURES)}, got {arch!r}")


_ACT_TYPES = (nn.ReLU, nn.LeakyReLU, nn.Sigmoid, nn.GELU, nn.Tanh)


def hidden_preactivations(model: nn.Module, X: Tensor) -> list[Tensor]:
    """The inputs of every activation module on ``X``, in forward order (no gradients)."""
    seen: list[Tensor] = []
    handles = [m.register_forward_hook(lambda _m, inp, _out: seen.append(inp[0].detach()))
               for m in model.modules() if isinstance(m, _ACT_TYPES)]
    try:
        with torch.no_grad():
            model(X)
    finally:
        for h in handles:
            h.remove()
    return seen


def kill_last_hidden_layer(model: nn.Module, X: Tensor, margin: float) -> float:
    """Shift ``model.last_hidden_bias`` so that every pre-activation of the last activation
    layer on ``X`` is at most ``-margin``; return the largest pre-activation afterwards.

    With ReLU that layer is then dead on the data (output 0, derivative 0): the network's
    output is its final bias, whatever the other parameters are, on an open set of them.
    """
    pre = hidden_preactivations(model, X)[-1]
    bias = model.get_parameter(model.last_hidden_bias)
    # The bias adds to one axis of the pre-activation: channel (CNN, dim 1) or feature (last dim).
    reduce = [d for d in range(pre.ndim) if d != (1 if pre.ndim == 4 else pre.ndim - 1)]
    top = pre.amax(dim=reduce)
    with torch.no_grad():
        bias.sub_(top + margin)
    return float(hidden_preactivations(model, X)[-1].max())
