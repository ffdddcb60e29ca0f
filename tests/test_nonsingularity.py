"""The non-singularity tools and experiment: numbers against closed forms and dense references.

* `BatchedModelHessian` (K points at once) and `model_gradients` against `torch.func` references
  at several points of every case in the shared list `curvature_cases.CASES` (which also runs the
  new architectures through every other operator test);
* `scan_step_sizes`: ``log|det(I - eta H)|`` against the LU log-determinant and a product
  formula, singular exactly at ``eta = 1/lambda``, the partial-spectrum (Lanczos) rule;
* `region_spectrum`: the constant Hessian of a linear model (every ``1/lambda`` is exceptional,
  with known eigenvalues), a constructed moving spectrum, the quartic's ``eta = 1/2``;
* compositions: ``log|det D(G^T)| = sum_t log|det(I - eta H(theta_t))|`` against the Jacobian of
  the unrolled T-step map;
* the dead ReLU layer: the Hessian is exactly ``I`` on the output bias and 0 elsewhere;
* the experiment at a fixed seed: counts, the saddle's escape fraction with its interval and
  verdict, same seed same bits.
"""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from curvature_cases import CASE_IDS, CASES, reference_hessian
from ndgm.analysis.gdmap import module_gd_map, region_spectrum, scan_step_sizes
from ndgm.analysis.hessian import (BatchedModelHessian, DenseOperator, ModelLoss, ParameterFlattener, mse_sum,
                                   model_gradients)
from ndgm.errors import NdgmError
from ndgm.nets.small import (ARCHITECTURES, NS_ACTIVATIONS, SmallCNN, SmallMLP, TinyAttention, hidden_preactivations,
                             kill_last_hidden_layer, make_small_net)
from ndgm.problems import Quartic1D

pytestmark = pytest.mark.usefixtures("one_thread")

EPS = np.finfo(np.float64).eps


def randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def reference_at(obj, theta):
    """Dense Hessian and gradient at ``theta`` of the objective's value by plain autograd: a
    double backward, row by row (a different differentiation from the operator's
    `torch.func` transforms; at the model's own point the operator is also checked against
    `reference_hessian`). Not `torch.func.hessian`: on `nn.MultiheadAttention` (torch 2.13)
    it disagrees with central differences of the gradient by 0.45 away from the module's
    own parameters, where autograd agrees with them to 1e-10."""

    def value(t):
        return sum(obj.chunk_loss(t, Xc, Yc) for Xc, Yc in obj.chunks())

    t = theta.detach().clone().requires_grad_(True)
    g = torch.autograd.grad(value(t), t, create_graph=True)[0]
    H = torch.stack([torch.autograd.grad(g[i], t, retain_graph=True)[0] for i in range(t.numel())])
    return H.detach(), g.detach()


def has_batchnorm(case) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in case.make_model().modules())


# -- the batched operator -------------------------------------------------------------------

@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_batched_hessian_and_gradients_match_reference_at_several_points(case):
    if has_batchnorm(case):
        pytest.skip("BatchedModelHessian shares the module's buffers across the points (no BatchNorm statistics)")
    obj = case.objective()
    H0, theta = reference_hessian(case)
    d = theta.numel()
    thetas = torch.stack([theta, theta + 0.1 * randn(d, seed=1), theta - 0.2 * randn(d, seed=2)])
    refs = [reference_at(obj, t) for t in thetas]
    op = BatchedModelHessian(obj, thetas, max_vectors=7)  # blocks split into several vectorised calls
    assert op.shape == (3, obj.dim, obj.dim)
    dense = op.dense()
    torch.testing.assert_close(dense[0], H0, rtol=1e-9, atol=1e-11)  # the independent reference
    for k, (H, _) in enumerate(refs):
        torch.testing.assert_close(dense[k], H, rtol=1e-9, atol=1e-11)
    V = randn(3, obj.dim, 2, seed=3)
    expect = torch.stack([H @ V[k] for k, (H, _) in enumerate(refs)])
    torch.testing.assert_close(op @ V, expect, rtol=1e-9, atol=1e-11)
    J = op.gd_jacobian(torch.tensor([0.1, 0.5, 2.0], dtype=torch.float64))  # one step size per point
    eye = torch.eye(obj.dim, dtype=torch.float64)
    for k, eta in enumerate((0.1, 0.5, 2.0)):
        torch.testing.assert_close(J.dense()[k], eye - eta * refs[k][0], rtol=1e-9, atol=1e-11)
    grads = model_gradients(case.objective(chunk_size=4), thetas)
    torch.testing.assert_close(grads, torch.stack([g for _, g in refs]), rtol=1e-11, atol=1e-13)
    G = module_gd_map(obj, thetas, 0.3)
    torch.testing.assert_close(G, thetas - 0.3 * grads, rtol=0, atol=1e-14)


def test_batched_hessian_chunked_data_and_bad_shapes():
    case = CASES[0]
    theta = case.objective().params_vector()
    full = BatchedModelHessian(case.objective(), theta[None]).dense()
    chunked = BatchedModelHessian(case.objective(chunk_size=3), theta[None]).dense()
    torch.testing.assert_close(chunked, full, rtol=1e-12, atol=1e-14)
    with pytest.raises(NdgmError, match="thetas must have shape"):
        BatchedModelHessian(case.objective(), theta)
    with pytest.raises(NdgmError, match="thetas must have shape"):
        model_gradients(case.objective(), theta[None, :-1])


# -- step-size scans -------------------------------------------------------------------------

def test_scan_log_det_matches_lu_and_product_formula():
    d = 30
    Q, _ = torch.linalg.qr(randn(d, d, seed=4))
    lam = torch.linspace(-3.0, 8.0, d, dtype=torch.float64)
    H = Q @ torch.diag(lam) @ Q.T
    etas = np.array([[0.01, 0.2, 0.77, 3.0]])
    scan = scan_step_sizes(lam.numpy()[None], etas)
    for j, eta in enumerate(etas[0]):
        lu = float(DenseOperator(H).gd_jacobian(float(eta)).log_abs_det())
        assert scan.log_abs_det[0, j] == pytest.approx(lu, rel=1e-10, abs=1e-10)
        factors = 1 - eta * lam.numpy()
        assert scan.log_abs_det[0, j] == pytest.approx(math.log(abs(np.prod(factors))), rel=1e-12)
        assert scan.sigma_min[0, j] == pytest.approx(np.abs(factors).min(), rel=1e-15)
        assert scan.tol[0, j] == pytest.approx(np.abs(factors).max() * d * EPS, rel=1e-15)
    assert not scan.singular.any()


def test_scan_is_singular_exactly_at_one_over_an_eigenvalue():
    lam = np.array([[-1.0, 0.5, 2.0, 4.0]])  # exceptional steps 2, 0.5, 0.25 (exact in binary)
    scan = scan_step_sizes(lam, np.array([[2.0, 0.5, 0.25, 0.5 * (1 + 1e-9), 0.3]]))
    assert scan.singular.tolist() == [[True, True, True, False, False]]
    assert scan.sigma_min[0, :3].tolist() == [0.0, 0.0, 0.0]
    assert np.isneginf(scan.log_abs_det[0, :3]).all()
    # 1e-9 off the exceptional step: sigma_min = 2e-9 * ... far above the tolerance 4 eps sigma_max.
    assert scan.sigma_min[0, 3] == pytest.approx(2.0 * 0.5e-9, rel=1e-6)
    assert scan.margin[0, 3] > 1e5
    with pytest.raises(NdgmError, match="etas must be finite and > 0"):
        scan_step_sizes(lam, np.array([[0.0]]))


def test_partial_spectrum_decides_only_below_one_over_its_smallest_top_eigenvalue():
    lam = np.linspace(-2.0, 10.0, 50)
    part = np.concatenate([lam[:5], lam[-5:]])  # bottom 5 and top 5, like Lanczos at both ends
    c = lam[-5]
    etas = np.geomspace(0.01, 10, 40)[None]
    full = scan_step_sizes(lam[None], etas)
    partial = scan_step_sizes(part[None], etas, dim=50, complete_from=np.array([c]))
    decided = partial.decided[0]
    assert decided.tolist() == (etas[0] * c <= 1).tolist() and decided.any() and not decided.all()
    np.testing.assert_array_equal(partial.sigma_min[0, decided], full.sigma_min[0, decided])
    np.testing.assert_array_equal(partial.sigma_max, full.sigma_max)  # the extremes are present
    assert np.isnan(partial.log_abs_det).all()
    err = scan_step_sizes(part[None], etas, dim=50, complete_from=np.array([c]), eig_error=np.array([1e-6]))
    np.testing.assert_allclose(err.tol[0], np.maximum(full.tol[0], etas[0] * 1e-6), rtol=1e-15)


# -- regions ------------------------------------------------------------------------------------

def test_linear_model_every_eigenvalue_is_exceptional_with_known_value():
    """Squared loss of a linear model: H = [X 1]^T [X 1] / n (per output) everywhere, so every
    eta = 1/lambda of that matrix is exceptional on the whole space."""
    g = torch.Generator().manual_seed(0)
    X = torch.randn(20, 3, generator=g, dtype=torch.float64)
    Y = torch.randn(20, 2, generator=g, dtype=torch.float64)
    model = nn.Linear(3, 2, dtype=torch.float64)
    loss = ModelLoss(model, mse_sum, X, Y)
    Xt = torch.cat([X, torch.ones(20, 1, dtype=torch.float64)], 1)
    known = torch.linalg.eigvalsh(Xt.T @ Xt / 20).numpy()
    theta = loss.params_vector()
    ball = torch.cat([theta[None], theta + randn(4, theta.numel(), seed=5)])  # far apart: a big region
    H = BatchedModelHessian(loss, ball).dense()
    rep = region_spectrum(torch.linalg.eigvalsh(H).numpy(), lam_min=1e-3)
    assert rep.persistent.all() and rep.candidates.size == 8  # 4 eigenvalues, each once per output
    np.testing.assert_allclose(rep.steps, np.repeat(np.sort(1 / known), 2), rtol=1e-12)
    assert rep.min_ratio <= 1.0


def test_region_spectrum_displacement_of_a_constructed_spectrum():
    rows = np.array([[2.0, 3.0, 7.0], [2.0, 3.001, 7.0 + 4e-3], [2.0, 3.002, 7.0 - 1e-3]])
    rep = region_spectrum(rows, lam_min=2.5)
    np.testing.assert_array_equal(rep.candidates, [3.0, 7.0])
    np.testing.assert_allclose(rep.displacement, [0.002, 0.004], rtol=1e-9)
    assert not rep.persistent.any() and rep.steps.size == 0
    rep2 = region_spectrum(rows, lam_min=1.0)
    assert rep2.steps.tolist() == [0.5] and rep2.rounding == pytest.approx(3 * EPS * 7.004)
    q = Quartic1D()
    t = torch.tensor([3.0, 2.1, 5.5, -4.0], dtype=torch.float64)
    assert region_spectrum(q.hessian_1d(t)[:, None].numpy(), 0.01).steps.tolist() == [0.5]
    with pytest.raises(NdgmError, match="lam_min"):
        region_spectrum(rows, 0.0)


# -- compositions -------------------------------------------------------------------------------

@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_composition_log_det_is_the_sum_along_the_trajectory(arch):
    g = torch.Generator().manual_seed(1)
    X = torch.randn(12, 4, generator=g, dtype=torch.float64)
    Y = F.one_hot(torch.randint(0, 3, (12,), generator=g), 3).to(torch.float64)
    model = make_small_net(arch, "gelu", in_side=2, out_dim=3, seed=2, width=3)
    loss = ModelLoss(model, mse_sum, X, Y)
    theta0, eta, T = loss.params_vector(), 0.4, 3

    def step(t):
        return t - eta * torch.func.grad(lambda s: loss.chunk_loss(s, X, Y))(t)

    def unrolled(t):
        for _ in range(T):
            t = step(t)
        return t

    ref = torch.linalg.slogdet(torch.func.jacrev(unrolled)(theta0)).logabsdet
    th, total = theta0[None], 0.0
    for _ in range(T):
        H = BatchedModelHessian(loss, th).dense()
        total += float(scan_step_sizes(torch.linalg.eigvalsh(H).numpy(), np.array([[eta]])).log_abs_det[0, 0])
        th = module_gd_map(loss, th, eta)
    assert total == pytest.approx(float(ref), rel=1e-9, abs=1e-9)
    torch.testing.assert_close(th[0], unrolled(theta0), rtol=1e-12, atol=1e-14)


# -- the networks -----------------------------------------------------------------------------

def test_architectures_sizes_flat_inputs_and_activations():
    x = randn(5, 16)
    sizes = {"mlp": 16 * 8 + 8 + 8 * 10 + 10, "cnn": 4 * 9 + 4 + 16 * 10 + 10,
             "attention": 4 * 4 + 4 + 3 * (4 * 4 + 4) + 4 * 8 + 8 + 8 * 10 + 10}
    for arch in ARCHITECTURES:
        for act in NS_ACTIVATIONS:
            m = make_small_net(arch, act)
            assert sum(p.numel() for p in m.parameters()) == sizes[arch]
            assert m(x).shape == (5, 10) and m(x).dtype == torch.float64
        a, b = make_small_net(arch, "relu", seed=3), make_small_net(arch, "gelu", seed=3)
        torch.testing.assert_close(ParameterFlattener(a).flatten(), ParameterFlattener(b).flatten(), rtol=0, atol=0)
    # leaky ReLU keeps a slope of 0.01 below 0; the attention rows sum to 1 (softmax)
    m = SmallMLP(2, (1,), 1, "leaky_relu")
    pre = hidden_preactivations(m, randn(3, 2))[0]
    assert pre.shape == (3, 1)
    with pytest.raises(NdgmError, match="activation must be one of"):
        SmallMLP(2, (3,), 1, "swish")
    with pytest.raises(NdgmError, match="kernel"):
        SmallCNN(2, 1, 3, 1)
    with pytest.raises(NdgmError, match="architecture"):
        make_small_net("rnn", "relu")
    assert isinstance(make_small_net("attention", "relu"), TinyAttention)


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_dead_relu_layer_hessian_is_the_identity_on_the_output_bias(arch):
    g = torch.Generator().manual_seed(2)
    X = torch.randn(10, 16, generator=g, dtype=torch.float64)
    Y = F.one_hot(torch.randint(0, 10, (10,), generator=g), 10).to(torch.float64)
    relu, gelu = make_small_net(arch, "relu", seed=4), make_small_net(arch, "gelu", seed=4)
    assert kill_last_hidden_layer(relu, X, 2.0) <= -2.0 + 1e-12
    kill_last_hidden_layer(gelu, X, 2.0)
    H = ModelLoss(relu, mse_sum, X, Y).hessian().dense()
    flat = ParameterFlattener(relu)
    i = flat.names.index(relu.output_bias)
    start = sum(flat.numels[:i])
    expect = torch.zeros_like(H)
    expect[start:start + 10, start:start + 10] = torch.eye(10, dtype=torch.float64)
    assert torch.equal(H, expect)  # exactly: relu' = 0 on every pre-activation, 1/n sum of 1
    Hg = ModelLoss(gelu, mse_sum, X, Y).hessian().dense()
    lam = torch.linalg.eigvalsh(0.5 * (Hg + Hg.T))
    assert float((lam - 1).abs().min()) > 1e-10  # GELU's nearly dead units still couple to the bias


# -- the experiment ----------------------------------------------------------------------------

SMALL = dict(archs="mlp,cnn", activations="relu,gelu", n_train=16, side=4, points=2, eta_grid=4, random_etas=6,
             sgd_batches=1, batch_size=4, steps=2, ball_points=2, path_points=3, saddle_width=3, saddle_starts=40,
             saddle_steps=150)


@pytest.fixture(scope="module")
def small_run():
    from ndgm.experiments.nonsingularity import EXPERIMENT

    return EXPERIMENT.run(EXPERIMENT.config(**SMALL))


@pytest.mark.slow
def test_experiment_counts_verdicts_and_saddle_interval(small_run):
    s = small_run.summary
    rows = s["table"]
    assert len(rows) == 2 * 2 * 2 and [r["dim"] for r in rows[:4]] == [226] * 4 and rows[4]["dim"] == 210
    # pairs per configuration: K (grid + random) + K random per SGD batch + K per step of 2 compositions
    assert all(r["pairs"] == 2 * (4 + 6) + 2 * 6 + 2 * 2 * 2 for r in rows)
    assert all(r["singular"] == 0 and r["min_log10_margin"] > 5 for r in rows)
    dead = {(r["arch"], r["activation"], r["loss"]): r["dead_exceptional_steps"] for r in rows}
    assert dead == {(a, act, lo): ([1.0] if (act, lo) == ("relu", "mse") else [])
                    for a in ("mlp", "cnn") for act in ("relu", "gelu") for lo in ("mse", "ce")}
    sd = s["saddle"]
    assert sd["grad_norm"] == 0.0 and sd["lambda_max"] == pytest.approx(1.0, abs=1e-15)
    assert sd["lambda_min"] < -0.1 and sd["singular_at_saddle"] and sd["min_margin_at_starts"] > 100
    for arm in ("random", "singular"):
        assert sd[arm]["escaped"] == 40 and sd[arm]["near_saddle"] == 0
        np.testing.assert_allclose(sd[arm]["interval"], [0.025 ** (1 / 40), 1.0], rtol=1e-9)  # Clopper-Pearson
    q = sd["quartic"]
    assert q["exceptional"]["at_maximum"] == 40 and q["random"]["at_maximum"] == 0
    claims = {c.claim: c for c in small_run.claims}
    assert len(claims) == len(small_run.claims) == 4 + 2 * 2 + 7
    assert all(c.verdict == "reproduced" for c in small_run.claims), [c.claim for c in small_run.claims
                                                                     if c.verdict != "reproduced"]
    esc = [c for c in small_run.claims if c.kind == "statistical"]
    assert len(esc) == 4 and all(c.n == 40 and c.margin == 0.9 for c in esc)
    assert esc[0].interval == pytest.approx([0.025 ** (1 / 40), 1.0], rel=1e-9)
    row = claims["mlp / relu: no sampled (point, eta) pair makes the GD, SGD or 2-step map singular"]
    assert row.measured == "0 of 80" and row.rule.startswith("exact: ")  # two losses x 40 pairs


@pytest.mark.slow
def test_experiment_same_seed_same_bits(small_run):
    from ndgm.experiments.nonsingularity import EXPERIMENT

    again = EXPERIMENT.run(EXPERIMENT.config(**SMALL))
    assert again.summary == small_run.summary
    for k, v in small_run.arrays.items():
        np.testing.assert_array_equal(again.arrays[k], v, err_msg=k)


def test_lanczos_spectra_agree_with_dense_at_both_ends():
    from ndgm.experiments.nonsingularity import Spectra

    case = CASES[2]  # mlp-relu-mse, d = 77
    obj = case.objective()
    theta = obj.params_vector()
    thetas = torch.stack([theta, theta + 0.05 * randn(theta.numel(), seed=6)])
    dense = Spectra(obj, thetas, dense_max=1000, lanczos_k=5, seed=0)
    lz = Spectra(obj, thetas, dense_max=10, lanczos_k=5, seed=0)
    assert dense.method == "dense" and lz.method == "lanczos top/bottom 5" and lz.values.shape == (2, 10)
    np.testing.assert_allclose(lz.values[:, -5:], dense.values[:, -5:], rtol=1e-8, atol=1e-9)
    np.testing.assert_allclose(lz.values[:, :5], dense.values[:, :5], rtol=1e-8, atol=1e-9)
    etas = np.broadcast_to(np.geomspace(0.01, 100, 9), (2, 9))
    a, b = dense.scan(etas), lz.scan(etas)
    np.testing.assert_allclose(b.sigma_min[b.decided], a.sigma_min[b.decided], rtol=1e-7, atol=1e-9)
