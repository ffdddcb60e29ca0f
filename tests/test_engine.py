import math

import numpy as np
import pytest
import torch

from ndgm.dynamics import GD, Adam, Constant, DecayOnIncrease, run_trajectory
from ndgm.errors import NdgmError
from ndgm.problems import Quadratic, ReLURegression


def _relu_problem(n=60, d=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.rand(n, d, generator=g, dtype=torch.float64) * 2 - 1
    y = torch.rand(n, 1, generator=g, dtype=torch.float64) * 0.09 - 0.99
    w0 = torch.rand(1, d, generator=g, dtype=torch.float64) * 2 - 1
    return X, y, w0


def test_single_configuration_is_bitwise_the_plain_pytorch_loop():
    X, y, w0 = _relu_problem()
    T = 300
    traj = run_trajectory(ReLURegression(X, y, l1=1e-3), w0, 0.01, T, GD(), DecayOnIncrease(0.9),
                          record_weights_at=[T - 1])
    lin = torch.nn.Linear(8, 1, bias=False).double()
    with torch.no_grad():
        lin.weight.copy_(w0)
    opt = torch.optim.SGD(lin.parameters(), lr=0.01)
    prev, losses = float("inf"), []
    for _ in range(T):
        loss = torch.nn.functional.mse_loss(torch.relu(lin(X)), y, reduction="sum") + 1e-3 * lin.weight.abs().sum()
        cur = loss.item()
        losses.append(cur)
        if cur > prev:
            opt.param_groups[0]["lr"] *= 0.9
        prev = cur
        opt.zero_grad()
        loss.backward()
        if _ == T - 1:
            w_last = lin.weight.detach().clone()
        opt.step()
    assert np.array_equal(traj.loss[:, 0], np.array(losses))
    assert np.array_equal(traj.weights[T - 1][0], w_last[0].numpy())


def test_batched_configurations_match_separate_runs():
    X, y, w0 = _relu_problem()
    lrs = torch.tensor([0.001, 0.01, 0.02], dtype=torch.float64)
    l1 = torch.tensor([0.0, 0.1, 1.0], dtype=torch.float64)
    W0 = w0.repeat(3, 1)
    batched = run_trajectory(ReLURegression(X, y, l1=l1), W0, lrs, 200, Adam())
    for k in range(3):
        single = run_trajectory(ReLURegression(X, y, l1=float(l1[k])), w0, float(lrs[k]), 200, Adam())
        # GEMM vs GEMV summation order: equal to rounding, not necessarily to the bit.
        np.testing.assert_allclose(batched.loss[:, k], single.loss[:, 0], rtol=1e-10)
        np.testing.assert_allclose(batched.final[k], single.final[0], rtol=1e-8, atol=1e-12)


def test_divergence_is_recorded_and_others_continue():
    A = torch.diag(torch.tensor([4.0, 1.0], dtype=torch.float64))
    q = Quadratic(A)
    W0 = torch.ones(3, 2, dtype=torch.float64)
    lrs = torch.tensor([0.1, 0.4, 2.0], dtype=torch.float64)  # 2/L = 0.5: the last one diverges
    traj = run_trajectory(q, W0, lrs, 800, GD(), Constant(), check_every=50)
    # First coordinate: x_k = (1 - 2*4)^k = (-7)^k; the loss 1/2 (4 x^2 + 1) overflows once 4 * 49^k does.
    with np.errstate(over="ignore"):
        expected = next(k for k in range(800) if not np.isfinite(0.5 * (4.0 * np.float64(7.0) ** k * np.float64(7.0) ** k + 1.0)))
    assert 180 < expected < 186
    assert traj.diverged_at.tolist() == [-1, -1, expected]
    assert np.isnan(traj.loss[expected:, 2]).all() and np.isfinite(traj.loss[: expected, 2]).all()
    assert np.isfinite(traj.loss[:, :2]).all()
    assert traj.loss[-1, 0] < 1e-30 and traj.diverged.tolist() == [False, False, True]


def test_all_diverged_stops_early_and_pads_with_nan():
    q = Quadratic(torch.eye(2, dtype=torch.float64))
    traj = run_trajectory(q, torch.ones(2, 2, dtype=torch.float64), 5.0, 5000, check_every=100)
    assert (traj.diverged_at > 0).all()
    assert np.isnan(traj.loss[-1]).all() and traj.loss.shape == (5000, 2)


def test_recorder_norms_and_weights():
    q = Quadratic(torch.eye(3, dtype=torch.float64))
    W0 = torch.tensor([[1.0, -2.0, 3.0]], dtype=torch.float64)
    traj = run_trajectory(q, W0, 0.5, 4, record_weights_at=[0, -1])
    assert sorted(traj.weights) == [0, 3]
    np.testing.assert_array_equal(traj.weights[3][0], W0[0].numpy() * 0.5**3)
    assert traj.l1[:, 0].tolist() == [6.0 * 0.5**k for k in range(4)]
    assert traj.linf[:, 0].tolist() == [3.0 * 0.5**k for k in range(4)]
    np.testing.assert_allclose(traj.l2[:, 0], [math.sqrt(14) * 0.5**k for k in range(4)])
    assert traj.lr[:, 0].tolist() == [0.5] * 4


@pytest.mark.parametrize("lr", [0.0, -1.0, float("nan"), float("inf")])
def test_bad_step_sizes_are_rejected(lr):
    q = Quadratic(torch.eye(2, dtype=torch.float64))
    with pytest.raises(NdgmError, match="step sizes"):
        run_trajectory(q, torch.ones(2, dtype=torch.float64), lr, 3)


def test_same_seed_same_bits():
    X, y, w0 = _relu_problem(seed=3)
    a = run_trajectory(ReLURegression(X, y, l1=0.01), w0.repeat(4, 1), torch.tensor([0.01, 0.02, 0.03, 0.04]).double(), 100, Adam())
    b = run_trajectory(ReLURegression(X, y, l1=0.01), w0.repeat(4, 1), torch.tensor([0.01, 0.02, 0.03, 0.04]).double(), 100, Adam())
    assert np.array_equal(a.loss, b.loss) and np.array_equal(a.final, b.final)
