import math
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

from ndgm.cli import main
from ndgm.errors import NdgmError
from ndgm.store import RunStore
from ndgm.sweep import expand, parse_grid

SMALL = ["--set", "iterations=40", "--set", "n=30", "--set", "d=5", "--set", "quad_iterations=20"]


def test_parse_grid_lists_and_ranges():
    g = parse_grid(["lr=0.001,0.01", "l1=1e-3:1:4:log", "l2=0:1:3"])
    assert g["lr"] == ["0.001", "0.01"]
    assert [float(v) for v in g["l1"]] == pytest.approx([1e-3, 1e-2, 1e-1, 1.0])
    assert [float(v) for v in g["l2"]] == [0.0, 0.5, 1.0]
    for bad in (["lr"], ["lr=1:2"], ["lr=0:1:3:log"], ["lr=1:2:x"], ["lr=1:2:3:cubic"]):
        with pytest.raises(NdgmError):
            parse_grid(bad)


def test_expand_validates_every_value_and_adds_seeds():
    cfgs = expand("capture", parse_grid(["lr=0.01,0.02"]), seeds=3)
    assert len(cfgs) == 6 and sorted({c["seed"] for c in cfgs}) == [42, 43, 44]
    with pytest.raises(NdgmError, match="--lr must be a finite number > 0"):
        expand("capture", parse_grid(["lr=0.01,-1"]))
    with pytest.raises(NdgmError, match="unknown parameter"):
        expand("capture", parse_grid(["nope=1,2"]))


def test_bad_sweep_input_exits_2(tmp_path, capsys):
    assert main(["sweep", "capture", "--grid", "lr=a,b", "--out", str(tmp_path)]) == 2
    assert main(["sweep", "nope", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "ndgm: error: --lr must be a number" in err and "unknown experiment 'nope'" in err


@pytest.mark.parametrize("argv,needle", [
    (["--grid", "lr=0.01,0.02", "--set", "lr=0.03"], "lr is given by both --grid and --set"),
    (["--set", "lr=0.01", "--set", "lr=0.02"], "--set lr given twice"),
    (["--grid", "seed=1,2", "--seeds", "2"], "either with --seeds or with --grid seed"),
    (["--grid", "lr=1:1e400:3"], "start and stop must be finite numbers, got 1.0 and inf"),
    (["--grid", "lr=nan:1:3"], "start and stop must be finite numbers"),
    (["--grid", "lr=0.001:1:1000000000000"], "1000000000000 values; a sweep holds at most 100000"),
    (["--grid", "lr=0.001:1:1000", "--grid", "l1=0:1:1000"], "the sweep would hold 1000000 configurations"),
    (["--grid", "lr=0.01,0.02", "--seeds", "999999"], "the sweep would hold 1999998 configurations"),
    (["--grid", "lr=0.01", "--seeds", "99999999999"], "--seeds: must be an integer between 1 and 2147483647"),
    (["--seeds", "0"], "--seeds: must be an integer between 1 and"),
    (["--seeds", "-3"], "--seeds: must be an integer between 1 and"),
    (["--workers", "0"], "--workers: must be an integer between 1 and"),
    (["--grid", "iterations=10:100:3.5"], "num an integer"),
    (["--grid", "iterations=2.5,3"], "--iterations must be an integer, got '2.5'"),
    (["--grid", "=1,2"], "a parameter name is letters"),
    (["--set", "seed=99999999999999"], "--seed must be <= 4294967295"),
    (["--scheduler", "notaurl"], "--scheduler 'notaurl': expected tcp://HOST:PORT"),
    (["--scheduler", "tcp://host:notaport"], "expected tcp://HOST:PORT"),
])
def test_sweep_conflicts_and_impossible_grids_are_one_line(argv, needle, tmp_path, capsys):
    out = tmp_path / "out"
    t0 = time.monotonic()
    assert main(["sweep", "capture", *argv, "--out", str(out), "--no-progress"]) == 2
    assert time.monotonic() - t0 < 20  # refused before anything is allocated or run
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("ndgm: error: ") and needle in err, err
    assert not out.exists()


def test_set_seed_is_the_base_of_seeds():
    cfgs = expand("capture", {}, seeds=2, fixed={"seed": "5", "iterations": "40"})
    assert [c["seed"] for c in cfgs] == [5, 6] and {c["iterations"] for c in cfgs} == {40}


def test_a_range_over_an_integer_parameter_gives_integers():
    cfgs = expand("capture", parse_grid(["iterations=10:100:3"]))
    assert [c["iterations"] for c in cfgs] == [10, 55, 100]
    cfgs = expand("capture", parse_grid(["iterations=1:1000:4:log"]))
    assert [c["iterations"] for c in cfgs] == [1, 10, 100, 1000]
    cfgs = expand("capture", parse_grid(["iterations=1:3:9"]))  # repeats after rounding are dropped
    assert [c["iterations"] for c in cfgs] == [1, 2, 3]
    g = parse_grid(["lr=1e-300:1e308:3"])  # ends near the float limit: finite values, no overflowed step
    assert [float(v) for v in g["lr"]][-1] == 1e308 and all(math.isfinite(v) for v in g["lr"])


def test_unreachable_scheduler_is_fast_and_one_line(tmp_path, capsys):
    t0 = time.monotonic()
    rc = main(["sweep", "capture", "--grid", "lr=0.1", "--scheduler", "tcp://127.0.0.1:1", "--out", str(tmp_path / "o"),
               *SMALL])
    took = time.monotonic() - t0
    err = capsys.readouterr().err
    assert rc == 2 and took < 8, took
    assert err.count("\n") == 1 and err.startswith("ndgm: error: cannot reach the Dask scheduler at 'tcp://127.0.0.1:1'")
    assert not (tmp_path / "o").exists()


def test_a_diverging_configuration_is_a_row_and_the_sweep_finishes(tmp_path, capsys):
    args = ["sweep", "lasso-toy", "--grid", "lr=0.01,0.02,1e308", "--set", "d=10", "--set", "lams=1,10",
            "--set", "iterations=200", "--workers", "1", "--out", str(tmp_path), "--no-progress"]
    assert main(args) == 0
    table = pd.read_parquet(tmp_path / "sweep-lasso-toy.parquet")
    assert list(table["config.lr"]) == [0.01, 0.02, 1e308] and set(table["status"]) == {"finished"}
    capsys.readouterr()
    assert main(args) == 0  # a rerun finds all three finished
    assert "3 configurations, 3 already finished, 0 to run" in capsys.readouterr().err


def test_a_failing_configuration_does_not_stop_the_others(tmp_path, capsys, monkeypatch):
    """An error in a worker is a row with status 'failed' and its error; the rest is stored; exit 1;
    running the sweep again retries only the failed one."""
    from ndgm.experiments import EXPERIMENTS

    distributed = pytest.importorskip("distributed")
    exp = EXPERIMENTS["capture"]
    real = exp.compute

    def flaky(config, ctx):
        if config["lr"] == 0.02:
            raise FloatingPointError("the solver gave up")
        return real(config, ctx)

    monkeypatch.setattr(exp, "compute", flaky)
    args = ["sweep", "capture", "--grid", "lr=0.01,0.02,0.03", "--out", str(tmp_path), "--no-progress", *SMALL]
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as c:
        assert main([*args, "--scheduler", c.scheduler_address]) == 1
        err = capsys.readouterr().err
        assert "1 of 3 configurations failed" in err and "FloatingPointError: the solver gave up" in err
        table = pd.read_parquet(tmp_path / "sweep-capture.parquet")
        assert list(table["status"]) == ["finished", "failed", "finished"]
        assert table["error"].iloc[1] == "FloatingPointError: the solver gave up"
        monkeypatch.setattr(exp, "compute", real)
        assert main([*args, "--scheduler", c.scheduler_address]) == 0
        assert "3 configurations, 2 already finished, 1 to run" in capsys.readouterr().err
    assert list(pd.read_parquet(tmp_path / "sweep-capture.parquet")["status"]) == ["finished"] * 3


def test_finished_runs_with_another_thread_count_are_refused(tmp_path, capsys):
    args = ["sweep", "capture", "--grid", "lr=0.01", "--workers", "1", "--out", str(tmp_path), "--no-progress", *SMALL]
    assert main(args) == 0
    (run,) = RunStore(tmp_path / "runs").runs()
    assert run.environment["threads"] == 1  # the sweep's default, whatever this machine's core count
    capsys.readouterr()
    assert main([*args, "--threads", "2"]) == 2
    err = capsys.readouterr().err
    assert "were computed with 1 thread(s), this sweep computes with 2" in err and "--threads 1" in err


def _finished(root):
    return {p.name: (p / "result.json").stat().st_mtime_ns for p in (root / "runs").iterdir() if not p.name.startswith(".")}


def _children(pid: int) -> set[int]:
    """Processes whose parent is ``pid`` (from /proc)."""
    out = set()
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                out.add(int(d))
    return out


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.slow
@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads worker pids from /proc")
def test_interrupted_sweep_resumes_only_missing_runs(tmp_path, capsys):
    """kill -9 of the sweep process alone (not its group): its workers die with it, the
    finished folders stay untouched, and the rerun computes only the missing ones."""
    args = ["sweep", "capture", "--grid", "lr=0.01,0.02,0.03", "--seeds", "2", "--workers", "2",
            "--out", str(tmp_path), "--no-progress", *SMALL]
    proc = subprocess.Popen([sys.executable, "-m", "ndgm", *args], start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    workers: set[int] = set()
    try:
        while time.time() < deadline:
            workers |= _children(proc.pid)
            runs = tmp_path / "runs"
            if runs.is_dir() and len([p for p in runs.iterdir() if not p.name.startswith(".")]) >= 2:
                break
            if proc.poll() is not None:
                pytest.fail("sweep finished before it could be interrupted")
            time.sleep(0.05)
        workers |= _children(proc.pid)
        proc.kill()  # SIGKILL to the parent only: nothing can clean up for it
        proc.wait()
        gone = time.time() + 15
        while time.time() < gone and any(_alive(w) for w in workers):
            time.sleep(0.1)
        survivors = [w for w in workers if _alive(w)]
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # whatever is left, so that a failure does not leak
        except ProcessLookupError:
            pass
    assert len(workers) >= 2 and survivors == [], survivors
    before = _finished(tmp_path)
    assert 2 <= len(before) < 6
    capsys.readouterr()
    assert main(args) == 0
    err = capsys.readouterr().err
    assert f"6 configurations, {len(before)} already finished, {6 - len(before)} to run" in err
    after = _finished(tmp_path)
    assert len(after) == 6
    assert {k: after[k] for k in before} == before  # nothing finished was recomputed or overwritten
    table = pd.read_csv(tmp_path / "sweep-capture.csv")
    assert len(table) == 6 and set(table["config.lr"]) == {0.01, 0.02, 0.03}
    assert table.equals(pd.read_parquet(tmp_path / "sweep-capture.parquet"))


@pytest.mark.slow
def test_dask_local_cluster_gives_the_same_table(tmp_path):
    """A local sweep and the same sweep on a LocalCluster of worker processes give bitwise
    equal tables and arrays: every worker computes with the sweep's thread count (here 2,
    which the Dask nanny would otherwise pin to 1 and local workers leave at the core count)."""
    distributed = pytest.importorskip("distributed")
    grid = ["--grid", "lr=0.01,0.05", "--grid", "l1=1e-3:1e-1:2:log", "--set", "n=400", "--set", "d=300",
            "--set", "iterations=300", "--set", "quad_iterations=20", "--threads", "2", "--no-progress"]
    assert main(["sweep", "capture", *grid, "--workers", "2", "--out", str(tmp_path / "local")]) == 0
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        assert main(["sweep", "capture", *grid, "--scheduler", cluster.scheduler_address,
                     "--out", str(tmp_path / "dask")]) == 0
    local = pd.read_parquet(tmp_path / "local" / "sweep-capture.parquet").drop(columns="run_id")
    dask = pd.read_parquet(tmp_path / "dask" / "sweep-capture.parquet").drop(columns="run_id")
    assert len(local) == 4
    pd.testing.assert_frame_equal(local, dask, check_exact=True)
    runs = {b: {r.config["config_hash"]: r for r in RunStore(tmp_path / b / "runs").runs()} for b in ("local", "dask")}
    assert runs["local"].keys() == runs["dask"].keys() and len(runs["dask"]) == 4
    for h, r in runs["local"].items():
        other = runs["dask"][h]
        assert r.environment["threads"] == other.environment["threads"] == 2
        a, b = r.arrays(), other.arrays()
        assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k], equal_nan=True) for k in a)


@pytest.mark.slow
@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads worker pids from /proc")
def test_ctrl_c_stops_a_local_sweep_with_one_line(tmp_path):
    """Ctrl-C (SIGINT to the whole process group, as a terminal sends it): exit 130, one line,
    no worker traceback, no worker left, no temporary folder in the store; finished runs stay."""
    args = ["sweep", "capture", "--grid", "lr=0.01,0.02,0.03,0.04", "--seeds", "2", "--workers", "2",
            "--out", str(tmp_path), "--no-progress", *SMALL]
    proc = subprocess.Popen([sys.executable, "-m", "ndgm", *args], start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    workers: set[int] = set()
    try:
        deadline = time.time() + 300
        while time.time() < deadline:
            workers |= _children(proc.pid)
            if len(_finished_or_none(tmp_path)) >= 1:
                break
            if proc.poll() is not None:
                pytest.fail("sweep finished before it could be interrupted")
            time.sleep(0.05)
        workers |= _children(proc.pid)
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert proc.returncode == 130, err
    assert err == "ndgm: interrupted\n" or err.endswith("\nndgm: interrupted\n") and "Traceback" not in err, err
    assert "Traceback" not in err and err.count("ndgm:") == 1
    gone = time.time() + 15
    while time.time() < gone and any(_alive(w) for w in workers):
        time.sleep(0.1)
    assert workers and not [w for w in workers if _alive(w)]
    assert not list((tmp_path / "runs").glob(".tmp-*"))
    assert RunStore(tmp_path / "runs").scan()[1] == []  # what finished is sound


def _finished_or_none(root):
    runs = root / "runs"
    return [p for p in runs.iterdir() if not p.name.startswith(".")] if runs.is_dir() else []
