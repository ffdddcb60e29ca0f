"""Methods that produce exact zeros on L1-penalised problems, and an estimator to compare them.

`ProxSGD`, `ProxAdam`, `RDA` (``torch.optim`` optimizers with an ``l1`` group option),
`ista` / `fista` (full-batch, batched over penalties) and `L1Regression` (scikit-learn style).
"""

from ..problems import soft_threshold
from .estimator import METHODS, L1Regression
from .optim import RDA, ProxAdam, ProxSGD
from .solvers import LassoObjective, SolverResult, fista, ista, lasso_objective

__all__ = ["L1Regression", "METHODS", "ProxSGD", "ProxAdam", "RDA", "soft_threshold", "LassoObjective",
           "SolverResult", "ista", "fista", "lasso_objective"]
