"""The Wu-Ma-E criterion as a ledger row (``wu-ma-e``): the teacher network's gradients against
autograd, the criterion against a dense reference at the experiment's minimum, and a fixed-seed
run: mean-square stability is sufficient for SGD's convergence, not necessary; the sign of the
Lyapunov exponent decides."""

import pytest
import torch

from ndgm.analysis.hessian import ModelLoss, mse_sum
from ndgm.analysis.stability import wu_ma_e
from ndgm.claims import CONTRADICTED, REPRODUCED
from ndgm.experiments import get_experiment
from ndgm.experiments.wu_ma_e import full_grads, sample_grads, teacher

pytestmark = pytest.mark.usefixtures("one_thread")


def default_minimum():
    net = teacher(1, 22)
    g = torch.Generator().manual_seed(22 + 10**6)
    X = torch.randn(24, 2, generator=g, dtype=torch.float64)
    with torch.no_grad():
        Y = net(X)
    return net, X, Y


def flat(net):
    return torch.cat([q.detach().reshape(-1) for q in net.parameters()])


@pytest.mark.parametrize("width", [1, 3])
def test_hand_written_gradients_match_autograd(width):
    net = teacher(width, 0)
    g = torch.Generator().manual_seed(1)
    X = torch.randn(7, 2, generator=g, dtype=torch.float64)
    Y = torch.randn(7, generator=g, dtype=torch.float64)
    theta = flat(net)[None] + 0.1 * torch.randn(1, 4 * width + 1, generator=g, dtype=torch.float64)
    with torch.no_grad():
        k = 0
        for q in net.parameters():
            q.copy_(theta[0, k:k + q.numel()].view_as(q))
            k += q.numel()
    per = sample_grads(theta.repeat(7, 1), X, Y, width)
    for i in range(7):
        gi = torch.autograd.grad(0.5 * (net(X[i:i + 1])[0, 0] - Y[i]) ** 2, list(net.parameters()))
        assert torch.allclose(torch.cat([q.reshape(-1) for q in gi]), per[i], rtol=0, atol=1e-15)
    full = torch.autograd.grad(0.5 * ((net(X)[:, 0] - Y) ** 2).mean(), list(net.parameters()))
    assert torch.allclose(torch.cat([q.reshape(-1) for q in full]), full_grads(theta, X, Y, width)[0], atol=1e-15)


def test_criterion_at_the_default_minimum_against_dense_matrices():
    net, X, Y = default_minimum()
    theta = flat(net)[None]
    assert sample_grads(theta.repeat(24, 1), X, Y[:, 0], 1).abs().max() < 1e-14  # an interpolating minimum
    Hs = ModelLoss(net, mse_sum, X, Y).per_sample_hessian().dense()
    H = Hs.mean(0)
    ev = torch.linalg.eigvalsh(H)
    assert float(ev[-1] / ev[0]) == pytest.approx(45.24, abs=0.01)  # condition number 45: isolated, well-posed
    a = float(ev[-1])
    eye = torch.eye(5, dtype=torch.float64)
    for frac, expected in [(0.25, 0.98935), (0.3, 1.01032)]:  # the mean-square threshold lies between
        eta = frac * 2 / a
        dense = float(torch.linalg.eigvalsh(((eye - eta * Hs) @ (eye - eta * Hs)).mean(0))[-1])
        crit = wu_ma_e(net, X, Y, eta, 1)
        assert crit.sgd_top == pytest.approx(dense, rel=1e-9) and dense == pytest.approx(expected, abs=1e-5)
        assert crit.sgd_stable == (dense <= 1) and crit.gd_stable and crit.sharpness == pytest.approx(a, rel=1e-10)


def test_wu_ma_e_fixed_seed_run():
    exp = get_experiment("wu-ma-e")
    res = exp.run(exp.config(fractions="0.25,0.35,0.5,1.05", runs=32, iterations=1500, lyap_steps=4000))
    rows = res.summary["per_eta"]
    assert [r["sgd_stable"] for r in rows] == [True, False, False, False]
    assert [r["converged"] for r in rows] == [32, 32, 0, 0] and [r["escaped"] for r in rows] == [0, 0, 32, 32]
    assert rows[1]["lyapunov"] < -0.01 < 0.01 < rows[2]["lyapunov"]  # 0.35 sits in the window
    assert [r["gd_outcome"] for r in rows] == [-1, -1, -1, 1]
    v = {c.claim.split(":")[0]: c for c in res.claims}
    stable = v["mean-square stable (Wu-Ma-E's SGD condition holds)"]
    # 32 of 32: Clopper-Pearson [0.891, 1] straddles 0.95 -- the default 64 runs per step size decide it
    assert stable.n == 32 and stable.interval[0] == pytest.approx(0.8911, abs=1e-4) and stable.verdict == "inconclusive"
    unstable = v["not mean-square stable"]
    assert unstable.verdict == CONTRADICTED and unstable.measured.startswith("0.6667")
    assert v["contrast"].verdict == REPRODUCED and v["contrast"].n == 128  # 128 of 128 follow sign(lambda)
    assert v["GD"].verdict == REPRODUCED


@pytest.mark.slow
def test_quick_configuration_ledger():
    """The quick reproduction's rows: 128 of 128 converge where the criterion holds (reproduced); 192 of
    the 384 runs it calls unstable converge, all at the three step sizes with a negative Lyapunov
    exponent (contradicted: sufficient, not necessary); 512 of 512 follow sign(lambda); GD exact."""
    exp = get_experiment("wu-ma-e")
    res = exp.run(exp.config(quick=True))
    rows = res.summary["per_eta"]
    assert [r["fraction"] for r in rows] == [0.15, 0.25, 0.3, 0.35, 0.4, 0.5, 0.7, 1.05]
    assert [r["sgd_stable"] for r in rows] == [True, True] + [False] * 6
    assert [r["converged"] for r in rows] == [64] * 5 + [0] * 3 and [r["escaped"] for r in rows] == [0] * 5 + [64] * 3
    assert all(r["lyapunov"] + 3 * r["lyapunov_stderr"] < 0 for r in rows[:5])
    assert all(r["lyapunov"] - 3 * r["lyapunov_stderr"] > 0 for r in rows[5:])
    assert rows[2]["sgd_top"] == pytest.approx(1.010317, abs=1e-6)  # just above 1: the criterion's threshold
    assert [r["gd_outcome"] for r in rows] == [-1] * 7 + [1] and rows[-1]["diverged"] == 64
    assert res.summary["sharpness"] == pytest.approx(1.534928, abs=1e-6)
    v = {c.claim.split(":")[0]: c for c in res.claims}
    stable = v["mean-square stable (Wu-Ma-E's SGD condition holds)"]
    assert stable.verdict == REPRODUCED and stable.n == 128 and stable.interval[0] == pytest.approx(0.9716, abs=1e-4)
    unstable = v["not mean-square stable"]
    assert unstable.verdict == CONTRADICTED and unstable.n == 384 and unstable.measured.startswith("0.5 ")
    assert unstable.values == [0.0, 0.0, 0.0, 1.0, 1.0, 1.0]
    assert v["contrast"].verdict == REPRODUCED and v["contrast"].n == 512
    assert v["GD"].verdict == REPRODUCED
