"""Step-size schedules, batched: each maps the current state to the ``(K,)`` step sizes.

A schedule is called once per iteration, after the loss at the current iterate is
known and before the step, as in the paper's capture protocol.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ..errors import NdgmError, check_int, check_positive

__all__ = ["Schedule", "Constant", "StepDecay", "InvSqrt", "DecayOnIncrease", "make_schedule"]


class Schedule:
    """``__call__(t, lr, lr0, loss, prev_loss) -> lr`` for iteration ``t`` (0-based)."""

    name = "schedule"

    def __call__(self, t: int, lr: Tensor, lr0: Tensor, loss: Tensor, prev_loss: Tensor) -> Tensor:
        raise NotImplementedError


@dataclass
class Constant(Schedule):
    r""":math:`\eta_k = \eta_0`."""

    name = "constant"

    def __call__(self, t, lr, lr0, loss, prev_loss):
        return lr


@dataclass
class StepDecay(Schedule):
    r""":math:`\eta_k = \eta_0 \gamma^{\lfloor k / s \rfloor}` (``torch.optim.lr_scheduler.StepLR``)."""

    step_size: int = 1000
    gamma: float = 0.1
    name = "step"

    def __call__(self, t, lr, lr0, loss, prev_loss):
        return lr0 * self.gamma ** (t // self.step_size)


@dataclass
class InvSqrt(Schedule):
    r""":math:`\eta_k = \eta_0 / \sqrt{k + 1}` (the diminishing subgradient schedule)."""

    name = "invsqrt"

    def __call__(self, t, lr, lr0, loss, prev_loss):
        return lr0 / math.sqrt(t + 1)


@dataclass
class DecayOnIncrease(Schedule):
    r""":math:`\eta_k = \rho\,\eta_{k-1}` if :math:`f(w_k) > f(w_{k-1})`, else :math:`\eta_{k-1}`.

    The capture protocol (paper appendix A.1) with ``rho = 0.9``; it makes the loss
    sequence monotone in the limit without making the iterates converge.
    """

    factor: float = 0.9
    name = "decay-on-increase"

    def __call__(self, t, lr, lr0, loss, prev_loss):
        return torch.where(loss > prev_loss, lr * self.factor, lr)


def make_schedule(name: str, **params) -> Schedule:
    """Build a schedule by name: ``constant``, ``step``, ``invsqrt``, ``decay-on-increase``."""
    name = name.lower()
    if name == "constant":
        return Constant()
    if name == "step":
        return StepDecay(check_int("step_size", params.get("step_size", 1000)), check_positive("gamma", params.get("gamma", 0.1)))
    if name == "invsqrt":
        return InvSqrt()
    if name in ("decay-on-increase", "capture"):
        return DecayOnIncrease(check_positive("factor", params.get("factor", 0.9)))
    raise NdgmError(f"unknown schedule {name!r}; choose constant, step, invsqrt or decay-on-increase")
