import math

import numpy as np
import pytest
import torch

from ndgm.analysis.periodic import (attractors, is_stable, orbit_multipliers, periodic_orbits, stability_threshold)
from ndgm.analysis.stability import (gd_mu, lyapunov_exact_1d, lyapunov_exponents, normal_basis, s_of_t1,
                                     stable_intervals, toy_lambda, toy_mu, wu_ma_e)
from ndgm.errors import NdgmError
from ndgm.experiments.sgd_montecarlo import sgd_runs
from ndgm.experiments.stability_toy import EXPECTED_INTERVALS
from ndgm.problems import autograd_value_and_grad
from ndgm.problems import PAPER_SCALE, TwoPointReLU

A = (0.81, 6.25)


# -- the toy ------------------------------------------------------------------------------

def test_toy_closed_forms_match_autograd_through_the_network():
    toy = TwoPointReLU()
    g = torch.Generator().manual_seed(0)
    W = torch.rand(50, 2, generator=g, dtype=torch.float64) * 4 - 1  # includes dead-ReLU points
    v, grad = toy.value_and_grad(W)
    v_ref, g_ref = autograd_value_and_grad(toy.value, W)
    torch.testing.assert_close(v, v_ref, rtol=1e-14, atol=1e-14)
    torch.testing.assert_close(grad, g_ref, rtol=1e-13, atol=1e-14)
    for which in (0, 1):  # per-sample gradients used by SGD
        x = (0.9, 2.5)[which]

        def sample_loss(Wb, x=x):
            return 0.5 * (torch.relu(Wb[:, 1] * torch.relu(Wb[:, 0] * x)) - x) ** 2

        _, g_b = toy.batch_value_and_grad(W, torch.full((50,), which))
        torch.testing.assert_close(g_b, autograd_value_and_grad(sample_loss, W)[1], rtol=1e-13, atol=1e-14)
    Wq = W[(W > 0).all(1)]
    for k in range(len(Wq)):
        ref = torch.autograd.functional.hessian(lambda w: toy.value(w[None])[0], Wq[k])
        torch.testing.assert_close(toy.hessian(Wq[k:k + 1])[0], ref, rtol=1e-12, atol=1e-12)
    assert toy.scale == pytest.approx(1.765) and PAPER_SCALE == pytest.approx(1.765)
    with pytest.raises(NdgmError, match="scale"):
        TwoPointReLU(-1.0)


def test_scale_option_multiplies_curvature():
    assert TwoPointReLU(3.53).sample_curvature == pytest.approx((1.62, 12.5))
    W = torch.tensor([[1.3, 0.4]], dtype=torch.float64)
    assert float(TwoPointReLU(3.53).value(W)) == pytest.approx(2 * float(TwoPointReLU().value(W)))


# -- spec section 4 numbers -----------------------------------------------------------------

@pytest.mark.parametrize("value,expected", [
    (lambda: toy_mu(1.0, 0.15), -2.8302),
    (lambda: toy_lambda(1.0, 0.15, 0.5), -0.2060),
    (lambda: toy_lambda(1.0, 0.3, 0.58), 0.0389),
    (lambda: toy_mu(1.0, 0.3), 0.1115),
    (lambda: toy_mu(1.0, 0.3, (0.58, 0.42)), -0.1545),
    (lambda: toy_lambda(2.0, 0.3, 0.58), -1.1675),
    (lambda: toy_mu(2.0, 0.3, (0.58, 0.42)), 1.0804),
])
def test_spec_mu_lambda_values(value, expected):
    assert abs(float(value()) - expected) <= 1e-4


def test_mu_lambda_symmetric_under_inversion():
    t = np.geomspace(0.2, 5, 50)
    np.testing.assert_allclose(toy_lambda(t, 0.3, 0.58), toy_lambda(1 / t, 0.3, 0.58), rtol=1e-12)
    np.testing.assert_allclose(toy_mu(t, 0.15), toy_mu(1 / t, 0.15), rtol=1e-12)
    np.testing.assert_allclose(s_of_t1(t), s_of_t1(1 / t), rtol=1e-15)


def _close(a, b):
    return len(a) == len(b) and all(abs(x - y) <= 1e-4 for i, j in zip(a, b) for x, y in zip(i, j))


def test_fig4_intervals():
    def mu(eta, abar):
        return stable_intervals(eta, (1.0,), (abar,))

    sgd1 = stable_intervals(0.15, (0.5, 0.5), A)
    assert _close(sgd1, EXPECTED_INTERVALS["sgd1"])
    assert _close(mu(0.15, 3.53), EXPECTED_INTERVALS["gd1"])
    assert _close(stable_intervals(0.3, (0.58, 1 - 0.58), A), EXPECTED_INTERVALS["sgd2"])
    assert mu(0.3, 3.53) == []
    assert _close(mu(0.3, 0.58 * 0.81 + 0.42 * 6.25), EXPECTED_INTERVALS["gd2_weighted"])
    # Each boundary is a root; the interior has the right sign.
    for a, b in sgd1:
        assert abs(toy_lambda(a, 0.15, 0.5)) < 1e-10 and abs(toy_lambda(b, 0.15, 0.5)) < 1e-10
        assert toy_lambda(math.sqrt(a * b), 0.15, 0.5) < 0
    # Panel 1 as the paper words it fails on the full line: outer islands lie outside GD-stable.
    gd1 = EXPECTED_INTERVALS["gd1"][0]
    assert any(b <= gd1[0] or a >= gd1[1] for a, b in sgd1)


def test_fig3_right_trajectories():
    toy = TwoPointReLU()
    W = torch.tensor([1.48, 1 / 1.48 + 0.1], dtype=torch.float64).expand(2, 2).clone()
    etas = torch.tensor([0.25, 0.325], dtype=torch.float64)
    for _ in range(5000):
        W = toy.gd_map(W, etas)
    nxt = toy.gd_map(W, etas)
    assert torch.allclose(W[0], torch.tensor([1.21013, 0.82636], dtype=torch.float64), atol=1e-4)
    pts = sorted([float(W[1, 0]), float(nxt[1, 0])])
    assert pts == pytest.approx([0.77152, 1.12978], abs=1e-4)
    assert float(W[1, 0] - W[1, 1]) == pytest.approx(0, abs=1e-10)


# -- periodic orbits --------------------------------------------------------------------------

def test_thresholds_and_orbits():
    toy = TwoPointReLU()
    eta1 = stability_threshold(toy, 1, 0.2, 0.3)
    assert eta1 == pytest.approx(0.28329, abs=1e-5)
    assert eta1 == pytest.approx(1 / 3.53, rel=1e-9)
    assert stability_threshold(toy, 2, 0.2834, 0.36) == pytest.approx(0.35016, abs=1e-5)
    (o2,) = periodic_orbits(toy, 0.325, 2)
    assert o2 == pytest.approx([0.77152, 1.12978], abs=1e-5)
    assert is_stable(orbit_multipliers(toy, o2, 0.325))
    orbits4 = periodic_orbits(toy, 0.36, 4)
    stable4 = [o for o in orbits4 if is_stable(orbit_multipliers(toy, o, 0.36))]
    assert len(stable4) == 1 and stable4[0] == pytest.approx([0.62708, 0.78112, 1.11061, 1.1681], abs=1e-4)
    m = orbit_multipliers(toy, [1.0], 0.2)  # on M: tangent multiplier exactly 1, normal 1 - 4 c eta
    assert sorted(m.real) == pytest.approx(sorted([1.0, 1 - 4 * PAPER_SCALE * 0.2]), abs=1e-12)
    with pytest.raises(NdgmError, match="period k"):
        periodic_orbits(toy, 0.3, 0)


def test_attractors_batched_over_eta():
    toy = TwoPointReLU()
    A = attractors(toy, [0.25, 0.3, 0.325, 0.36, 0.37], transient=4000, record=200, max_period=64)
    assert A.period.tolist() == [1, 2, 2, 4, 0]
    assert A.points(3) == pytest.approx([0.62708, 0.78112, 1.11061, 1.1681], abs=1e-4)
    with pytest.raises(NdgmError):
        attractors(toy, [0.3, -0.1])


# -- Lyapunov exponents -----------------------------------------------------------------------

@pytest.mark.parametrize("seed", range(5))
def test_lyapunov_matches_exact_1d_formula_on_random_instances(seed):
    rng = np.random.default_rng(seed)
    d, B = 4, 3
    n = rng.normal(size=d)
    n /= np.linalg.norm(n)
    h = rng.uniform(0.1, 5.0, size=B)
    p = rng.dirichlet(np.ones(B))
    eta = rng.uniform(0.05, 0.6)
    Hb = torch.as_tensor(h[:, None, None] * np.outer(n, n)[None])
    est = lyapunov_exponents(Hb, p, eta, torch.as_tensor(n), steps=6000, blocks=20, seed=seed)
    exact = lyapunov_exact_1d(h, p, eta)
    assert abs(est.top - exact) <= 4 * est.top_stderr + 1e-12
    assert est.top_stderr > 0


def test_lyapunov_spectrum_of_commuting_diagonal_products():
    # H_b = diag(h_b1, h_b2) on a 2-D normal space inside R^3: exponents sum_b p_b log|1 - eta h_bi|.
    h = np.array([[1.0, 4.0], [3.0, 0.5]])
    p, eta = np.array([0.3, 0.7]), 0.4
    Hb = torch.zeros(2, 3, 3, dtype=torch.float64)
    Hb[:, 0, 0], Hb[:, 1, 1] = torch.as_tensor(h[:, 0]), torch.as_tensor(h[:, 1])
    Q = torch.eye(3, dtype=torch.float64)[:, :2]
    est = lyapunov_exponents(Hb, p, eta, Q, steps=8000, blocks=20, seed=1)
    exact = sorted([lyapunov_exact_1d(h[:, i], p, eta) for i in range(2)], reverse=True)
    assert np.all(np.abs(est.exponents - exact) <= 4 * est.stderr + 1e-12)


def test_lyapunov_refuses_unprojected_and_bad_input():
    Hb = torch.eye(2, dtype=torch.float64)[None].repeat(2, 1, 1)
    with pytest.raises(NdgmError, match="normal-space basis"):
        lyapunov_exponents(Hb, [0.5, 0.5], 0.1, None)
    with pytest.raises(NdgmError, match="orthonormal"):
        lyapunov_exponents(Hb, [0.5, 0.5], 0.1, torch.tensor([[2.0], [0.0]], dtype=torch.float64))
    with pytest.raises(NdgmError, match=r"\[0, 1\]"):
        lyapunov_exponents(Hb, [1.5, -0.5], 0.1, torch.tensor([1.0, 0.0], dtype=torch.float64))
    with pytest.raises(NdgmError, match="eta"):
        lyapunov_exponents(Hb, [0.5, 0.5], 0.0, torch.tensor([1.0, 0.0], dtype=torch.float64))
    with pytest.raises(NdgmError, match=r"\[0, 1\]"):
        toy_lambda(1.0, 0.3, 1.2)


def test_gd_mu_and_normal_basis():
    g = torch.Generator().manual_seed(5)
    J = torch.randn(2, 5, generator=g, dtype=torch.float64)  # two per-sample output gradients in R^5
    Q = normal_basis(torch.cat([J, J[:1] * 2]))  # a dependent row does not add a direction
    assert Q.shape == (5, 2)
    H = J.T @ torch.diag(torch.tensor([1.5, 0.2], dtype=torch.float64)) @ J
    eig = torch.linalg.eigvalsh(H)
    nonzero = eig[eig.abs() > 1e-10]
    eta = 0.7
    assert gd_mu(H, eta, Q) == pytest.approx(float(torch.log((1 - eta * nonzero).abs().max())), rel=1e-10)
    with pytest.raises(NdgmError, match="normal-space basis"):
        gd_mu(H, eta, None)


# -- Wu--Ma--E -------------------------------------------------------------------------------

def test_wu_ma_e_matches_dense_reference():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1)).double()
    g = torch.Generator().manual_seed(1)
    X = torch.randn(6, 3, generator=g, dtype=torch.float64)
    Y = torch.randn(6, 1, generator=g, dtype=torch.float64)
    eta, B = 0.1, 2
    out = wu_ma_e(model, X, Y, eta, B)

    params = [p.detach() for p in model.parameters()]
    theta = torch.cat([p.reshape(-1) for p in params])
    shapes = [p.shape for p in params]

    def sample_loss(th, i):
        chunks, k = [], 0
        for s in shapes:
            m = int(np.prod(s))
            chunks.append(th[k:k + m].reshape(s))
            k += m
        h = torch.tanh(X[i] @ chunks[0].T + chunks[1])
        f = h @ chunks[2].T + chunks[3]
        return 0.5 * ((f - Y[i]) ** 2).sum()

    Hs = torch.stack([torch.autograd.functional.hessian(lambda th: sample_loss(th, i), theta) for i in range(6)])
    H = Hs.mean(0)
    Sigma = (Hs @ Hs).mean(0) - H @ H
    n = 6
    gamma = eta**2 * (n - B) / (B * (n - 1))
    eye = torch.eye(theta.numel(), dtype=torch.float64)
    M = (eye - eta * H) @ (eye - eta * H) + gamma * Sigma
    assert out.sharpness == pytest.approx(float(torch.linalg.eigvalsh(H)[-1]), rel=1e-8)
    assert out.nonuniformity == pytest.approx(math.sqrt(float(torch.linalg.eigvalsh(Sigma)[-1])), rel=1e-6)
    assert out.sgd_top == pytest.approx(float(torch.linalg.eigvalsh(M)[-1]), rel=1e-8)
    assert out.gd_stable == (out.sharpness <= 2 / eta)
    assert out.sgd_1d == pytest.approx((1 - eta * out.sharpness) ** 2 + gamma * out.nonuniformity**2)
    with pytest.raises(NdgmError, match="batch_size"):
        wu_ma_e(model, X, Y, eta, 7)


def test_wu_ma_e_on_the_toy_at_a_minimum():
    # f = t2 t1 x on the quadrant: at (1, 1) H_i = x_i^2 v v^T with v = (1, 1).
    class Toy(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.t = torch.nn.Parameter(torch.tensor([1.0, 1.0], dtype=torch.float64))

        def forward(self, x):
            return torch.relu(self.t[1] * torch.relu(self.t[0] * x))

    X = torch.tensor([[0.9], [2.5]], dtype=torch.float64)
    out = wu_ma_e(Toy(), X, X.clone(), 0.15, 1)
    assert out.sharpness == pytest.approx(3.53 * 2, rel=1e-12)  # abar s with s = 2
    # Sigma = mean H_i^2 - H^2 = (v v^T)^2 Var(x^2) = 2 v v^T ((6.25 - 0.81)/2)^2
    assert out.nonuniformity == pytest.approx(2 * (6.25 - 0.81) / 2, rel=1e-10)


# -- Monte Carlo --------------------------------------------------------------------------------

def test_sgd_monte_carlo_agrees_with_sign_of_lambda():
    toy = TwoPointReLU()
    K = 60
    g = torch.Generator().manual_seed(11)
    starts = torch.cat([torch.tensor([t, 1 / t], dtype=torch.float64).expand(K, 2) for t in (1.0, 2.0)])
    starts = starts + 0.01 * torch.randn(2 * K, 2, generator=g, dtype=torch.float64)
    _, dist = sgd_runs(toy, starts, 0.3, 0.58, 6000, seed=12)
    conv = (dist[-1] <= 1e-8).numpy()
    assert toy_lambda(1.0, 0.3, 0.58) > 0 and conv[:K].sum() == 0
    frac = conv[K:].mean()
    ref = 16 / 20  # the spec's computed reference: 16 of 20
    se = math.sqrt(ref * (1 - ref) / K + ref * (1 - ref) / 20)
    assert toy_lambda(2.0, 0.3, 0.58) < 0 and abs(frac - ref) <= 3 * se
