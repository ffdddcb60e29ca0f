"""Methods that produce exact zeros on L1-penalised problems, and an estimator to compare them.

`ProxSGD`, `ProxAdam`, `RDA`, `AcceleratedRDA` (``torch.optim`` optimizers with an ``l1`` group
option), `ista` / `fista` (full-batch, on a datafit + penalty, batched over penalties; `solve_lasso`
from arrays) and `L1Regression` (scikit-learn style). Their names live in `ndgm.registry`.
"""

from ..problems import soft_threshold
from .estimator import L1Regression
from .optim import (RDA, AcceleratedRDA, LamScheduler, ProxAdam, ProxAdamW, ProxSGD, fit_grouped, group_penalty,
                    penalised_groups)
from .solvers import SolverResult, fista, ista, solve_lasso

__all__ = ["L1Regression", "ProxSGD", "ProxAdam", "ProxAdamW", "RDA", "AcceleratedRDA", "LamScheduler",
           "penalised_groups", "group_penalty", "fit_grouped", "soft_threshold",
           "SolverResult", "ista", "fista", "solve_lasso"]
