"""Methods that produce exact zeros, a model that shrinks with them, and an estimator to compare them.

`ProxSGD`, `ProxAdam`, `ProxAdamW`, `RDA`, `AcceleratedRDA` (``torch.optim`` optimizers whose groups
carry a penalty: ``l1``, ``l2``, ``group_l2`` or ``penalty=`` one of `L1NormPenalty`, `GroupL2Penalty`,
`ElasticNetPenalty`, `SparseGroupPenalty`), `penalised_groups` (biases and norm layers left out),
`LamScheduler`; `compact` (dead channels and neurons removed, same outputs) and
`measure_compaction`; `ista` / `fista` (full-batch, on a datafit + penalty, batched over penalties;
`solve_lasso` from arrays) and `L1Regression` (scikit-learn style). Their names live in
`ndgm.registry`.
"""

from ..problems import ElasticNetPenalty, GroupL2Penalty, L1NormPenalty, SparseGroupPenalty, soft_threshold
from .compact import CompactionReport, compact, measure_compaction
from .estimator import L1Regression
from .optim import (RDA, AcceleratedRDA, LamScheduler, ProxAdam, ProxAdamW, ProxSGD, fit_grouped, group_penalty,
                    penalised_groups)
from .solvers import SolverResult, fista, ista, solve_lasso

__all__ = ["L1Regression", "ProxSGD", "ProxAdam", "ProxAdamW", "RDA", "AcceleratedRDA", "LamScheduler",
           "penalised_groups", "group_penalty", "fit_grouped", "soft_threshold",
           "SolverResult", "ista", "fista", "solve_lasso", "compact", "measure_compaction", "CompactionReport",
           "L1NormPenalty", "GroupL2Penalty", "ElasticNetPenalty", "SparseGroupPenalty"]
