"""The model objective, Lanczos, power iteration, the sharpness tracker and kink counts.

The Hessian operator itself is tested in test_hessian.py over the same case lists.
"""

import numpy as np
import pytest
import torch

from cases import PROBLEMS, batch_points
from curvature_cases import CASE_IDS, CASES, reference_hessian
from ndgm.analysis.curvature import ModelObjective, SharpnessTracker, count_kinks, lanczos, mse_sum, power_iteration
from ndgm.analysis.gdmap import hessian
from ndgm.errors import NdgmError
from ndgm.nets.mlp import make_mlp

RTOL = 1e-8


pytestmark = pytest.mark.usefixtures("one_thread")


def rel(a, b):
    return float(torch.linalg.vector_norm(a - b) / torch.linalg.vector_norm(b))


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_objective_hvp_is_one_product_of_its_operator(case):
    H, theta = reference_hessian(case)
    obj = case.objective(chunk_size=3)
    assert obj.dim == H.shape[0] and torch.equal(obj.params_vector(), theta)
    v = torch.randn(obj.dim, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    hv = obj.hvp(v)
    assert torch.equal(hv, obj.hessian(theta) @ v) and obj.n_hvp == 2
    assert rel(hv, H @ v) <= RTOL


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_value_and_grad_chunked_equal_full_batch(case):
    full, chunked = case.objective(), case.objective(chunk_size=4)
    v1, g1 = full.value_and_grad()
    v2, g2 = chunked.value_and_grad()
    model = case.make_model()
    X, Y = case.data()
    loss = case.loss_fn(model(X), Y) / X.shape[0]
    loss.backward()
    g_ref = torch.cat([p.grad.reshape(-1) for p in model.parameters()])
    assert v1 == pytest.approx(loss.item(), rel=1e-13) and v2 == pytest.approx(loss.item(), rel=1e-13)
    assert rel(g1, g_ref) <= 1e-13 and rel(g2, g_ref) <= 1e-12


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_lanczos_top_k_matches_dense_spectrum(case):
    H, _ = reference_hessian(case)
    evals = torch.linalg.eigvalsh(H).numpy()
    obj = case.objective()
    k = min(3, obj.dim)
    res = lanczos(obj.hessian(), k=k, tol=1e-12)
    assert res.converged
    np.testing.assert_allclose(res.eigenvalues, evals[::-1][:k], rtol=RTOL, atol=1e-10 * abs(evals).max())
    for i in range(k):
        u = res.eigenvectors[:, i]
        assert float(torch.linalg.vector_norm(H @ u - res.eigenvalues[i] * u)) <= 1e-6 * abs(evals).max()
    assert res.n_matvec == obj.n_hvp <= obj.dim + k
    lm = lanczos(obj.hessian(), k=1, which="LM", tol=1e-12)
    assert lm.eigenvalues[0] == pytest.approx(evals[np.argmax(abs(evals))], rel=RTOL)


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_power_iteration_finds_largest_magnitude(case):
    H, _ = reference_hessian(case)
    evals = torch.linalg.eigvalsh(H).numpy()
    by_mag = evals[np.argsort(-abs(evals))]
    res = power_iteration(lambda v: H @ v, H.shape[0], tol=1e-15, max_iter=20000)
    # The error falls like (|lambda_2| / |lambda_1|)^(2j); allow what that predicts.
    ratio = abs(by_mag[1]) / abs(by_mag[0]) if len(by_mag) > 1 else 0.0
    expected_err = max(ratio ** (2 * res.n_matvec), 1e-12) * 10
    assert abs(res.eigenvalues[0] - by_mag[0]) <= expected_err * abs(by_mag[0]) + 1e-12
    assert res.n_matvec == len(res.history)


def test_lanczos_breakdown_with_repeated_eigenvalues():
    # Two distinct eigenvalues: the Krylov space is 2-D, yet k = 3 pairs are asked for.
    d = 20
    diag = torch.ones(d, dtype=torch.float64)
    diag[:2] = 5.0
    A = torch.diag(diag)
    res = lanczos(lambda v: A @ v, d, 3, tol=1e-12)
    np.testing.assert_allclose(res.eigenvalues, [5.0, 5.0, 1.0], rtol=1e-12)


def test_lanczos_beats_power_iteration_on_clustered_spectrum():
    d = 400
    g = torch.Generator().manual_seed(0)
    Q, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))
    lam = torch.linspace(0.0, 0.9, d, dtype=torch.float64)
    lam[-1], lam[-2], lam[-3] = 1.0, 0.99, 0.98
    A = Q @ torch.diag(lam) @ Q.T
    lz = lanczos(lambda v: A @ v, d, 1, tol=1e-6)
    pw = power_iteration(lambda v: A @ v, d, tol=1e-12, max_iter=5000)
    assert abs(lz.eigenvalues[0] - 1.0) <= 1e-6
    first_ok = next(i for i, h in enumerate(pw.history) if abs(h - 1.0) <= 1e-3) + 1
    assert lz.n_matvec * 3 <= first_ok


def test_huber_hessian_is_masked_gram():
    problem = PROBLEMS["huber"]()
    W = batch_points(problem)
    resid = problem.y - W @ problem.X.T
    mask = (resid.abs() <= problem.delta).to(torch.float64)
    assert 0 < float(mask.mean()) < 1  # both regions present
    gram = torch.einsum("ni,kn,nj->kij", problem.X, mask, problem.X)
    assert rel(hessian(problem, W), gram) <= 1e-12


def test_bad_requests_raise_ndgm_error():
    obj = CASES[3].objective()
    with pytest.raises(NdgmError, match="k must be at most the number of parameters"):
        lanczos(obj.hessian(), k=obj.dim + 1)
    with pytest.raises(NdgmError, match="eta"):
        SharpnessTracker(lr=0.0)
    with pytest.raises(NdgmError, match="eta"):
        SharpnessTracker(lr=-0.1)
    with pytest.raises(NdgmError, match="k must be at most"):
        SharpnessTracker(lr=0.1, k=obj.dim + 1)(0, obj)
    with pytest.raises(NdgmError, match="tol"):
        lanczos(obj.hessian(), k=1, tol=0)
    with pytest.raises(NdgmError, match="v must have shape"):
        obj.hvp(torch.zeros(obj.dim + 1, dtype=torch.float64))


def test_sharpness_tracker_warm_start_saves_hvps():
    torch.manual_seed(0)
    X = torch.randn(64, 6, dtype=torch.float64)
    Y = torch.randn(64, 2, dtype=torch.float64)
    runs = {}
    for warm in (False, True):
        model = make_mlp(6, (16,), 2, "tanh", seed=0)
        obj = ModelObjective(model, mse_sum, X, Y)
        tracker = SharpnessTracker(lr=0.05, every=2, k=2, tol=1e-8, warm_start=warm)
        theta = obj.params_vector()
        for step in range(12):
            tracker(step, obj, theta)
            theta = theta - 0.05 * obj.value_and_grad(theta)[1]
        runs[warm] = tracker
    cold, warm = runs[False], runs[True]
    assert cold.steps_ == warm.steps_ == [0, 2, 4, 6, 8, 10]
    np.testing.assert_allclose(np.array(warm.eigenvalues_), np.array(cold.eigenvalues_), rtol=1e-6)
    assert sum(warm.n_hvp_[1:]) < sum(cold.n_hvp_[1:])
    arr = warm.arrays()
    assert arr["sharpness_eigs"].shape == (6, 2) and warm.threshold_ == pytest.approx(40.0)


def test_count_kinks_counts_exact_zeros():
    model = make_mlp(3, (4,), 1, "relu", seed=0)
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0], [1.0, -1.0, 0]]))
        model[0].bias.zero_()
    X = torch.tensor([[0.0, 2.0, 3.0], [1.0, 1.0, 0.0], [0.5, 0.25, 1.0]], dtype=torch.float64)
    # zeros: row0 unit0; row1 unit2 and unit3 (1 - 1); row2 none
    assert count_kinks(model, X) == (3, 12)
    assert count_kinks(make_mlp(3, (4,), 1, "tanh"), X) == (0, 0)
