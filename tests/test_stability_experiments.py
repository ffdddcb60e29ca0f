"""The stability experiments: every claim reproduced at reduced sizes; where the paper's wording fails."""

import pytest
from scipy import stats as sps

from ndgm.experiments import get_experiment

# Smaller than quick, large enough that every claim still holds.
SMALL = {
    "gdmap-1d": {"starts": 200, "probe_samples": 2000, "saddle_starts": 100},
    "stability-toy": {"traj_steps": 3000, "lyap_steps": 4000},
    "bifurcation": {"n_eta": 150, "transient": 3000, "record": 128, "max_period": 32},
    "sgd-montecarlo": {"steps": 3000},
}


# The one row expected to fail: the paper's "SGD-stable is a proper subset of GD-stable" read on all t1 > 0.
CONTRADICTED = {"Fig. 4 left: SGD-stable is a proper subset of GD-stable (the paper), on all t1 > 0"}


@pytest.mark.parametrize("name", list(SMALL))
def test_small_run_reproduces_every_claim(name):
    exp = get_experiment(name)
    result = exp.run(exp.config(quick=True, **SMALL[name]))
    assert result.claims and all(c.rule and c.kind for c in result.claims), "every row states its rule"
    verdicts = {c.claim: c.verdict for c in result.claims}
    assert all(v == ("contradicted" if k in CONTRADICTED else "reproduced") for k, v in verdicts.items()), verdicts


@pytest.fixture(scope="module")
def toy_result():
    exp = get_experiment("stability-toy")
    return exp.run(exp.config(quick=True, **SMALL["stability-toy"]))


def test_stability_toy_reports_where_proper_subset_fails(toy_result):
    outside = toy_result.summary["panel1"]["sgd_not_gd"]
    assert [tuple(round(x, 4) for x in i) for i in outside] == [(0.3299, 0.392), (2.551, 3.0312)]
    whole, window = [c for c in toy_result.claims if "proper subset" in c.claim]
    # the paper's wording on all t1 > 0 is contradicted by the outer islands; inside the window it holds
    assert whole.verdict == "contradicted" and "(0.3299, 0.392), (2.551, 3.0312)" in whole.measured
    assert window.verdict == "reproduced" and window.measured == "proper subset on t1 in (0.3920, 2.5510)"


def test_lyapunov_row_is_a_t_interval_over_20_chains_that_contains_the_exact_value(toy_result):
    s = toy_result.summary
    row = next(c for c in toy_result.claims if c.claim.startswith("Lyapunov estimator"))
    half = sps.t.ppf(0.975, 19) * s["lyapunov_stderr"]
    assert row.kind == "statistical" and row.n == 20 and row.margin == s["lyapunov_exact"]
    assert row.interval == pytest.approx([s["lyapunov_estimate"] - half, s["lyapunov_estimate"] + half], rel=1e-12)
    assert row.interval[0] <= -0.2059617 <= row.interval[1]  # exact 1-D formula, spec: lambda(0.15, 0.5; 1) = -0.2060
    assert row.verdict == "reproduced"


def test_sgd_montecarlo_fixed_seed_counts_intervals_and_verdicts():
    """Seed 0, 20 runs per start, 3000 steps: 0 and 19 of 20 converge; Clopper-Pearson and Newcombe intervals."""
    exp = get_experiment("sgd-montecarlo")
    r = exp.run(exp.config(quick=True, **SMALL["sgd-montecarlo"]))
    assert (r.summary["unstable"]["converged"], r.summary["stable"]["converged"]) == (0, 19)
    assert r.summary["stable"]["converged_runs"] == [0] + [1] * 19
    rows = {c.claim: c for c in r.claims}
    none = rows["near t1=1.0: lambda > 0: none converge"]
    assert none.kind == "exact" and none.verdict == "reproduced" and none.measured == "0 of 20"
    most = rows["near t1=2.0: lambda < 0: most converge"]
    # Clopper-Pearson for 19 of 20: [0.75127, 0.99873]; reproduced because it lies above 1/2
    assert most.n == 20 and most.margin == 0.5 and most.values == [0] + [1] * 19
    assert most.interval == pytest.approx([0.751267, 0.998735], abs=1e-6) and most.verdict == "reproduced"
    ref1, ref2 = (rows[f"near t1={t}: converged fraction matches the spec's computed reference"] for t in (1.0, 2.0))
    # Newcombe's interval of (k/20 - spec/20): 0 - 0 and 19/20 - 16/20 both contain 0
    assert ref1.interval == pytest.approx([-0.161125, 0.161125], abs=1e-6) and ref1.verdict == "reproduced"
    assert ref2.interval == pytest.approx([-0.071105, 0.369896], abs=1e-6) and ref2.verdict == "reproduced"
    assert ref2.expected == "16 of 20" and "contains 0" in ref2.rule


def test_non_default_parameters_mark_spec_claims_not_run():
    exp = get_experiment("stability-toy")
    result = exp.run(exp.config(quick=True, scale=3.53, **SMALL["stability-toy"]))
    spec = [c for c in result.claims if c.claim.startswith("mu(") or c.claim.startswith("lambda(")]
    assert spec and all(c.verdict == "not run" and "1.765" in c.detail for c in spec)
    # consistency claims still hold; the only contradicted row is the paper's subset claim on all t1 > 0
    assert {c.claim for c in result.claims if c.verdict == "contradicted"} <= CONTRADICTED


def test_the_printed_scale_counts_as_the_paper_s():
    # The default is 3.53 / 2, one ulp from the decimal 1.765 a user types; both are the paper's configuration.
    exp = get_experiment("stability-toy")
    assert exp.at_defaults(exp.config(scale="1.765"), "scale")
    assert not exp.at_defaults(exp.config(scale="3.53"), "scale")
