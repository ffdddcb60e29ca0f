import math

import numpy as np
import pytest
import torch
from sklearn.linear_model import Lasso as SkLasso

from cases import PROBLEMS, batch_points
from ndgm.errors import NdgmError
from ndgm.problems import (Composite, HuberRegression, L1L2Penalty, L1Penalty, Lasso, LeastAbsoluteDeviations,
                           LeastSquares, Quadratic, ReLURegression, ToyLasso, autograd_value_and_grad)


@pytest.mark.parametrize("name", sorted(PROBLEMS))
def test_value_and_grad_matches_autograd(name):
    problem = PROBLEMS[name]()
    W = batch_points(problem)
    v, g = problem.value_and_grad(W)
    v_ref, g_ref = autograd_value_and_grad(problem.value, W)
    assert v.shape == (3,) and g.shape == W.shape
    torch.testing.assert_close(v, v_ref, rtol=1e-13, atol=0)
    torch.testing.assert_close(g, g_ref, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name", sorted(PROBLEMS))
def test_known_minimiser_is_a_minimum(name):
    problem = PROBLEMS[name]()
    w_star = problem.minimiser()
    if w_star is None:
        assert problem.optimal_value() is None
        return
    w_star = w_star.to(torch.float64)
    f_star = problem.value(w_star[None])
    assert f_star.shape in ((1,), (3,))  # a composite with K penalty weights evaluates each
    torch.testing.assert_close(f_star, torch.full_like(f_star, float(problem.optimal_value())), rtol=1e-12, atol=1e-14)
    W = w_star + 0.1 * batch_points(problem, K=f_star.shape[0])
    assert bool((problem.value(W) >= f_star - 1e-12).all())


@pytest.mark.parametrize("name", [n for n in sorted(PROBLEMS) if isinstance(PROBLEMS[n](), Composite)])
def test_composite_is_its_datafit_plus_its_penalty(name):
    problem = PROBLEMS[name]()
    W = batch_points(problem)
    v, g = problem.value_and_grad(W)
    if problem.datafit is None:
        assert torch.equal(v, problem.penalty.value(W)) and torch.equal(g, problem.penalty.grad(W))
    else:
        vd, gd = problem.datafit.value_and_grad(W)
        assert torch.equal(v, vd + problem.penalty.value(W)) and torch.equal(g, gd + problem.penalty.grad(W))
        assert problem.smoothness == problem.datafit.smoothness


def test_least_squares_keeps_each_scalings_arithmetic():
    # The ledger's values depend on the last bit: each scaling is the expression its callers have always used.
    p = PROBLEMS["least-squares-mean"]()
    X, y, n = p.X, p.y, p.X.shape[0]
    W = batch_points(p)
    resid = W @ X.T - y
    expected = {"sum": (resid.pow(2).sum(-1), 2 * resid @ X),
                "half": (0.5 * resid.pow(2).sum(-1), resid @ X),
                "mean": (resid.pow(2).sum(-1) / (2 * n), (resid @ X) / n)}
    lam = float(torch.linalg.eigvalsh(X.T @ X)[-1])
    smooth = {"sum": 2.0 * lam, "half": lam, "mean": lam / n}
    for scaling, (v_ref, g_ref) in expected.items():
        ls = LeastSquares(X, y, scaling=scaling)
        v, g = ls.value_and_grad(W)
        assert torch.equal(v, v_ref) and torch.equal(g, g_ref), scaling
        assert ls.smoothness == smooth[scaling], scaling
    # the sum scaling is 2n times the mean one; the LASSO with lam_sum = 2n alpha has the same minimiser
    torch.testing.assert_close(LeastSquares(X, y, "sum").value(W), 2 * n * LeastSquares(X, y, "mean").value(W),
                               rtol=1e-14, atol=0)
    torch.testing.assert_close(Lasso(X, y, 2 * n * 0.1).value(W), 2 * n * Lasso(X, y, 0.1, scaling="mean").value(W),
                               rtol=1e-14, atol=0)
    # one vector (d,): the mat-vec X w an optimizer closure differentiates, the same value
    torch.testing.assert_close(p.value(W[0]), p.value(W[:1])[0], rtol=1e-15, atol=0)
    # numpy iterates are scored in numpy (what lasso-general's tables always computed), to rounding the same
    Wn, Xn, yn = W.numpy(), X.numpy(), y.numpy()
    r = Wn @ Xn.T - yn
    lasso = Lasso(X, y, torch.tensor([0.1, 1.0, 3.0], dtype=torch.float64))
    assert np.array_equal(lasso.value(Wn), (r**2).sum(1) + np.array([0.1, 1.0, 3.0]) * np.abs(Wn).sum(1))
    np.testing.assert_allclose(lasso.value(Wn), lasso.value(W).numpy(), rtol=1e-14)
    with pytest.raises(NdgmError, match="scaling"):
        LeastSquares(X, y, scaling="avg")
    with pytest.raises(NdgmError, match="inconsistent"):
        LeastSquares(X, y[:-1])
    with pytest.raises(NdgmError, match="2-D"):
        LeastSquares(X[0], y)


def test_consistent_regressions_share_minimiser():
    g = torch.Generator().manual_seed(3)
    X = torch.randn(30, 5, generator=g, dtype=torch.float64)
    w_star = torch.randn(5, generator=g, dtype=torch.float64)
    y = X @ w_star
    ls, lad = LeastSquares(X, y), LeastAbsoluteDeviations(X, y)
    torch.testing.assert_close(ls.minimiser(), w_star, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(lad.minimiser(), w_star, rtol=1e-10, atol=1e-12)
    assert ls.optimal_value() < 1e-25 and lad.optimal_value() < 1e-12
    assert ls.smoothness == pytest.approx(float(torch.linalg.eigvalsh(X.T @ X)[-1]) / 30, rel=1e-12)
    # G bounds every subgradient norm
    S = torch.sgn(torch.randn(1000, 30, generator=g, dtype=torch.float64))
    assert float(torch.linalg.vector_norm(S @ X / 30, dim=1).max()) <= lad.lipschitz
    assert LeastSquares(X, y + 1.0).minimiser() is None  # inconsistent data: no known minimiser


@pytest.mark.parametrize("penalty", [L1Penalty(torch.tensor([0.0, 0.5, 2.0], dtype=torch.float64)),
                                     L1L2Penalty(torch.tensor([0.0, 0.5, 2.0], dtype=torch.float64), 0.3)],
                         ids=["l1", "l1l2"])
def test_penalty_prox_is_optimal_and_subdiff_distance_certifies_it(penalty):
    # z = prox_{s g}(v) minimises g(z) + ||z - v||^2 / (2s): (v - z)/s lies in dg(z), so
    # dist(-(z - v)/s, dg(z)) = 0; autodiff's gradient matches grad.
    g = torch.Generator().manual_seed(0)
    V = 2 * torch.randn(3, 8, generator=g, dtype=torch.float64)
    s = 0.7
    Z = penalty.prox(V, s)
    assert float(penalty.subdiff_distance(Z, (Z - V) / s).max()) < 1e-14
    assert float(penalty.subdiff_distance(V, torch.zeros_like(V)).max()) > 0.1  # V is not a minimiser of g
    W = torch.randn(3, 8, generator=g, dtype=torch.float64)
    v_ref, g_ref = autograd_value_and_grad(penalty.value, W)
    torch.testing.assert_close(penalty.grad(W), g_ref, rtol=1e-14, atol=0)
    torch.testing.assert_close(penalty.value(W), v_ref, rtol=0, atol=0)
    # the certificate on numpy arrays (the solvers' CPU loop) is the torch one
    if isinstance(penalty, L1Penalty):
        Gs = torch.randn(3, 8, generator=g, dtype=torch.float64)
        Z[0, 0] = 0.0
        np_cert = penalty.subdiff_distance(Z.numpy(), Gs.numpy())
        assert np.array_equal(np_cert, penalty.subdiff_distance(Z, Gs).numpy())
        np.testing.assert_allclose(penalty.value(Z.numpy()), penalty.value(Z).numpy(), rtol=1e-15)  # sum orders differ


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
    assert float(p.certificate(W)[0]) < 1e-8
    _, g_smooth = p.datafit.value_and_grad(W)
    assert torch.equal(p.certificate(W), p.penalty.subdiff_distance(W, g_smooth))
    W0 = torch.zeros_like(W)
    assert float(p.certificate(W0)[0]) > 1e-3  # 0 is not optimal
    assert p.smoothness == pytest.approx(2 * np.linalg.eigvalsh(X.T @ X)[-1], rel=1e-12)
    assert float(L1Penalty.alpha_max(p.datafit.value_and_grad(torch.zeros(1, d, dtype=torch.float64))[1])[0]) == \
        pytest.approx(2 * np.abs(X.T @ y).max(), rel=1e-12)
    assert math.isfinite(float(p.value(W)[0]))
    # the mean scaling (scikit-learn's) is certified at the same point with alpha = lam / (2n)
    mean = Lasso(torch.tensor(X), torch.tensor(y), lam / (2 * n), scaling="mean")
    assert float(mean.certificate(W)[0]) < 1e-8 / (2 * n)


def test_huber_rejects_nothing_but_reports_no_minimiser_when_underparameterised():
    X = torch.rand(20, 3, dtype=torch.float64)
    assert HuberRegression(X, torch.rand(20, dtype=torch.float64)).minimiser() is None
