"""The five L1-paradox experiments end to end through the CLI: stored runs, figures, claim verdicts."""

import json

import pytest

from ndgm.cli import main
from ndgm.experiments import EXPERIMENTS

NAMES = ["lasso-toy", "lasso-2d", "lasso-variants", "lasso-general", "lasso-real"]


@pytest.fixture(scope="module")
def reproduced(tmp_path_factory):
    out = tmp_path_factory.mktemp("lasso")
    rc = main(["reproduce", "--quick", "--only", "lasso-*", "--out", str(out), "--no-progress"])
    ledger = json.loads((out / "claims.json").read_text())
    runs = {}
    for run_dir in (out / "runs").iterdir():
        result = json.loads((run_dir / "result.json").read_text())
        runs[result["experiment"]] = (run_dir, result)
    return rc, ledger, runs


def test_every_lasso_experiment_is_registered():
    assert set(NAMES) <= set(EXPERIMENTS)


def test_all_claims_reproduced_and_figures_written(reproduced):
    rc, ledger, runs = reproduced
    assert rc == 0
    assert set(runs) == set(NAMES)
    mine = [c for c in ledger if c["experiment"] in NAMES] if "experiment" in ledger[0] else ledger
    assert len(mine) >= 35
    assert all(c["passed"] is True for c in mine), [c["claim"] for c in mine if c["passed"] is not True]
    figures = {"lasso-toy": "lasso_toy.png", "lasso-2d": "lasso_2d.png", "lasso-variants": "lasso_variants.png",
               "lasso-general": "lasso_general.png", "lasso-real": "lasso_real.png"}
    for name, fig in figures.items():
        assert (runs[name][0] / fig).stat().st_size > 10_000


def test_two_d_printed_numbers(reproduced):
    s = reproduced[2]["lasso-2d"][1]["summary"]
    assert s["phase1_small_tail_l1_max"] == pytest.approx(0.0106, abs=1e-12)
    assert s["phase1_large_tail_l1_min"] == pytest.approx(0.9894, abs=1e-12)
    assert s["phase2_small_tail_l1_max"] == pytest.approx(0.0014, abs=1e-12)
    assert s["phase2_large_tail_l1_min"] == pytest.approx(0.0106, abs=1e-12)


def test_variants_table_and_rmsprop_zeros(reproduced):
    s = reproduced[2]["lasso-variants"][1]["summary"]
    table = {r["variant"]: (r["zero_stays_sim"], r["lam_changes_sim"]) for r in s["table"]}
    assert table == {"ndgm": ("yes", "yes"), "momentum": ("no", "yes"), "rmsprop": ("yes", "no"), "adam": ("no", "no")}
    # float64 RMSProp on d = 100, eta = 0.01: 70 of 100 coordinates end exactly at 0 (spec 3.2), at every lam.
    assert s["per_rule"]["rmsprop"]["final_exact_zeros"] == [70, 70, 70]
    assert s["per_rule"]["ndgm"]["final_exact_zeros"] == [0, 0, 0]
    nd, rm = s["per_rule"]["ndgm"]["tail_loss_max"], s["per_rule"]["rmsprop"]["tail_loss_max"]
    assert nd[0] < 1e-4 and rm[0] < 1e-2 and nd[-1] < 1e4 and rm[-1] < 1e2  # the paper's worked numbers


def test_general_lasso_grid(reproduced):
    run_dir, result = reproduced[2]["lasso-general"]
    s = result["summary"]
    assert len(s["ndgm_l1"]) == 64 and s["diverged"] == 0
    assert s["exact_zeros"][-1] == s["d"] and sum(s["ndgm_exact_zeros"]) == 0
    assert s["ndgm_l1"][-1] > 10 * min(s["ndgm_l1"])


def test_real_data_zero_counts(reproduced):
    t = reproduced[2]["lasso-real"][1]["summary"]["table"]
    assert t["lasso"]["exact_zeros"] == [2, 4, 7]
    for name in ("sgd", "adam"):
        assert t[name]["exact_zeros"] == [0, 0, 0] and t[name]["below_1e-5"] == [0, 0, 0]
    for name in ("ista", "fista", "proxsgd", "proxadam", "acrda"):
        assert t[name]["exact_zeros"] == [2, 4, 7] and max(abs(g) for g in t[name]["rel_gap"]) <= 1e-8
        assert all(t[name]["same_support_as_lasso"])
    assert max(t["acrda"]["certificate"]) < 1e-10
    # plain RDA (O(1/sqrt t)): the right zeros, but its gap stays far above 1e-8 in the quick run
    assert t["rda"]["exact_zeros"] == [2, 4, 7] and 1e-8 < max(t["rda"]["rel_gap"]) <= 1e-4


def test_show_rebuilds_a_figure_from_the_store(reproduced, tmp_path):
    run_dir = reproduced[2]["lasso-2d"][0]
    (run_dir / "lasso_2d.png").unlink()
    assert main(["show", str(run_dir), "--plot"]) == 0
    assert (run_dir / "lasso_2d.png").exists()


@pytest.mark.parametrize("argv,needle", [
    (["run", "lasso-real", "--alphas=-0.1"], "--alphas must list finite numbers >= 0"),
    (["run", "lasso-general", "--lam-max", "10"], "four decades"),
    (["run", "lasso-toy", "--lams", "1,x"], "--lams must be a comma-separated list"),
    (["run", "lasso-toy", "--iterations", "10"], "--iterations must be >="),
    (["run", "lasso-variants", "--momentum", "1.5"], "--momentum must be < 1"),
    (["run", "lasso-general", "--lr", "0.5"], "--lr must be < 2/L"),
])
def test_bad_input_is_one_line_and_exit_2(argv, needle, capsys, tmp_path):
    rc = main(argv + ["--out", str(tmp_path), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and err.startswith("ndgm: error: ") and needle in err
