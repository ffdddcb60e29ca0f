"""Penalties on a parameter tensor (L1, group L2, elastic net, sparse group): prox against closed forms and
brute-force minimisation, the certificate, and the smallest weight that zeroes a group."""

import numpy as np
import pytest
import torch
from scipy.optimize import minimize

from ndgm.errors import NdgmError
from ndgm.problems import (ElasticNetPenalty, GroupL2Penalty, L1NormPenalty, L1Penalty, SparseGroupPenalty,
                           group_shrink, soft_threshold)

D = torch.float64


def rand(*shape, seed=0, scale=1.0):
    return scale * torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=D)


def prox_objective(penalty, v, step):
    """``x -> P(x) + sum_j (x_j - v_j)^2 / (2 s_j)`` as a numpy function of the flattened x."""
    s = torch.as_tensor(step, dtype=D).expand_as(v)

    def f(x):
        x = torch.as_tensor(x, dtype=D).reshape(v.shape)
        return float(penalty.value(x) + ((x - v) ** 2 / (2 * s)).sum())
    return f


def brute_force_prox(penalty, v, step, starts=4):
    """Minimise the prox objective with Powell from a few starts (no use of the penalty's prox)."""
    f = prox_objective(penalty, v, step)
    best = None
    rs = np.random.RandomState(0)
    for k in range(starts):
        x0 = v.numpy().ravel() * (0.5 if k == 0 else rs.rand()) + (0 if k < 2 else 0.01 * rs.randn(v.numel()))
        r = minimize(f, x0, method="Powell", options=dict(xtol=1e-12, ftol=1e-15, maxiter=200000))
        if best is None or r.fun < best.fun:
            best = r
    return best


def assert_is_the_prox(penalty, v, step, atol=1e-6):
    ours = penalty.prox(v, step)
    f = prox_objective(penalty, v, step)
    ref = brute_force_prox(penalty, v, step)
    # ours is at least as good as the brute-force minimum (strongly convex: the minimiser is unique) ...
    assert f(ours.numpy().ravel()) <= ref.fun + 1e-12, (f(ours.numpy().ravel()), ref.fun)
    np.testing.assert_allclose(ours.numpy().ravel(), ref.x, atol=atol)
    # ... and no small perturbation improves it
    rs = np.random.RandomState(1)
    for _ in range(50):
        x = ours.numpy().ravel() + 1e-4 * rs.randn(v.numel())
        assert f(x) >= f(ours.numpy().ravel()) - 1e-15
    return ours


def test_l1_prox_is_soft_thresholding_and_matches_l1penalty():
    v = rand(3, 4, seed=1)
    p = L1NormPenalty(0.4)
    assert torch.equal(p.prox(v, 0.5), soft_threshold(v, 0.2))
    assert torch.equal(p.prox(v, 0.5).reshape(1, -1), L1Penalty(0.4).prox(v.reshape(1, -1), 0.5))
    assert float(p.value(v)) == pytest.approx(0.4 * float(v.abs().sum()), rel=1e-15)
    assert_is_the_prox(p, rand(5, seed=2), 0.3)
    # a per-coordinate step (Adam's metric): threshold s_j * lam per coordinate
    s = torch.tensor([0.1, 1.0, 3.0, 0.5, 2.0], dtype=D)
    w = rand(5, seed=3)
    assert torch.equal(p.prox(w, s), soft_threshold(w, s * 0.4))


@pytest.mark.parametrize("shape,dim,group_size", [((4, 3, 2, 2), 0, 1), ((5, 3), 0, 1), ((5, 3), 1, 1),
                                                  ((6, 4), 0, 2), ((3, 4), 1, 2)])
def test_group_prox_closed_form_over_a_chosen_dim(shape, dim, group_size):
    v = rand(*shape, seed=4)
    moved = v.movedim(dim, 0)
    norms = torch.linalg.vector_norm(moved.reshape(shape[dim] // group_size, -1), dim=1)
    s = 0.9
    lam = float(norms.min() + norms.max()) / (2 * s)  # between the smallest and the largest group
    p = GroupL2Penalty(lam, dim=dim, group_size=group_size)
    out = p.prox(v, s)
    # block soft thresholding, written out group by group
    expect = torch.empty_like(moved)
    for g in range(moved.shape[0] // group_size):
        blk = moved[g * group_size:(g + 1) * group_size]
        n = float(blk.norm())
        expect[g * group_size:(g + 1) * group_size] = blk * max(0.0, 1 - s * lam / n)
    torch.testing.assert_close(out, expect.movedim(0, dim), rtol=1e-15, atol=0)
    zero = p.zero_groups(out)
    assert zero.shape == (shape[dim] // group_size,)
    assert torch.equal(zero, norms <= s * lam) and 0 < int(zero.sum()) < zero.numel()  # some zero, some kept
    assert float(p.value(v)) == pytest.approx(lam * float(norms.sum()), rel=1e-14)


def test_group_prox_matches_brute_force_scalar_and_diagonal_metric():
    v = rand(3, 4, seed=5)
    p = GroupL2Penalty(0.8, dim=0)
    assert_is_the_prox(p, v, 0.6)
    # Adam's metric: one step per coordinate, solved by Newton's method
    s = 0.2 + torch.rand(3, 4, generator=torch.Generator().manual_seed(6), dtype=D) * 2
    out = assert_is_the_prox(p, v, s)
    # the zero test is exact: ||v_g / s_g|| <= lam
    assert torch.equal(p.zero_groups(out), torch.linalg.vector_norm(v / s, dim=1) <= 0.8)
    # a constant per-coordinate step equals the closed form
    torch.testing.assert_close(p.prox(v, torch.full_like(v, 0.6)), p.prox(v, 0.6), rtol=1e-13, atol=1e-15)


def test_newton_group_shrink_is_exact_on_badly_scaled_metrics():
    u = rand(64, 7, seed=7)
    t = torch.exp(3 * rand(64, 7, seed=8))  # steps spread over six orders of magnitude
    lam = float(torch.linalg.vector_norm(u / t, dim=1).median())  # about half the groups become 0
    w = group_shrink(u, t, lam)
    nz = torch.linalg.vector_norm(w, dim=1) > 0
    assert 20 < int(nz.sum()) < 44  # both kinds of group present
    # optimality of the non-zero groups: lam w/||w|| + (w - u)/t = 0
    r = torch.linalg.vector_norm(w[nz], dim=1, keepdim=True)
    resid = lam * w[nz] / r + (w[nz] - u[nz]) / t[nz]
    scale = (u[nz] / t[nz]).abs() + lam  # the size of the terms that cancel
    assert float((resid.abs() / scale).max()) < 1e-14
    # and of the zero groups: ||u/t|| <= lam
    assert bool((torch.linalg.vector_norm(u[~nz] / t[~nz], dim=1) <= lam).all())
    # float32 and bfloat16 inputs: the same zero pattern, values to their precision
    for dtype, tol in ((torch.float32, 1e-5), (torch.bfloat16, 2e-2)):
        w32 = group_shrink(u.to(dtype), t.to(dtype), lam)
        assert w32.dtype == dtype
        torch.testing.assert_close(w32.double(), group_shrink(u.to(dtype).double(), t.to(dtype).double(), lam),
                                   rtol=tol, atol=tol)


def test_elastic_net_prox_closed_form_and_brute_force():
    v = rand(6, seed=9)
    p = ElasticNetPenalty(0.3, 0.4)
    s = 0.5
    torch.testing.assert_close(p.prox(v, s), soft_threshold(v, s * 0.3) / (1 + 2 * s * 0.4), rtol=1e-15, atol=0)
    assert_is_the_prox(p, v, s)
    assert float(p.value(v)) == pytest.approx(0.3 * float(v.abs().sum()) + 0.4 * float((v ** 2).sum()), rel=1e-14)


@pytest.mark.parametrize("step", ["scalar", "diagonal"])
def test_sparse_group_prox_matches_brute_force(step):
    v = rand(3, 4, seed=10, scale=1.5)
    v[1] *= 0.1
    v[0, 2] = v[2, 1] = 0.05  # a group the group term zeroes; small coordinates elsewhere the l1 term zeroes
    p = SparseGroupPenalty(l1=0.3, l2=0.2, group=0.6, dim=0)
    s = 0.7 if step == "scalar" else 0.3 + torch.rand(3, 4, generator=torch.Generator().manual_seed(11), dtype=D)
    out = assert_is_the_prox(p, v, s)
    assert bool(p.zero_groups(out).any()) and bool((out[~p.zero_groups(out)] == 0).any())


def prox_point_gradient(v, s, w):
    """The smooth part ``||x - v||^2 / (2 s)``'s gradient at w: ``(w - v) / s``."""
    return (w - v) / s


@pytest.mark.parametrize("penalty", [L1NormPenalty(0.5), GroupL2Penalty(0.9), GroupL2Penalty(0.9, dim=1),
                                     ElasticNetPenalty(0.4, 0.3), SparseGroupPenalty(0.2, 0.1, 0.7, 0, 2)],
                         ids=["l1", "group-rows", "group-cols", "elastic-net", "sparse-group"])
def test_certificate_is_zero_at_the_prox_point_and_positive_elsewhere(penalty):
    v = rand(4, 6, seed=12, scale=1.2)
    v[1] *= 0.1
    v[:, 2] *= 0.1  # a small row and a small column: each kind of group has one to zero
    s = 0.8
    w = penalty.prox(v, s)
    assert bool((w == 0).any()) and bool((w != 0).any())
    assert float(penalty.subdiff_distance(w, prox_point_gradient(v, s, w))) < 1e-13
    off = w + 0.05 * rand(4, 6, seed=13)
    assert float(penalty.subdiff_distance(off, prox_point_gradient(v, s, off))) > 1e-3
    zero = torch.zeros_like(v)
    assert float(penalty.subdiff_distance(zero, prox_point_gradient(v, s, zero))) > 0


def test_l1_certificate_equals_l1penalty():
    w = soft_threshold(rand(2, 8, seed=14), 0.7)
    g = rand(2, 8, seed=15)
    assert float(L1NormPenalty(0.3).subdiff_distance(w, g)) == float(L1Penalty(0.3).subdiff_distance(
        w.reshape(1, -1), g.reshape(1, -1))[0])


@pytest.mark.parametrize("penalty,field", [(L1NormPenalty(1.0), "lam"), (GroupL2Penalty(1.0), "lam"),
                                           (GroupL2Penalty(1.0, dim=1, group_size=3), "lam"),
                                           (ElasticNetPenalty(1.0, 0.5), "l1"),
                                           (SparseGroupPenalty(0.2, 0.0, 1.0), "group")])
def test_zeroing_lam_is_the_smallest_weight_that_zeroes_each_group(penalty, field):
    from dataclasses import replace

    g = rand(4, 6, seed=16)
    s = 0.37
    lam = penalty.zeroing_lam(g)
    per_group = lam.numel() != g.numel()
    assert lam.shape == ((g.shape[penalty.dim] // penalty.group_size,) if per_group else g.shape)
    for k in range(lam.numel()):
        at = float(lam.reshape(-1)[k])
        above, below = replace(penalty, **{field: at * (1 + 1e-9)}), replace(penalty, **{field: at * (1 - 1e-6)})
        # prox of a step from 0 along -g: zero from the zeroing weight on, not below it
        za, zb = (p.prox(-s * g, s) for p in (above, below))
        if per_group:
            assert bool(above.zero_groups(za)[k]) and not bool(below.zero_groups(zb)[k])
        else:
            assert float(za.reshape(-1)[k]) == 0.0 and float(zb.reshape(-1)[k]) != 0.0
    assert float(penalty.alpha_max(g)) == float(lam.max())


@pytest.mark.parametrize("bad", [lambda: L1NormPenalty(-1.0), lambda: GroupL2Penalty(float("nan")),
                                 lambda: GroupL2Penalty(1.0, group_size=0), lambda: ElasticNetPenalty(1.0, -0.1)])
def test_bad_weights_are_refused(bad):
    with pytest.raises(NdgmError, match="must be"):
        bad()


def test_group_shape_errors_name_the_problem():
    with pytest.raises(NdgmError, match="group_size 2 does not divide"):
        GroupL2Penalty(1.0, group_size=2).prox(torch.ones(3, 2, dtype=D), 0.1)
    with pytest.raises(NdgmError, match="out of range"):
        GroupL2Penalty(1.0, dim=2).prox(torch.ones(3, 2, dtype=D), 0.1)
