"""Every loss the papers study, batched over a leading configuration axis.

* `base`: the `Problem` contract (``W (K, d) -> values (K,)``, gradients ``(K, d)``) and
  `autograd_value_and_grad`, the reference every closed form is tested against;
* `datafits`: `LeastSquares` (``scaling`` sum / half / mean), `LeastAbsoluteDeviations`,
  `HuberRegression`, `ReLULeastSquares`;
* `penalties`: `L1Penalty`, `L1L2Penalty` (value, grad, prox, subdiff_distance, alpha_max)
  and `soft_threshold`; on one parameter tensor: `L1NormPenalty`, `GroupL2Penalty`,
  `ElasticNetPenalty`, `SparseGroupPenalty` (value, prox, subdiff_distance, zeroing_lam, alpha_max);
* `composite`: datafit + penalty: `Composite`, `Lasso`, `ToyLasso`, `ReLURegression`;
* `toys`: `Quadratic`, `Quartic1D`, `TwoPointReLU`.
"""

from .base import Problem, autograd_value_and_grad, lambda_max
from .composite import Composite, Lasso, ReLURegression, ToyLasso
from .datafits import SCALINGS, Datafit, HuberRegression, LeastAbsoluteDeviations, LeastSquares, ReLULeastSquares
from .penalties import (ElasticNetPenalty, GroupL2Penalty, L1L2Penalty, L1NormPenalty, L1Penalty, SparseGroupPenalty,
                        TensorPenalty, group_shrink, soft_threshold)
from .toys import PAPER_SCALE, TOY_X, Quadratic, Quartic1D, TwoPointReLU

__all__ = [
    "Problem",
    "autograd_value_and_grad",
    "lambda_max",
    "Datafit",
    "LeastSquares",
    "SCALINGS",
    "LeastAbsoluteDeviations",
    "HuberRegression",
    "ReLULeastSquares",
    "L1Penalty",
    "L1L2Penalty",
    "soft_threshold",
    "TensorPenalty",
    "L1NormPenalty",
    "GroupL2Penalty",
    "ElasticNetPenalty",
    "SparseGroupPenalty",
    "group_shrink",
    "Composite",
    "Lasso",
    "ToyLasso",
    "ReLURegression",
    "Quadratic",
    "Quartic1D",
    "TwoPointReLU",
    "TOY_X",
    "PAPER_SCALE",
]
