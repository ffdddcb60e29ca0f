"""Nothing crashes, nothing leaks, nothing depends on the machine (issue 17).

Divergence is a recorded outcome with its iteration; limits refuse impossible sizes in one
line before anything is allocated; a failed or interrupted command leaves nothing behind;
checkpoints stay under --out; every setting that changes bits is in config.json.
"""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ndgm.cli import main
from ndgm.store import RunStore

from experiment_cases import TINY

pytestmark = pytest.mark.usefixtures("one_thread")


def _argv(name: str, **kw) -> list[str]:
    from ndgm.experiments import EXPERIMENTS

    params = {p.name: p for p in EXPERIMENTS[name].all_params()}
    args = []
    for k, v in {**TINY[name], **kw}.items():
        args += [params[k].flag, v if isinstance(v, str) else params[k].show(v)]
    return args


def _one_run(root: Path):
    runs = RunStore(root).runs()
    assert len(runs) == 1
    return runs[0]


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("ndgm: error: "), err
    return err


# --- 1. divergence is recorded, not a crash ------------------------------------------------------------

@pytest.mark.parametrize("kw,diverged", [
    (dict(lr="1e308"), [1, 1]),          # eta*lam*||w|| overflows the loss at the first step
    (dict(lams="1e308"), [0]),           # lam*||w0|| is already inf
])
def test_lasso_toy_divergence_is_recorded_with_its_iteration(kw, diverged, tmp_path, capsys):
    assert main(["run", "lasso-toy", *_argv("lasso-toy", **kw), "--out", str(tmp_path), "--no-progress"]) == 0
    assert "could not be drawn" not in capsys.readouterr().err
    run = _one_run(tmp_path)
    s = run.result["summary"]
    assert s["diverged_at"] == diverged
    assert all(math.isnan(e) for e in s["max_abs_error_vs_closed_form"])
    loss = run.arrays()["loss"]
    for k, at in enumerate(diverged):
        assert np.isfinite(loss[:at, k]).all() and np.isnan(loss[at:, k]).all()  # padded, not dropped
    assert (run.path / "lasso_toy.png").stat().st_size > 10_000


@pytest.mark.parametrize("w0", ["nan", "inf", "1e308", "0"])
def test_lasso_2d_with_a_start_at_the_edge_is_recorded(w0, tmp_path, capsys):
    assert main(["run", "lasso-2d", *_argv("lasso-2d"), f"--w0={w0}", "--out", str(tmp_path), "--no-progress"]) == 0
    assert "could not be drawn" not in capsys.readouterr().err
    s = _one_run(tmp_path).result["summary"]
    expected = {"nan": 0, "inf": 0, "1e308": 0, "0": -1}[w0]  # 1e308: lam * (|w1| + |w2|) = inf at once
    assert s["diverged_at"]["phase1"] == [expected, expected]
    if w0 == "0":
        assert s["phase1_small_tail_l1_max"] == 0.0 and math.isnan(s["phase1_ratio"])  # 0/0, not a crash


def test_gdmap_starts_near_the_float_limit_diverge_and_are_counted(tmp_path, capsys):
    assert main(["run", "gdmap-1d", *_argv("gdmap-1d", t_max="1e308"), "--out", str(tmp_path), "--no-progress"]) == 0
    assert "could not be drawn" not in capsys.readouterr().err
    run = _one_run(tmp_path)
    s = run.result["summary"]
    assert s["diverged_at"] == {"singular": 1, "cycle": 1, "converge": 1}
    assert 0 < s["diverged_starts"]["converge"] < s["starts"]
    assert np.isfinite(run.arrays()["grid"]).all()  # t_max * linspace(-1, 1): no overflowed step


def test_capture_divergence_is_marked_on_its_figure(tmp_path, capsys):
    from ndgm.figures.capture import plot_capture

    assert main(["run", "capture", *_argv("capture", lr="1e150"), "--out", str(tmp_path), "--no-progress"]) == 0
    assert "could not be drawn" not in capsys.readouterr().err
    run = _one_run(tmp_path)
    k = run.result["summary"]["diverged_at"]
    assert k >= 1
    texts = []
    import matplotlib.figure

    real_savefig = matplotlib.figure.Figure.savefig

    def spy(fig, *a, **kw):  # read the figure's texts as it is saved
        texts.extend(t.get_text() for t in fig.findobj(matplotlib.text.Text))
        return real_savefig(fig, *a, **kw)

    matplotlib.figure.Figure.savefig = spy
    try:
        plot_capture(run.arrays(), run.result["summary"], run.config["config"], tmp_path / "c.png")
    finally:
        matplotlib.figure.Figure.savefig = real_savefig
    assert any(t.startswith(f"DIVERGED at iteration {k}") for t in texts)
    assert any("before the divergence" in t for t in texts)


def test_lasso_variants_with_a_huge_step_is_recorded(tmp_path, capsys):
    assert main(["run", "lasso-variants", *_argv("lasso-variants", lr="1e308"), "--out", str(tmp_path),
                 "--no-progress"]) == 0
    assert "could not be drawn" not in capsys.readouterr().err
    s = _one_run(tmp_path).result["summary"]
    # lam = 10: eta * lam * ||w|| overflows at once; lam = 0.1 stays finite (1e307-sized 2-cycle)
    assert s["per_rule"]["ndgm"]["diverged_at"] == [-1, 1]


# --- 5. writes only inside --out; failed commands leave nothing ----------------------------------------

def test_out_must_name_a_folder(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for argv in (["run", "capture"], ["sweep", "capture"], ["reproduce"], ["list"], ["store", "check"]):
        assert main([*argv, "--out", ""]) == 2
        assert "--out: must name a folder" in _one_error_line(capsys)
    assert list(tmp_path.iterdir()) == []


def test_a_failed_command_leaves_no_empty_out_folder(tmp_path, capsys, monkeypatch):
    from ndgm.experiments import EXPERIMENTS

    out = tmp_path / "a" / "b"

    def fail(*a, **k):
        from ndgm.errors import NdgmError

        raise NdgmError("the data folder vanished")

    monkeypatch.setattr(EXPERIMENTS["capture"], "compute", fail)
    assert main(["run", "capture", *_argv("capture"), "--out", str(out)]) == 2
    assert "the data folder vanished" in _one_error_line(capsys)
    assert not (tmp_path / "a").exists()
    # a folder that existed before is kept, empty or not
    out.mkdir(parents=True)
    assert main(["run", "capture", *_argv("capture"), "--out", str(out)]) == 2
    assert out.is_dir() and list(out.iterdir()) == []


def test_ctrl_c_exits_130_with_one_line_and_leaves_no_temporary_folder(tmp_path, capsys, monkeypatch):
    import ndgm.store

    def interrupted(*a, **k):  # Ctrl-C while the run folder is being written
        raise KeyboardInterrupt

    monkeypatch.setattr(ndgm.store.np, "savez_compressed", interrupted)
    out = tmp_path / "out"
    assert main(["run", "capture", *_argv("capture"), "--out", str(out), "--no-progress"]) == 130
    assert capsys.readouterr().err == "ndgm: interrupted\n"
    assert not out.exists()  # no .tmp-* folder, and the folder the command made is gone


@pytest.mark.slow
def test_checkpoints_stay_under_out_also_after_ctrl_c(tmp_path, capsys, monkeypatch):
    """l1-deep keeps per-epoch checkpoints; they go to <out>/.work, never ./runs/checkpoints."""
    import ndgm.training

    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    saved = []
    real = ndgm.training._atomic_save

    def save_then_interrupt(obj, path):
        real(obj, path)
        saved.append(Path(path).absolute())
        raise KeyboardInterrupt

    monkeypatch.setattr(ndgm.training, "_atomic_save", save_then_interrupt)
    out = tmp_path / "out"
    argv = ["run", "l1-deep", *_argv("l1-deep", epochs=2), "--out", str(out), "--no-progress"]
    assert main(argv) == 130
    assert list(cwd.iterdir()) == []  # nothing in the current directory
    assert saved and all(out.absolute() / ".work" in p.parents for p in saved)
    assert not [p for p in out.rglob(".tmp-*")]
    capsys.readouterr()
    monkeypatch.setattr(ndgm.training, "_atomic_save", real)
    assert main([*argv, "--resume", "true"]) == 0  # the checkpoint is found again under --out
    assert list(cwd.iterdir()) == [] and not list((out / ".work").rglob("*.pt"))


# --- 6. limits, before any allocation --------------------------------------------------------------------

@pytest.mark.parametrize("argv,needle", [
    (["capture", "--seed", "99999999999999"], "--seed must be <= 4294967295 (numpy's seed range"),
    (["capture", "--iterations", "99999999999999999999"], "--iterations must be <= 2147483647"),
    (["capture", "--n", "10000000000"], "--n must be <= 2147483647"),
    (["capture", "--n", "1000000000"], "capture would allocate about 14.6 TiB (--n 1000000000, --d 500"),
    (["lasso-toy", "--d", "100000000000"], "--d must be <= 2147483647"),
    (["lasso-toy", "--d", "1000000000"],
     "lasso-toy would allocate about 3.03 TiB (--d 1000000000, --lams 0.1,1.0,10.0,100.0, --iterations 1200)"),
    (["lasso-toy", "--lr", "1e-200", "--lams", "1e-200"], "--lr * min(--lams) = 0 is too small"),
    (["lasso-2d", "--iterations", "2000000000"], "lasso-2d would allocate about"),
    (["gdmap-1d", "--starts", "2000000000"], "gdmap-1d would allocate about"),
])
def test_impossible_sizes_are_one_line_naming_the_limit(argv, needle, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("NDGM_MEMORY_LIMIT", "64G")
    out = tmp_path / "out"
    assert main(["run", *argv, "--out", str(out)]) == 2
    err = _one_error_line(capsys)
    assert needle in err
    if "allocate" in needle:
        assert "the limit is 64 GiB (NDGM_MEMORY_LIMIT)" in err
    assert not out.exists()


def test_memory_limit_defaults_to_this_machines_memory(monkeypatch):
    from ndgm.errors import NdgmError
    from ndgm.experiments.base import memory_limit

    monkeypatch.delenv("NDGM_MEMORY_LIMIT", raising=False)
    limit, why = memory_limit()
    assert limit == os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") and "this machine" in why
    monkeypatch.setenv("NDGM_MEMORY_LIMIT", "1.5G")
    assert memory_limit()[0] == 1.5 * 2**30
    monkeypatch.setenv("NDGM_MEMORY_LIMIT", "lots")
    with pytest.raises(NdgmError, match="NDGM_MEMORY_LIMIT must be a number"):
        memory_limit()


def test_every_integer_parameter_has_a_limit():
    from ndgm.experiments import EXPERIMENTS

    for exp in EXPERIMENTS.values():
        for p in exp.all_params():
            if p.kind == "int":
                top, why = p.limit
                assert top is not None and why, (exp.name, p.name)
                if p.name == "seed":
                    assert top == 2**32 - 1


# --- 4. every setting that changes bits is recorded -------------------------------------------------------

def test_config_json_records_threads_flags_and_versions(tmp_path, capsys):
    import torch

    assert main(["run", "capture", *_argv("capture"), "--out", str(tmp_path), "--no-progress"]) == 0
    cfg = json.loads((_one_run(tmp_path).path / "config.json").read_text())
    env = cfg["environment"]
    assert env["threads"] == 1  # the one_thread fixture: the count in effect during compute
    assert env["torch"] == torch.__version__ and env["numpy"] == np.__version__
    assert env["device"] == "cpu" and env["dtype"] == "float64"
    for flag in ("deterministic_algorithms", "cudnn_deterministic", "cudnn_benchmark", "cuda_matmul_allow_tf32",
                 "float32_matmul_precision", "cpu_capability", "interop_threads"):
        assert flag in env
    assert any(p["user_api"] == "blas" for p in env["thread_pools"])
    capsys.readouterr()
    assert main(["show", cfg["run_id"], "--out", str(tmp_path)]) == 0
    assert "threads:    1 (torch), device cpu" in capsys.readouterr().out


def test_an_experiment_that_fixes_its_threads_records_them(tmp_path):
    from ndgm.experiments import EXPERIMENTS

    exp = EXPERIMENTS["lasso-toy"]  # threads = 1 whatever the caller's setting
    res = exp.run(exp.config(**TINY["lasso-toy"]), threads=2)
    assert res.environment["threads"] == 1
    exp = EXPERIMENTS["capture"]  # sets none: the requested count (a sweep's)
    assert exp.run(exp.config(**TINY["capture"]), threads=2).environment["threads"] == 2


def test_cli_subprocess_never_prints_a_traceback_for_an_internal_error(tmp_path):
    """The last line of defence: an unexpected exception is one line and exit 1 (a bug), and
    NDGM_TRACEBACK=1 shows the traceback."""
    script = ("import sys, ndgm.cli as c\n"
              "def boom(args): raise ZeroDivisionError('float division by zero')\n"
              "c.COMMANDS['list'] = boom\n"
              "sys.exit(c.main(['list', '--out', sys.argv[1]]))\n")
    p = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert p.returncode == 1 and p.stderr.count("\n") == 1 and "Traceback" not in p.stderr
    assert p.stderr.startswith("ndgm: internal error: ZeroDivisionError: float division by zero")
    p = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, NDGM_TRACEBACK="1"))
    assert "Traceback" in p.stderr


def test_rates_with_a_tolerance_near_the_float_limit_draws_its_figure(tmp_path, capsys):
    """eps_lo = 2.3e-284 (found by the fuzz test): 1/eps and the bound R^2 G^2 / eps^2 are beyond
    what a log axis can hold (matplotlib's tick formatter overflowed); those points are left out."""
    argv = ["run", "rates", *_argv("rates", eps_lo="2.3e-284"), "--out", str(tmp_path), "--no-progress"]
    assert main(argv) == 0
    assert "could not be drawn" not in capsys.readouterr().err
    run = _one_run(tmp_path)
    assert np.isinf(run.arrays()["bound_nonsmooth"][-1])  # recorded as computed
    assert (run.path / "rates.png").stat().st_size > 20_000  # the figure, not the placeholder
