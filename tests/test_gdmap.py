import math

import numpy as np
import pytest
import torch

from cases import batch_points, quadratic_problem
from ndgm.analysis.gdmap import (exceptional_step_sizes, gd_map, jacobian_det, module_jacobian_det, saddle_avoidance,
                                 singularity_probe)
from ndgm.errors import NdgmError
from ndgm.problems import Quadratic, autograd_value_and_grad
from ndgm.problems import Quartic1D

# The Hessian and det(I - eta H) of every problem in cases.PROBLEMS (the toys included) are
# checked against dense references in test_hessian.py; this file holds the GD-map science.


def test_gd_map_is_w_minus_eta_grad_and_rejects_bad_eta():
    problem = quadratic_problem()
    W = batch_points(problem)
    _, g = autograd_value_and_grad(problem.value, W)
    torch.testing.assert_close(gd_map(problem, W, 0.2), W - 0.2 * g, rtol=0, atol=1e-15)
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(NdgmError, match="eta"):
            gd_map(problem, W, bad)


def test_quartic_gradient_matches_autograd_and_is_c1():
    q = Quartic1D()
    t = torch.linspace(-5, 5, 1001, dtype=torch.float64)[:, None]
    v, g = q.value_and_grad(t)
    v_ref, g_ref = autograd_value_and_grad(q.value, t)
    assert torch.equal(v, v_ref) and torch.equal(g, g_ref)
    for s in (-2.0, 2.0):  # C^1 at the junctions: L(+-2) = 4 and L'(+-2) = +-4 from both sides
        inside = torch.tensor([[s]], dtype=torch.float64)
        assert float(q.value(inside)) == 4.0
        assert float(q.value_and_grad(inside)[1]) == 2 * s
    assert float(q.value_and_grad(torch.tensor([[2.0 + 1e-12]], dtype=torch.float64))[1]) == pytest.approx(4.0)


def test_quartic_map_facts_exact():
    q = Quartic1D()
    out = torch.cat([torch.linspace(-50, -2, 5001, dtype=torch.float64)[:-1],
                     torch.linspace(2, 50, 5001, dtype=torch.float64)[1:]])
    assert bool((q.gd_map(out, 0.5) == 0).all())  # the whole of |t| > 2 collapses onto 0
    zero = torch.zeros(1, dtype=torch.float64)
    assert float(q.gd_map(zero, 0.5)) == 0.0 and float(q.value_and_grad(zero[:, None])[1]) == 0.0
    assert float(Quartic1D.hessian_1d(zero)) == -6.0  # 0 is a local maximum
    one, two = torch.tensor([1.0], dtype=torch.float64), torch.tensor([2.0], dtype=torch.float64)
    assert float(q.gd_map(one, 0.25)) == 2.0 and float(q.gd_map(two, 0.25)) == 1.0
    assert torch.equal(q.gd_map(out, 0.25), out / 2)  # non-singular halving outside
    t = torch.tensor([-7.0, -3.0, -0.5, 0.5, 2.5, 9.0], dtype=torch.float64)
    for _ in range(300):
        t = q.gd_map(t, 0.1)
    assert torch.allclose(t, torch.sign(t) * math.sqrt(3), rtol=0, atol=1e-14)
    assert float(Quartic1D.hessian_1d(torch.tensor(math.sqrt(3)))) == pytest.approx(12.0)


def test_exceptional_steps():
    q = Quartic1D()
    assert exceptional_step_sizes(q, torch.linspace(2.1, 9, 30, dtype=torch.float64)[:, None]).tolist() == [0.5]
    assert exceptional_step_sizes(q, torch.linspace(0.1, 1.9, 30, dtype=torch.float64)[:, None]).size == 0
    quad = Quadratic(torch.diag(torch.tensor([4.0, 0.5, -1.0], dtype=torch.float64)))
    steps = exceptional_step_sizes(quad, batch_points(quad, 10))
    np.testing.assert_allclose(steps, [0.25, 2.0], rtol=1e-14)
    assert float(jacobian_det(quad, batch_points(quad), 0.25).abs().max()) == 0.0


def test_singularity_probe_1d():
    q = Quartic1D()
    sing = singularity_probe(q, 0.5, [2.0], [4.0], samples=4000)
    assert sing.singular and sing.collapsed_fraction == 1.0 and sing.mean_abs_det == 0.0 and sing.ratio < 0.01
    half = singularity_probe(q, 0.25, [2.0], [4.0], samples=4000)
    assert not half.singular and half.mean_abs_det == pytest.approx(0.5) and half.ratio == pytest.approx(0.5, abs=0.01)
    with pytest.raises(NdgmError, match="region"):
        singularity_probe(q, 0.5, [4.0], [2.0])


def test_singularity_probe_2d_quadratic_collapses_onto_hyperplane():
    quad = Quadratic(torch.diag(torch.tensor([2.0, -1.0], dtype=torch.float64)))
    sing = singularity_probe(quad, 0.5, [-1, -1], [1, 1], samples=8000)
    assert sing.singular and sing.ratio < 0.05
    reg = singularity_probe(quad, 0.2, [-1, -1], [1, 1], samples=8000)
    # |det(I - 0.2 A)| = 0.6 * 1.2 = 0.72; the covering ratio estimates the same measure ratio.
    assert not reg.singular and reg.mean_abs_det == pytest.approx(0.72) and reg.ratio == pytest.approx(0.72, abs=0.05)


def test_saddle_avoidance():
    out = saddle_avoidance([2.0, 0.5, -1.0], 0.1, starts=500, iterations=100)
    assert out["converged_to_saddle"] == 0 and out["min_final_norm"] > 1.0
    assert out["singular_steps"] == [0.5, 2.0]
    assert out["max_abs_collapsed"] == [0.0, 0.0] and all(d == 0 for d in out["det_at_singular"])
    with pytest.raises(NdgmError, match="negative"):
        saddle_avoidance([1.0, 2.0], 0.1)


def test_module_jacobian_det_matches_closed_form():
    g = torch.Generator().manual_seed(3)
    X = torch.randn(10, 3, generator=g, dtype=torch.float64)
    y = torch.randn(10, 1, generator=g, dtype=torch.float64)
    model = torch.nn.Linear(3, 1, bias=False).double()

    def loss(run):
        return 0.5 * ((run(X) - y) ** 2).mean()

    H = X.T @ X / 10  # Hessian of the mean squared loss of a linear model
    eta = 0.3
    det = module_jacobian_det(model, loss, eta)
    assert det == pytest.approx(float(torch.linalg.det(torch.eye(3, dtype=torch.float64) - eta * H)), rel=1e-12)
    eig = torch.linalg.eigvalsh(H)
    assert abs(module_jacobian_det(model, loss, 1 / float(eig[-1]))) < 1e-12
