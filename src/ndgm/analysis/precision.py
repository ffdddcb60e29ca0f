r"""A loss below the resolution of float64: evaluate it beyond float64.

The capture experiment (paper Fig. 1) ends with a float64 loss that is constant to the bit,
``4461.786221675728``, while the iterates keep moving. One float64 step (ulp) at 4461.79 is
``2^-40 = 9.09e-13``; whether the *exact* loss of those iterates is constant, or only its
float64 rounding, is a question float64 cannot answer by computing ``L(w)`` directly.

For the single-layer ReLU regression of the capture protocol,

.. math::

    L(w) = \sum_i (\mathrm{relu}(x_i \cdot w) - y_i)^2 + \lambda_1 \|w\|_1 + \lambda_2 \|w\|_2^2
         = \|y\|^2 + D(w),\qquad
    D(w) = \sum_i (r_i^2 - 2 y_i r_i) + \lambda_1 \|w\|_1 + \lambda_2 \|w\|_2^2,\ r_i = \mathrm{relu}(x_i \cdot w),

an identity of exact arithmetic. Near ``w = 0`` the excess ``D`` is tiny (about 1e-12 in the
capture tail), so computing it directly in float64 has an absolute error near float64's
relative precision times ``D`` -- about 1e-27 -- instead of an ulp of ``L``. `relu_loss_excess`
returns ``D`` with a rigorous bound on that error (the standard a-priori bounds of Higham,
*Accuracy and Stability of Numerical Algorithms*, ch. 3), and `exact_relu_loss_excess`
evaluates ``D`` exactly in rational arithmetic on the recorded float64 numbers (every
float is a dyadic rational, so the exact value is a `fractions.Fraction`).
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from ..errors import NdgmError

__all__ = ["ulp", "exact_sum_of_squares", "relu_loss_excess", "exact_relu_loss_excess"]

_U = 2.0 ** -53  # unit roundoff of float64


def _gamma(k: int) -> float:
    """Higham's ``gamma_k = k u / (1 - k u)``: the relative error bound of ``k`` roundings."""
    return k * _U / (1 - k * _U)


def ulp(x: float, dtype=np.float64) -> float:
    """The gap between ``|x|`` (in ``dtype``) and the next larger number of ``dtype``."""
    return float(np.spacing(np.abs(np.asarray(x, dtype=dtype))))


def _dyadic(a: np.ndarray) -> tuple[np.ndarray, int]:
    """``a`` (finite float64) as ``ints * 2**exponent`` exactly: an object array of Python ints."""
    a = np.asarray(a, dtype=np.float64)
    if not np.all(np.isfinite(a)):
        raise NdgmError("exact evaluation needs finite numbers")
    mant, exp = np.frexp(a)  # a = mant * 2**exp, 0.5 <= |mant| < 1 (or 0)
    ints = np.ldexp(mant, 53).astype(np.int64)  # exact: |mant * 2**53| < 2**53
    exp = exp.astype(np.int64) - 53
    nz = ints != 0
    low = int(exp[nz].min()) if nz.any() else 0
    shift = np.where(nz, exp - low, 0).astype(object)
    return ints.astype(object) << shift, low


def exact_sum_of_squares(y: np.ndarray) -> Fraction:
    r""":math:`\|y\|^2` exactly, for float64 ``y``."""
    ints, e = _dyadic(np.ravel(y))
    return Fraction(int(np.dot(ints, ints)), 1) * Fraction(2) ** (2 * e)


def relu_loss_excess(X: np.ndarray, y: np.ndarray, W: np.ndarray, l1: float = 0.0,
                     l2: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    r"""``D(w) = L(w) - ||y||^2`` in float64 for each row ``w`` of ``W``, and a bound on its error.

    .. math:: D(w) = \sum_i (r_i^2 - 2 y_i r_i) + \lambda_1 \|w\|_1 + \lambda_2 \|w\|_2^2,
              \quad r_i = \max(x_i \cdot w, 0)

    Parameters
    ----------
    X : ndarray (n, d)
    y : ndarray (n,) or (n, 1)
    W : ndarray (K, d) or (d,)
    l1, l2 : float

    Returns
    -------
    excess, bound : ndarray (K,)
        The float64 value of ``D`` and an upper bound on ``|computed - exact|`` (twice the
        a-priori bound: dot products within ``gamma_d max|x| ||w||_1``, the per-sample terms
        within ``gamma_3`` of their magnitudes plus the propagated dot-product error, the
        sum within ``gamma_n``, the penalties within ``gamma_{d+1}``).
    """
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    W = np.atleast_2d(np.asarray(W, dtype=np.float64))
    n, d = X.shape
    if y.size != n or W.shape[1] != d:
        raise NdgmError(f"shapes do not match: X {X.shape}, y {y.shape}, W {W.shape}")
    Z = W @ X.T  # (K, n)
    R = np.maximum(Z, 0.0)
    T = R * R - (2.0 * y) * R
    P = l1 * np.abs(W).sum(1) + l2 * (W * W).sum(1)
    excess = T.sum(1) + P
    # The bound, from magnitudes (its own rounding is covered by the factor 2).
    # |fl(z_i) - z_i| <= gamma_d sum_j |x_ij w_j| <= gamma_d max|x| ||w||_1 (cheaper than |W| @ |X|^T)
    dot_err = (_gamma(d) * np.abs(X).max() * np.abs(W).sum(1))[:, None]
    prop = dot_err * (2 * R + dot_err + 2 * np.abs(y))  # |t(r^) - t(r)| <= |r^ - r| |r^ + r - 2y|
    local = _gamma(3) * (R * R + 2 * np.abs(y) * R)
    absT = np.abs(T).sum(1)
    pen = _gamma(d + 1) * (l1 * np.abs(W).sum(1) + l2 * (W * W).sum(1))
    bound = 2 * ((prop + local).sum(1) + _gamma(n) * absT + pen + _U * np.abs(excess))
    return excess, bound


def exact_relu_loss_excess(X: np.ndarray, y: np.ndarray, W: np.ndarray, l1: float = 0.0,
                           l2: float = 0.0) -> list[Fraction]:
    r"""``D(w)`` of `relu_loss_excess` in exact rational arithmetic on the float64 inputs, for
    each row ``w`` of ``W`` (``(K, d)`` or ``(d,)``).

    Every float64 number is ``m 2^e`` with integer ``m``: the dot products ``x_i . w`` are
    computed as Python integers (no rounding), so the result is the exact value of ``D`` at
    the recorded ``w`` (``l1`` and ``l2`` are taken as the float64 numbers they are).
    About a second per row for ``n = 5000``, ``d = 500``.
    """
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    W = np.atleast_2d(np.asarray(W, dtype=np.float64))
    if y.size != X.shape[0] or W.shape[1] != X.shape[1]:
        raise NdgmError(f"shapes do not match: X {X.shape}, y {y.shape}, W {W.shape}")
    Xi, ex = _dyadic(X)
    yi, ey = _dyadic(y)
    two = Fraction(2)
    out = []
    for w in W:
        wi, ew = _dyadic(w)
        z = Xi @ wi  # exact: x_i . w = z_i 2^(ex + ew)
        ez = ex + ew
        pos = np.array([v > 0 for v in z], dtype=bool)
        zp, yp = z[pos], yi[pos]
        # sum_i r_i^2 - 2 y_i r_i over the samples with r_i > 0, each sum an exact integer
        sq = int(np.dot(zp, zp)) if zp.size else 0
        cross = int(np.dot(yp, zp)) if zp.size else 0
        total = Fraction(sq) * two ** (2 * ez) - 2 * Fraction(cross) * two ** (ey + ez)
        a1 = Fraction(int(sum(abs(v) for v in wi))) * two ** ew
        a2 = Fraction(int(np.dot(wi, wi))) * two ** (2 * ew)
        out.append(total + Fraction(l1) * a1 + Fraction(l2) * a2)
    return out
