"""Loss values below float64 resolution: the excess D(w) = L(w) - ||y||^2 against exact rationals."""

from fractions import Fraction

import numpy as np
import pytest

from ndgm.analysis.precision import exact_relu_loss_excess, exact_sum_of_squares, relu_loss_excess, ulp
from ndgm.errors import NdgmError


def brute_force_excess(X, y, w, l1, l2) -> Fraction:
    """D(w) term by term in Fractions: sum_i (relu(z_i) - y_i)^2 - y_i^2 + penalties."""
    total = Fraction(0)
    for i in range(X.shape[0]):
        z = sum(Fraction(float(X[i, j])) * Fraction(float(w[j])) for j in range(X.shape[1]))
        r = max(z, Fraction(0))
        total += (r - Fraction(float(y[i]))) ** 2 - Fraction(float(y[i])) ** 2
    return (total + Fraction(l1) * sum(abs(Fraction(float(v))) for v in w)
            + Fraction(l2) * sum(Fraction(float(v)) ** 2 for v in w))


def test_ulp_of_the_printed_capture_loss_is_two_to_the_minus_40():
    assert ulp(4461.786221675728) == 2.0 ** -40 == pytest.approx(9.094947e-13, rel=1e-6)
    assert ulp(1.0) == np.finfo(np.float64).eps
    assert ulp(1.0, np.float32) == np.finfo(np.float32).eps


def test_exact_excess_equals_the_brute_force_rational_and_the_float_is_within_its_bound():
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, (25, 6))
    y = rng.uniform(-1, 1, 25)
    W = rng.normal(size=(3, 6)) * np.array([[1e-3], [1e-9], [1.0]])
    D, err = relu_loss_excess(X, y, W, l1=0.01, l2=0.02)
    exact = exact_relu_loss_excess(X, y, W, l1=0.01, l2=0.02)
    for k in range(3):
        truth = brute_force_excess(X, y, W[k], 0.01, 0.02)
        assert exact[k] == truth
        gap = abs(Fraction(float(D[k])) - truth)
        assert gap <= Fraction(float(err[k]))
        assert err[k] <= 1e-12 * max(abs(float(truth)), 1e-300) * 1e4  # the bound is not vacuous
    # and the identity L(w) = ||y||^2 + D(w) holds exactly
    assert exact_sum_of_squares(y) == sum(Fraction(float(v)) ** 2 for v in y)


def test_excess_resolves_a_variation_far_below_one_ulp_of_the_loss():
    # y near -1, w tiny: the float loss sum (relu - y)^2 cannot see w, the excess can.
    rng = np.random.default_rng(1)
    X = rng.uniform(-1, 1, (200, 10))
    y = -rng.uniform(0.9, 0.99, 200)
    w = rng.uniform(-1, 1, 10) * 1e-17
    loss = float(np.sum((np.maximum(X @ w, 0) - y) ** 2))
    D, err = relu_loss_excess(X, y, w)
    exact = exact_relu_loss_excess(X, y, w)[0]
    assert 0 < float(exact) < ulp(loss)  # invisible in the float loss
    assert abs(Fraction(float(D[0])) - exact) <= Fraction(float(err[0])) < abs(exact) * Fraction(1, 10 ** 9)


def test_shape_errors_are_ndgm_errors():
    with pytest.raises(NdgmError, match="shapes do not match"):
        relu_loss_excess(np.zeros((3, 2)), np.zeros(4), np.zeros(2))
    with pytest.raises(NdgmError, match="shapes do not match"):
        exact_relu_loss_excess(np.zeros((3, 2)), np.zeros(3), np.zeros(5))
    with pytest.raises(NdgmError, match="finite"):
        exact_relu_loss_excess(np.full((1, 1), np.inf), np.zeros(1), np.zeros(1))
