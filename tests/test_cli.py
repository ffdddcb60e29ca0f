import json
import os
import subprocess
import sys

import numpy as np
import pytest

from ndgm.cli import main
from ndgm.store import RunStore

SMALL = ["--iterations", "50", "--n", "40", "--d", "6", "--quad-iterations", "30", "--no-progress"]


# Each experiment's own bad values are in experiment_cases.BAD (the contract suite); these are the CLI's.
@pytest.mark.parametrize("argv,needle", [
    (["run", "nope"], "nope"),
    (["run", "capture", "--dtype", "float16"], "unknown dtype 'float16'"),
    (["run", "capture", "--device", "tpu"], "unknown device 'tpu'"),
    (["show", "no-such-run"], "no run 'no-such-run'"),
    (["reproduce", "--only", "zzz*"], "matches no experiment"),
    (["reproduce", "--quick", "--full"], "not allowed with argument"),
])
def test_bad_input_is_one_line_and_exit_2(argv, needle, capsys, tmp_path):
    rc = main(argv + (["--out", str(tmp_path)] if argv[0] != "reproduce" else ["--out", str(tmp_path / "r")]))
    err = capsys.readouterr().err
    assert rc == 2
    assert err.count("\n") == 1 and err.startswith("ndgm: error: ") and needle in err
    assert not any(p.name.startswith("capture") for p in tmp_path.iterdir())


def test_unwritable_output_directory(tmp_path, capsys):
    if os.geteuid() == 0:
        target = "/proc/ndgm-cannot-write-here"  # root ignores file modes; /proc refuses anyone
    else:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        target = str(locked / "runs")
    rc = main(["run", "capture", *SMALL, "--out", target])
    err = capsys.readouterr().err
    assert rc == 2 and "not writable" in err and err.count("\n") == 1


def test_cli_process_exit_code_and_no_traceback():
    p = subprocess.run([sys.executable, "-m", "ndgm", "run", "capture", "--lr", "-1"], capture_output=True, text=True)
    assert p.returncode == 2 and "Traceback" not in p.stderr and p.stderr.strip().startswith("ndgm: error:")


def _help(argv, capsys) -> str:
    with pytest.raises(SystemExit) as e:
        main([*argv, "--help"])
    assert e.value.code == 0
    return " ".join(capsys.readouterr().out.split())


def test_help_lists_experiment_parameters(capsys):
    text = _help(["run", "capture"], capsys)
    for flag in ("--iterations", "--lr", "--l1", "--l2", "--seed", "--dtype", "--device", "--out"):
        assert flag in text
    assert "(default: 0.1,1.0,10.0,100.0)" in _help(["run", "lasso-toy"], capsys)  # a list, as it is typed


def test_reproduce_is_quick_unless_full(capsys):
    from ndgm.cli import _build_parser

    parser = _build_parser(with_experiments=False)
    assert parser.parse_args(["reproduce"]).full is False
    assert parser.parse_args(["reproduce", "--quick"]).full is False
    assert parser.parse_args(["reproduce", "--full"]).full is True
    assert "quick mode, the default" in _help(["reproduce"], capsys)


def test_run_writes_a_complete_folder_then_list_and_show(tmp_path, capsys):
    assert main(["run", "capture", *SMALL, "--l2", "0.01", "--out", str(tmp_path)]) == 0
    runs = RunStore(tmp_path).runs()
    assert len(runs) == 1
    run = runs[0]
    names = {p.name for p in run.path.iterdir()}
    assert {"config.json", "metrics.npz", "result.json", "capture.png", "quadratic_contrast.png"} <= names
    cfg = json.loads((run.path / "config.json").read_text())
    assert cfg["config"]["l2"] == 0.01 and cfg["config"]["iterations"] == 50
    assert cfg["versions"]["torch"].startswith("2.13.0") and "ndgm" in cfg["versions"]
    res = json.loads((run.path / "result.json").read_text())
    assert all({"claim", "expected", "measured", "rule", "verdict"} <= set(c) for c in res["claims"])
    arrays = run.arrays()
    assert arrays["loss"].shape == (50,) and np.isfinite(arrays["loss"]).all()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp")]
    capsys.readouterr()

    assert main(["list", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "capture" in out and run.run_id in out
    (run.path / "capture.png").unlink()
    assert main(["show", run.run_id[:20], "--out", str(tmp_path), "--plot"]) == 0
    out = capsys.readouterr().out
    assert "claim" in out and "l2=0.01" in out and (run.path / "capture.png").is_file()


def test_failed_save_leaves_nothing_behind(tmp_path, monkeypatch, capsys):
    import errno

    def disk_full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("ndgm.store.np.savez_compressed", disk_full)
    out = tmp_path / "new"
    assert main(["run", "capture", *SMALL, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "No space left on device" in err and "nothing was stored" in err
    assert not out.exists()  # not even the --out folder the command created


def test_a_figure_that_cannot_be_drawn_does_not_cost_the_run(tmp_path, monkeypatch, capsys):
    from ndgm.figures import FIGURES, get

    def boom(*a, **k):
        raise ValueError("Axis limits cannot be NaN or Inf")

    get("capture.png")
    monkeypatch.setitem(FIGURES, "capture.png", boom)
    assert main(["run", "capture", *SMALL, "--out", str(tmp_path)]) == 0
    err = capsys.readouterr().err
    assert "ndgm: warning: figure capture.png could not be drawn (ValueError: Axis limits" in err
    run = RunStore(tmp_path).runs()[0]
    assert (run.path / "capture.png").stat().st_size > 0 and (run.path / "quadratic_contrast.png").is_file()


def test_full_reproduction_says_what_it_cannot_run_here(tmp_path, capsys):
    assert main(["reproduce", "--full", "--only", "l1-deep", "--out", str(tmp_path), "--no-progress"]) == 0
    ledger = json.loads((tmp_path / "claims.json").read_text())
    assert len(ledger) == 1 and ledger[0]["verdict"] == "not run"
    assert "--data-dir" in ledger[0]["detail"] and "--weights" in ledger[0]["detail"]
    assert "not run" in (tmp_path / "claims.md").read_text() and (tmp_path / "report.html").is_file()
