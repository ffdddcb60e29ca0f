"""The run store survives damage: every damaged folder is reported with its reason, never a
traceback; ``ndgm store check --repair`` moves damaged and half-written folders aside and
never deletes or moves a sound run."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from ndgm.cli import main
from ndgm.store import RunStore

SMALL = ["--iterations", "40", "--n", "30", "--d", "5", "--quad-iterations", "20", "--no-progress"]


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    """One sound capture run folder, copied by each test that damages it."""
    root = tmp_path_factory.mktemp("pristine")
    assert main(["run", "capture", *SMALL, "--out", str(root)]) == 0
    (run,) = RunStore(root).runs()
    return run.path


def _truncate(f, keep=0.5):
    data = f.read_bytes()
    f.write_bytes(data[: int(len(data) * keep)])


DAMAGE = {
    "truncated result.json": (lambda p: _truncate(p / "result.json"), "result.json is not valid JSON"),
    "truncated config.json": (lambda p: _truncate(p / "config.json"), "config.json is not valid JSON"),
    "empty result.json": (lambda p: (p / "result.json").write_text(""), "result.json is not valid JSON (empty)"),
    "missing metrics.npz": (lambda p: (p / "metrics.npz").unlink(), "metrics.npz is missing"),
    "truncated metrics.npz": (lambda p: _truncate(p / "metrics.npz"), "metrics.npz cannot be read"),
    "config.json holding a JSON string": (lambda p: (p / "config.json").write_text('"capture"\n'),
                                          "config.json holds a JSON str, not an object"),
    "result.json holding a list": (lambda p: (p / "result.json").write_text("[1, 2]\n"),
                                   "result.json holds a JSON list, not an object"),
    "missing result.json": (lambda p: (p / "result.json").unlink(), "result.json is missing"),
    "claims not claims": (lambda p: (p / "result.json").write_text('{"summary": {}, "claims": [1]}'),
                          "result.json's 'claims' is not a list of claims"),
    "a claim with a bad verdict": (
        lambda p: (p / "result.json").write_text(json.dumps(
            {"summary": {}, "claims": [{"claim": "c", "source": "s", "expected": 1, "measured": 1, "verdict": "maybe"}]})),
        "result.json's claim 1 is not a valid claim"),
}


@pytest.fixture
def damaged(pristine, tmp_path, request):
    """A store with one sound run and one run damaged in the way ``request.param`` names."""
    root = tmp_path / "store"
    root.mkdir()
    sound = shutil.copytree(pristine, root / pristine.name)
    bad = shutil.copytree(pristine, root / (pristine.name[:-8] + "deadbeef"))
    DAMAGE[request.param][0](bad)
    return root, sound, bad, DAMAGE[request.param][1]


@pytest.mark.parametrize("damaged", list(DAMAGE), indirect=True)
def test_list_shows_a_damaged_run_with_its_reason(damaged, capsys):
    root, sound, bad, reason = damaged
    assert main(["list", "--out", str(root)]) == 0
    out = capsys.readouterr().out
    assert "runs under" in out and ": 1, and 1 damaged" in out
    line = next(ln for ln in out.splitlines() if bad.name in ln)
    assert "DAMAGED:" in line and reason in line
    assert sound.name in out


@pytest.mark.parametrize("damaged", list(DAMAGE), indirect=True)
@pytest.mark.parametrize("how", ["id", "prefix", "path"])
def test_show_explains_what_is_wrong_in_one_line(damaged, how, capsys):
    root, sound, bad, reason = damaged
    ref = {"id": bad.name, "prefix": bad.name[:-2], "path": str(bad)}[how]
    rc = main(["show", ref, "--out", str(root)])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and err.startswith("ndgm: error: "), err
    assert f"run {bad.name!r} is damaged" in err and reason in err and "store check --repair" in err


@pytest.mark.parametrize("damaged", ["missing metrics.npz", "truncated metrics.npz"], indirect=True)
def test_show_plot_and_compare_on_a_run_without_readable_arrays(damaged, tmp_path, capsys):
    root, sound, bad, reason = damaged
    for argv in (["show", bad.name, "--plot"], ["compare", sound.name, bad.name, "--output", str(tmp_path / "c.png")]):
        rc = main([*argv, "--out", str(root)])
        err = capsys.readouterr().err
        assert rc == 2 and err.count("\n") == 1 and reason in err, err
    assert not (tmp_path / "c.png").exists()


def test_damaged_runs_are_not_finished_for_a_sweep(pristine, tmp_path):
    root = tmp_path / "store"
    bad = shutil.copytree(pristine, root / pristine.name)
    assert len(RunStore(root).index()) == 1
    (bad / "metrics.npz").unlink()
    assert RunStore(root).index() == {}  # the sweep runs that configuration again


def test_store_check_repair_moves_damage_aside_and_never_a_sound_run(pristine, tmp_path, capsys):
    root = tmp_path / "store"
    root.mkdir()
    sound = shutil.copytree(pristine, root / pristine.name)
    bad = shutil.copytree(pristine, root / "capture-damaged")
    _truncate(bad / "result.json")
    # a half-written run: a temporary folder whose writer (a pid that cannot exist) is gone
    half = root / ".tmp-999999999-capture-20260101-000000-abc-xyz"
    shutil.copytree(pristine, half)
    # a folder being written right now (this process) is left alone
    busy = root / f".tmp-{os.getpid()}-capture-busy-xyz"
    busy.mkdir()
    # a corrupt array member: the zip directory reads, the data does not
    crc = shutil.copytree(pristine, root / "capture-crc")
    data = bytearray((crc / "metrics.npz").read_bytes())
    data[60:80] = b"\x00" * 20
    (crc / "metrics.npz").write_bytes(bytes(data))
    snapshot = {p: p.read_bytes() for p in sound.iterdir()}

    assert main(["store", "check", "--out", str(root)]) == 1
    out = capsys.readouterr().out
    assert "1 sound run(s), 2 damaged, 1 half-written" in out and "in progress" in out
    assert bad.exists() and half.exists()  # without --repair nothing moves

    assert main(["store", "check", "--repair", "--out", str(root)]) == 0
    out = capsys.readouterr().out
    aside = root / ".damaged"
    assert {p.name for p in aside.iterdir()} == {"capture-damaged", "capture-crc", half.name.lstrip(".")}
    assert not bad.exists() and not half.exists() and busy.exists()
    assert {p: p.read_bytes() for p in sound.iterdir()} == snapshot  # the sound run is untouched
    assert main(["list", "--out", str(root)]) == 0
    assert "and 1 damaged" not in capsys.readouterr().out
    assert main(["store", "check", "--out", str(root)]) == 0  # sound now; moved folders are not read again


def test_a_killed_save_leaves_only_a_temporary_folder_that_check_finds(tmp_path):
    """SIGKILL during RunStore.save: no run appears (the rename never happened), and the
    hidden temporary folder is found by check as half-written."""
    root = tmp_path / "store"
    script = f"""
import os, signal
import numpy as np
from ndgm.experiments import get_experiment
from ndgm.store import RunStore
exp = get_experiment("capture")
res = exp.run(exp.config(iterations=30, n=20, d=4, quad_iterations=10))
def die(*a, **k):
    os.kill(os.getpid(), signal.SIGKILL)
np.savez_compressed = die
RunStore({str(root)!r}).save(res)
"""
    p = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=300)
    assert p.returncode == -9
    store = RunStore(root)
    assert store.runs() == [] and store.scan()[1] == []
    report = store.check()
    assert len(report.half_written) == 1 and report.half_written[0].name.startswith(".tmp-")


def test_nan_and_inf_in_a_summary_read_back_as_floats(tmp_path):
    from ndgm.experiments import Result

    res = Result("capture", {"x": 1}, {"a": np.zeros(2)}, {"v": float("nan"), "w": [float("inf"), 1.0], "s": "text"})
    store = RunStore(tmp_path)
    run = store.load(store.save(res))
    s = run.result["summary"]
    assert np.isnan(s["v"]) and s["w"] == [float("inf"), 1.0] and s["s"] == "text"
    assert json.loads((run.path / "result.json").read_text())["summary"]["v"] == "nan"  # strict JSON on disk


def test_load_refuses_empty_and_overlong_names(tmp_path):
    from ndgm.errors import NdgmError

    store = RunStore(tmp_path)
    for bad in ("", "x" * 5000):
        with pytest.raises(NdgmError):
            store.load(bad)
