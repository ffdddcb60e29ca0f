"""The fast exact solver, the Design operator and l1_path against scikit-learn's coordinate descent."""

import numpy as np
import pytest
import scipy.linalg
import scipy.sparse as sp
import torch
from sklearn.linear_model import Lasso, lasso_path

from ndgm.data.tabular import load_diabetes_standardised
from ndgm.errors import NdgmError
from ndgm.problems import HuberRegression, L1Penalty, LeastSquares
from ndgm.sparse import Design, fista, fit_path, ista, l1_path, working_set_solver
from ndgm.sparse.working_set import duality_gap


def dense_problem(seed, n=80, d=200, k=8):
    rs = np.random.RandomState(seed)
    X = rs.randn(n, d) * (1 + 2 * rs.rand(d))  # badly scaled columns
    w = np.zeros(d)
    w[rs.choice(d, k, replace=False)] = 3 * rs.randn(k)
    return X, X @ w + 0.1 * rs.randn(n)


def sparse_problem(seed, n=300, d=1000, density=0.01, k=10):
    rs = np.random.RandomState(seed)
    X = sp.random(n, d, density=density, format="csc", random_state=rs)
    w = np.zeros(d)
    w[rs.choice(d, k, replace=False)] = rs.randn(k)
    return X, X @ w + 0.01 * rs.randn(n)


def diabetes_problem(seed=0):
    return load_diabetes_standardised(as_tensor=False)


PROBLEMS = {"dense": dense_problem, "sparse": sparse_problem, "diabetes": diabetes_problem}


def objective(X, y, w, alpha):
    """scikit-learn's (1/2n)||y - Xw||^2 + alpha ||w||_1."""
    r = y - X @ w
    return float(r @ r) / (2 * X.shape[0]) + alpha * float(np.abs(w).sum())


def sklearn_coef(X, y, alpha, positive=False):
    return Lasso(alpha=alpha, fit_intercept=False, tol=1e-15, max_iter=1_000_000, positive=positive).fit(X, y).coef_


def alpha_max(X, y):
    return float(np.abs(X.T @ y).max()) / X.shape[0]


def solve(X, y, alpha, **kw):
    return working_set_solver(LeastSquares(X if sp.issparse(X) else torch.as_tensor(X), torch.as_tensor(y)),
                              L1Penalty(alpha), **kw)


def assert_same_solution(X, y, alpha, coef, ref, rel=1e-8):
    f, f_ref = objective(X, y, coef, alpha), objective(X, y, ref, alpha)
    assert abs(f - f_ref) <= rel * f_ref, (f, f_ref)
    np.testing.assert_array_equal(coef == 0, ref == 0)  # exact zeros, not thresholded


@pytest.mark.parametrize("name", list(PROBLEMS))
@pytest.mark.parametrize("frac", [0.5, 0.1, 0.01])
def test_solver_matches_sklearn_objective_and_exact_zeros(name, frac):
    X, y = PROBLEMS[name](3)
    a = frac * alpha_max(X, y)
    res = solve(X, y, a, tol=1e-10)
    coef = res.coef[0].numpy()
    assert bool(res.converged[0])
    # the gap is scikit-learn's (divided by n) and within tol ||y||^2 / n
    assert 0 <= float(res.dual_gap[0]) <= 1e-10 * float(y @ y) / len(y)
    assert float(res.objective[0]) == pytest.approx(objective(X, y, coef, a), rel=1e-12)
    assert float(res.certificate[0]) < 1e-6 * a
    assert_same_solution(X, y, a, coef, sklearn_coef(X, y, a))


@pytest.mark.parametrize("name", ["dense", "sparse"])
def test_ista_inner_and_no_screening_reach_the_same_solution(name):
    X, y = PROBLEMS[name](4)
    a = 0.05 * alpha_max(X, y)
    ref = sklearn_coef(X, y, a)
    for kw in (dict(inner="ista"), dict(screening=False), dict(p0=1), dict(p0=10_000)):
        res = solve(X, y, a, tol=1e-10, **kw)
        assert bool(res.converged[0]), kw
        assert_same_solution(X, y, a, res.coef[0].numpy(), ref)


@pytest.mark.parametrize("name", ["dense", "sparse"])
def test_positive_matches_sklearn(name):
    X, y = PROBLEMS[name](5)
    a = 0.02 * alpha_max(X, y)
    ref = sklearn_coef(X, y, a, positive=True)
    res = solve(X, y, a, tol=1e-10, positive=True)
    coef = res.coef[0].numpy()
    assert coef.min() == 0.0 and bool(res.converged[0]) and float(res.certificate[0]) < 1e-6 * a
    assert_same_solution(X, y, a, coef, ref)


def test_alpha_above_alpha_max_is_zero_without_a_step():
    X, y = dense_problem(6)
    res = solve(X, y, [1.01 * alpha_max(X, y), alpha_max(X, y)])
    assert not res.coef.any() and res.n_iter.tolist() == [0, 0] and res.n_outer.tolist() == [0, 0]
    # at w = 0 with ||X^T y||_inf <= lam the dual point is y itself: gap 0 (up to rounding at alpha_max itself)
    assert float(res.dual_gap[0]) == 0.0 and float(res.dual_gap[1]) <= 1e-14 * float(res.objective[1])


def test_duality_gap_formula_by_hand():
    # 1/2 ||r||^2 + lam ||w||_1 - D(s r), s = min(1, lam / ||c||_inf), D(theta) = -1/2 ||theta||^2 + theta.y
    rs = np.random.RandomState(0)
    X, y, w = rs.randn(7, 4), rs.randn(7), rs.randn(4)
    r = y - X @ w
    c = X.T @ r
    lam = 0.3
    s = min(1.0, lam / np.abs(c).max())
    expected = 0.5 * r @ r + lam * np.abs(w).sum() - (-0.5 * s * s * r @ r + s * r @ y)
    gap, scale = duality_gap(lam, c, float(r @ r), float(r @ y), float(np.abs(w).sum()))
    assert scale == s and gap == pytest.approx(expected, rel=1e-14)
    # weak duality: the gap bounds the suboptimality of any w
    w_star = sklearn_coef(X, y, lam / 7)
    p_star = 0.5 * np.sum((y - X @ w_star) ** 2) + lam * np.abs(w_star).sum()
    assert 0.5 * r @ r + lam * np.abs(w).sum() - p_star <= gap + 1e-12
    assert duality_gap(0.0, c, 1.0, 1.0, 0.0) == (float(c @ c), 1.0)  # no dual at lam = 0: ||X^T r||^2


def test_path_matches_lasso_path_grid_and_solutions():
    for X, y in (dense_problem(7), sparse_problem(7)):
        alphas, coefs, gaps, n_iter = l1_path(X, y, alphas=10, eps=1e-2, tol=1e-10, return_n_iter=True)
        sk_alphas, sk_coefs, _ = lasso_path(X, y, alphas=10, eps=1e-2, tol=1e-14, max_iter=1_000_000)
        np.testing.assert_allclose(alphas, sk_alphas, rtol=1e-12)
        assert coefs.shape == sk_coefs.shape == (X.shape[1], 10) and n_iter.shape == (10,)
        assert np.all(gaps <= 1e-10 * float(y @ y) / len(y))
        for k, a in enumerate(alphas):
            assert_same_solution(X, y, a, coefs[:, k], sk_coefs[:, k])
        # given alphas are sorted decreasing, as lasso_path does
        a2, c2, _ = l1_path(X, y, alphas=alphas[::-1][:3], tol=1e-10)
        np.testing.assert_array_equal(a2, alphas[::-1][:3][::-1])


def test_sequential_and_batched_paths_agree():
    X, y = dense_problem(8, n=60, d=40)
    alphas = alpha_max(X, y) * np.array([0.5, 0.2, 0.05])
    datafit = LeastSquares(torch.as_tensor(X), torch.as_tensor(y))
    seq = fit_path(datafit, alphas, "fista", tol=1e-12)
    bat = fit_path(datafit, alphas, "fista", tol=1e-12, batched=True)
    np.testing.assert_array_equal(seq.coef == 0, bat.coef == 0)
    np.testing.assert_allclose(bat.objective, seq.objective, rtol=1e-10)
    assert np.all(seq.converged) and np.all(bat.converged)


def test_scalings_give_the_same_solution():
    # ||Xw - y||^2 + 2n alpha ||w||_1 = 2n (scikit-learn's objective): same minimiser, gap 2n times larger
    X, y = dense_problem(9)
    n, a = X.shape[0], 0.05 * alpha_max(X, y)
    Xt, yt = torch.as_tensor(X), torch.as_tensor(y)
    mean = working_set_solver(LeastSquares(Xt, yt, "mean"), L1Penalty(a), tol=1e-12)
    half = working_set_solver(LeastSquares(Xt, yt, "half"), L1Penalty(n * a), tol=1e-12)
    total = working_set_solver(LeastSquares(Xt, yt, "sum"), L1Penalty(2 * n * a), tol=1e-12)
    for res, factor in ((half, n), (total, 2 * n)):
        assert torch.equal(res.coef == 0, mean.coef == 0)
        torch.testing.assert_close(res.coef, mean.coef, rtol=0, atol=1e-9)
        torch.testing.assert_close(res.objective, factor * mean.objective, rtol=1e-10, atol=0)


def test_warm_start_and_w0_shapes():
    X, y = dense_problem(10)
    a = 0.05 * alpha_max(X, y)
    cold = solve(X, y, a, tol=1e-12)
    warm = solve(X, y, a, tol=1e-12, W0=cold.coef[0])
    assert int(warm.n_iter[0]) == 0 and int(warm.n_outer[0]) == 0  # already optimal: one gap check
    torch.testing.assert_close(warm.coef, cold.coef, rtol=0, atol=0)
    per_row = solve(X, y, [a, 2 * a], W0=np.zeros((2, X.shape[1])), tol=1e-12)
    torch.testing.assert_close(per_row.coef[0], cold.coef[0], rtol=0, atol=1e-10)
    with pytest.raises(NdgmError, match="W0 must have shape"):
        solve(X, y, a, W0=np.zeros(3))
    with pytest.raises(NdgmError, match="inner"):
        solve(X, y, a, inner="cd")
    with pytest.raises(NdgmError, match="alpha"):
        solve(X, y, -1.0)
    with pytest.raises(NdgmError, match="LeastSquares"):
        working_set_solver(HuberRegression(torch.as_tensor(X), torch.as_tensor(y)), L1Penalty(a))
    with pytest.raises(NdgmError, match="finite"):
        solve(X, np.where(np.arange(len(y)) == 0, np.nan, y), a)


def test_max_iter_exhausted_is_reported_not_converged():
    X, y = dense_problem(11)
    res = solve(X, y, 0.01 * alpha_max(X, y), tol=1e-12, max_iter=3)
    assert not bool(res.converged[0]) and int(res.n_iter[0]) <= 3 and float(res.dual_gap[0]) > 0


def test_float32_design_stays_float32_and_matches():
    X, y = dense_problem(12)
    a = 0.1 * alpha_max(X, y)
    res = working_set_solver(LeastSquares(torch.as_tensor(X, dtype=torch.float32), torch.as_tensor(y, dtype=torch.float32)),
                             L1Penalty(a), tol=1e-6)
    assert res.coef.dtype == torch.float32 and bool(res.converged[0])
    ref = sklearn_coef(X, y, a)
    np.testing.assert_array_equal(res.coef[0].numpy() == 0, ref == 0)
    assert objective(X, y, res.coef[0].double().numpy(), a) == pytest.approx(objective(X, y, ref, a), rel=1e-5)


def test_no_eigendecomposition_anywhere(monkeypatch):
    """The Lipschitz constants come from products with X (power iteration on the working-set Gram, Lanczos
    for ista/fista): the solvers never call a dense eigensolver."""
    def refuse(*a, **k):
        raise AssertionError("eigendecomposition called")
    for mod, name in ((np.linalg, "eigvalsh"), (np.linalg, "eigh"), (torch.linalg, "eigvalsh"),
                      (torch.linalg, "eigh"), (scipy.linalg, "eigh"), (scipy.linalg, "eigvalsh")):
        monkeypatch.setattr(mod, name, refuse)
    X, y = dense_problem(13, n=60, d=30)
    a = 0.05 * alpha_max(X, y)
    ref = sklearn_coef(X, y, a)
    assert_same_solution(X, y, a, solve(X, y, a, tol=1e-10).coef[0].numpy(), ref)
    datafit = LeastSquares(torch.as_tensor(X), torch.as_tensor(y))
    for solver in (ista, fista):
        for gram in (True, False):
            assert_same_solution(X, y, a, solver(datafit, L1Penalty(a), tol=1e-12, gram=gram).coef[0].numpy(), ref)


def test_sparse_problems_are_never_densified(monkeypatch):
    X, y = sparse_problem(14, n=400, d=3000, density=0.003)
    n, d = X.shape
    to_dense = torch.Tensor.to_dense
    toarray = sp.csc_array.toarray
    biggest = []

    def small_to_dense(self, *a, **k):
        biggest.append(self.numel() if self.layout == torch.strided else self.shape[0] * self.shape[1])
        assert biggest[-1] < n * d / 4, "a large block was densified"
        return to_dense(self, *a, **k)

    def small_toarray(self, *a, **k):
        biggest.append(self.shape[0] * self.shape[1])
        assert biggest[-1] < n * d / 4, "a large block was densified"
        return toarray(self, *a, **k)

    monkeypatch.setattr(torch.Tensor, "to_dense", small_to_dense)
    monkeypatch.setattr(sp.csc_array, "toarray", small_toarray)
    a = 0.02 * alpha_max(X, y)
    coef = solve(X, y, a, tol=1e-10).coef[0].numpy()
    assert_same_solution(X, y, a, coef, sklearn_coef(X, y, a))


# -- the Design operator ---------------------------------------------------------------------------

def design_cases():
    rs = np.random.RandomState(0)
    dense = rs.randn(9, 6)
    dense[:, 2] = 0.0
    sparse = sp.random(9, 6, density=0.4, random_state=1, format="csr")
    offset, weights = rs.randn(6), rs.rand(9) + 0.5
    yield "dense-C", Design(torch.as_tensor(dense)), dense
    yield "dense-F", Design(torch.as_tensor(np.asfortranarray(dense))), dense
    yield "scipy-csr", Design(sparse), sparse.toarray()
    yield "scipy-csc", Design(sparse.tocsc()), sparse.toarray()
    coo = torch.sparse_coo_tensor(np.vstack(sparse.nonzero()), sparse.data, size=sparse.shape)
    yield "torch-coo", Design(coo), sparse.toarray()
    yield "torch-csr", Design(coo.to_sparse_csr()), sparse.toarray()
    yield "dense-centred", Design(torch.as_tensor(dense), offset=offset, row_weights=weights), \
        dense - weights[:, None] * offset
    yield "sparse-centred", Design(sparse, offset=offset, row_weights=weights), sparse.toarray() - weights[:, None] * offset
    yield "sparse-centred-unweighted", Design(sparse, offset=offset), sparse.toarray() - offset


@pytest.mark.parametrize("name,design,ref", list(design_cases()), ids=[c[0] for c in design_cases()])
def test_design_products_match_the_dense_matrix(name, design, ref):
    rs = np.random.RandomState(2)
    n, d = ref.shape
    assert design.shape == (n, d) and design.ndim == 2
    w, W, r, R = rs.randn(d), rs.randn(3, d), rs.randn(n), rs.randn(3, n)
    t = torch.as_tensor
    np.testing.assert_allclose(design.matvec(t(w)).numpy(), ref @ w, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(design.matvec(t(W)).numpy(), W @ ref.T, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(design.rmatvec(t(r)).numpy(), ref.T @ r, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(design.rmatvec(t(R)).numpy(), R @ ref, rtol=1e-12, atol=1e-12)
    # the tensor protocol LeastSquares uses
    np.testing.assert_allclose((t(W) @ design.T).numpy(), W @ ref.T, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose((t(R) @ design).numpy(), R @ ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose((design @ t(w)).numpy(), ref @ w, rtol=1e-12, atol=1e-12)
    a, b = [4, 0, 2], [1, 5]
    np.testing.assert_allclose(design.columns(a).numpy(), ref[:, a], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(design.gram(a).numpy(), ref[:, a].T @ ref[:, a], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(design.gram(a, b).numpy(), ref[:, a].T @ ref[:, b], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(design.column_norms2().numpy(), (ref**2).sum(0), rtol=1e-12, atol=1e-12)
    assert design.spectral_norm2() == pytest.approx(np.linalg.eigvalsh(ref.T @ ref)[-1], rel=1e-10)
    assert design.all_finite()
    # a LeastSquares on it: value and gradient as on the dense matrix
    datafit = LeastSquares(design, t(r))
    value, grad = datafit.value_and_grad(t(W))
    np.testing.assert_allclose(value.numpy(), ((W @ ref.T - r) ** 2).sum(1) / (2 * n), rtol=1e-12)
    np.testing.assert_allclose(grad.numpy(), (W @ ref.T - r) @ ref / n, rtol=1e-12, atol=1e-12)
    assert datafit.smoothness == pytest.approx(np.linalg.eigvalsh(ref.T @ ref)[-1] / n, rel=1e-10)


def test_design_rejects_bad_shapes():
    with pytest.raises(NdgmError, match="2-D"):
        Design(torch.zeros(3))
    with pytest.raises(NdgmError, match="offset"):
        Design(torch.zeros(3, 2), offset=np.zeros(3))
    with pytest.raises(NdgmError, match="row_weights"):
        Design(torch.zeros(3, 2), offset=np.zeros(2), row_weights=np.ones(2))
    assert not Design(torch.tensor([[1.0, float("nan")]])).all_finite()


def test_ndgm_path_is_one_batched_run_equal_to_separate_runs():
    X, y = diabetes_problem()
    alphas = [0.2, 0.05, 0.01]
    _, coefs, _ = l1_path(X, y, alphas=alphas, method="sgd", max_iter=300)
    for k, a in enumerate(sorted(alphas, reverse=True)):
        _, alone, _ = l1_path(X, y, alphas=[a], method="sgd", max_iter=300)
        np.testing.assert_allclose(coefs[:, k], alone[:, 0], rtol=1e-12, atol=1e-14)
    assert np.all(coefs != 0)  # the paradox along the whole path
    _, prox, gaps = l1_path(X, y, alphas=alphas, method="prox-sgd", max_iter=3000)
    _, exact, _ = l1_path(X, y, alphas=alphas, tol=1e-12)
    np.testing.assert_array_equal(prox == 0, exact == 0)


# -- the Gram-free working sets of a sparse design ----------------------------------------------------

def centred_sparse_design(seed=15):
    X, y = sparse_problem(seed, n=200, d=600, density=0.02, k=12)
    mean = np.asarray(X.mean(axis=0)).reshape(-1)
    return X, y - y.mean(), Design(X, offset=mean), X.toarray() - mean


def test_sparse_subproblem_products_and_support_solve_equal_the_dense_gram():
    """`_SparseSubproblem` (columns + rank-one centring, conjugate gradients) against `_Subproblem` on the
    dense Gram of the same working set: the same products and the same exact support solution."""
    from ndgm.sparse.working_set import _Data, _SparseSubproblem, _Subproblem

    X, yc, design, Xc = centred_sparse_design()
    data = _Data(LeastSquares(design, torch.as_tensor(yc)))
    assert data.gram_free
    ws = np.flatnonzero(data.norms > 0)[::3]
    lam = 0.05 * float(np.abs(Xc.T @ yc).max())
    dense = _Subproblem(Xc[:, ws].T @ Xc[:, ws], Xc[:, ws].T @ yc, lam, float(yc @ yc), False)
    sparse = _SparseSubproblem(data, ws, lam, False)
    np.testing.assert_allclose(sparse.scale, dense.scale, rtol=1e-13)
    v = np.random.RandomState(0).randn(ws.size) * (np.arange(ws.size) % 4 == 0)  # a support of a quarter
    np.testing.assert_allclose(sparse.matvec(v), dense.matvec(v), rtol=1e-12, atol=1e-12)
    assert sparse.gap(v, sparse.matvec(v)) == pytest.approx(dense.gap(v, dense.matvec(v)), rel=1e-12)
    # the support solve of the subproblem's own solution pattern: both return the exact solution
    from ndgm.sparse.working_set import _inner_solve
    sol, _, gap = _inner_solve(dense, np.zeros(ws.size), 1e-14 * float(yc @ yc), 100_000, True)
    assert gap <= 1e-14 * float(yc @ yc) and 5 <= np.count_nonzero(sol) < ws.size // 2
    start = sol + 1e-3 * sol  # right signs and support, wrong values
    (v_dense, _), (v_sparse, Gv_sparse) = dense.support_solve(start), sparse.support_solve(start)
    np.testing.assert_allclose(v_sparse, v_dense, rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(v_sparse == 0, sol == 0)
    np.testing.assert_allclose(Gv_sparse, sparse.matvec(v_sparse), rtol=1e-14)
    assert sparse.gap(v_sparse, Gv_sparse) <= 1e-13 * float(yc @ yc)
    # a wrong sign pattern is refused, not returned
    wrong = start.copy()
    wrong[np.flatnonzero(sol)[0]] *= -1
    assert sparse.support_solve(wrong) is None


@pytest.mark.parametrize("gram_free", [True, False])
@pytest.mark.parametrize("positive", [False, True])
def test_centred_sparse_design_matches_sklearn_with_and_without_the_gram(gram_free, positive, monkeypatch):
    """Working sets of a sparse design on the CPU above `GRAM_FREE_ABOVE` columns (here every one) never form a
    Gram (`Design.gram` is not called); the Gram path (small working sets, sparse designs off the CPU) gives
    the same solution. Both equal scikit-learn on the dense centred X."""
    from ndgm.sparse import working_set

    X, yc, design, Xc = centred_sparse_design(16)
    if gram_free:
        monkeypatch.setattr(working_set, "GRAM_FREE_ABOVE", 0)
        monkeypatch.setattr(Design, "gram", lambda *a, **k: pytest.fail("a Gram was formed"))
    else:
        monkeypatch.setattr(Design, "has_host_columns", property(lambda self: False))
    a = 0.02 * alpha_max(Xc, yc)
    res = working_set_solver(LeastSquares(design, torch.as_tensor(yc)), L1Penalty(a), tol=1e-12, positive=positive)
    assert bool(res.converged[0]) and float(res.certificate[0]) < 1e-6 * a
    assert_same_solution(Xc, yc, a, res.coef[0].numpy(), sklearn_coef(Xc, yc, a, positive=positive))
