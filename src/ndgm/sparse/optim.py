r"""Proximal optimizers: ``torch.optim.Optimizer`` subclasses that keep exact zeros.

The model's loss (what ``backward`` differentiates) is the *smooth* part only; the penalty is a set
of parameter-group options and enters through its proximal operator after a base update, never
through ``sgn(w)``. The parameters hold the prox output itself -- nothing mixes it back with the
previous iterate -- so a coordinate (or a whole group) that the prox sets to 0 is exactly 0 and
stays 0 while its gradient is inside the penalty's subdifferential.

Group options (per parameter group; constructor keywords set the defaults):

* ``l1``: :math:`l_1\|w\|_1`; ``l2``: :math:`l_2\|w\|_2^2` (the ridge part of an elastic net, applied in
  the prox, unlike ``weight_decay`` which enters the gradient); ``group_l2``:
  :math:`\lambda_g\sum_g\|w_g\|_2` over groups of ``group_size`` consecutive indices along
  ``group_dim`` (0: a conv's output channels, a linear layer's rows; ``group_size = head_dim``:
  attention heads). Together `ndgm.problems.SparseGroupPenalty`; a group may instead carry
  ``penalty=`` any `ndgm.problems.TensorPenalty` (turned into these plain numbers, so that
  ``state_dict()`` loads with ``torch.load(weights_only=True)``).
* `LamScheduler` changes ``l1`` / ``l2`` / ``group_l2`` over steps as an lr scheduler changes ``lr``.
* `penalised_groups` builds the usual two groups: weights penalised, biases and normalisation
  layers not.

The optimizers:

* `ProxSGD`: torch's SGD step (``momentum``, ``dampening``, ``nesterov``, ``weight_decay``,
  bit for bit ``torch.optim.SGD`` when the penalty is 0), then :math:`w \leftarrow \mathrm{prox}_{\eta P}(w)`.
* `ProxAdam` / `ProxAdamW`: torch's Adam step (``weight_decay``, decoupled for AdamW; bit for bit
  ``torch.optim.Adam`` / ``AdamW`` when the penalty is 0), then the prox with one of two thresholds
  (``threshold=``):

  - ``'preconditioned'`` (the default, and the only one before): the prox in the metric
    :math:`D/\eta` that Adam's step uses, :math:`D = \sqrt{\hat v} + \epsilon`; for L1 the threshold
    :math:`\eta l_1 / D_j` per coordinate. The step is then a proximal-gradient step in a variable
    metric: its fixed points are stationary points of ``loss + P``, and scaling the loss by ``c``
    acts as dividing ``P`` by ``c`` (as for SGD). But the threshold is large where :math:`D_j` is
    small: a weight whose gradient is rare or tiny is zeroed at once (:math:`D_j = \epsilon` with no
    gradient: threshold :math:`\eta l_1/\epsilon`).
  - ``'uniform'``: the Euclidean prox with step :math:`\eta`, threshold :math:`\eta l_1` for every
    coordinate, as AdamW decouples weight decay from :math:`D`. Invariant to the loss's scale (Adam's
    direction is, up to ``eps``): ``l1`` is a shrinkage per step relative to Adam's normalised step
    of size about :math:`\eta`, not a weight in the objective; its fixed points satisfy
    :math:`\hat m_j / D_j \in -l_1\partial|w_j|`, i.e. they are stationary points of
    ``loss + l1 * sum_j D_j |w_j|``, a reweighted L1.

  `tests/test_prox_optim.py` measures the difference: loss x4 is ``l1 / 4`` under the first and
  changes nothing under the second (with ``eps = 0``, bit for bit).
* `RDA`: l1-regularised dual averaging (Xiao 2009/2010, :math:`\beta_t = \gamma\sqrt t`, ``lr = 1/gamma``)
  with prox-centre :math:`w_0` (``centre='initial'``, the default: the parameters' values at the first
  step), :math:`w_{t+1} = \mathrm{prox}_{c_t P}(w_0 - c_t \bar g_t)`, :math:`c_t = \mathrm{lr}\sqrt t`,
  :math:`\bar g_t` the average of all gradients. It trains a network from its initialisation; for L1
  a coordinate is 0 when :math:`|\bar g_{t,j} - w_{0,j}/c_t| \le l_1`. ``centre='zero'`` is Xiao's
  :math:`w_0 = 0` (his assumption :math:`\arg\min h \in \arg\min P`): the starting values are forgotten
  after one step, so it suits convex problems started at 0 only (a network stays at chance accuracy).
  With :math:`w_0 \ne 0` his regret bound gains the constant :math:`P(w_0) - \min P`, so the average
  regret is still :math:`O(1/\sqrt t)`.
* `AcceleratedRDA`: accelerated RDA for a smooth loss with known Lipschitz constant (Xiao 2010 sec. 6,
  Tseng 2008); needs ``step(closure)``; a parameter that gets no gradient from the closure is left
  exactly where it was (its state does not advance).

Multi-tensor steps: ``foreach=None`` picks torch's rule (foreach on CUDA, the per-tensor loop
elsewhere), ``True`` / ``False`` force it. The two paths run the same kernels in the same order,
so on the CPU they agree bit for bit. Every optimizer has `certificate()`:
:math:`\max \mathrm{dist}(-\nabla f, \partial P)` over all parameters, from the gradients in
``p.grad`` (plus coupled weight decay) -- call it after a fresh ``backward``; zero exactly at a
stationary point.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch
from torch import Tensor, nn
from torch.optim import Optimizer

from ..errors import NdgmError, check_int, check_nonnegative, check_positive
from ..problems import L1Penalty, LeastSquares, SparseGroupPenalty, TensorPenalty, soft_threshold

__all__ = ["ProxSGD", "ProxAdam", "ProxAdamW", "RDA", "AcceleratedRDA", "LamScheduler", "penalised_groups",
           "group_penalty", "fit_grouped", "PENALTY_KEYS"]

#: The group options that carry penalty weights (what `LamScheduler` scales).
PENALTY_KEYS = ("l1", "l2", "group_l2")
THRESHOLDS = ("preconditioned", "uniform")


def _penalty_options(penalty: TensorPenalty | float) -> dict:
    """A penalty object (or a number: an L1 weight) as plain group options."""
    if isinstance(penalty, (int, float)) and not isinstance(penalty, bool):
        return {"l1": check_nonnegative("l1", penalty)}
    if not isinstance(penalty, TensorPenalty):
        raise NdgmError(f"penalty must be an ndgm.problems.TensorPenalty (L1NormPenalty, GroupL2Penalty, "
                        f"ElasticNetPenalty, SparseGroupPenalty) or a number, got {type(penalty).__name__}")
    l1, l2, g = penalty.weights
    return {"l1": l1, "l2": l2, "group_l2": g, "group_dim": int(penalty.dim), "group_size": int(penalty.group_size)}


def group_penalty(group: dict) -> SparseGroupPenalty:
    """The penalty a parameter group's options describe."""
    return SparseGroupPenalty(float(group.get("l1", 0.0)), float(group.get("l2", 0.0)),
                              float(group.get("group_l2", 0.0)), int(group.get("group_dim", 0)),
                              int(group.get("group_size", 1)))


def _use_foreach(flag: bool | None, params: list[Tensor]) -> bool:
    if flag is not None:
        return bool(flag)
    if torch.compiler.is_compiling():
        return False
    try:  # torch's own rule: foreach where its kernels run (CUDA), the loop elsewhere
        from torch.optim.optimizer import _default_to_fused_or_foreach

        return _default_to_fused_or_foreach(params, differentiable=False, use_fused=False)[1]
    except Exception:  # noqa: BLE001 - a private helper; without it, the conservative choice
        return all(p.device.type == "cuda" for p in params)


def _softshrink_(p: Tensor, tau: float) -> None:
    r"""``p <- S_tau(p)`` in place, one kernel: equal (``==``) to `soft_threshold` and bit for bit in float32 /
    float64 except that a coordinate thresholded from a negative value stores ``+0.0`` (not ``-0.0``)."""
    if torch.compiler.is_compiling():
        p.copy_(torch.nn.functional.softshrink(p, tau))
    else:
        torch._C._nn.softshrink(p, tau, out=p)


class _ProxOptimizer(Optimizer):
    """Shared parts: group options (penalty objects turned into numbers) checked once, torch's closure
    convention, the prox after a base step, the certificate.

    ``needs_closure``: whether ``step`` must be given a closure (it evaluates the gradient itself).
    """

    needs_closure = False

    def __init__(self, params, defaults: dict, penalty: TensorPenalty | float | None = None):
        defaults = {"l1": 0.0, "l2": 0.0, "group_l2": 0.0, "group_dim": 0, "group_size": 1, **defaults}
        if penalty is not None:
            given = [k for k in PENALTY_KEYS if defaults[k]]
            if given:
                raise NdgmError(f"give the penalty either as penalty= or as {'/'.join(given)}=, not both")
            defaults.update(_penalty_options(penalty))
        check_positive("lr", defaults["lr"])
        super().__init__(params, defaults)

    def __setstate__(self, state: dict) -> None:
        # a state dict saved before an option existed loads with the option's default
        super().__setstate__(state)
        for group in self.param_groups:
            for k, v in self.defaults.items():
                group.setdefault(k, v)

    def add_param_group(self, param_group: dict) -> None:
        if "penalty" in param_group:
            penalty = param_group.pop("penalty")
            clash = [k for k in PENALTY_KEYS + ("group_dim", "group_size") if k in param_group]
            if clash:
                raise NdgmError(f"a parameter group gives both penalty= and {', '.join(clash)}")
            if penalty is not None:
                param_group.update(_penalty_options(penalty))
        super().add_param_group(param_group)
        self._check_group(self.param_groups[-1])

    def _check_group(self, group: dict) -> None:
        check_positive("lr", group["lr"])
        for k in PENALTY_KEYS:
            group[k] = check_nonnegative(k, group[k])
        group["group_dim"] = check_int("group_dim", group["group_dim"], minimum=-64)
        group["group_size"] = check_int("group_size", group["group_size"])
        if group["group_l2"]:
            for p in group["params"]:  # fail now, not at the first step
                if p.ndim and not -p.ndim <= group["group_dim"] < p.ndim:
                    raise NdgmError(f"group_dim {group['group_dim']} is out of range for a parameter of shape "
                                    f"{list(p.shape)}")
                if p.ndim and p.shape[group["group_dim"]] % group["group_size"]:
                    raise NdgmError(f"group_size {group['group_size']} does not divide dim {group['group_dim']} "
                                    f"of a parameter of shape {list(p.shape)}")
        if "weight_decay" in group:
            group["weight_decay"] = check_nonnegative("weight_decay", group["weight_decay"])

    @staticmethod
    def _evaluate(closure):
        """The loss from ``closure`` (with gradients enabled), or None: torch's step convention."""
        if closure is None:
            return None
        with torch.enable_grad():
            return closure()

    @staticmethod
    def _only_l1(group: dict) -> bool:
        return not group["l2"] and not group["group_l2"]

    def _prox_scalar(self, group: dict, params: list[Tensor], step: float) -> None:
        """``p <- prox_{step P}(p)`` for every parameter, ``step`` a number (the Euclidean metric)."""
        if not (group["l1"] or group["l2"] or group["group_l2"]):
            return
        if self._only_l1(group):
            tau = step * group["l1"]
            for p in params:
                _softshrink_(p, tau)
            return
        penalty = group_penalty(group)
        for p in params:
            p.copy_(penalty.prox(p, step))

    def certificate(self) -> float:
        """``max dist(-(p.grad + weight_decay p), dP(p))`` over every parameter with a gradient: zero exactly at a
        stationary point of ``loss + P`` (decoupled weight decay is not part of an objective and is left out)."""
        worst = 0.0
        for group in self.param_groups:
            wd = 0.0 if group.get("decoupled_weight_decay") else group.get("weight_decay", 0.0)
            l1_only = self._only_l1(group)
            penalty = L1Penalty(group["l1"]) if l1_only else group_penalty(group)
            for p in group["params"]:
                if p.grad is None or not p.numel():  # an empty parameter has no coordinate to certify
                    continue
                w, g = p.detach(), p.grad.detach()
                if wd:
                    g = g + wd * w
                if l1_only:  # one row: subdiff_distance reduces over the last axis
                    d = float(penalty.subdiff_distance(w.reshape(1, -1), g.reshape(1, -1))[0])
                else:
                    d = float(penalty.subdiff_distance(w, g))
                worst = max(worst, d)
        return worst

    def _with_grad(self, group: dict) -> tuple[list[Tensor], list[Tensor]]:
        params, grads = [], []
        for p in group["params"]:
            if p.grad is None:
                continue
            if p.grad.is_sparse:
                raise NdgmError(f"{type(self).__name__} does not take sparse gradients")
            params.append(p)
            grads.append(p.grad)
        return params, grads


class ProxSGD(_ProxOptimizer):
    r"""Proximal SGD: torch's SGD step, then :math:`w \leftarrow \mathrm{prox}_{\eta P}(w)`.

    With torch's momentum buffer :math:`b \leftarrow \mu b + (1 - \tau) g` (:math:`b_1 = g`) and direction
    :math:`d = g + \mu b` (Nesterov) or :math:`b`, with :math:`g` the gradient plus ``weight_decay * w``:
    :math:`w \leftarrow \mathrm{prox}_{\eta P}(w - \eta d)`. The momentum accumulates gradients only; the
    stored iterate is the prox output, so a zero stays zero while :math:`|d_j| \le l_1`.

    Parameters
    ----------
    params : iterable of tensors or parameter groups
        Groups may carry any option below, or ``penalty=`` a `ndgm.problems.TensorPenalty`.
    lr : float
        Step size :math:`\eta > 0` (full batch: ``<= 1/L`` for convergence).
    momentum, dampening, nesterov, weight_decay
        As ``torch.optim.SGD``.
    l1, l2, group_l2, group_dim, group_size
        The penalty (module docstring); ``penalty=`` gives it as an object instead.
    foreach : bool, optional
        Multi-tensor step (None: torch's default for the device).
    """

    def __init__(self, params, lr: float = 1e-2, momentum: float = 0.0, dampening: float = 0.0,
                 nesterov: bool = False, weight_decay: float = 0.0, l1: float = 0.0, l2: float = 0.0,
                 group_l2: float = 0.0, group_dim: int = 0, group_size: int = 1,
                 penalty: TensorPenalty | float | None = None, foreach: bool | None = None):
        if not 0.0 <= float(momentum) < 1.0:
            raise NdgmError(f"momentum must lie in [0, 1), got {momentum!r}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise NdgmError("nesterov needs momentum > 0 and dampening 0")
        super().__init__(params, dict(lr=lr, momentum=float(momentum), dampening=float(dampening),
                                      nesterov=bool(nesterov), weight_decay=weight_decay, l1=l1, l2=l2,
                                      group_l2=group_l2, group_dim=group_dim, group_size=group_size,
                                      foreach=foreach), penalty)

    @torch.no_grad()
    def step(self, closure=None):
        loss = self._evaluate(closure)
        for group in self.param_groups:
            params, grads = self._with_grad(group)
            if not params:
                continue
            momentum = group["momentum"]
            bufs = [self.state[p].get("momentum_buffer") for p in params]
            if _use_foreach(group["foreach"], params):
                _sgd_foreach(params, grads, bufs, group)
            else:
                _sgd_single(params, grads, bufs, group)
            if momentum:
                for p, b in zip(params, bufs):
                    self.state[p]["momentum_buffer"] = b
            self._prox_scalar(group, params, group["lr"])
        return loss


def _sgd_single(params, grads, bufs, group) -> None:
    """torch.optim.SGD's per-tensor step (``_single_tensor_sgd``), the same kernels in the same order."""
    lr, wd, momentum, dampening, nesterov = (group[k] for k in ("lr", "weight_decay", "momentum", "dampening",
                                                                 "nesterov"))
    for i, p in enumerate(params):
        g = grads[i]
        if wd:
            g = g.add(p, alpha=wd)
        if momentum:
            if bufs[i] is None:
                bufs[i] = g.detach().clone()
            else:
                bufs[i].mul_(momentum).add_(g, alpha=1 - dampening)
            g = g.add(bufs[i], alpha=momentum) if nesterov else bufs[i]
        p.add_(g, alpha=-lr)


def _sgd_foreach(params, grads, bufs, group) -> None:
    """torch.optim.SGD's multi-tensor step (``_multi_tensor_sgd``); ``p.grad`` is never written."""
    lr, wd, momentum, dampening, nesterov = (group[k] for k in ("lr", "weight_decay", "momentum", "dampening",
                                                                 "nesterov"))
    if wd:
        grads = torch._foreach_add(grads, params, alpha=wd)
    if momentum:
        if all(b is not None for b in bufs):
            torch._foreach_mul_(bufs, momentum)
            torch._foreach_add_(bufs, grads, alpha=1 - dampening)
        else:
            for i, g in enumerate(grads):
                if bufs[i] is None:
                    bufs[i] = g.detach().clone()
                else:
                    bufs[i].mul_(momentum).add_(g, alpha=1 - dampening)
        grads = torch._foreach_add(grads, bufs, alpha=momentum) if nesterov else bufs
    torch._foreach_add_(params, grads, alpha=-lr)


class ProxAdam(_ProxOptimizer):
    r"""Adam's step on the smooth part, then the penalty's prox with the threshold ``threshold`` names.

    With torch's Adam quantities :math:`\hat m = m_t / (1 - \beta_1^t)` and
    :math:`D = \sqrt{v_t / (1 - \beta_2^t)} + \epsilon`:

    * ``threshold='preconditioned'`` (default): :math:`w \leftarrow \mathrm{prox}^{D/\eta}_{P}(w - \eta\hat m/D)`,
      the prox in Adam's metric; for L1 the soft threshold :math:`\eta l_1 / D_j` (the previous
      release's step, bit for bit);
    * ``threshold='uniform'``: :math:`w \leftarrow \mathrm{prox}_{\eta P}(w - \eta\hat m/D)`, threshold
      :math:`\eta l_1` whatever :math:`D` (module docstring: what each one's ``l1`` means).

    ``weight_decay`` adds ``weight_decay * w`` to the gradient (``torch.optim.Adam``) or, with
    ``decoupled_weight_decay=True``, multiplies ``w`` by ``1 - lr * weight_decay`` first (``AdamW``).
    With a zero penalty the step is ``torch.optim.Adam``'s (``AdamW``'s) bit for bit. Other options as
    `ProxSGD`.
    """

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, decoupled_weight_decay: bool = False, l1: float = 0.0,
                 l2: float = 0.0, group_l2: float = 0.0, group_dim: int = 0, group_size: int = 1,
                 threshold: str = "preconditioned", penalty: TensorPenalty | float | None = None,
                 foreach: bool | None = None):
        b1, b2 = betas
        if not (0 <= b1 < 1 and 0 <= b2 < 1):
            raise NdgmError(f"betas must lie in [0, 1), got {betas!r}")
        super().__init__(params, dict(lr=lr, betas=(float(b1), float(b2)), eps=check_nonnegative("eps", eps),
                                      weight_decay=weight_decay, decoupled_weight_decay=bool(decoupled_weight_decay),
                                      l1=l1, l2=l2, group_l2=group_l2, group_dim=group_dim, group_size=group_size,
                                      threshold=threshold, foreach=foreach), penalty)

    def _check_group(self, group: dict) -> None:
        super()._check_group(group)
        if group["threshold"] not in THRESHOLDS:
            raise NdgmError(f"threshold must be one of {', '.join(THRESHOLDS)}, got {group['threshold']!r}")

    def _init_state(self, p: Tensor) -> dict:
        state = self.state[p]
        if not state:
            # torch's layout: a 0-d step tensor (no recompilation per step under torch.compile)
            state["step"] = torch.tensor(0.0, dtype=_scalar_dtype())
            state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        elif not isinstance(state["step"], Tensor):  # a state dict of the previous release: a Python int
            state["step"] = torch.tensor(float(state["step"]), dtype=_scalar_dtype())
        return state

    @torch.no_grad()
    def step(self, closure=None):
        loss = self._evaluate(closure)
        for group in self.param_groups:
            params, grads = self._with_grad(group)
            if not params:
                continue
            states = [self._init_state(p) for p in params]
            ms, vs, steps = ([s[k] for s in states] for k in ("exp_avg", "exp_avg_sq", "step"))
            if _use_foreach(group["foreach"], params):
                denoms = _adam_foreach(params, grads, ms, vs, steps, group)
            else:
                denoms = _adam_single(params, grads, ms, vs, steps, group)
            self._prox_adam(group, params, denoms)
        return loss

    def _prox_adam(self, group: dict, params: list[Tensor], denoms: list[Tensor]) -> None:
        lr, l1 = group["lr"], group["l1"]
        if group["threshold"] == "uniform":
            self._prox_scalar(group, params, lr)
            return
        if not (l1 or group["l2"] or group["group_l2"]):
            return
        if self._only_l1(group):
            if _use_foreach(group["foreach"], params):
                # (lr * l1) / D is D.reciprocal() * (lr * l1) in torch (Tensor.__rtruediv__), and
                # sgn(v) * (|v| - tau).clamp_min(0) is soft_threshold: the per-tensor path's bits
                tau = denoms  # not needed any more: the thresholds are written in its place
                torch._foreach_reciprocal_(tau)
                torch._foreach_mul_(tau, lr * l1)
                mag = torch._foreach_abs(params)
                torch._foreach_sub_(mag, tau)
                torch._foreach_clamp_min_(mag, 0.0)
                torch._foreach_sign_(params)
                torch._foreach_mul_(params, mag)
            else:
                for p, d in zip(params, denoms):
                    p.copy_(soft_threshold(p, (lr * l1) / d))
            return
        penalty = group_penalty(group)
        for p, d in zip(params, denoms):
            p.copy_(penalty.prox(p, lr / d))  # the diagonal metric D / lr


class ProxAdamW(ProxAdam):
    """`ProxAdam` with decoupled weight decay (``torch.optim.AdamW``'s step, default ``weight_decay=1e-2``)."""

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2, **kwargs):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                         decoupled_weight_decay=True, **kwargs)


def _scalar_dtype() -> torch.dtype:
    return torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32


def _step_value(step) -> float:
    return step if torch.compiler.is_compiling() else (step.item() if isinstance(step, Tensor) else float(step))


def _adam_single(params, grads, ms, vs, steps, group) -> list[Tensor]:
    """torch.optim.Adam's per-tensor step (``_single_tensor_adam``, not capturable); returns the denominators."""
    lr, (b1, b2), eps, wd = group["lr"], group["betas"], group["eps"], group["weight_decay"]
    denoms = []
    for p, g, m, v, st in zip(params, grads, ms, vs, steps):
        st += 1
        if wd:
            if group["decoupled_weight_decay"]:
                p.mul_(1 - lr * wd)
            else:
                g = g.add(p, alpha=wd)
        m.lerp_(g, 1 - b1)
        v.mul_(b2).addcmul_(g, g, value=1 - b2)
        t = _step_value(st)
        denom = (v.sqrt() / (1 - b2**t) ** 0.5).add_(eps)
        p.addcdiv_(m, denom, value=-(lr / (1 - b1**t)))
        denoms.append(denom)
    return denoms


def _adam_foreach(params, grads, ms, vs, steps, group) -> list[Tensor]:
    """torch.optim.Adam's multi-tensor step (``_multi_tensor_adam``, not capturable); returns the denominators."""
    lr, (b1, b2), eps, wd = group["lr"], group["betas"], group["eps"], group["weight_decay"]
    torch._foreach_add_(steps, 1)
    if wd:
        if group["decoupled_weight_decay"]:
            torch._foreach_mul_(params, 1 - lr * wd)
        else:
            grads = torch._foreach_add(grads, params, alpha=wd)
    torch._foreach_lerp_(ms, grads, 1 - b1)
    torch._foreach_mul_(vs, b2)
    torch._foreach_addcmul_(vs, grads, grads, 1 - b2)
    ts = [_step_value(s) for s in steps]
    step_size = [(lr / (1 - b1**t)) * -1 for t in ts]
    bc2_sqrt = [(1 - b2**t) ** 0.5 for t in ts]
    denoms = torch._foreach_sqrt(vs)
    torch._foreach_div_(denoms, bc2_sqrt)
    torch._foreach_add_(denoms, eps)
    torch._foreach_addcdiv_(params, ms, denoms, step_size)
    return denoms


class RDA(_ProxOptimizer):
    r"""Regularised dual averaging (Xiao 2009/2010, :math:`\beta_t = \gamma\sqrt t`, ``lr = 1/gamma``).

    :math:`\bar g_t = \frac1t\sum_{s\le t} g_s`, :math:`c_t = \mathrm{lr}\sqrt t`,
    :math:`w_{t+1} = \mathrm{prox}_{c_t P}(w_0 - c_t \bar g_t)`; for L1
    :math:`w_{t+1} = -c_t\,S_{l_1}(\bar g_t - w_0/c_t)`: every coordinate with
    :math:`|\bar g_{t,j} - w_{0,j}/c_t| \le l_1` is exactly 0.

    ``centre='initial'`` (default): :math:`w_0` is the parameters' values at their first step, so a
    network trains from its initialisation (with ``l1 = 0``: :math:`w_{t+1} = w_0 - (\mathrm{lr}/\sqrt t)\sum_s g_s`).
    ``centre='zero'``: Xiao's :math:`w_0 = 0` (the previous release's behaviour, bit for bit): the
    starting values are ignored after the first step -- for convex problems started at 0 only.
    Its guarantee is :math:`O(1/\sqrt t)` in the objective: it identifies the support early but is slow
    to reach high precision (`AcceleratedRDA` is the fast variant for smooth convex losses).
    """

    def __init__(self, params, lr: float = 1e-2, l1: float = 0.0, l2: float = 0.0, group_l2: float = 0.0,
                 group_dim: int = 0, group_size: int = 1, penalty: TensorPenalty | float | None = None,
                 centre: str = "initial"):
        if centre not in ("initial", "zero"):
            raise NdgmError(f"centre must be 'initial' or 'zero', got {centre!r}")
        super().__init__(params, dict(lr=lr, l1=l1, l2=l2, group_l2=group_l2, group_dim=group_dim,
                                      group_size=group_size, centre=centre), penalty)

    def _check_group(self, group: dict) -> None:
        super()._check_group(group)
        if group["centre"] not in ("initial", "zero"):
            raise NdgmError(f"centre must be 'initial' or 'zero', got {group['centre']!r}")

    @torch.no_grad()
    def step(self, closure=None):
        loss = self._evaluate(closure)
        for group in self.param_groups:
            lr, l1, initial = group["lr"], group["l1"], group["centre"] == "initial"
            penalty = None if self._only_l1(group) else group_penalty(group)
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["grad_sum"] = torch.zeros_like(p)
                    if initial:
                        state["prox_centre"] = p.detach().clone()
                state["step"] += 1
                t = state["step"]
                state["grad_sum"].add_(p.grad)
                gbar = state["grad_sum"] / t
                c = lr * math.sqrt(t)
                if penalty is not None:
                    centre = state["prox_centre"] if initial else torch.zeros_like(p)
                    p.copy_(penalty.prox(centre - c * gbar, c))
                elif initial:
                    p.copy_(soft_threshold(gbar - state["prox_centre"] / c, l1) * (-c))
                else:
                    p.copy_(soft_threshold(gbar, l1) * (-c))
        return loss


class AcceleratedRDA(_ProxOptimizer):
    r"""Accelerated regularised dual averaging (Xiao 2010 JMLR section 6, AC-RDA with :math:`\beta_t = 0`).

    For a smooth loss whose gradient is :math:`L`-Lipschitz, ``lr = 1/L``; rate :math:`O(L/t^2)`.
    With weights :math:`a_t = \mathrm{lr}\,t/2`, :math:`A_t = \sum_{s\le t} a_s = \mathrm{lr}\,t(t+1)/4`,
    :math:`\theta_t = a_t/A_t = 2/(t+1)` and prox-centre :math:`w_0` (the parameters' starting values),

    .. math::

        u_t &= (1-\theta_t)\,w_{t-1} + \theta_t\,v_{t-1}, \qquad g_t = \nabla f(u_t),\\
        v_t &= \arg\min_w \Big\{\sum_{s\le t} a_s\big(\langle g_s, w\rangle + P(w)\big)
               + \tfrac12\|w - w_0\|^2\Big\} = \mathrm{prox}_{A_t P}\Big(w_0 - \sum_{s\le t} a_s g_s\Big),\\
        w_t &= \mathrm{prox}_{\mathrm{lr}\,P}\big(u_t - \mathrm{lr}\,g_t\big).

    :math:`u, v` are Xiao's. His primal update :math:`w_t = (1-\theta_t)w_{t-1} + \theta_t v_t` is a
    convex combination of every past :math:`v_s`, so a coordinate that was ever nonzero stays
    nonzero (weight :math:`\propto 1/t^2`, never exactly 0); the sparse :math:`v_t` has no rate of
    its own. We take instead the proximal-gradient step from :math:`u_t` (Tseng 2008's variant):
    it minimises the quadratic upper model of :math:`F` at :math:`u_t` that Xiao's proof bounds
    at his convex combination, so the same bound holds,
    :math:`F(w_t) - F^\star \le \|w^\star - w_0\|^2 / (2A_t) = 2\|w^\star - w_0\|^2 / (\mathrm{lr}\,t(t+1))`
    for ``lr <= 1/L``, and :math:`w_t` is a prox output, with exact zeros.

    The gradient is needed at :math:`u_t`, not at the parameters, so ``step(closure)`` is
    required: it moves the parameters to :math:`u_t`, calls ``closure()`` (which must zero the
    gradients, compute the smooth loss and call ``backward``; its loss, at :math:`u_t`, is
    returned), and leaves the parameters at :math:`w_t`. One gradient per step. A parameter that the
    closure leaves without a gradient is put back exactly where it was, and its state (step count,
    sums) does not advance.
    """

    needs_closure = True

    def __init__(self, params, lr: float = 1e-2, l1: float = 0.0, l2: float = 0.0, group_l2: float = 0.0,
                 group_dim: int = 0, group_size: int = 1, penalty: TensorPenalty | float | None = None):
        super().__init__(params, dict(lr=lr, l1=l1, l2=l2, group_l2=group_l2, group_dim=group_dim,
                                      group_size=group_size), penalty)

    @torch.no_grad()
    def step(self, closure=None):
        if closure is None:
            raise NdgmError("AcceleratedRDA evaluates the gradient at its own extrapolated point: call "
                            "step(closure) with a closure that zeroes the gradients, computes the smooth loss and "
                            "calls backward()")
        before = {}
        for group in self.param_groups:  # move to u_t = (1 - theta_t) w_{t-1} + theta_t v_{t-1} before the gradient
            for p in group["params"]:
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["prox_centre"] = p.detach().clone()
                    state["weighted_grad_sum"] = torch.zeros_like(p)
                    state["dual"] = p.detach().clone()  # v_0 = w_0
                before[p] = p.detach().clone()
                t = state["step"] + 1
                p.lerp_(state["dual"], 2.0 / (t + 1))
        loss = self._evaluate(closure)
        for group in self.param_groups:
            lr, l1 = group["lr"], group["l1"]
            penalty = None if self._only_l1(group) else group_penalty(group)
            for p in group["params"]:
                if p.grad is None:  # not reached by the loss: it does not move
                    p.copy_(before[p])
                    continue
                state = self.state[p]
                state["step"] += 1
                t = state["step"]
                grad = p.grad
                a_t, A_t = lr * t / 2, lr * t * (t + 1) / 4
                state["weighted_grad_sum"].add_(grad, alpha=a_t)
                if penalty is None:
                    state["dual"] = soft_threshold(state["prox_centre"] - state["weighted_grad_sum"], A_t * l1)
                    p.copy_(soft_threshold(p - lr * grad, lr * l1))
                else:
                    state["dual"] = penalty.prox(state["prox_centre"] - state["weighted_grad_sum"], A_t)
                    p.copy_(penalty.prox(p - lr * grad, lr))
        return loss


class LamScheduler:
    r"""Change the penalty weights of an optimizer's groups over steps, as an lr scheduler changes ``lr``.

    Each group's weights (``l1``, ``l2``, ``group_l2``) are set to their initial values times
    ``lam_lambda(k)`` at the ``k``-th call of `step` (``k = 0`` at construction), exactly as
    ``torch.optim.lr_scheduler.LambdaLR`` does for ``lr``; the initial values are kept in each group
    as ``initial_lam`` (a dict), so the optimizer's state dict carries them.

    Parameters
    ----------
    optimizer : a proximal optimizer of this module (groups with ``l1`` / ``l2`` / ``group_l2``)
    lam_lambda : callable or list of callables
        ``k -> factor >= 0``, one for all groups or one per group. `linear_warmup` ramps from 0.
    last_epoch : int
        The index of the last step (-1: start fresh), as torch's schedulers.

    Examples
    --------
    >>> sched = LamScheduler(opt, LamScheduler.linear_warmup(1000))  # lam from 0 to its value in 1000 steps
    >>> for batch in data: loss(batch).backward(); opt.step(); opt.zero_grad(); sched.step()
    """

    def __init__(self, optimizer: Optimizer, lam_lambda: Callable[[int], float] | list, last_epoch: int = -1):
        groups = optimizer.param_groups
        if not all(all(k in g for k in PENALTY_KEYS) for g in groups):
            raise NdgmError("LamScheduler needs an optimizer whose groups carry l1, l2 and group_l2 "
                            "(ProxSGD, ProxAdam, RDA, AcceleratedRDA)")
        fns = list(lam_lambda) if isinstance(lam_lambda, (list, tuple)) else [lam_lambda] * len(groups)
        if len(fns) != len(groups) or not all(callable(f) for f in fns):
            raise NdgmError(f"lam_lambda must be a callable or a list of {len(groups)} callables")
        self.optimizer, self.lam_lambdas = optimizer, fns
        for g in groups:
            if last_epoch == -1 or "initial_lam" not in g:
                g["initial_lam"] = {k: g[k] for k in PENALTY_KEYS}
        self.last_epoch = last_epoch
        self.step()

    def step(self) -> None:
        """Advance one step and set every group's weights to ``initial * lam_lambda(step)``."""
        self.last_epoch += 1
        for g, f in zip(self.optimizer.param_groups, self.lam_lambdas):
            factor = float(f(self.last_epoch))
            if not (math.isfinite(factor) and factor >= 0):
                raise NdgmError(f"lam_lambda({self.last_epoch}) must be a finite number >= 0, got {factor!r}")
            for k in PENALTY_KEYS:
                g[k] = g["initial_lam"][k] * factor

    def get_last_lam(self) -> list[dict[str, float]]:
        """The weights set by the last `step`, one dict per group."""
        return [{k: g[k] for k in PENALTY_KEYS} for g in self.optimizer.param_groups]

    def state_dict(self) -> dict:
        """``{'last_epoch': k}`` (the functions are code, as in ``LambdaLR``, and are not saved)."""
        return {"last_epoch": self.last_epoch}

    def load_state_dict(self, state: dict) -> None:
        self.last_epoch = int(state["last_epoch"])

    @staticmethod
    def linear_warmup(steps: int) -> Callable[[int], float]:
        """``k -> min(1, k / steps)``: the weights rise linearly from 0 over ``steps`` steps."""
        steps = check_int("steps", steps)
        return lambda k: min(1.0, k / steps)


NORM_LAYERS = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm, nn.LocalResponseNorm)
if hasattr(nn, "RMSNorm"):
    NORM_LAYERS = NORM_LAYERS + (nn.RMSNorm,)


def penalised_groups(model: nn.Module, penalty: TensorPenalty | float, *, bias: bool = False,
                     norm: bool = False, **options) -> list[dict]:
    """Two parameter groups: the weights with ``penalty``, and the rest (biases, normalisation layers) without.

    Parameters
    ----------
    model : nn.Module
    penalty : TensorPenalty or float
        The penalised group's penalty (a number: an L1 weight), e.g. ``GroupL2Penalty(1e-3)`` for
        output channels and neurons.
    bias, norm : bool
        Penalise biases / the parameters of normalisation layers (BatchNorm, LayerNorm, GroupNorm,
        RMSNorm) too (default: no, the usual practice: they are few and the scale of the network
        depends on them).
    **options
        Other options for both groups (``weight_decay=...``).

    Returns
    -------
    list of dict
        ``[{"params": penalised, "penalty": penalty, **options}, {"params": rest, "penalty": None, **options}]``
        (an empty group is left out); each parameter once, in ``model.parameters()`` order.
    """
    _penalty_options(penalty)  # validate now
    exempt: set[int] = set()
    for module in model.modules():
        for name, p in module.named_parameters(recurse=False):
            if (not norm and isinstance(module, NORM_LAYERS)) or (not bias and name == "bias"):
                exempt.add(id(p))
    seen, on, off = set(), [], []
    for p in model.parameters():
        if id(p) in seen or not p.requires_grad:
            continue
        seen.add(id(p))
        (off if id(p) in exempt else on).append(p)
    groups = [{"params": on, "penalty": penalty, **options}, {"params": off, "penalty": None, **options}]
    return [g for g in groups if g["params"]]


def fit_grouped(cls, X: torch.Tensor, y: torch.Tensor, alphas, iterations: int,
                **optimizer_kwargs) -> tuple[np.ndarray, Optimizer]:
    r"""Fit one LASSO weight vector per ``alpha`` with ONE optimizer whose groups carry ``l1 = alpha``.

    Objective per group: ``LeastSquares(X, y, scaling='mean')`` plus :math:`\alpha \|w\|_1`,
    :math:`\frac{1}{2n}\|X w - y\|^2 + \alpha \|w\|_1` (scikit-learn's scaling), from ``w = 0``.
    The smooth parts are separable, so each group sees only its own gradient. An optimizer that
    `needs_closure` (`AcceleratedRDA`) is stepped with a closure (it takes the gradient at its own
    extrapolated point). After the last step the gradients are refreshed at the returned weights,
    so ``opt.certificate()`` certifies them.

    Parameters
    ----------
    cls : type
        `ProxSGD`, `ProxAdam`, `RDA` or `AcceleratedRDA`.
    X : (n, d) array or tensor; y : (n,)
        The weights are made in ``X``'s dtype.
    alphas : sequence of float
        One penalty per group.
    iterations : int
        Optimizer steps.
    **optimizer_kwargs
        Passed to ``cls`` (``lr``, ...).

    Returns
    -------
    coefs : ndarray (len(alphas), d)
        float64 copies of the weights.
    opt : the optimizer
        Group ``k`` holds weight ``k`` as ``opt.param_groups[k]["params"][0]``, in ``X``'s dtype.
    """
    X, y = torch.as_tensor(X), torch.as_tensor(y)
    datafit = LeastSquares(X, y, scaling="mean")
    ws = [torch.zeros(datafit.dim, dtype=X.dtype, requires_grad=True) for _ in alphas]
    opt = cls([{"params": [w], "l1": float(a)} for w, a in zip(ws, alphas)], **optimizer_kwargs)

    def closure():
        opt.zero_grad()
        loss = sum(datafit.value(w) for w in ws)
        loss.backward()
        return loss

    for _ in range(iterations):
        if opt.needs_closure:
            opt.step(closure)
        else:
            closure()
            opt.step()
    closure()
    return np.stack([w.detach().cpu().double().numpy() for w in ws]), opt
