"""Adam on the toy LASSO (paper appendix B.3.4): the closed forms of `ndgm.analysis.lasso_theory`
in exact rational arithmetic, against torch's Adam in float64, and the ``lasso-adam`` experiment.

In rational arithmetic the B.10 run formula, the sharpened B.6 bound and the first-run length
hold with equality / exactly; in float64 they hold to rounding allowances stated in the
experiment's rules, and the tiny run's verdicts and numbers are pinned here.
"""

from fractions import Fraction

import numpy as np
import pytest
import torch

from ndgm.analysis.lasso_theory import (adam_first_run_length, adam_momentum_bound, adam_run_momentum,
                                        adam_second_moment, adam_toy_exact, adam_toy_step)
from ndgm.claims import REPRODUCED
from ndgm.dynamics.rules import Adam
from ndgm.experiments import get_experiment
from ndgm.experiments.lasso_adam import _adam_step

pytestmark = pytest.mark.usefixtures("one_thread")

ETA, LAM, B1, B2, EPS = 0.01, 1.0, 0.9, 0.999, 1e-8


def torch_adam(w0, steps, lam=LAM, eta=ETA, beta1=B1):
    """torch.optim.Adam itself on lam * |w|_1, float64: the iterates and first moments."""
    w = torch.nn.Parameter(torch.tensor(w0, dtype=torch.float64))
    opt = torch.optim.Adam([w], lr=eta, betas=(beta1, B2), eps=EPS)
    ws, ms, vs = [w.detach().clone()], [torch.zeros_like(w)], [torch.zeros_like(w)]
    for _ in range(steps):
        opt.zero_grad()
        (lam * w.abs().sum()).backward()
        opt.step()
        ws.append(w.detach().clone())
        ms.append(opt.state[w]["exp_avg"].clone())
        vs.append(opt.state[w]["exp_avg_sq"].clone())
    return torch.stack(ws).numpy(), torch.stack(ms).numpy(), torch.stack(vs).numpy()


@pytest.mark.parametrize("w0", [0.0731, -0.1518, 0.0402])
def test_run_formula_and_bounds_hold_exactly_in_rational_arithmetic(w0):
    steps = 45
    ex = adam_toy_exact(w0, ETA, LAM, B1, EPS, steps)
    b1, lam = Fraction(B1), Fraction(LAM)
    signs = [(w > 0) - (w < 0) for w in ex.w]
    runs, t0 = 0, 0
    for t in range(1, steps + 1):
        if t > 1 and signs[t - 1] != signs[t - 2]:
            t0, runs = t - 1, runs + 1
        k, s = t - t0, signs[t0]
        # B.10: m_{t0+k} = b1^k m_{t0} + (1 - b1^k) lam s, with equality
        assert ex.m[t] == b1**k * ex.m[t0] + (1 - b1**k) * lam * s
        # B.6 sharpened: |m_t| <= lam (1 - b1^t) < lam; B.7: never 0 for a rational b1
        assert abs(ex.m[t]) <= lam * (1 - b1**t) < lam
        assert ex.m[t] != 0 and ex.w[t] != 0
    assert runs >= 3  # several sign changes were exercised
    # the first run: w_k = w0 - k c sgn(w0) exactly, and it ends at floor(|w0|/c) + 1
    c = Fraction(ETA) * lam / (lam + Fraction(EPS))
    n1 = int(adam_first_run_length([w0], ETA, LAM, EPS)[0])
    assert all(ex.w[k] == Fraction(w0) - k * c * signs[0] for k in range(n1 + 1))
    assert all(signs[k] == signs[0] for k in range(n1)) and signs[n1] == -signs[0]
    assert n1 == int(abs(Fraction(w0)) / c) + 1


def test_closed_forms_against_torch_adam_in_float64():
    w0 = [0.0731, -0.1518, 0.0402, 0.9113]
    steps = 150
    W, M, V = torch_adam(w0, steps)
    t = np.arange(steps + 1)
    # v_t = (1 - b2^t) lam^2 to rounding; |m_t| <= lam (1 - b1^t) up to one rounding
    assert np.abs(V - adam_second_moment(t, B2, LAM)[:, None]).max() <= 8 / (1 - B2) * np.finfo(float).eps
    assert (np.abs(M) <= adam_momentum_bound(t, B1, LAM)[:, None] + 2 * np.finfo(float).eps).all()
    # the float run follows the rational recursion to rounding over 45 steps
    for j, w in enumerate(w0[:3]):
        ex = adam_toy_exact(w, ETA, LAM, B1, EPS, 45)
        assert np.abs(W[:46, j] - np.array([float(x) for x in ex.w])).max() <= 1e-15
    # the first run length of every coordinate
    first = [int(np.argmax(np.sign(W[:, j]) != np.sign(w0[j]))) for j in range(4)]
    assert first == adam_first_run_length(w0, ETA, LAM, EPS).tolist() == [8, 16, 5, 92]
    # B.10 over one run, by the closed form in float64
    assert adam_run_momentum(0.0, 3, B1, LAM, 1.0) == pytest.approx(1 - 0.9**3, rel=1e-15)
    assert adam_toy_step(ETA, LAM, EPS) == pytest.approx(0.01 / (1 + 1e-8), rel=1e-15)


def test_experiment_step_is_torch_adam_bit_for_bit():
    """`_adam_step` (per-coordinate beta1) equals the library rule, which equals torch.optim.Adam."""
    w0 = torch.tensor([[0.0731, -0.1518, 0.0402, 0.9113]], dtype=torch.float64)
    rule = Adam(B1, B2, EPS)
    Wr, state = w0.clone(), rule.init(w0)
    We, m, v = w0.clone(), torch.zeros_like(w0), torch.zeros_like(w0)
    Wt, b1s = w0.clone(), torch.full((4,), B1, dtype=torch.float64)
    mt, vt = torch.zeros_like(w0), torch.zeros_like(w0)
    lr = torch.tensor([ETA], dtype=torch.float64)
    for t in range(1, 121):
        Wr, state = rule.step(Wr, LAM * Wr.sign(), lr, state, t)
        We, m, v = _adam_step(We, LAM * We.sign(), m, v, t, ETA, B1, B2, EPS)
        Wt, mt, vt = _adam_step(Wt, LAM * Wt.sign(), mt, vt, t, ETA, b1s, B2, EPS)
    assert torch.equal(Wr, We) and torch.equal(state["exp_avg"], m)
    assert torch.equal(Wr, Wt) and torch.equal(m, mt)
    W, _, _ = torch_adam(w0[0].tolist(), 120)
    assert np.array_equal(W[-1], Wr[0].numpy())


def test_exact_recursion_refuses_a_zero():
    with pytest.raises(ValueError, match="hit 0"):
        adam_toy_exact(0.0, ETA, LAM, B1, EPS, 3)


def test_lasso_adam_tiny_run_numbers_and_verdicts():
    exp = get_experiment("lasso-adam")
    res = exp.run(exp.config(d=60, iterations=500, tail=150))
    s = res.summary
    assert [c.verdict for c in res.claims] == [REPRODUCED] * 7
    assert s["m_zeros_drawn"] == s["w_zeros_fixed"] == s["w_zeros_drawn"] == 0
    assert s["pairs_drawn"] == 60 * 3 * 500
    assert s["first_run_mismatches"] == 0 and s["first_run_length_max"] <= 101
    assert s["run_formula_max_error"] <= s["run_formula_allowance"] < 1e-13
    assert s["max_abs_m_over_lam"] < 1.0
    assert s["max_m_above_sharp_bound"] <= 4 * np.finfo(float).eps
    # the tail: amplitude of order eta, the same distribution for every lam (seed 0, pinned)
    amp = np.asarray(s["tail_amplitude_over_eta_max"])
    assert (amp < 1).all() and amp.max() - amp.min() < 1e-3
    assert s["tail_amplitude_over_eta_median"][1] == pytest.approx(0.198999, abs=1e-6)
    assert amp[1] == pytest.approx(0.534480, abs=1e-6)
    # same seed, same bits
    again = exp.run(exp.config(d=60, iterations=500, tail=150)).summary
    assert again == s


def test_lasso_adam_b7_row_reports_a_zero_of_m_as_contradicted():
    exp = get_experiment("lasso-adam")
    cfg = exp.config(d=10, iterations=400, tail=100)
    s = exp.run(cfg).summary
    rows = {c.claim.split(" (")[0]: c for c in exp.claims(dict(s, m_zeros_drawn=1, w_zeros_fixed=2), cfg)}
    assert rows["m_t != 0 for every t with b1 ~ U[0.9, 0.99]"].verdict == "contradicted"
    assert rows["w_t has no zero coordinate for any t, w0 ~ U[-1, 1]"].verdict == "contradicted"
    bad = exp.claims(dict(s, tail_amplitude_over_eta_max=[0.5, 1.5, 0.5]), cfg)[-1]
    assert bad.verdict == "contradicted"


@pytest.mark.slow
def test_quick_configuration_ledger():
    """The quick reproduction (d = 400, 1500 steps, lam in {0.01, 1, 100}): every row reproduced, with
    the margins the ledger prints."""
    exp = get_experiment("lasso-adam")
    res = exp.run(exp.config(quick=True))
    assert [c.verdict for c in res.claims] == [REPRODUCED] * 7
    s = res.summary
    assert s["max_abs_m_over_lam"] < 1 and s["max_abs_m_over_lam"] == pytest.approx(0.99997344, abs=1e-8)  # B.6
    assert s["m_zeros_drawn"] == s["m_zeros_fixed"] == s["w_zeros_fixed"] == s["w_zeros_drawn"] == 0
    assert s["pairs_drawn"] == s["pairs_fixed"] == 1500 * 400 * 3
    assert s["run_formula_max_error"] < 1e-15 and s["second_moment_max_error"] < 1e-13  # B.10, eq. 24
    assert s["first_run_mismatches"] == 0 and s["first_run_length_max"] == 100  # floor(|w0| / c) + 1
    assert s["longest_run"] == 104
    # the final amplitude does not depend on lam (RMSProp-like): 0.6594 eta at all three
    assert s["tail_amplitude_over_eta_max"] == pytest.approx([0.659388, 0.659397, 0.659397], abs=1e-6)
