import os
import signal
import subprocess
import sys
import time

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


@pytest.mark.slow  # waits for the connection to time out
def test_unreachable_scheduler_exits_2(tmp_path, capsys):
    assert main(["sweep", "capture", "--grid", "lr=0.1", "--scheduler", "tcp://127.0.0.1:1", "--out", str(tmp_path), *SMALL]) == 2
    assert "cannot reach the Dask scheduler" in capsys.readouterr().err


def _finished(root):
    return {p.name: (p / "result.json").stat().st_mtime_ns for p in (root / "runs").iterdir() if not p.name.startswith(".")}


@pytest.mark.slow
def test_interrupted_sweep_resumes_only_missing_runs(tmp_path, capsys):
    args = ["sweep", "capture", "--grid", "lr=0.01,0.02,0.03", "--seeds", "2", "--workers", "1",
            "--out", str(tmp_path), "--no-progress", *SMALL]
    proc = subprocess.Popen([sys.executable, "-m", "ndgm", *args], start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    try:
        while time.time() < deadline:
            runs = tmp_path / "runs"
            if runs.is_dir() and len([p for p in runs.iterdir() if not p.name.startswith(".")]) >= 2:
                break
            if proc.poll() is not None:
                pytest.fail("sweep finished before it could be interrupted")
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the sweep and its worker processes, mid-run
        proc.wait()
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
    distributed = pytest.importorskip("distributed")
    grid = ["--grid", "lr=0.01,0.05", "--grid", "l1=1e-3:1e-1:2:log", "--no-progress", *SMALL]
    assert main(["sweep", "capture", *grid, "--workers", "2", "--out", str(tmp_path / "local")]) == 0
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        assert main(["sweep", "capture", *grid, "--scheduler", cluster.scheduler_address,
                     "--out", str(tmp_path / "dask")]) == 0
    local = pd.read_parquet(tmp_path / "local" / "sweep-capture.parquet").drop(columns="run_id")
    dask = pd.read_parquet(tmp_path / "dask" / "sweep-capture.parquet").drop(columns="run_id")
    assert len(local) == 4
    pd.testing.assert_frame_equal(local, dask, check_exact=True)
    assert len(RunStore(tmp_path / "dask" / "runs").runs()) == 4
