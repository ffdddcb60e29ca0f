"""Update rules on a leading configuration axis: pure functions (optax style), PyTorch semantics.

A rule holds only hyperparameters. ``init(W)`` makes its state and ``step(W, G, lr, state, t)``
returns the next iterate and a NEW state; no tensor passed in is modified, so a rule (and a
state) can be reused. ``W`` and ``G`` have shape ``(K, d)`` and ``lr`` shape ``(K,)``, so one
rule serves one run or a whole sweep. The arithmetic is written with the same tensor kernels,
in the same order, as ``torch.optim.SGD``, ``RMSprop`` and ``Adam`` (single-tensor CPU path;
their in-place kernels here out of place), so that in float64 a step is bit-identical to
theirs on the same inputs; the tests check this.

Rules are built by name through `ndgm.registry` (`make_rule`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .. import registry

__all__ = ["UpdateRule", "GD", "Momentum", "RMSProp", "Adam", "make_rule"]


def _neg_col(lr: Tensor) -> Tensor:
    return (-lr)[:, None]


class UpdateRule:
    """Base class: ``init`` makes the state, ``step`` returns the next iterate and the next state."""

    def init(self, W: Tensor) -> dict:
        return {}

    def step(self, W: Tensor, G: Tensor, lr: Tensor, state: dict, t: int) -> tuple[Tensor, dict]:
        """One update at step count ``t`` (1-based, as torch counts Adam steps): ``(W_next, state_next)``."""
        raise NotImplementedError


@dataclass
class GD(UpdateRule):
    r"""Plain (sub)gradient step, NDGM: :math:`w \leftarrow w - \eta g`.

    ``torch.optim.SGD`` computes ``p.add_(g, alpha=-lr)``, a fused multiply-add on CPU;
    ``addcmul`` with a per-row ``-lr`` is the same fused operation.
    """


    def step(self, W, G, lr, state, t):
        return torch.addcmul(W, G, _neg_col(lr)), state


@dataclass
class Momentum(UpdateRule):
    r"""Heavy-ball momentum as in ``torch.optim.SGD``.

    :math:`b_t = \mu b_{t-1} + (1 - \tau) g_t` (``b_1 = g_1``),
    :math:`w_t = w_{t-1} - \eta b_t` (Nesterov: :math:`w_t = w_{t-1} - \eta (g_t + \mu b_t)`).
    """

    momentum: float = 0.9
    dampening: float = 0.0
    nesterov: bool = False

    def step(self, W, G, lr, state, t):
        buf = state.get("buf")
        buf = G.detach().clone() if buf is None else buf.mul(self.momentum).add(G, alpha=1 - self.dampening)
        direction = G.add(buf, alpha=self.momentum) if self.nesterov else buf
        return torch.addcmul(W, direction, _neg_col(lr)), {"buf": buf}


@dataclass
class RMSProp(UpdateRule):
    r"""RMSProp as in ``torch.optim.RMSprop`` (not centred, no momentum).

    :math:`v_t = \alpha v_{t-1} + (1 - \alpha) g_t^2`,
    :math:`w_t = w_{t-1} - \eta g_t / (\sqrt{v_t} + \epsilon)`.
    """

    alpha: float = 0.99
    eps: float = 1e-8

    def init(self, W):
        return {"square_avg": torch.zeros_like(W)}

    def step(self, W, G, lr, state, t):
        sq = state["square_avg"].mul(self.alpha).addcmul_(G, G, value=1 - self.alpha)
        avg = sq.sqrt().add_(self.eps)
        # torch: p.addcdiv_(g, avg, value=-lr) == p + (-lr * g) / avg, elementwise.
        return W.addcdiv(_neg_col(lr) * G, avg), {"square_avg": sq}


@dataclass
class Adam(UpdateRule):
    r"""Adam as in ``torch.optim.Adam`` (bias-corrected, no weight decay, no AMSGrad).

    :math:`m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t` (as ``lerp``),
    :math:`v_t = \beta_2 v_{t-1} + (1-\beta_2) g_t^2`,
    :math:`w_t = w_{t-1} - \frac{\eta}{1-\beta_1^t}\, m_t / (\sqrt{v_t}/\sqrt{1-\beta_2^t} + \epsilon)`.
    """

    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8

    def init(self, W):
        return {"exp_avg": torch.zeros_like(W), "exp_avg_sq": torch.zeros_like(W)}

    def step(self, W, G, lr, state, t):
        m = state["exp_avg"].lerp(G, 1 - self.beta1)
        v = state["exp_avg_sq"].mul(self.beta2).addcmul_(G, G, value=1 - self.beta2)
        step = float(t)  # torch reads its step counter as a Python float
        bias_correction1 = 1 - self.beta1**step
        bias_correction2_sqrt = (1 - self.beta2**step) ** 0.5
        step_size = lr / bias_correction1
        denom = (v.sqrt() / bias_correction2_sqrt).add_(self.eps)
        return W.addcdiv(_neg_col(step_size) * m, denom), {"exp_avg": m, "exp_avg_sq": v}


def make_rule(name: str, **hyper) -> UpdateRule:
    """Build an update rule by its `ndgm.registry` name: ``sgd`` (aliases ``gd``, ``ndgm``),
    ``momentum``, ``rmsprop``, ``adam``."""
    return registry.get(name, has="rule").build_rule(**hyper)
