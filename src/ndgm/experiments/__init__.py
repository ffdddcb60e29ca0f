"""Experiments: one module per paper figure or claim; the registry below lists them in
the order ``ndgm list`` and ``ndgm reproduce`` use.

Adding an experiment is one module (an `Experiment` subclass declaring its params,
``compute``, ``claims`` and figures) and one line here; the contract suite
(``tests/test_experiment_contract.py``) then asks for its tiny case.
"""

from __future__ import annotations

from ..errors import NdgmError
from . import (activations, bifurcation, capture, eos_huber, gdmap_1d, l1_deep, lasso_general, lasso_toy, prune, rates,
               sgd_montecarlo, sharpness, stability_toy)
from . import nonsingularity
from . import lasso_adam, lasso_duality, prox_relu, wu_ma_e
from .base import Claim, Context, Experiment, Param, Result

REGISTRY: tuple[Experiment, ...] = (
    capture.EXPERIMENT,
    activations.EXPERIMENT,
    l1_deep.EXPERIMENT,
    gdmap_1d.EXPERIMENT,
    nonsingularity.EXPERIMENT,
    stability_toy.EXPERIMENT,
    bifurcation.EXPERIMENT,
    sgd_montecarlo.EXPERIMENT,
    wu_ma_e.EXPERIMENT,
    lasso_toy.TOY,
    lasso_toy.TWO_D,
    lasso_toy.VARIANTS,
    lasso_adam.EXPERIMENT,
    lasso_duality.EXPERIMENT,
    prox_relu.EXPERIMENT,
    lasso_general.GENERAL,
    lasso_general.REAL,
    eos_huber.EXPERIMENT,
    rates.EXPERIMENT,
    sharpness.EXPERIMENT,
    prune.EXPERIMENT,
)

EXPERIMENTS: dict[str, Experiment] = {e.name: e for e in REGISTRY}


def get_experiment(name: str) -> Experiment:
    """Look an experiment up by name; an unknown name is an `NdgmError` listing the known ones."""
    try:
        return EXPERIMENTS[name]
    except KeyError:
        raise NdgmError(f"unknown experiment {name!r}; choose one of {', '.join(EXPERIMENTS)}") from None


__all__ = ["EXPERIMENTS", "REGISTRY", "get_experiment", "Experiment", "Param", "Claim", "Context", "Result"]
