"""Methods that produce exact zeros on L1-penalised problems, and estimators to compare them.

`ProxSGD`, `ProxAdam`, `RDA`, `AcceleratedRDA` (``torch.optim`` optimizers with an ``l1`` group
option), `ista` / `fista` (full-batch, on a datafit + penalty, batched over penalties; `solve_lasso`
from arrays), `working_set_solver` (the fast exact solver: screening, working sets, duality gap),
`Design` (a dense or sparse design matrix as an operator, optionally centred), `l1_path` (a path in
``lasso_path``'s conventions, any method) and the scikit-learn estimators `L1Regression` and
`L1RegressionCV`. Their method names live in `ndgm.registry`.
"""

from ..problems import soft_threshold
from .design import Design
from .estimator import L1Regression, L1RegressionCV
from .optim import RDA, AcceleratedRDA, ProxAdam, ProxSGD, fit_grouped
from .path import fit_path, l1_path
from .solvers import SolverResult, fista, ista, solve_lasso
from .working_set import working_set_solver

__all__ = ["L1Regression", "L1RegressionCV", "l1_path", "fit_path", "ProxSGD", "ProxAdam", "RDA", "AcceleratedRDA",
           "fit_grouped", "soft_threshold", "SolverResult", "ista", "fista", "solve_lasso", "working_set_solver",
           "Design"]
