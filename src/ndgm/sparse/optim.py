r"""Optimizers that treat the L1 kink correctly: ``torch.optim.Optimizer`` subclasses.

The model's loss (what ``backward`` differentiates) is the *smooth* part only; the L1
weight is a parameter-group option ``l1`` and enters through a proximal step, never
through ``sgn(w)``. That is what makes exact zeros possible:

* `ProxSGD`: :math:`w \leftarrow S_{\eta l_1}(w - \eta g)`, soft thresholding
  :math:`S_\tau(v) = \mathrm{sgn}(v)\max(|v| - \tau, 0)`.
* `ProxAdam`: Adam's step, then soft thresholding with a per-coordinate threshold
  :math:`\eta l_1 / D_j` where :math:`D = \sqrt{\hat v} + \epsilon` is Adam's denominator
  (the prox of :math:`l_1\|w\|_1` in the metric Adam's step uses).
* `RDA`: l1-regularised dual averaging (Xiao 2009, eq. 10 with :math:`\beta_t = \gamma\sqrt t`):
  :math:`w_{t+1,j} = 0` if :math:`|\bar g_{t,j}| \le l_1`, else
  :math:`-\tfrac{\sqrt t}{\gamma}(\bar g_{t,j} - l_1\,\mathrm{sgn}(\bar g_{t,j}))`, with
  :math:`\bar g_t` the running average of all gradients. ``lr`` plays the role of ``1/gamma``.
* `AcceleratedRDA`: accelerated regularised dual averaging for a smooth loss
  with known Lipschitz constant :math:`L` (Xiao 2010, JMLR, section 6, Algorithm 3 with
  :math:`\beta_t = 0`; Tseng 2008's accelerated dual averaging), ``lr`` plays :math:`1/L`, rate
  :math:`O(L/t^2)`. It evaluates the gradient at its own extrapolated point, so ``step`` needs a
  closure (``needs_closure``); the parameters always hold the proximal-gradient iterate, which
  has exact zeros.

Every optimizer has `certificate()`: :math:`\max_j \mathrm{dist}(-g_j, l_1\,\partial|w_j|)`
over all parameters, computed from the gradients currently in ``p.grad`` -- call it after a
fresh ``backward`` at the current weights; it is zero exactly at a minimiser.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch.optim import Optimizer

from ..errors import NdgmError, check_nonnegative, check_positive
from ..problems import L1Penalty, LeastSquares, soft_threshold

__all__ = ["ProxSGD", "ProxAdam", "RDA", "AcceleratedRDA", "fit_grouped"]


class _L1Optimizer(Optimizer):
    """Shared parts: ``lr`` and ``l1`` checked once, torch's closure convention, the certificate.

    ``needs_closure``: whether ``step`` must be given a closure (it evaluates the gradient itself).
    """

    needs_closure = False

    def __init__(self, params, lr: float, l1: float, **defaults):
        super().__init__(params, dict(lr=check_positive("lr", lr), l1=check_nonnegative("l1", l1), **defaults))

    @staticmethod
    def _evaluate(closure):
        """The loss from ``closure`` (with gradients enabled), or None: torch's step convention."""
        if closure is None:
            return None
        with torch.enable_grad():
            return closure()

    def certificate(self) -> float:
        """``max_j dist(-p.grad_j, l1 * d|p_j|)`` over every parameter with a gradient."""
        worst = 0.0
        for group in self.param_groups:
            penalty = L1Penalty(group["l1"])
            for p in group["params"]:
                if p.grad is None or not p.numel():  # an empty parameter has no coordinate to certify
                    continue
                # one row: subdiff_distance reduces over the last axis, a parameter may have any shape
                d = penalty.subdiff_distance(p.detach().reshape(1, -1), p.grad.detach().reshape(1, -1))
                worst = max(worst, float(d[0]))
        return worst


class ProxSGD(_L1Optimizer):
    r"""Proximal (stochastic) gradient: :math:`w \leftarrow S_{\eta l_1}(w - \eta\nabla g(w))`.

    Parameters
    ----------
    params : iterable of tensors or parameter groups
    lr : float
        Step size :math:`\eta > 0` (full batch: ``<= 1/L`` for convergence).
    l1 : float
        L1 weight :math:`l_1 \ge 0` (may differ per parameter group).
    """

    def __init__(self, params, lr: float = 1e-2, l1: float = 0.0):
        super().__init__(params, lr, l1)

    @torch.no_grad()
    def step(self, closure=None):
        loss = self._evaluate(closure)
        for group in self.param_groups:
            lr, l1 = group["lr"], group["l1"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                p.add_(p.grad, alpha=-lr)
                if l1 > 0:
                    p.copy_(soft_threshold(p, lr * l1))
        return loss


class ProxAdam(_L1Optimizer):
    r"""Adam on the smooth part followed by a per-coordinate soft threshold.

    With torch's Adam quantities :math:`\hat m = m_t / (1 - \beta_1^t)` and
    :math:`D = \sqrt{v_t / (1 - \beta_2^t)} + \epsilon`:
    :math:`w \leftarrow S_{\eta l_1 / D}(w - \eta \hat m / D)`, the proximal step of
    :math:`l_1\|w\|_1` in the diagonal metric :math:`D/\eta`.
    """

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 l1: float = 0.0):
        b1, b2 = betas
        if not (0 <= b1 < 1 and 0 <= b2 < 1):
            raise NdgmError(f"betas must lie in [0, 1), got {betas!r}")
        super().__init__(params, lr, l1, betas=(float(b1), float(b2)), eps=check_nonnegative("eps", eps))

    @torch.no_grad()
    def step(self, closure=None):
        loss = self._evaluate(closure)
        for group in self.param_groups:
            lr, l1, eps = group["lr"], group["l1"], group["eps"]
            b1, b2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = torch.zeros_like(p)
                state["step"] += 1
                t = float(state["step"])  # torch reads its step counter as a Python float
                m, v = state["exp_avg"], state["exp_avg_sq"]
                # The same kernels in the same order as torch.optim.Adam's single-tensor path, so
                # that with l1 = 0 the step is bit-identical to Adam's (the tests check this).
                m.lerp_(p.grad, 1 - b1)
                v.mul_(b2).addcmul_(p.grad, p.grad, value=1 - b2)
                denom = (v.sqrt() / (1 - b2**t) ** 0.5).add_(eps)
                p.addcdiv_(m, denom, value=-(lr / (1 - b1**t)))
                if l1 > 0:
                    p.copy_(soft_threshold(p, (lr * l1) / denom))
        return loss


class RDA(_L1Optimizer):
    r"""l1-regularised dual averaging (Xiao 2009, eq. 10 with :math:`\beta_t = \gamma\sqrt t`, ``lr = 1/gamma``).

    :math:`\bar g_t = \frac1t\sum_{s\le t} g_s`,
    :math:`w_{t+1} = -\,\mathrm{lr}\,\sqrt{t}\; S_{l_1}(\bar g_t)`: every coordinate whose
    average gradient lies inside :math:`[-l_1, l_1]` is exactly 0. The prox-centre is 0
    (Xiao's :math:`w_1 = 0`), so the parameters' starting values are ignored after the
    first step. Its guarantee is :math:`O(1/\sqrt t)` in the objective: it identifies the
    support early but is slow to reach high precision (`AcceleratedRDA` is the fast variant).
    """

    def __init__(self, params, lr: float = 1e-2, l1: float = 0.0):
        super().__init__(params, lr, l1)

    @torch.no_grad()
    def step(self, closure=None):
        loss = self._evaluate(closure)
        for group in self.param_groups:
            lr, l1 = group["lr"], group["l1"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["grad_sum"] = torch.zeros_like(p)
                state["step"] += 1
                t = state["step"]
                state["grad_sum"].add_(p.grad)
                gbar = state["grad_sum"] / t
                p.copy_(soft_threshold(gbar, l1) * (-lr * math.sqrt(t)))
        return loss


class AcceleratedRDA(_L1Optimizer):
    r"""Accelerated regularised dual averaging (Xiao 2010 JMLR section 6, AC-RDA with :math:`\beta_t = 0`).

    For a smooth loss whose gradient is :math:`L`-Lipschitz, ``lr = 1/L``; rate :math:`O(L/t^2)`.
    With weights :math:`a_t = \mathrm{lr}\,t/2`, :math:`A_t = \sum_{s\le t} a_s = \mathrm{lr}\,t(t+1)/4`,
    :math:`\theta_t = a_t/A_t = 2/(t+1)` and prox-centre :math:`w_0` (the parameters' starting values),

    .. math::

        u_t &= (1-\theta_t)\,w_{t-1} + \theta_t\,v_{t-1}, \qquad g_t = \nabla f(u_t),\\
        v_t &= \arg\min_w \Big\{\sum_{s\le t} a_s\big(\langle g_s, w\rangle + l_1\|w\|_1\big)
               + \tfrac12\|w - w_0\|^2\Big\} = S_{A_t l_1}\Big(w_0 - \sum_{s\le t} a_s g_s\Big),\\
        w_t &= S_{\mathrm{lr}\,l_1}\big(u_t - \mathrm{lr}\,g_t\big).

    :math:`u, v` are Xiao's. His primal update :math:`w_t = (1-\theta_t)w_{t-1} + \theta_t v_t` is a
    convex combination of every past :math:`v_s`, so a coordinate that was ever nonzero stays
    nonzero (weight :math:`\propto 1/t^2`, never exactly 0); the sparse :math:`v_t` has no rate of
    its own. We take instead the proximal-gradient step from :math:`u_t` (Tseng 2008's variant):
    it minimises the quadratic upper model of :math:`F` at :math:`u_t` that Xiao's proof bounds
    at his convex combination, so the same bound holds,
    :math:`F(w_t) - F^\star \le \|w^\star - w_0\|^2 / (2A_t) = 2\|w^\star - w_0\|^2 / (\mathrm{lr}\,t(t+1))`
    for ``lr <= 1/L``, and :math:`w_t` is a soft threshold, with exact zeros. Since
    :math:`u_t \to w^\star` (:math:`v_t` stays bounded, :math:`\theta_t \to 0`), every coordinate with
    :math:`|\nabla_j f(w^\star)| < l_1` is exactly 0 after finitely many steps.

    The gradient is needed at :math:`u_t`, not at the parameters, so ``step(closure)`` is
    required: it moves the parameters to :math:`u_t`, calls ``closure()`` (which must zero the
    gradients, compute the smooth loss and call ``backward``; its loss, at :math:`u_t`, is
    returned), and leaves the parameters at :math:`w_t`. One gradient per step.
    """

    needs_closure = True

    def __init__(self, params, lr: float = 1e-2, l1: float = 0.0):
        super().__init__(params, lr, l1)

    @torch.no_grad()
    def step(self, closure=None):
        if closure is None:
            raise NdgmError("AcceleratedRDA evaluates the gradient at its own extrapolated point: call "
                            "step(closure) with a closure that zeroes the gradients, computes the smooth loss and "
                            "calls backward()")
        for group in self.param_groups:  # move to u_t = (1 - theta_t) w_{t-1} + theta_t v_{t-1} before the gradient
            for p in group["params"]:
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["prox_centre"] = p.detach().clone()
                    state["weighted_grad_sum"] = torch.zeros_like(p)
                    state["dual"] = p.detach().clone()  # v_0 = w_0
                t = state["step"] + 1
                p.lerp_(state["dual"], 2.0 / (t + 1))
        loss = self._evaluate(closure)
        for group in self.param_groups:
            lr, l1 = group["lr"], group["l1"]
            for p in group["params"]:
                state = self.state[p]
                state["step"] += 1
                t = state["step"]
                # a parameter the loss does not reach has gradient 0 (it was moved to u_t already)
                grad = p.grad if p.grad is not None else torch.zeros_like(p)
                a_t, A_t = lr * t / 2, lr * t * (t + 1) / 4
                state["weighted_grad_sum"].add_(grad, alpha=a_t)
                state["dual"] = soft_threshold(state["prox_centre"] - state["weighted_grad_sum"], A_t * l1)
                p.copy_(soft_threshold(p - lr * grad, lr * l1))
        return loss


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
