import numpy as np
import pytest
import torch

from ndgm.cli import main
from ndgm.experiments import EXPERIMENTS
from ndgm.experiments.activations import Activations
from ndgm.experiments.l1_deep import L1Deep
from ndgm.figures.deep import write_table2
from ndgm.nets.vgg import vgg16_state_shapes
from ndgm.store import RunStore

from test_training import make_cifar_dir


# Small convolutions on a shared 2-core machine: extra OpenMP threads only spin (10x slower).
pytestmark = pytest.mark.usefixtures("one_thread")


TINY = ["--train-size", "32", "--val-size", "16", "--epochs", "1", "--batch-size", "16", "--no-progress"]


def test_quick_configs_run_offline_in_float32():
    for name in ("activations", "l1-deep"):
        cfg = EXPERIMENTS[name].config(quick=True)
        assert cfg["dtype"] == "float32" and cfg["data_dir"] == "" and cfg["train_size"] > 0


def test_wrong_shape_weights_exit_2_naming_the_key(tmp_path, capsys):
    sd = {k: torch.zeros(1).expand(s) for k, s in vgg16_state_shapes().items()}
    sd["classifier.0.weight"] = torch.zeros(1).expand(4096, 512)
    torch.save(sd, tmp_path / "w.pt")
    rc = main(["run", "l1-deep", "--weights", str(tmp_path / "w.pt"), *TINY, "--out", str(tmp_path / "runs"),
               "--checkpoint-dir", str(tmp_path / "ck")])
    err = capsys.readouterr().err
    assert rc == 2 and "'classifier.0.weight'" in err and "[4096, 512]" in err and "[4096, 25088]" in err


def test_malformed_data_dir_exit_2(tmp_path, capsys):
    make_cifar_dir(tmp_path / "c")
    (tmp_path / "c" / "test_batch").write_bytes(b"\x80\x04junk")
    rc = main(["run", "activations", "--data-dir", str(tmp_path / "c"), *TINY, "--out", str(tmp_path / "runs")])
    err = capsys.readouterr().err
    assert rc == 2 and "test_batch" in err and "expected a pickled dict" in err and err.count("\n") == 1


@pytest.mark.slow
def test_activations_tiny_run_on_generated_cifar_through_the_cli(tmp_path, capsys):
    make_cifar_dir(tmp_path / "c", n_per_batch=8, n_test=8)
    rc = main(["run", "activations", "--data-dir", str(tmp_path / "c"), "--depths", "vgg11,vgg13",
               "--activations", "relu,gelu", *TINY, "--augment", "true", "--out", str(tmp_path / "runs"),
               "--checkpoint-dir", str(tmp_path / "ck")])
    out = capsys.readouterr().out
    assert rc in (0, 1), out  # 1: a claim differs on random pixels, which is allowed here
    run = RunStore(tmp_path / "runs").runs()[0]
    names = {p.name for p in run.path.iterdir()}
    assert {"activations_train_loss.png", "activations_val_loss.png", "activations_gap.png"} <= names
    a = run.arrays()
    assert a["train_loss"].shape == (2, 2, 2, 1) and np.isfinite(a["train_loss"]).all()
    assert run.result["summary"]["data"] == "cifar10" and run.result["summary"]["n_train"] == 32
    assert len(run.result["claims"]) == 3
    assert not list((tmp_path / "ck").glob("*/*.pt"))  # checkpoints removed once the run is stored


def test_quick_configs_give_the_effects_room():
    # activations: 512 / 8 * 25 = 1600 Adam steps per model at 1e-3 * sqrt(8 / 128)
    act = EXPERIMENTS["activations"].config(quick=True)
    assert (act["train_size"], act["batch_size"], act["epochs"], act["threads"]) == (512, 8, 25, 1)
    assert act["lr"] == pytest.approx(1e-3 * np.sqrt(8 / 128), rel=0.02) and act["target_loss"] == 0.0
    # l1-deep: 256 / 8 * 10 = 320 steps per run, the paper's lr and lams
    l1 = EXPERIMENTS["l1-deep"].config(quick=True)
    assert (l1["train_size"], l1["batch_size"], l1["epochs"], l1["lr"], l1["lams"]) == (256, 8, 10, 0.003, [2.0, 0.002])


def test_activations_target_is_half_the_chance_loss_unless_given():
    cfg = Activations().config()
    assert Activations.target(cfg, 10) == pytest.approx(0.5 * np.log(10)) == pytest.approx(1.1513, abs=1e-4)
    assert Activations.target(cfg | {"target_fraction": 0.25}, 100) == pytest.approx(0.25 * np.log(100))
    assert Activations.target(cfg | {"target_loss": 1.0}, 10) == 1.0


def test_activations_plateau_note_names_the_depth_where_gelu_waits_longer():
    ln10 = np.log(10)
    tl = np.zeros((2, 2, 2, 5))
    tl[0, 0, 0] = [ln10, 2.0, 1.4, 1.0, 0.8]     # vgg11 relu: below 0.9 ln10 = 2.07 from epoch 2
    tl[0, 0, 1] = [2.0, 1.2, 0.9, 0.7, 0.5]      # vgg11 gelu: from epoch 1
    tl[0, 1, 0] = [ln10, ln10, 1.9, 1.1, 0.9]    # vgg19 relu: from epoch 3
    tl[0, 1, 1] = [ln10, ln10, ln10, 2.0, 1.0]   # vgg19 gelu: from epoch 4, and reaches 1.15 after relu
    tl[1] = 0.3
    s = Activations.summarise(tl, ["vgg11", "vgg19"], ["relu", "gelu"], [False, True], 0.5 * ln10, 10)
    s["depths"] = ["vgg11", "vgg19"]
    f = lambda below: 0.1 * ln10 / (ln10 - below)  # interpolated fraction of the epoch that crosses 0.9 ln10
    assert s["plateau_epochs_relu_nobn"] == pytest.approx([1 + f(2.0), 2 + f(1.9)])
    assert s["plateau_epochs_gelu_nobn"] == pytest.approx([1.0, 3 + f(2.0)])
    assert s["epochs_gelu_nobn"][1] > s["epochs_relu_nobn"][1] and s["gap_nobn"][1] < s["gap_nobn"][0]
    faster, grows, shrinks = Activations().claims(s, {"epochs": 5})
    assert faster.passed is False and grows.passed is False and shrinks.passed is True
    assert "train loss 1.15 in fewer epochs" in faster.claim
    for c in (faster, grows):
        assert "leave the initial plateau (loss < 2.07)" in c.detail and "GELU leaves it later at vgg19 (likely cause" in c.detail
    ok = Activations.summarise(tl[:, :1], ["vgg11"], ["relu", "gelu"], [False, True], 0.5 * ln10, 10)
    ok["depths"] = ["vgg11"]
    assert "plateau" not in Activations().claims(ok, {"epochs": 5})[0].detail  # a passing claim needs no note


def test_activations_analysis_from_known_curves():
    E = 4
    # (bn, depth, act, epoch): without BN GELU is ahead, more so at depth; with BN equal
    tl = np.zeros((2, 2, 2, E))
    tl[0, 0, 0] = [2.0, 1.6, 1.2, 0.8]  # vgg11 relu
    tl[0, 0, 1] = [1.8, 1.2, 0.8, 0.6]  # vgg11 gelu
    tl[0, 1, 0] = [2.3, 2.3, 2.2, 2.1]  # vgg19 relu: never reaches 1.0
    tl[0, 1, 1] = [2.0, 1.4, 0.9, 0.7]
    tl[1, :, 0] = tl[1, :, 1] = [1.5, 1.0, 0.7, 0.5]
    names = {"depths": ["vgg11", "vgg19"]}
    s = Activations.analyse(tl, names["depths"], ["relu", "gelu"], [False, True], 1.0) | names
    assert s["epochs_relu_nobn"] == [3.5, 5.0] and s["epochs_gelu_nobn"] == pytest.approx([2.5, 2.8])
    assert s["gap_nobn"] == pytest.approx([0.3, 0.975])
    assert s["gap_bn"] == [0.0, 0.0]
    claims = Activations().claims(s, {"epochs": E, "target_loss": 1.0})
    assert [c.passed for c in claims] == [True, True, True]
    s2 = Activations.analyse(tl[:, :, ::-1], names["depths"], ["relu", "gelu"], [False, True], 1.0) | names
    assert [c.passed for c in Activations().claims(s2, {"epochs": E, "target_loss": 1.0})] == [False, False, False]


def l1_config(tmp_path, **kw):
    cfg = dict(optimizers="sgd,adam", lams="2,0.002", n_seeds=1, epochs=1, train_size=32, val_size=16,
               batch_size=16, checkpoint_dir=str(tmp_path / "ck"))
    cfg.update(kw)
    return L1Deep().config(**cfg)


def test_l1_deep_tiny_run_table_and_figures(tmp_path):
    exp = L1Deep()
    res = exp.run(l1_config(tmp_path, n_seeds=2))
    s, a = res.summary, res.arrays
    assert s["optimizers"] == ["sgd", "adam", "prox-sgd", "prox-adam"]
    assert a["small_pct"].shape == (4, 2, 2) and a["l1"].shape == (4, 2, 2, 1)
    assert ((a["zero_pct"] >= 0) & (a["zero_pct"] <= a["small_pct"])).all()  # a zero is also small
    lines = s["table2"].splitlines()
    assert lines[2] == "| optimizer | lam=0.002 | lam=0.002 alt | lam=2 | lam=2 alt |"
    assert lines[4].startswith("| sgd | ") and f"{a['small_pct'][0, 0, 1]:.2f}" in lines[4]
    # prox at lam = 2: eta * lam = 0.006 zeroes many weights in two steps; NDGM none
    assert (a["zero_pct"][2:, 0] > 10).all() and (a["zero_pct"][:2] < 0.1).all()
    # the L1 norm after the epoch is what the model holds: lam = 2 shrinks it more than 0.002 with SGD
    assert a["l1"][0, 0, 0, -1] < a["l1"][0, 1, 0, -1]
    claims = {c.claim.split(":")[0]: c for c in res.claims}
    assert {"sgd", "adam", "prox-sgd", "prox-adam"} <= set(claims)
    write_table2(a, s, res.config, tmp_path / "table2.md")
    assert "exactly 0.0" in (tmp_path / "table2.md").read_text()


def test_l1_deep_fresh_versus_leaking_optimizer_state(tmp_path):
    exp = L1Deep()
    kw = dict(optimizers="sgd,adam", prox_optimizers="none")
    fresh = exp.run(l1_config(tmp_path, **kw)).arrays
    leak = exp.run(l1_config(tmp_path, leak_optimizer_state=True, **kw)).arrays
    # first lam (2): identical; SGD has no state, so its second run is identical too
    assert np.array_equal(fresh["l1"][:, 0], leak["l1"][:, 0])
    assert np.array_equal(fresh["l1"][0, 1], leak["l1"][0, 1])
    # Adam's moments from the lam = 2 run leak into the lam = 0.002 run
    assert not np.array_equal(fresh["l1"][1, 1], leak["l1"][1, 1])


def l1_summary(small, zero=None, acc=None, epoch1=None) -> dict:
    """An l1-deep summary with these (optimizer, lam, seed) tables, as `L1Deep.compute` writes it."""
    opts, lams = ["sgd", "rmsprop", "adam"], [2.0, 0.002]
    s = {"optimizers": opts, "lams": lams, "prox_requested": []}
    tables = {"small_pct": small, "zero_pct": np.zeros_like(small) if zero is None else zero,
              "val_acc": np.zeros_like(small) if acc is None else acc}
    if epoch1 is not None:
        tables |= {"epoch1_train_ce": epoch1[0], "epoch1_train_loss": epoch1[1]}
    for key, t in tables.items():
        s[key] = {f"{o}/lam={lam:g}": [float(v) for v in t[oi, li]] for oi, o in enumerate(opts) for li, lam in enumerate(lams)}
    return s


def test_l1_deep_claims_from_table2_numbers():
    small = np.array([[[0.18, 0.18], [90.13, 91.34]], [[2.61, 2.67], [0.02, 1.00]], [[2.89, 2.88], [90.76, 90.68]]])
    claims = L1Deep().claims(l1_summary(small), {"threshold": 1e-5})
    assert [c.passed for c in claims] == [True, True, True]
    small[2] = [[2.37, 2.30], [2.36, 2.29]]  # Adam with lam making no difference
    assert [c.passed for c in L1Deep().claims(l1_summary(small), {"threshold": 1e-5})] == [True, False, True]
    # with epoch 1's CE recorded, Adam's and RMSProp's details say why lam may not matter
    ce = np.full(small.shape, 2.3)
    claims = L1Deep().claims(l1_summary(small, epoch1=(ce, ce + 7.4)), {"threshold": 1e-5})
    note = "invariant to scaling the gradient"
    assert note in claims[1].detail and "(epoch 1 at lam=0.002: penalty 7.4 vs CE 2.3)" in claims[1].detail
    assert note not in claims[0].detail and note not in claims[2].detail  # SGD; RMSProp holds: no excuse needed
    small[1] = 5.0  # RMSProp with lam making no difference
    assert note in L1Deep().claims(l1_summary(small, epoch1=(ce, ce + 7.4)), {"threshold": 1e-5})[2].detail
    leaky = L1Deep().claims(l1_summary(small, epoch1=(ce, ce + 7.4)), {"threshold": 1e-5, "leak_optimizer_state": True})
    assert note not in leaky[1].detail  # leaked state is not scale-free: the note would not apply


@pytest.mark.slow
def test_activations_resume_after_interruption_gives_the_uninterrupted_result(tmp_path, monkeypatch):
    import ndgm.training as training

    exp = Activations()
    cfg = exp.config(depths="vgg11", activations="relu,gelu", batch_norm="both", epochs=2, train_size=32,
                     val_size=16, batch_size=16, checkpoint_dir=str(tmp_path / "ck"))
    whole = exp.run(cfg).arrays
    real_train, calls = training.train, []

    def interrupted(*args, **kw):  # the third model stops in its second epoch
        calls.append(kw["desc"])
        if len(calls) == 3:
            kw["on_batch"] = lambda e, b: (_ for _ in ()).throw(KeyboardInterrupt) if e == 1 else None
        return real_train(*args, **kw)

    monkeypatch.setattr(training, "train", interrupted)
    with pytest.raises(KeyboardInterrupt):
        exp.run(cfg)
    assert len(list((tmp_path / "ck").glob("*/*.pt"))) == 3  # two finished models, one after epoch 1
    steps = []

    def counting(*args, **kw):
        steps.append(0)
        kw["on_batch"] = lambda e, b: steps.__setitem__(-1, steps[-1] + 1)
        return real_train(*args, **kw)

    monkeypatch.setattr(training, "train", counting)
    resumed = exp.run(cfg | {"resume": True}).arrays
    assert steps == [0, 0, 2, 4]  # finished models are not retrained; the third redoes its second epoch only
    for k in whole:
        assert np.array_equal(whole[k], resumed[k]), k
