"""Experiments: one module per paper figure or claim, each exposing ``EXPERIMENT``."""

from __future__ import annotations

from ..errors import NdgmError
from .base import Claim, Experiment, Param, Result
from .capture import EXPERIMENT as _capture
from .activations import EXPERIMENT as _activations
from .l1_deep import EXPERIMENT as _l1_deep
from .gdmap_1d import EXPERIMENT as _gdmap_1d
from .stability_toy import EXPERIMENT as _stability_toy
from .bifurcation import EXPERIMENT as _bifurcation
from .sgd_montecarlo import EXPERIMENT as _sgd_montecarlo
from .lasso_toy import EXPERIMENTS as _lasso_toys
from .lasso_general import EXPERIMENTS as _lasso_general
from .eos_huber import EXPERIMENT as _eos_huber
from .rates import EXPERIMENT as _rates
from .sharpness import EXPERIMENT as _sharpness

EXPERIMENTS: dict[str, Experiment] = {e.name: e for e in (_capture, _activations, _l1_deep, _gdmap_1d, _stability_toy, _bifurcation, _sgd_montecarlo, *_lasso_toys, *_lasso_general, _eos_huber, _rates, _sharpness)}


def get_experiment(name: str) -> Experiment:
    """Look an experiment up by name; an unknown name is an `NdgmError` listing the known ones."""
    try:
        return EXPERIMENTS[name]
    except KeyError:
        raise NdgmError(f"unknown experiment {name!r}; choose one of {', '.join(EXPERIMENTS)}") from None


__all__ = ["EXPERIMENTS", "get_experiment", "Experiment", "Param", "Claim", "Result"]
