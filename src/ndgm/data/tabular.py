"""Tabular data that ships with scikit-learn (no download), standardised for the L1 studies."""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["standardise", "load_diabetes_standardised"]


def standardise(X: np.ndarray, y: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    r"""Centre and scale columns: :math:`(x - \bar x) / s` with the population std (``ddof=0``).

    Constant columns are centred but not scaled (their std is replaced by 1). ``y`` is
    treated the same way when given, so that a model without intercept is appropriate.
    """
    X = np.asarray(X, dtype=np.float64)
    sx = X.std(axis=0)
    sx = np.where(sx > 0, sx, 1.0)
    Xs = (X - X.mean(axis=0)) / sx
    if y is None:
        return Xs, None
    y = np.asarray(y, dtype=np.float64)
    sy = y.std() if y.std() > 0 else 1.0
    return Xs, (y - y.mean()) / sy


def load_diabetes_standardised(dtype: torch.dtype = torch.float64, device: str | torch.device = "cpu",
                               as_tensor: bool = True):
    """scikit-learn's diabetes data (n = 442, d = 10), ``X`` and ``y`` standardised.

    With this scaling, no intercept and the objective ``(1/2n)||y - Xw||^2 + alpha ||w||_1``,
    ``sklearn.linear_model.Lasso`` has 2, 4 and 7 exact zeros at ``alpha`` 0.01, 0.05, 0.2.
    Returns tensors ``(X (n, d), y (n,))`` (numpy arrays if ``as_tensor`` is False).
    """
    from sklearn.datasets import load_diabetes

    X, y = load_diabetes(return_X_y=True)
    Xs, ys = standardise(X, y)
    if not as_tensor:
        return Xs, ys
    return (torch.as_tensor(Xs, dtype=dtype, device=device), torch.as_tensor(ys, dtype=dtype, device=device))
