import math

import numpy as np
import pytest
import torch
from sklearn.linear_model import Lasso as SkLasso

from cases import PROBLEMS, batch_points
from ndgm.problems import HuberRegression, L1Penalty, Lasso, Quadratic, ReLURegression, ToyLasso, autograd_value_and_grad


@pytest.mark.parametrize("name", sorted(PROBLEMS))
def test_value_and_grad_matches_autograd(name):
    problem = PROBLEMS[name]()
    W = batch_points(problem)
    v, g = problem.value_and_grad(W)
    v_ref, g_ref = autograd_value_and_grad(problem.value, W)
    assert v.shape == (3,) and g.shape == W.shape
    torch.testing.assert_close(v, v_ref, rtol=1e-13, atol=0)
    torch.testing.assert_close(g, g_ref, rtol=1e-12, atol=1e-14)


def test_relu_closed_form_gradient_is_bitwise_autograd():
    # The capture protocol's printed number depends on the last bit: the closed form must be autograd's.
    problem = PROBLEMS["relu"]()
    W = batch_points(problem)
    for k in range(3):
        single = ReLURegression(problem.X, problem.y, l1=float(problem.l1[k]))
        v, g = single.value_and_grad(W[k : k + 1])
        v_ref, g_ref = autograd_value_and_grad(single.value, W[k : k + 1])
        assert torch.equal(v, v_ref) and torch.equal(g, g_ref)


def test_kink_conventions_are_pytorchs():
    # relu'(0) = 0 and d|w|/dw at 0 = sgn(0) = 0.
    X = torch.eye(3, dtype=torch.float64)
    y = -torch.ones(3, dtype=torch.float64)
    W = torch.zeros(1, 3, dtype=torch.float64)
    _, g = ReLURegression(X, y, l1=0.7).value_and_grad(W)
    assert torch.equal(g, torch.zeros_like(g))
    _, g = ToyLasso(3, lam=2.0).value_and_grad(torch.tensor([[0.0, 1.0, -3.0]], dtype=torch.float64))
    assert g.tolist() == [[0.0, 2.0, -2.0]]


def test_relu_known_minimiser_when_targets_nonpositive():
    g = torch.Generator().manual_seed(0)
    X = torch.rand(40, 5, generator=g, dtype=torch.float64) * 2 - 1
    y = -torch.rand(40, generator=g, dtype=torch.float64)
    p = ReLURegression(X, y, l1=0.1)
    assert torch.equal(p.minimiser(), torch.zeros(5, dtype=torch.float64))
    assert p.optimal_value() == pytest.approx(float((y**2).sum()), rel=1e-15)
    # No point does better than w* = 0 (convexity): sample some.
    W = torch.randn(200, 5, generator=g, dtype=torch.float64)
    assert bool((p.value(W) >= p.optimal_value() - 1e-12).all())
    assert ReLURegression(X, -y).minimiser() is None


def test_toy_lasso_constants():
    p = ToyLasso(16, lam=3.0)
    assert p.lipschitz == pytest.approx(3.0 * 4.0)
    W = torch.randn(5, 16, dtype=torch.float64)
    _, g = p.value_and_grad(W)
    assert torch.allclose(g.norm(dim=1), torch.full((5,), 12.0, dtype=torch.float64))
    assert p.optimal_value() == 0.0 and p.smoothness is None


def test_quadratic_constants():
    A = torch.diag(torch.tensor([3.0, 1.0, 0.5], dtype=torch.float64))
    q = Quadratic(A)
    assert q.smoothness == 3.0 and q.optimal_value() == 0.0
    indefinite = Quadratic(torch.diag(torch.tensor([1.0, -4.0], dtype=torch.float64)))
    assert indefinite.smoothness == 4.0 and indefinite.minimiser() is None


def test_huber_constants_and_minimiser():
    p = PROBLEMS["huber"]()
    L = float(torch.linalg.eigvalsh(p.X.T @ p.X)[-1])
    assert p.smoothness == pytest.approx(L, rel=1e-12)
    w_star = p.minimiser()
    assert w_star is not None
    assert float(p.value(w_star[None])[0]) < 1e-25
    # The Lipschitz constant bounds every gradient norm.
    W = 100 * torch.randn(500, p.dim, dtype=torch.float64)
    _, g = p.value_and_grad(W)
    assert float(g.norm(dim=1).max()) <= p.lipschitz
    # Gradient is L-Lipschitz.
    W2 = W + 0.01 * torch.randn_like(W)
    _, g2 = p.value_and_grad(W2)
    assert bool(((g2 - g).norm(dim=1) <= p.smoothness * (W2 - W).norm(dim=1) + 1e-12).all())


def test_l1_prox_is_soft_threshold():
    pen = L1Penalty(torch.tensor([0.5, 2.0], dtype=torch.float64))
    W = torch.tensor([[1.0, -0.2, 0.7], [3.0, -2.5, 1.0]], dtype=torch.float64)
    out = pen.prox(W, 1.0)
    expected = torch.tensor([[0.5, 0.0, 0.7 - 0.5], [1.0, -0.5, 0.0]], dtype=torch.float64)
    assert torch.equal(out, expected)
    assert int((out == 0).sum()) == 2  # true zeros, not small numbers


def test_lasso_certificate_vanishes_at_sklearn_solution():
    rs = np.random.RandomState(0)
    n, d = 50, 10
    X = rs.uniform(-1, 1, (n, d))
    y = rs.uniform(-1, 1, n)
    lam = 2.0
    # ||Xw - y||^2 + lam ||w||_1  <=>  sklearn's (1/2n)||y - Xw||^2 + alpha ||w||_1 with alpha = lam / (2n)
    sk = SkLasso(alpha=lam / (2 * n), fit_intercept=False, tol=1e-14, max_iter=100000).fit(X, y)
    p = Lasso(torch.tensor(X), torch.tensor(y), lam=lam)
    W = torch.tensor(sk.coef_)[None]
    _, g_smooth = p.smooth_value_and_grad(W)
    assert float(p.penalty.subdiff_distance(W, g_smooth)[0]) < 1e-8
    W0 = torch.zeros_like(W)
    assert float(p.penalty.subdiff_distance(W0, p.smooth_value_and_grad(W0)[1])[0]) > 1e-3  # 0 is not optimal
    assert p.smoothness == pytest.approx(2 * np.linalg.eigvalsh(X.T @ X)[-1], rel=1e-12)
    assert float(L1Penalty.alpha_max(p.smooth_value_and_grad(torch.zeros(1, d, dtype=torch.float64))[1])[0]) == \
        pytest.approx(2 * np.abs(X.T @ y).max(), rel=1e-12)
    assert math.isfinite(float(p.value(W)[0]))


def test_huber_rejects_nothing_but_reports_no_minimiser_when_underparameterised():
    X = torch.rand(20, 3, dtype=torch.float64)
    assert HuberRegression(X, torch.rand(20, dtype=torch.float64)).minimiser() is None
