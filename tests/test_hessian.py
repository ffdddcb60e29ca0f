"""The one Hessian operator against dense float64 references, over the shared case lists.

Problems: `cases.PROBLEMS` (reference: `torch.autograd.functional.hessian` of one row's
value). Modules: `curvature_cases.CASES` (reference: `torch.func.hessian` of the plain loss).
No operator is checked against itself.
"""

import math

import numpy as np
import pytest
import torch

from cases import PROBLEMS, batch_points
from curvature_cases import CASE_IDS, CASES, reference_hessian, reference_per_sample_hessians
from ndgm.analysis.curvature import lanczos, power_iteration
from ndgm.analysis.gdmap import hessian, jacobian_det
from ndgm.analysis.hessian import (DenseOperator, FunctionHessian, GDJacobian, MatvecOperator, ModelHessian,
                                   ParameterFlattener, PerSampleHessian, ProblemHessian)
from ndgm.errors import NdgmError

pytestmark = pytest.mark.usefixtures("one_thread")

RTOL = 1e-8
ETA = 0.37


def rel(a, b):
    nb = float(torch.linalg.vector_norm(b))
    return float(torch.linalg.vector_norm(a - b)) / nb if nb else float(torch.linalg.vector_norm(a))


def problem_reference(problem, W):
    """``(K, d, d)``: each row's Hessian, evaluated in place (a row may carry its own penalty weight)."""
    return torch.stack([
        torch.autograd.functional.hessian(lambda w: problem.value(torch.cat([W[:k], w[None], W[k + 1:]]))[k], W[k])
        for k in range(W.shape[0])])


def gd_reference(H, eta):
    """``I - eta H``, ``det`` and ``log|det|`` from the eigenvalues of the symmetrised ``H``."""
    eye = torch.eye(H.shape[-1], dtype=H.dtype)
    eta_b = eta[..., None, None] if torch.as_tensor(eta).ndim else eta
    lam = torch.linalg.eigvalsh(0.5 * (H + H.transpose(-1, -2)))
    eta_l = eta[..., None] if torch.as_tensor(eta).ndim else eta
    factors = 1 - eta_l * lam
    return eye - eta_b * H, factors.prod(-1), factors.abs().log().sum(-1)


def randn(*shape, seed=7):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


# -- batched problems ----------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(PROBLEMS))
def test_problem_products_and_dense_match_reference(name):
    problem = PROBLEMS[name]()
    W = batch_points(problem)
    K, d = W.shape
    ref = problem_reference(problem, W)
    op = ProblemHessian(problem, W)
    assert op.shape == (K, d, d) and op.dtype == torch.float64
    dense = op.dense()
    torch.testing.assert_close(dense, ref, rtol=1e-12, atol=1e-12)
    assert op.n_products == d and torch.equal(hessian(problem, W), dense)
    V = randn(K, d)
    expect = torch.einsum("kij,kj->ki", ref, V)
    for got in (op.matvec(V), op @ V, op(V)):
        assert rel(got, expect) <= RTOL
    shared = randn(d, seed=8)
    assert rel(op @ shared, torch.einsum("kij,j->ki", ref, shared)) <= RTOL
    block = randn(K, d, 3, seed=9)
    assert rel(op @ block, ref @ block) <= RTOL
    assert op.n_products == d + 3 + 1 + 3
    flat = op.to_scipy()
    x = randn(K * d, seed=10).numpy()
    np.testing.assert_allclose(flat @ x, (ref @ torch.as_tensor(x).view(K, d, 1)).reshape(-1).numpy(),
                               rtol=RTOL, atol=1e-12)


@pytest.mark.parametrize("name", sorted(PROBLEMS))
def test_problem_gd_jacobian_and_log_det_match_reference(name):
    problem = PROBLEMS[name]()
    W = batch_points(problem)
    K, d = W.shape
    ref = problem_reference(problem, W)
    for eta in (ETA, torch.tensor([0.1, ETA, 2.0], dtype=torch.float64)):
        J_ref, det_ref, logdet_ref = gd_reference(ref, eta)
        J = ProblemHessian(problem, W).gd_jacobian(eta)
        assert isinstance(J, GDJacobian) and J.shape == (K, d, d)
        torch.testing.assert_close(J.dense(), J_ref, rtol=1e-12, atol=1e-12)
        V = randn(K, d)
        assert rel(J @ V, torch.einsum("kij,kj->ki", J_ref, V)) <= RTOL
        torch.testing.assert_close(J.det(), det_ref, rtol=1e-9, atol=1e-12)
        assert torch.equal(jacobian_det(problem, W, eta), J.det())
        torch.testing.assert_close(J.log_abs_det(), logdet_ref, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("name", sorted(PROBLEMS))
def test_lanczos_on_problem_blocks(name):
    problem = PROBLEMS[name]()
    W = batch_points(problem)
    ref = problem_reference(problem, W)
    op = ProblemHessian(problem, W)
    for k in range(W.shape[0]):
        evals = torch.linalg.eigvalsh(0.5 * (ref[k] + ref[k].T)).numpy()[::-1]
        top = min(2, op.dim)
        blk = op.block(k)
        res = lanczos(blk, k=top, tol=1e-12)
        scale = max(abs(evals).max(), 1.0)
        np.testing.assert_allclose(res.eigenvalues, evals[:top], rtol=RTOL, atol=1e-10 * scale)
        assert res.n_matvec == blk.n_products
    with pytest.raises(NdgmError, match="block"):
        lanczos(op, k=1)


# -- modules -------------------------------------------------------------------------------

@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
@pytest.mark.parametrize("chunk_size", [4096, 3])
def test_model_products_and_dense_match_reference(case, chunk_size):
    H, theta = reference_hessian(case)
    obj = case.objective(chunk_size=chunk_size)
    op = obj.hessian()
    assert isinstance(op, ModelHessian) and op.shape == H.shape and torch.equal(op.theta, theta)
    for i in range(3):
        v = randn(op.dim, seed=i)
        assert rel(op @ v, H @ v) <= RTOL
    V = randn(op.dim, 4, seed=11)
    HV = op.matmat(V)
    assert rel(HV, H @ V) <= RTOL
    for j in range(4):  # a column of a block is the product with that vector alone
        assert torch.equal(HV[:, j], op.matvec(V[:, j].contiguous()))
    assert op.n_products == obj.n_hvp == 3 + 4 + 4
    assert rel(op.dense(), H) <= RTOL
    assert rel(obj.dense_hessian(), H) <= RTOL and rel(obj.hvp(V[:, 0]), H @ V[:, 0]) <= RTOL
    f = FunctionHessian(lambda t: sum(obj.chunk_loss(t, Xc, Yc) for Xc, Yc in obj.chunks()), theta)
    assert rel(f.dense(), H) <= RTOL


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_model_gd_jacobian_log_det_and_scipy_match_reference(case):
    H, theta = reference_hessian(case)
    op = case.objective(chunk_size=5).hessian(theta)
    J_ref, det_ref, logdet_ref = gd_reference(H, ETA)
    J = op.gd_jacobian(ETA)
    assert rel(J.dense(), J_ref) <= RTOL
    v = randn(op.dim)
    assert rel(J @ v, J_ref @ v) <= RTOL
    assert float(J.det()) == pytest.approx(float(det_ref), rel=1e-7, abs=1e-12)
    assert float(J.log_abs_det()) == pytest.approx(float(logdet_ref), rel=1e-8, abs=1e-8)
    # Exactly at eta = 1 / lambda_max the map is singular.
    lam = float(torch.linalg.eigvalsh(H)[-1])
    assert abs(float(op.gd_jacobian(1 / lam).det())) <= 1e-8 * abs(float(det_ref)) + 1e-12
    lo = op.to_scipy()
    x = randn(op.dim, 2, seed=3).numpy()
    np.testing.assert_allclose(lo @ x, (H @ torch.as_tensor(x)).numpy(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(lo.matvec(x[:, 0]), (H @ torch.as_tensor(x[:, 0])).numpy(), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_lanczos_and_power_iteration_on_the_operator(case):
    H, _ = reference_hessian(case)
    evals = torch.linalg.eigvalsh(H).numpy()
    op = case.objective(chunk_size=4).hessian()
    k = min(3, op.dim)
    res = lanczos(op, k=k, tol=1e-12)
    assert res.converged and res.n_matvec == op.n_products
    np.testing.assert_allclose(res.eigenvalues, evals[::-1][:k], rtol=RTOL, atol=1e-10 * abs(evals).max())
    by_mag = evals[np.argsort(-abs(evals))]
    pw = power_iteration(op, tol=1e-14, max_iter=300)
    ratio = abs(by_mag[1]) / abs(by_mag[0])
    bound = max(ratio ** (2 * pw.n_matvec), 1e-12) * 10
    assert abs(pw.eigenvalues[0] - by_mag[0]) <= bound * abs(by_mag[0]) + 1e-12
    assert pw.n_matvec == op.n_products - res.n_matvec


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_per_sample_hessians_match_reference(case):
    obj = case.objective(chunk_size=4)
    if case.batch_dependent:  # BatchNorm with batch statistics: a row has no Hessian of its own
        with pytest.raises(NdgmError, match="per-sample Hessians need each row on its own"):
            obj.per_sample_hessian()
        return
    Hs = reference_per_sample_hessians(case)  # (n, d, d)
    H, _ = reference_hessian(case)
    op = obj.per_sample_hessian()
    n, d = Hs.shape[:2]
    assert isinstance(op, PerSampleHessian) and op.shape == (n, d, d)
    v = randn(d)
    assert rel(op @ v, Hs @ v) <= RTOL  # shared vector: every H_i v
    V = randn(n, d, seed=2)
    assert rel(op @ V, torch.einsum("nij,nj->ni", Hs, V)) <= RTOL  # paired: H_i v_i
    B = randn(n, d, 2, seed=3)
    assert rel(op @ B, Hs @ B) <= RTOL
    dense = op.dense()
    assert rel(dense, Hs) <= RTOL
    assert rel(dense.sum(0) / obj.scale, H) <= RTOL  # the objective's Hessian is sum_i H_i / n
    J_ref, det_ref, _ = gd_reference(Hs, ETA)  # SGD maps with batch size 1
    assert rel(op.gd_jacobian(ETA).dense(), J_ref) <= RTOL
    torch.testing.assert_close(op.gd_jacobian(ETA).det(), det_ref, rtol=1e-7, atol=1e-12)


def test_sum_reduction_scales_the_operator():
    case = CASES[0]
    H, _ = reference_hessian(case)
    X, Y = case.data()
    from ndgm.analysis.hessian import ModelLoss

    op = ModelLoss(case.make_model(), case.loss_fn, X, Y, reduction="sum").hessian()
    assert rel(op.dense(), H * X.shape[0]) <= RTOL


# -- the base, on plain matrices --------------------------------------------------------------

def test_base_operator_on_dense_and_callable_matrices():
    A = randn(3, 5, 5)
    A = A + A.transpose(-1, -2)
    op = DenseOperator(A)
    assert op.shape == (3, 5, 5) and torch.equal(op.dense(), A)
    V = randn(3, 5, seed=1)
    torch.testing.assert_close(op @ V, (A @ V[..., None])[..., 0], rtol=0, atol=0)
    eta = torch.tensor([0.1, 0.2, 0.3], dtype=torch.float64)
    J = op.gd_jacobian(eta)
    torch.testing.assert_close(J.dense(), torch.eye(5, dtype=torch.float64) - eta[:, None, None] * A)
    torch.testing.assert_close(J.log_abs_det(), torch.linalg.slogdet(J.dense()).logabsdet)
    one = op.block(1)
    assert one.shape == (5, 5)
    torch.testing.assert_close(one.dense(), A[1].T, rtol=0, atol=0)  # rows: products of unit vectors
    mv = MatvecOperator(lambda v: A[2] @ v, 5)
    torch.testing.assert_close(mv.dense(), A[2].T, rtol=0, atol=0)
    res = lanczos(lambda v: A[2] @ v, 5, 5, tol=1e-12)  # a plain callable still works
    np.testing.assert_allclose(np.sort(res.eigenvalues), torch.linalg.eigvalsh(A[2]).numpy(), rtol=1e-10)


def test_bad_inputs_raise_ndgm_error():
    op = DenseOperator(torch.eye(3, dtype=torch.float64).expand(2, 3, 3))
    with pytest.raises(NdgmError, match="v must have shape"):
        op.matvec(torch.zeros(4, dtype=torch.float64))
    with pytest.raises(NdgmError, match="V must have shape"):
        op.matmat(torch.zeros(3, 3, 1, dtype=torch.float64))
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(NdgmError, match="eta"):
            op.gd_jacobian(bad)
    with pytest.raises(NdgmError, match="eta must be a scalar or have shape"):
        op.gd_jacobian(torch.ones(3, dtype=torch.float64))
    with pytest.raises(NdgmError, match="block index"):
        op.block(2)
    with pytest.raises(NdgmError, match="dim is required"):
        lanczos(lambda v: v)
    with pytest.raises(NdgmError, match="does not match"):
        lanczos(op.block(0), 4)
    with pytest.raises(NdgmError, match="shape"):
        ProblemHessian(PROBLEMS["quadratic"](), torch.zeros(6, dtype=torch.float64))
    obj = CASES[3].objective()
    with pytest.raises(NdgmError, match="theta must have shape"):
        obj.hessian(torch.zeros(obj.dim + 1, dtype=torch.float64))


def test_parameter_flattener_round_trip_and_functional_call():
    case = CASES[0]
    model = case.make_model()
    model[0].bias.requires_grad_(False)  # frozen parameters are not coordinates
    flat = ParameterFlattener(model)
    assert "0.bias" not in flat.names and flat.dim == sum(p.numel() for p in model.parameters() if p.requires_grad)
    theta = flat.flatten()
    parts = flat.unflatten(theta)
    assert list(parts) == flat.names and all(parts[k].shape == model.get_parameter(k).shape for k in flat.names)
    torch.testing.assert_close(flat.flatten(parts), theta, rtol=0, atol=0)
    X, _ = case.data()
    torch.testing.assert_close(flat.functional_call(theta, X), model(X), rtol=0, atol=0)
    before = {k: p.detach().clone() for k, p in model.named_parameters()}
    flat.functional_call(2 * theta, X)
    assert all(torch.equal(before[k], p) for k, p in model.named_parameters())  # not written
    flat.write(2 * theta)
    torch.testing.assert_close(flat.flatten(), 2 * theta, rtol=0, atol=0)
    assert torch.equal(model[0].bias, before["0.bias"])


def test_problem_hessian_of_a_linear_loss_is_zero_without_a_graph():
    problem = PROBLEMS["toy-lasso"]()  # autodiff's gradient of |w| is sign(w): no graph, Hessian 0
    W = batch_points(problem)
    op = ProblemHessian(problem, W)
    assert float(op.dense().abs().max()) == 0.0
    assert float(op.gd_jacobian(ETA).log_abs_det().abs().max()) == 0.0
    assert math.isclose(float(op.gd_jacobian(ETA).det()[0]), 1.0)
