"""scikit-learn's bundled 8x8 digits (1797 images, 10 classes), flat and standardised.

Offline: ``sklearn.datasets.load_digits`` reads a file shipped with scikit-learn.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ..errors import NdgmError

__all__ = ["DigitsSplit", "load_digits_split"]


@dataclass
class DigitsSplit:
    """Train/validation tensors. ``y_*`` are class labels (long); ``Y_*`` one-hot (float)."""

    X_train: Tensor
    y_train: Tensor
    X_val: Tensor
    y_val: Tensor
    n_classes: int = 10

    @property
    def Y_train(self) -> Tensor:
        return torch.nn.functional.one_hot(self.y_train, self.n_classes).to(self.X_train.dtype)

    @property
    def Y_val(self) -> Tensor:
        return torch.nn.functional.one_hot(self.y_val, self.n_classes).to(self.X_val.dtype)


def load_digits_split(
    seed: int = 0,
    val_fraction: float = 0.2,
    n_train: int | None = None,
    dtype: torch.dtype = torch.float64,
    device: str | torch.device = "cpu",
) -> DigitsSplit:
    """Digits split into train/validation by a seeded permutation, features standardised.

    Standardisation uses the training mean and standard deviation,
    ``x' = (x - mean_train) / std_train``; pixels constant on the training set
    (``std = 0``) are only centred. ``n_train`` keeps the first ``n_train`` training rows.
    """
    from sklearn.datasets import load_digits

    if not 0 < val_fraction < 1:
        raise NdgmError(f"val_fraction must be in (0, 1), got {val_fraction!r}")
    X, y = load_digits(return_X_y=True)
    perm = np.random.RandomState(seed).permutation(len(y))
    n_val = int(round(val_fraction * len(y)))
    val, train = perm[:n_val], perm[n_val:]
    if n_train is not None:
        if not 1 <= n_train <= len(train):
            raise NdgmError(f"n_train must be in [1, {len(train)}], got {n_train!r}")
        train = train[:n_train]
    mean = X[train].mean(0)
    std = X[train].std(0)
    std[std == 0] = 1.0
    Z = (X - mean) / std
    as_x = lambda idx: torch.as_tensor(Z[idx], dtype=dtype, device=device)  # noqa: E731
    as_y = lambda idx: torch.as_tensor(y[idx], dtype=torch.long, device=device)  # noqa: E731
    return DigitsSplit(as_x(train), as_y(train), as_x(val), as_y(val))
