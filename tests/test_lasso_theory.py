"""Toy-LASSO closed forms against simulation, the sparsity audit and the period detector.

Two notions of "exact" are used, and each test says which:
* in rational arithmetic (`fractions.Fraction`) the closed form and the recursion agree
  exactly -- this checks the formula itself;
* the float64 engine subtracts ``fl(eta*lam)`` once per step, rounding each time, so it
  agrees with the closed form only to the accumulated rounding
  ``(steps + 2) * eps * max(|w0|, eta*lam)``;
  what is bitwise in float64 is the period-2 cycle the engine settles into, the integer
  case (dyadic inputs: no rounding at all) and the engine against the same float recursion.
"""

from fractions import Fraction

import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from ndgm.analysis.lasso_theory import (rmsprop_toy_step, subgradient_bound, subgradient_bound_limit, toy_iterate_exact,
                                        toy_limit, toy_limit_exact, toy_loss_bound, toy_loss_bound_rmsprop)
from ndgm.analysis.sparsity import THRESHOLDS, detect_period, sparsity_audit
from ndgm.dynamics import GD, RMSProp, run_trajectory
from ndgm.problems import ToyLasso

EPS = float(np.finfo(np.float64).eps)
w0s = st.floats(-1, 1, allow_nan=False).filter(lambda v: abs(v) > 1e-3)
etas = st.floats(1e-3, 0.2)
lams = st.floats(0.05, 20)


@settings(max_examples=60, deadline=None)
@given(w0=w0s, eta=etas, lam=lams)
def test_closed_form_equals_the_recursion_in_exact_arithmetic(w0, eta, lam):
    w0f, etaf, lamf = Fraction(w0), Fraction(eta), Fraction(lam)
    steps, first, second = toy_limit_exact(w0f, etaf, lamf)
    assume(steps < 3000)
    c = etaf * lamf
    assert 0 <= abs(first) < c and (first == 0 or (first > 0) == (w0 > 0))
    for extra in range(4):  # p+ on even offsets, p- on odd ones, forever
        assert toy_iterate_exact(w0f, etaf, lamf, steps + extra) == (first if extra % 2 == 0 else second)
    if first != 0:
        assert abs(first) + abs(second) == c  # the two states straddle 0 at distance c


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), eta=etas, lam=lams, d=st.integers(1, 12))
def test_engine_matches_closed_form_to_rounding_and_cycles_bitwise(seed, eta, lam, d):
    rs = np.random.RandomState(seed)
    w0 = rs.uniform(-1, 1, d)
    lim = toy_limit(w0, eta, lam)
    T = int(lim.steps.max()) + 12
    assume(T < 3000)
    # Away from the integer case by more than rounding, so floor(q) is the same in float and in R.
    q = np.abs(w0) / (eta * lam)
    assume(np.all(np.abs(q - np.round(q)) > 1e-9 * (q + 1)))
    traj = run_trajectory(ToyLasso(d, lam), torch.tensor(w0)[None], eta, T, GD(), record_weights_at=range(T - 8, T))
    tail = np.stack([traj.weights[k][0] for k in range(T - 8, T)])
    # Each subtraction rounds by at most half an ulp of its operands (|w0| or eta*lam, whichever is larger).
    allowance = (lim.steps.max() + 2) * EPS * max(np.abs(w0).max(), eta * lam)
    for j, k in enumerate(range(T - 8, T)):
        np.testing.assert_allclose(tail[j], lim.at(k), rtol=0, atol=allowance)
    # The float orbit is exactly periodic (bitwise) with period 2, and never exactly 0.
    assert detect_period(tail[2:], tol=0.0).period == 2
    assert np.all(tail != 0)
    # B.11: every coordinate within eta*lam of 0, so the loss is <= d eta lam^2.
    assert traj.loss[-8:, 0].max() <= toy_loss_bound(d, eta, lam) * (1 + 1e-12)


def test_engine_is_the_float_recursion_bit_for_bit():
    rs = np.random.RandomState(3)
    w0, eta, lam = rs.uniform(-1, 1, 7), 0.0137, 0.77
    traj = run_trajectory(ToyLasso(7, lam), torch.tensor(w0)[None], eta, 200, GD())
    w = torch.tensor(w0)[None]
    for _ in range(200):  # what torch.optim.SGD does to a leaf tensor: p.add_(grad, alpha=-lr)
        w = w.add(lam * w.sgn(), alpha=-eta)
    assert np.array_equal(traj.final, w.numpy())


@settings(max_examples=30, deadline=None)
@given(m=st.lists(st.integers(-300, 300), min_size=1, max_size=10), e_eta=st.integers(3, 12), e_lam=st.integers(-4, 4))
def test_integer_case_lands_exactly_on_zero_and_stays(m, e_eta, e_lam):
    eta, lam = 2.0**-e_eta, 2.0**e_lam  # dyadic: every iterate is exactly representable
    w0 = np.asarray(m, dtype=np.float64) * eta * lam
    lim = toy_limit(w0, eta, lam)
    assert lim.lands_on_zero.all() and np.array_equal(lim.steps, np.abs(m))
    T = max(abs(v) for v in m) + 5
    traj = run_trajectory(ToyLasso(len(m), lam), torch.tensor(w0)[None], eta, T, GD(), record_weights_at=range(T - 4, T))
    assert all(np.all(traj.weights[k] == 0) for k in range(T - 4, T))


def test_printed_two_d_numbers_from_the_closed_form():
    # Spec 3.1: w0 = (0.4947, 0.4947), eta = 0.01.
    small = toy_limit([0.4947, 0.4947], 0.01, 1.0)
    large = toy_limit([0.4947, 0.4947], 0.01, 100.0)
    np.testing.assert_allclose(small.first, [0.0047, 0.0047], atol=1e-12)
    np.testing.assert_allclose(small.second, [-0.0053, -0.0053], atol=1e-12)
    assert max(small.l1_pair()) == pytest.approx(0.0106, abs=1e-12)
    assert min(large.l1_pair()) == pytest.approx(0.9894, abs=1e-12)
    assert small.steps.tolist() == [49, 49] and large.steps.tolist() == [0, 0]


def test_bounds_closed_forms():
    assert subgradient_bound(1.0, 2.0, 0.1, 10) == pytest.approx((1 + 4 * 10 * 0.01) / 2.0)
    assert subgradient_bound_limit(2.0, 0.1) == pytest.approx(0.2)
    assert subgradient_bound(1.0, 2.0, 0.1, 10**9) == pytest.approx(subgradient_bound_limit(2.0, 0.1), rel=1e-6)
    # Toy: G = lam sqrt(d), so the bound's limit is d eta lam^2 / 2 -- half of B.11's bound.
    d, eta, lam = 7, 0.03, 5.0
    assert subgradient_bound_limit(lam * np.sqrt(d), eta) == pytest.approx(toy_loss_bound(d, eta, lam) / 2)
    assert toy_loss_bound_rmsprop(100, 0.01, 0.01) == pytest.approx(0.01)


@pytest.mark.parametrize("lam", [0.01, 1.0, 100.0])
def test_rmsprop_step_on_the_toy_is_independent_of_lam(lam):
    w0 = torch.tensor([[0.9]], dtype=torch.float64)  # stays positive for the first 20 steps
    traj = run_trajectory(ToyLasso(1, lam), w0, 0.01, 21, RMSProp(), record_weights_at=range(21))
    steps = -np.diff([traj.weights[k][0, 0] for k in range(21)])
    expected = [rmsprop_toy_step(0.01, lam, t) for t in range(1, 21)]
    np.testing.assert_allclose(steps, expected, rtol=1e-9)
    np.testing.assert_allclose(steps, [0.01 / np.sqrt(1 - 0.99**t) for t in range(1, 21)], rtol=1e-5)


def test_sparsity_audit_on_a_module_and_lists():
    net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2, bias=False)).double()
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[0.0, 1e-9, 1e-6, 1e-4]] * 3, dtype=torch.float64))
        net[0].bias.copy_(torch.tensor([0.0, 2.0, -3.0], dtype=torch.float64))
        net[2].weight.fill_(-0.5)
    rep = sparsity_audit(net)
    assert [r.name for r in rep.layers] == ["0.weight", "0.bias", "2.weight"]
    w = rep.layers[0]
    assert w.numel == 12 and w.exact_zeros == 3
    assert w.below == {1e-8: 0.5, 1e-5: 0.75, 1e-3: 1.0}
    assert w.l1 == pytest.approx(3 * (1e-9 + 1e-6 + 1e-4))
    assert rep.total.numel == 21 and rep.total.exact_zeros == 4
    assert rep.total.below[1e-8] == pytest.approx(7 / 21)
    assert rep.total.l1 == pytest.approx(w.l1 + 5 + 3)
    table = rep.table()
    assert "| 0.weight | 12 | 3 (25.00%) | 50.00% | 75.00% | 100.00% |" in table and table.count("\n") == 5
    same = sparsity_audit([p.detach() for p in net.parameters()])
    assert same.total.exact_zeros == 4 and sparsity_audit({"a": np.zeros(5)}).total.exact_zeros == 5
    assert THRESHOLDS == (1e-8, 1e-5, 1e-3)


def test_detect_period():
    t = np.arange(40)
    assert detect_period(np.sin(2 * np.pi * t / 3).round(12), tol=1e-12).period == 3
    two = np.where(t % 2 == 0, 0.3, -0.7)
    rep = detect_period(two)
    assert rep.period == 2 and rep.exact
    assert detect_period(np.full(10, 1.5)).period == 1
    assert detect_period(np.random.RandomState(0).rand(50)).period is None
    k5 = np.tile(np.random.RandomState(1).rand(5, 3), (6, 1)) + 1e-13 * np.random.RandomState(2).rand(30, 3)
    assert detect_period(k5, tol=0.0).period is None and detect_period(k5, tol=1e-12).period == 5
    assert detect_period(np.array([1.0, np.nan, 1.0, np.nan, 1.0])).period is None
