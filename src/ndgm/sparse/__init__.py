"""Methods that produce exact zeros, a model that shrinks with them, and estimators to compare them.

`ProxSGD`, `ProxAdam`, `ProxAdamW`, `RDA`, `AcceleratedRDA` (``torch.optim`` optimizers whose groups
carry a penalty: ``l1``, ``l2``, ``group_l2`` or ``penalty=`` one of `L1NormPenalty`, `GroupL2Penalty`,
`ElasticNetPenalty`, `SparseGroupPenalty`), `penalised_groups` (biases and norm layers left out),
`LamScheduler`; `compact` (dead channels and neurons removed, same outputs) and
`measure_compaction`; `ista` / `fista` (full-batch, on a datafit + penalty, batched over penalties;
`solve_lasso` from arrays), `working_set_solver` (the fast exact solver: screening, working sets,
duality gap), `Design` (a dense or sparse design matrix as an operator, optionally centred),
`l1_path` (a path in ``lasso_path``'s conventions, any method) and the scikit-learn estimators
`L1Regression` and `L1RegressionCV`. Their method names live in `ndgm.registry`.
"""

from ..problems import ElasticNetPenalty, GroupL2Penalty, L1NormPenalty, SparseGroupPenalty, soft_threshold
from .compact import CompactionReport, compact, measure_compaction
from .design import Design
from .estimator import L1Regression, L1RegressionCV
from .optim import (RDA, AcceleratedRDA, LamScheduler, ProxAdam, ProxAdamW, ProxSGD, fit_grouped, group_penalty,
                    penalised_groups)
from .path import fit_path, l1_path
from .solvers import SolverResult, fista, ista, solve_lasso
from .working_set import working_set_solver

__all__ = ["L1Regression", "L1RegressionCV", "l1_path", "fit_path", "ProxSGD", "ProxAdam", "ProxAdamW", "RDA",
           "AcceleratedRDA", "LamScheduler", "penalised_groups", "group_penalty", "fit_grouped", "soft_threshold",
           "SolverResult", "ista", "fista", "solve_lasso", "working_set_solver", "Design", "compact",
           "measure_compaction", "CompactionReport", "L1NormPenalty", "GroupL2Penalty", "ElasticNetPenalty",
           "SparseGroupPenalty"]
