"""Dynamics: update rules, step-size schedules and the batched trajectory engine."""

from .engine import Trajectory, run_trajectory
from .rules import GD, Adam, Momentum, RMSProp, UpdateRule, make_rule
from .schedules import Constant, DecayOnIncrease, InvSqrt, Schedule, StepDecay, make_schedule

__all__ = [
    "Trajectory",
    "run_trajectory",
    "UpdateRule",
    "GD",
    "Momentum",
    "RMSProp",
    "Adam",
    "make_rule",
    "Schedule",
    "Constant",
    "StepDecay",
    "InvSqrt",
    "DecayOnIncrease",
    "make_schedule",
]
