"""The prune experiment: a small fixed-seed run's numbers, and its claims from known numbers."""

import numpy as np
import pytest

from ndgm.experiments import EXPERIMENTS
from ndgm.experiments.prune import Prune, matched_lams
from ndgm.figures.tables import prune_markdown

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny(**kw):
    cfg = dict(arms="adam-l1,prox-adam-l1,prox-adam-group", l1_lams="0.01",
               group_lams="0.3", width=0.25, n_seeds=2, epochs=1, train_size=32, val_size=16, batch_size=16,
               timing_batch=8, timing_repeats=3, acc_tolerance=0.5, threads=1)
    cfg.update(kw)
    return Prune().config(**cfg)


def test_registered_quick_config_in_budget_shape():
    q = EXPERIMENTS["prune"].config(quick=True)
    # the quick run: Adam arms (SGD without BatchNorm needs more epochs), one lam each, 3 paired seeds
    assert q["arms"] == ["adam-l1", "prox-adam-l1", "prox-adam-group"] and q["n_seeds"] == 3
    assert len(q["l1_lams"]) == len(q["group_lams"]) == 1 and q["threads"] == 1
    full = EXPERIMENTS["prune"].config()
    assert "sgd-l1" in full["arms"] and "prox-sgd-group" in full["arms"] and len(full["l1_lams"]) == 3


def test_prune_tiny_run_exact_zeros_channels_and_compaction():
    res = Prune().run(tiny())
    s, a = res.summary, res.arrays
    assert s["arms"] == ["adam-l1", "prox-adam-l1", "prox-adam-group"]
    assert a["zero_frac"].shape == (3, 1, 2) and a["val_curve"].shape == (3, 1, 2, 1)
    # NDGM: L1 in the loss, not one weight exactly 0; the proximal arms: many (big lam, one epoch)
    assert (a["zero_frac"][0] == 0).all()
    assert (a["zero_frac"][1] > 0.2).all() and (a["zero_frac"][2] > 0.2).all()
    assert ((a["zero_frac"] <= a["small_frac"]) | np.isclose(a["zero_frac"], a["small_frac"])).all()
    # group L2 zeroes whole channels; compact removes them and the model shrinks accordingly
    assert (a["channels_removed"][2] > 0).all() and (a["params_after"][2] < s["params_dense"]).all()
    assert (a["bytes_after"][2] < s["bytes_dense"]).all()
    assert (a["params_after"][0] == s["params_dense"]).all() and (a["channels_removed"][0] == 0).all()
    # compact changes the outputs by float rounding only
    assert np.nanmax(a["rel_diff"]) <= 1e-5
    # the dense runs and the NDGM arm train the same initial weights on the same batches: paired seeds
    assert s["dense_val_acc"].keys() == {"adam"} and s["seeds"] == [0, 1]
    assert s["matched"]["adam-l1"]["lam"] == "0.01"
    lines = s["table"].splitlines()
    assert lines[2].startswith("| arm | lam | val acc | exact zeros |") and len(lines) == 4 + 3
    assert lines[4].startswith("| adam-l1 | 0.01 | ") and "| 0.00% |" in lines[4]
    names = [c.claim for c in res.claims]
    assert "adam-l1: L1 in the loss (NDGM) leaves (almost) no exact zeros" in names
    by = {c.claim: c for c in res.claims}
    assert by["adam-l1: L1 in the loss (NDGM) leaves (almost) no exact zeros"].verdict == "reproduced"
    assert by["compact: the compacted model's outputs equal the trained model's"].verdict == "reproduced"
    assert by["prox-adam-l1: exact zeros that adam-l1 does not give, at matched accuracy"].verdict == "reproduced"


def test_prune_same_seed_same_bits():
    cfg = tiny(arms="prox-adam-group", n_seeds=2)
    a, b = Prune().run(cfg).arrays, Prune().run(cfg).arrays
    for key in ("val_acc", "zero_frac", "channels_removed", "params_after", "rel_diff"):
        assert np.array_equal(a[key], b[key], equal_nan=True), key


def summary_with(zero, acc, channels, speedup, dense=(0.90, 0.92, 0.91), lams=("0.001", "0.003")):
    """A prune summary: per arm, per lam, per-seed lists (arms adam-l1, prox-adam-l1, prox-adam-group)."""
    arms = ["adam-l1", "prox-adam-l1", "prox-adam-group"]
    runs = {}
    for arm in arms:
        runs[arm] = {}
        for lam in lams:
            v = dict(val_acc=acc[arm][lam], zero_frac=zero[arm][lam], channels_removed=channels[arm][lam],
                     speedup=speedup[arm][lam], params_after=[100.0] * 3, bytes_after=[1000.0] * 3,
                     small_frac=zero[arm][lam], rel_diff=[1e-7] * 3)
            runs[arm][lam] = {k: list(map(float, x)) for k, x in v.items()}
    s = {"arms": arms, "seeds": [0, 1, 2], "dense_val_acc": {"adam": list(dense)}, "runs": runs,
         "params_dense": 200, "bytes_dense": 2000, "n_val": 100}
    s["matched"] = matched_lams(s, 0.02)
    return s


def per(arm_values):
    return {arm: {lam: v for lam, v in zip(("0.001", "0.003"), vals)} for arm, vals in arm_values.items()}


def test_matched_lam_is_the_largest_within_tolerance_and_claims_from_known_numbers():
    acc = per({"adam-l1": ([0.9, 0.91, 0.9], [0.85, 0.86, 0.85]),
               "prox-adam-l1": ([0.91, 0.9, 0.91], [0.9, 0.92, 0.905]),
               "prox-adam-group": ([0.9, 0.91, 0.92], [0.7, 0.7, 0.7])})
    zero = per({"adam-l1": ([0, 0, 0], [0, 0, 0]), "prox-adam-l1": ([0.2, 0.25, 0.3], [0.5, 0.55, 0.6]),
                "prox-adam-group": ([0.3, 0.3, 0.3], [0.8, 0.8, 0.8])})
    channels = per({"adam-l1": ([0] * 3, [0] * 3), "prox-adam-l1": ([0.01] * 3, [0.02] * 3),
                    "prox-adam-group": ([0.3, 0.32, 0.31], [0.6] * 3)})
    speed = per({"adam-l1": ([1.0] * 3, [1.0] * 3), "prox-adam-l1": ([1.0] * 3, [1.0] * 3),
                 "prox-adam-group": ([1.5, 1.6, 1.7], [2.0] * 3)})
    s = summary_with(zero, acc, channels, speed)
    # target 0.91 - 0.02 = 0.89: adam-l1 only at 0.001; prox-adam-l1 at 0.003 (0.90); group at 0.001
    assert {a: m["lam"] for a, m in s["matched"].items()} == {"adam-l1": "0.001", "prox-adam-l1": "0.003",
                                                               "prox-adam-group": "0.001"}
    assert all(m["matched"] for m in s["matched"].values())
    cfg = Prune().config(arms="adam-l1,prox-adam-l1,prox-adam-group")
    claims = Prune().claims(s, cfg)
    verdicts = {c.claim.split(":")[0] if ":" in c.claim else c.claim: c.verdict for c in claims}
    got = [(c.claim, c.verdict) for c in claims]
    assert got[0] == ("adam-l1: L1 in the loss (NDGM) leaves (almost) no exact zeros", "reproduced")
    zeros = claims[1]
    assert zeros.claim.startswith("prox-adam-l1: exact zeros") and zeros.verdict == "reproduced"
    assert zeros.values == pytest.approx([0.5, 0.55, 0.6]) and zeros.n == 3
    assert [c.verdict for c in claims if "validation accuracy matched" in c.claim] == ["reproduced", "reproduced"]
    removed = next(c for c in claims if "whole channels" in c.claim)
    assert removed.verdict == "reproduced" and removed.values == pytest.approx([0.3, 0.32, 0.31])
    more = next(c for c in claims if "removes more channels" in c.claim)
    assert more.values == pytest.approx([0.28, 0.30, 0.29])  # group at 0.001 - l1 at its matched 0.003
    assert next(c for c in claims if "runs faster" in c.claim).verdict == "reproduced"
    assert claims[-1].verdict == "reproduced" and claims[-2].verdict == "reproduced"
    assert verdicts  # every row has a claim text
    # an NDGM arm that leaves zeros contradicts its row; a proximal arm below the target is not matched
    zero["adam-l1"]["0.001"] = [0.0, 0.01, 0.0]
    acc["prox-adam-group"]["0.001"] = [0.7, 0.7, 0.7]
    s = summary_with(zero, acc, channels, speed)
    assert s["matched"]["prox-adam-group"] == {"lam": "0.001", "matched": False, "target_acc": pytest.approx(0.89)}
    claims = Prune().claims(s, cfg)
    assert claims[0].verdict == "contradicted"
    assert claims[-1].verdict == "contradicted" and "prox-adam-group" in claims[-1].measured
    assert "none was: the smallest lam" in next(c for c in claims if "whole channels" in c.claim).detail


def test_prune_table_marks_unmatched_arms():
    acc = per({a: ([0.9] * 3, [0.5] * 3) for a in ("adam-l1", "prox-adam-l1", "prox-adam-group")})
    flat = per({a: ([0.1] * 3, [0.2] * 3) for a in ("adam-l1", "prox-adam-l1", "prox-adam-group")})
    s = summary_with(flat, acc, flat, per({a: ([1.0] * 3, [1.0] * 3) for a in acc}), dense=(0.95, 0.95, 0.95))
    text = prune_markdown(s)
    assert "| prox-adam-l1 | 0.001 (not matched) | 90.0% | 10.00% |" in text
    assert text.splitlines()[0].startswith("means over 3 seeds at matched accuracy (dense: 200 parameters")
