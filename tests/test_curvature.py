"""The model objective, Lanczos, power iteration, the sharpness tracker and kink counts.

The Hessian operator itself is tested in test_hessian.py over the same case lists.
"""

import math

import numpy as np
import pytest
import torch
from torch import nn

from cases import PROBLEMS, batch_points
from curvature_cases import CASE_IDS, CASES, reference_hessian, reference_per_sample_hessians, reference_value_and_grad
from ndgm.analysis.curvature import (ModelObjective, SharpnessTracker, count_kinks, hutchinson, hutchpp, lanczos, mse_sum,
                                    power_iteration, spectral_density)
from ndgm.analysis.hessian import DenseOperator, PreconditionedOperator
from ndgm.analysis.stability import wu_ma_e
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
    value, g_ref = reference_value_and_grad(case)
    assert v1 == pytest.approx(value, rel=1e-13) and v2 == pytest.approx(value, rel=1e-13)
    assert full.value() == pytest.approx(value, rel=1e-13)
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


# -- more of the spectrum, every quantity against the dense Hessian of every case ---------------

def dense_spectrum(case):
    H, _ = reference_hessian(case)
    evals = torch.linalg.eigvalsh(H).numpy()
    return H, evals, max(abs(evals).max(), 1e-300)


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_lanczos_both_ends_match_dense_spectrum(case):
    H, evals, scale = dense_spectrum(case)
    op = case.objective(chunk_size=5).hessian()
    k = min(3, op.dim)
    top = lanczos(op, k=k, which="largest", tol=1e-12, max_iter=op.dim)
    low = lanczos(op, k=k, which="smallest", tol=1e-12, max_iter=op.dim)
    assert top.converged and low.converged and top.which == "LA" and low.which == "SA"
    np.testing.assert_allclose(top.eigenvalues, evals[::-1][:k], rtol=0, atol=1e-9 * scale)
    np.testing.assert_allclose(low.eigenvalues, evals[:k], rtol=0, atol=1e-9 * scale)
    for res in (top, low):
        U = res.eigenvectors
        assert float(torch.linalg.matrix_norm(H @ U - U * torch.as_tensor(res.eigenvalues))) <= 1e-6 * scale
    assert top.n_matvec + low.n_matvec == op.n_products
    assert top.objective["reduction"] == case.reduction and top.objective["mode"] in ("train", "eval")


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_trace_estimators_match_dense_trace(case):
    H, _, _ = dense_spectrum(case)
    exact = float(torch.trace(H))
    off = float((H ** 2).sum() - (torch.diagonal(H) ** 2).sum())  # Var[g^T H g] = 2 off for Rademacher g
    op = case.objective().hessian()
    d = op.dim
    full = hutchpp(op, probes=3 * d)  # the sketch spans everything: exact
    assert full.method == "exact" and full.standard_error == 0 and full.n_matvec == d
    assert full.estimate == pytest.approx(exact, rel=1e-10, abs=1e-12)
    hu = hutchinson(op, probes=200, seed=1)
    assert hu.n_matvec == 200 and hu.samples.shape == (200,) and hu.method == "hutchinson"
    assert abs(hu.estimate - exact) <= 4 * hu.standard_error + 1e-12
    if off > 1e-20:
        assert 0.7 <= hu.standard_error / math.sqrt(2 * off / 200) <= 1.4
    if d > 12:
        pp = hutchpp(op, probes=36, seed=2)  # 12 sketch, 12 for Q, 12 deflated probes
        assert pp.method == "hutch++" and pp.n_matvec == 36 and pp.samples.shape == (12,)
        assert abs(pp.estimate - exact) <= 4 * pp.standard_error + 1e-9 * abs(exact)
    assert op.n_products == d + 200 + (36 if d > 12 else 0)


def test_hutchpp_is_exact_on_low_rank_and_beats_hutchinson_on_outliers():
    d = 300
    g = torch.Generator().manual_seed(3)
    Q, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))
    low_rank = Q[:, :5] @ torch.diag(torch.tensor([9.0, 7.0, -3.0, 2.0, 1.0], dtype=torch.float64)) @ Q[:, :5].T
    res = hutchpp(DenseOperator(low_rank), probes=30)
    assert res.estimate == pytest.approx(16.0, rel=1e-10) and res.standard_error <= 1e-10
    lam = torch.cat([torch.tensor([100.0, 50.0, 30.0], dtype=torch.float64), 0.01 * torch.rand(d - 3, generator=g,
                                                                                                  dtype=torch.float64)])
    A = DenseOperator(Q @ torch.diag(lam) @ Q.T)
    exact = float(lam.sum())
    hu, pp = hutchinson(A, probes=60, seed=4), hutchpp(A, probes=60, seed=4)
    assert abs(pp.estimate - exact) <= 4 * pp.standard_error and abs(hu.estimate - exact) <= 4 * hu.standard_error
    assert pp.standard_error * 20 < hu.standard_error  # the outliers are deflated exactly
    target = hutchinson(A, probes=60, se_target=hu.standard_error / 2, seed=5)
    assert target.standard_error <= hu.standard_error / 2 and target.n_matvec > 60


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_slq_quadrature_is_exact_for_low_moments(case):
    H, evals, scale = dense_spectrum(case)
    op = case.objective().hessian()
    d = op.dim
    g = torch.Generator().manual_seed(11)
    V = (2 * torch.randint(0, 2, (d, 3), generator=g) - 1).to(torch.float64)
    m = min(5, d)
    sd = spectral_density(op, probes=V, steps=m)
    assert len(sd.nodes) == 3 and sd.n_matvec <= 3 * m and sd.dim == d
    for l in range(3):
        v = V[:, l] / math.sqrt(d)
        w, t = sd.weights[l], sd.nodes[l]
        assert w.sum() == pytest.approx(1.0, abs=1e-12)
        Hp_v = v.clone()
        for p in range(2 * m):  # Gauss quadrature with m nodes: exact to degree 2m - 1
            assert float(np.sum(w * t ** p)) == pytest.approx(float(v @ Hp_v), rel=1e-8, abs=1e-9 * scale ** p)
            Hp_v = H @ Hp_v
    assert sd.moment(1) == pytest.approx(float(np.mean([float(V[:, l] @ H @ V[:, l]) / d for l in range(3)])),
                                         rel=1e-9, abs=1e-12)
    # With d steps every node is an eigenvalue and the density integrates to 1.
    full = spectral_density(op, probes=2, steps=d, seed=3)
    for t in full.nodes:
        assert np.min(np.abs(t[:, None] - evals[None, :]), axis=1).max() <= 1e-7 * scale
    grid = np.linspace(evals.min() - scale, evals.max() + scale, 20001)
    dens = full.density(grid, sigma=0.05 * scale)
    assert float(np.sum(dens) * (grid[1] - grid[0])) == pytest.approx(1.0, abs=1e-3)


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_preconditioned_operator_matches_dense(case):
    H, _, _ = dense_spectrum(case)
    d = H.shape[0]
    g = torch.Generator().manual_seed(5)
    diag = 0.5 + 1.5 * torch.rand(d, generator=g, dtype=torch.float64)
    shift = 0.25 * torch.rand(d, generator=g, dtype=torch.float64)
    for c in (0.3, shift):
        ref = diag[:, None] * (H + torch.diag(torch.as_tensor(c, dtype=torch.float64).expand(d))) * diag[None, :]
        op = PreconditionedOperator(case.objective().hessian(), diag, c)
        assert rel(op.dense(), ref) <= RTOL
        top = lanczos(op, k=min(2, d), tol=1e-12, max_iter=d)
        np.testing.assert_allclose(top.eigenvalues, torch.linalg.eigvalsh(ref).numpy()[::-1][:min(2, d)],
                                   rtol=0, atol=1e-9 * float(torch.linalg.eigvalsh(ref).abs().max()))


@pytest.mark.parametrize("case", [c for c in CASES if not c.batch_dependent],
                         ids=[c.name for c in CASES if not c.batch_dependent])
def test_wu_ma_e_matches_dense_per_sample_hessians(case):
    Hs = reference_per_sample_hessians(case)
    n, d = Hs.shape[:2]
    H = Hs.mean(0)
    Sigma = (Hs @ Hs).mean(0) - H @ H
    X, Y = case.data()
    eta, B = 0.05, max(1, n // 3)
    out = wu_ma_e(case.make_model(), X, Y, eta, B, loss_fn=case.loss_fn, mode=case.mode, tol=1e-12)
    gamma = eta ** 2 * (n - B) / (B * (n - 1))
    eye = torch.eye(d, dtype=torch.float64)
    M = (eye - eta * H) @ (eye - eta * H) + gamma * Sigma
    lam = float(torch.linalg.eigvalsh(H)[-1])
    assert out.sharpness == pytest.approx(lam, rel=1e-8, abs=1e-12)
    assert out.nonuniformity == pytest.approx(math.sqrt(max(float(torch.linalg.eigvalsh(Sigma)[-1]), 0.0)), rel=1e-6,
                                              abs=1e-8)
    assert out.sgd_top == pytest.approx(float(torch.linalg.eigvalsh(M)[-1]), rel=1e-8)
    assert out.n_hvp > 0


# -- the two plain entry points, as the user writes the loss ------------------------------------

def _state(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def assert_unchanged(model, before, training):
    after = model.state_dict()
    assert after.keys() == before.keys() and model.training == training
    for key, val in before.items():  # bit-identical, num_batches_tracked included
        assert after[key].dtype == val.dtype and torch.equal(after[key], val), key


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_entry_points_match_dense_hessian_as_written(case):
    from ndgm.analysis.curvature import eigenvalues, trace

    H, _ = reference_hessian(case, as_written=True)  # loss_fn(model(X), Y) itself
    evals = torch.linalg.eigvalsh(H).numpy()
    scale = max(abs(evals).max(), 1e-300)
    model = case.make_model()
    if case.mode != "auto":
        model.train(case.mode == "train")
    before, training = _state(model), model.training
    X, Y = case.data()
    k = min(3, H.shape[0])
    top = eigenvalues(model, case.loss_fn, X, Y, k=k, mode=case.mode)
    low = eigenvalues(model, case.loss_fn, X, Y, k=k, which="smallest", mode=case.mode)
    assert top.dtype == np.float64 and top.shape == (k,) and low.shape == (k,)
    np.testing.assert_allclose(top, evals[::-1][:k], rtol=0, atol=1e-9 * scale)
    np.testing.assert_allclose(low, evals[:k], rtol=0, atol=1e-9 * scale)
    est, se = trace(model, case.loss_fn, X, Y, probes=3 * H.shape[0], mode=case.mode)  # sketch spans all: exact
    assert est == pytest.approx(float(torch.trace(H)), rel=1e-10, abs=1e-12) and se == 0
    est, se = trace(model, case.loss_fn, X, Y, probes=30, method="hutchinson", mode=case.mode, seed=3)
    assert abs(est - float(torch.trace(H))) <= 5 * se + 1e-12 * scale
    assert_unchanged(model, before, training)


# -- the silent errors of issue 16, as regression tests ------------------------------------------

def _ce_case(n=250):
    model = make_mlp(4, (6,), 3, "tanh", seed=21)
    g = torch.Generator().manual_seed(21)
    X = torch.randn(n, 4, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (n,), generator=g)
    return model, X, y


def _dense_top(model, loss_fn, X, y):
    from torch.func import functional_call

    names = [k for k, _ in model.named_parameters()]
    shapes = [p.shape for p in model.parameters()]
    theta = torch.cat([p.detach().reshape(-1) for p in model.parameters()])

    def loss(t):
        return loss_fn(functional_call(model, {k: v.view(s) for k, v, s in
                                               zip(names, t.split([s.numel() for s in shapes]), shapes)}, (X,)), y)

    return float(torch.linalg.eigvalsh(torch.autograd.functional.hessian(loss, theta))[-1])


def test_mean_reduced_loss_gives_the_eigenvalue_of_its_own_objective():
    # Issue 16: ModelObjective(model, nn.CrossEntropyLoss(), X, y) returned lambda / n (0.00118 for
    # 0.607 on the reporter's MLP, n ~ 514), and lambda / (n * 100)-like values with chunk_size=100.
    from ndgm.analysis.curvature import cross_entropy_sum, eigenvalues

    model, X, y = _ce_case(120)
    n = X.shape[0]
    lam_mean = _dense_top(model, nn.CrossEntropyLoss(), X, y)
    lam_sum = _dense_top(model, nn.CrossEntropyLoss(reduction="sum"), X, y)
    assert lam_sum == pytest.approx(n * lam_mean, rel=1e-12)
    for chunk in (None, 50):  # a last chunk of 20 rows
        for loss_fn in (nn.CrossEntropyLoss(), nn.CrossEntropyLoss(reduction="sum"), cross_entropy_sum):
            obj = ModelObjective(model, loss_fn, X, y, chunk_size=chunk)  # default: the mean objective
            res = lanczos(obj.hessian(), k=1, tol=1e-12)
            assert res.eigenvalues[0] == pytest.approx(lam_mean, rel=1e-9), (chunk, loss_fn)
            assert res.objective["reduction"] == "mean"
            tot = lanczos(ModelObjective(model, loss_fn, X, y, chunk_size=chunk, reduction="sum").hessian(), k=1,
                          tol=1e-12)
            assert tot.eigenvalues[0] == pytest.approx(lam_sum, rel=1e-9) and tot.objective["reduction"] == "sum"
        # as written: each loss is its own objective
        assert eigenvalues(model, nn.CrossEntropyLoss(), X, y, chunk_size=chunk)[0] == pytest.approx(lam_mean, rel=1e-9)
        assert eigenvalues(model, nn.CrossEntropyLoss(reduction="sum"), X, y,
                           chunk_size=chunk)[0] == pytest.approx(lam_sum, rel=1e-9)


def test_batchnorm_train_mode_is_not_mutated_and_modes_are_recorded():
    # Issue 16: sharpness of a train-mode CNN with BatchNorm took num_batches_tracked 0 -> 27 and
    # shifted running_mean by 0.30; train- and eval-mode eigenvalues differ (6.19 vs 5.22 there).
    from curvature_cases import SmallCNN
    from ndgm.analysis.curvature import eigenvalues, preconditioned_sharpness, trace

    model = SmallCNN(9).train()
    g = torch.Generator().manual_seed(31)
    X = torch.randn(12, 1, 5, 5, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (12,), generator=g)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    model(X).sum().backward()  # give Adam a state without changing the buffers' values below
    opt.step()
    opt.zero_grad()
    before = _state(model)
    calls = []
    for mode in ("train", "eval", "auto"):
        calls.append(eigenvalues(model, nn.CrossEntropyLoss(), X, y, k=2, mode=mode))
        trace(model, nn.CrossEntropyLoss(), X, y, probes=9, mode=mode)
        obj = ModelObjective(model, nn.CrossEntropyLoss(), X, y, mode=mode)
        obj.value_and_grad()
        spectral_density(obj.hessian(), probes=2, steps=4)
        hutchinson(obj.hessian(), probes=3)
        preconditioned_sharpness(obj, opt)
        tr = SharpnessTracker(0.1, every=1, bottom=1, trace_probes=3, optimizer=opt, objective=obj)
        tr(0)
        assert tr.rows_[0]["objective_mode"] == ("eval" if mode == "eval" else "train")
        assert tr.rows_[0]["objective_reduction"] == "mean"
        assert_unchanged(model, before, True)
    assert int(before["bn.num_batches_tracked"]) == 3  # two batches at construction, one above
    train, eval_, auto = calls
    np.testing.assert_array_equal(train, auto)  # 'auto' follows model.training
    assert abs(train[0] - eval_[0]) > 0.05 * abs(eval_[0])  # the two modes are different objectives
    for mode, got in (("train", train), ("eval", eval_)):
        m = SmallCNN(9)
        m.load_state_dict(before)
        m.train(mode == "train")
        assert got[0] == pytest.approx(_dense_top(m, nn.CrossEntropyLoss(), X, y), rel=1e-9)


def test_float32_model_lanczos_accumulates_in_float64():
    # Issue 16: lanczos(obj.matvec(), obj.dim, k=1) on a float32 model failed with a dtype error.
    model = make_mlp(5, (16,), 2, "tanh", seed=41, dtype=torch.float32)
    g = torch.Generator().manual_seed(41)
    X = torch.randn(64, 5, generator=g)
    Y = torch.randn(64, 2, generator=g)
    obj = ModelObjective(model, nn.MSELoss(), X, Y)
    res = lanczos(obj.matvec(), obj.dim, k=2, tol=1e-5)
    assert res.converged and res.eigenvalues.dtype == np.float64 and res.eigenvectors.dtype == torch.float64
    m64 = make_mlp(5, (16,), 2, "tanh", seed=41, dtype=torch.float64)
    m64.load_state_dict({k: v.double() for k, v in model.state_dict().items()})
    H = ModelObjective(m64, nn.MSELoss(), X.double(), Y.double()).dense_hessian()
    ref = torch.linalg.eigvalsh(H).numpy()[::-1][:2]
    np.testing.assert_allclose(res.eigenvalues, ref, rtol=1e-4)  # float32 products, float64 basis
    from ndgm.analysis.curvature import eigenvalues

    np.testing.assert_allclose(eigenvalues(model, nn.MSELoss(), X, Y, k=2, tol=1e-5), ref, rtol=1e-4)
    assert next(model.parameters()).dtype == torch.float32


# -- preconditioned sharpness from the optimizer's state -----------------------------------------

def _trained(opt_cls, **kw):
    model = make_mlp(3, (5,), 2, "tanh", seed=51)
    g = torch.Generator().manual_seed(51)
    X = torch.randn(20, 3, generator=g, dtype=torch.float64)
    Y = torch.randn(20, 2, generator=g, dtype=torch.float64)
    opt = opt_cls(model.parameters(), **kw)
    for _ in range(4):
        opt.zero_grad()
        nn.MSELoss()(model(X), Y).backward()
        opt.step()
    obj = ModelObjective(model, nn.MSELoss(), X, Y)
    return model, opt, obj


@pytest.mark.parametrize("name", ["adam", "adam-wd", "rmsprop", "sgd"])
def test_preconditioned_sharpness_matches_dense_from_optimizer_state(name):
    from ndgm.analysis.curvature import preconditioned_sharpness

    lr = 0.01
    if name.startswith("adam"):
        wd = 0.1 if name == "adam-wd" else 0.0
        model, opt, obj = _trained(torch.optim.Adam, lr=lr, betas=(0.9, 0.99), eps=1e-6, weight_decay=wd)
        P = []
        for p in model.parameters():
            st = opt.state[p]
            t = float(st["step"])
            P.append(((1 - 0.9 ** t) * ((st["exp_avg_sq"] / (1 - 0.99 ** t)).sqrt() + 1e-6)).reshape(-1))
        threshold, shift = 2 * 1.9 / (lr * 0.1), wd
    elif name == "rmsprop":
        model, opt, obj = _trained(torch.optim.RMSprop, lr=lr, alpha=0.9, momentum=0.5)
        P = [(opt.state[p]["square_avg"].sqrt() + 1e-8).reshape(-1) for p in model.parameters()]
        threshold, shift = 2 * 1.5 / lr, 0.0
    else:
        model, opt, obj = _trained(torch.optim.SGD, lr=lr, momentum=0.9)
        P = [torch.ones(p.numel(), dtype=torch.float64) for p in model.parameters()]
        threshold, shift = 2 * 1.9 / lr, 0.0
    Pinv_half = torch.cat(P).rsqrt()
    H = obj.dense_hessian()
    S = Pinv_half[:, None] * (H + shift * torch.eye(H.shape[0], dtype=torch.float64)) * Pinv_half[None, :]
    ref = torch.linalg.eigvalsh(S).numpy()[::-1][:2]
    res = preconditioned_sharpness(obj, opt, k=2, tol=1e-12)
    np.testing.assert_allclose(res.eigenvalues, ref, rtol=1e-9)
    assert res.threshold == pytest.approx(threshold, rel=1e-12) and res.ratio == pytest.approx(ref[0] / threshold)
    assert res.n_matvec > 0 and res.converged


@pytest.mark.parametrize("beta1", [0.0, 0.5, 0.9])
def test_ema_momentum_threshold_is_the_stability_edge_of_the_frozen_update(beta1):
    # Adam with P frozen on f = a x^2 / 2 (a: preconditioned curvature): u' = b u + (1 - b) a x,
    # x' = x - eta u'. Stable exactly for a < 2 (1 + b) / (eta (1 - b)).
    eta = 0.1
    edge = 2 * (1 + beta1) / (eta * (1 - beta1))

    def final(a):
        x, u = 1.0, 0.0
        for _ in range(4000):
            u = beta1 * u + (1 - beta1) * a * x
            x = x - eta * u
        return abs(x)

    assert final(0.99 * edge) < 1e-3 and final(1.01 * edge) > 1e3


# -- the tracker in a user's training loop --------------------------------------------------------

def test_tracker_for_model_exports_and_matches_dense(tmp_path):
    model, X, y = _ce_case(60)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    loss_fn = nn.CrossEntropyLoss()

    class Writer:  # a SummaryWriter's interface: what the tracker logs, without the package
        scalars: list = []

        def add_scalar(self, tag, value, step):
            self.scalars.append((tag, value, step))

        def flush(self):
            pass

    writer = Writer()
    tracker = SharpnessTracker.for_model(model, loss_fn, X, y, every=5, k=2, tol=1e-10, bottom=1, trace_probes=9,
                                         optimizer=opt, tensorboard=writer)
    refs = {}
    for step in range(11):
        if tracker.due(step):
            refs[step] = _dense_top(model, loss_fn, X, y)
        tracker(step)
        opt.zero_grad()
        loss_fn(model(X), y).backward()
        opt.step()
    tracker.close()
    df = tracker.to_dataframe()
    assert list(df["step"]) == [0, 5, 10] and list(df["threshold"]) == pytest.approx([4.0] * 3)
    np.testing.assert_allclose(df["lambda_1"], [refs[s] for s in (0, 5, 10)], rtol=1e-9)
    assert {"lambda_2", "lambda_min_1", "trace", "trace_se", "precond_lambda_1", "precond_threshold", "hvps",
            "loss"} <= set(df.columns)
    assert df["precond_lambda_1"].to_numpy() == pytest.approx(df["lambda_1"].to_numpy(), rel=1e-8)  # SGD: P = 1
    assert (df["hvps"] > 0).all() and (df["objective_reduction"] == "mean").all()
    import pandas as pd

    back = pd.read_csv(tracker.to_csv(tmp_path / "s.csv"))
    np.testing.assert_allclose(back["lambda_1"], df["lambda_1"], rtol=1e-15)
    logged = {(tag, step): val for tag, val, step in writer.scalars}
    assert [logged[("curvature/lambda_1", s)] for s in (0, 5, 10)] == list(df["lambda_1"])
    assert ("curvature/precond_threshold", 10) in logged and ("curvature/trace_se", 5) in logged
    import importlib.util

    if importlib.util.find_spec("tensorboard") is not None:  # the real writer, from a log directory
        real = SharpnessTracker.for_model(model, loss_fn, X, y, lr=0.5, every=1, tensorboard=tmp_path / "tb")
        real(0)
        real.close()
        assert list((tmp_path / "tb").glob("events.out.tfevents.*"))
    assert tracker.plot(tmp_path / "s.png").stat().st_size > 0


def test_tracker_budget_adapts_the_interval():
    model, X, y = _ce_case(30)
    ticks = iter(np.arange(0, 1000, 1.0))  # every clock call: one second later
    tracker = SharpnessTracker.for_model(model, nn.CrossEntropyLoss(), X, y, lr=0.1, every=2, budget=0.1,
                                         max_every=8, clock=lambda: float(next(ticks)))
    recorded = [s for s in range(40) if tracker(s) is not None]
    # a record and the training before it take one tick each: share 1/2 > budget, every doubles to the cap
    assert recorded[:4] == [0, 2, 6, 14] and set(np.diff(recorded[3:])) == {8}


def test_lanczos_callback_and_progress_bars(capsys):
    lam = torch.tensor([9.0, 7.0, 5.0] + [1.0 / i for i in range(1, 38)], dtype=torch.float64)
    A = DenseOperator(torch.diag(lam))
    seen = []
    res = lanczos(A, k=2, tol=1e-10, callback=lambda j, theta, resid: seen.append((j, theta, resid)),
                  progress=True)
    assert [j for j, _, _ in seen] == list(range(res.n_matvec))  # one call per product
    np.testing.assert_allclose(seen[-1][1], [9.0, 7.0], rtol=1e-12)
    np.testing.assert_array_equal(seen[-1][2], res.residuals)
    assert "lanczos top-2" in capsys.readouterr().err
    model, X, y = _ce_case(30)
    tracker = SharpnessTracker.for_model(model, nn.CrossEntropyLoss(), X, y, lr=0.1, every=1, progress=True)
    tracker(0)
    tracker(1)
    tracker.close()
    assert "sharpness" in capsys.readouterr().err and len(tracker.rows_) == 2
