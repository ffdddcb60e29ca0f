"""Fuzzing the command line (issue 17): whatever is typed, ``ndgm`` exits 0 with a recorded
outcome (divergence included) or 2 with exactly one line ``ndgm: error: ...`` and nothing
written; it never prints a traceback and never exits otherwise.

Three targets, each drawn by hypothesis (derandomized, so CI draws the same cases; set
``NDGM_FUZZ_SEED`` to draw others, ``NDGM_FUZZ_EXAMPLES`` to draw more and
``NDGM_FUZZ_SECONDS`` to change the time each experiment's draws may take):

* ``ndgm run EXPERIMENT`` with one or two parameters of every registered experiment set to
  edge values (0, negative, NaN, inf, 1e308, 1e-308, huge integers, non-numbers, empty
  strings, lists of them) on top of its tiny case;
* ``ndgm sweep`` with drawn ``--grid``, ``--set`` and ``--seeds`` strings (runs go to an
  in-process Dask cluster, so a valid draw costs a run, not a process start);
* ``ndgm list / show / compare`` on run folders damaged in every way the store knows
  (truncated, emptied, deleted or replaced files, JSON of the wrong shape).

Each test prints its counts: cases drawn, exits 0 and 2, tracebacks (always 0).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import tempfile
import time
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from ndgm.cli import main
from ndgm.experiments import EXPERIMENTS
from ndgm.store import RunStore

from experiment_cases import TINY

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]

EXAMPLES = int(os.environ.get("NDGM_FUZZ_EXAMPLES", "0")) or None
FUZZ_SEED = os.environ.get("NDGM_FUZZ_SEED")
CASE_SECONDS = 300  # a case that runs longer than this has hung (an error, not a slow machine)


def fuzz_settings(n: int):
    s = settings(max_examples=EXAMPLES or n, deadline=None, derandomize=FUZZ_SEED is None, database=None,
                 suppress_health_check=list(HealthCheck), print_blob=True)
    return (lambda f: seed(int(FUZZ_SEED))(s(f))) if FUZZ_SEED else s


NUMBERS = ["0", "-1", "-0.0", "1", "2", "3", "0.5", "nan", "-nan", "inf", "-inf", "1e308", "-1e308", "1e-308",
           "5e-324", "1e400", "-1e400", str(2**31), str(2**32), str(2**63), str(10**20), "9" * 40,
           str(-(2**63))]
NON_NUMBERS = ["", " ", "abc", "1e", "0x10", "1_0", "1,2", ",", ",,", "none", "None", "true", "NaN,1", "1;2",
               "--", "\u0661\u0662", "1e308,1e308", "0,0", "-1,1", "inf,1", "1,nan", "a" * 300]
VALUES = st.sampled_from(NUMBERS + NON_NUMBERS) | st.floats(allow_nan=True, allow_infinity=True).map(repr)

# Parameters left alone: they name files and devices of this machine, or control threads.
SKIP = {"device", "data_dir", "weights", "checkpoint_dir", "resume", "threads"}


def _flags(name: str) -> dict[str, str]:
    return {p.name: p.flag for p in EXPERIMENTS[name].all_params() if p.name not in SKIP}


def _tiny_argv(name: str, skip: set[str]) -> list[str]:
    params = {p.name: p for p in EXPERIMENTS[name].all_params()}
    argv = []
    for k, v in TINY[name].items():
        if k not in skip:
            argv.append(f"{params[k].flag}={v if isinstance(v, str) else params[k].show(v)}")
    return argv


@contextlib.contextmanager
def _time_limit(seconds: int):
    def hung(signum, frame):
        raise TimeoutError(f"the case ran for more than {seconds} s")

    old = signal.signal(signal.SIGALRM, hung)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def _call(argv: list[str]) -> tuple[int, str, str]:
    """``main(argv)`` in this process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), _time_limit(CASE_SECONDS):
        rc = main(argv)
    return rc, out.getvalue(), err.getvalue()


def _check_exit(rc: int, err: str, argv: list[str], written: Path | None = None) -> None:
    """Exit 0, or 2 with one line ``ndgm: error:`` and nothing under ``written``; never a traceback."""
    assert "Traceback" not in err, (argv, err)
    assert rc in (0, 2), (argv, rc, err)
    if rc == 2:
        assert err.startswith("ndgm: error: ") and err.count("\n") == 1, (argv, err)
        if written is not None:
            assert not written.exists(), (argv, sorted(written.rglob("*")))


def _report(name: str, counts: Counter) -> None:
    print(f"\nfuzz[{name}]: {counts['cases']} cases drawn, exit 0: {counts[0]}, exit 2: {counts[2]}, "
          f"tracebacks: {counts['tracebacks']}")


# --- ndgm run: every experiment's parameters ---------------------------------------------------------------

# The slow experiments (deep networks, many solvers) get fewer draws; every experiment gets some.
CASES_PER_EXPERIMENT = {name: 4 if name in ("activations", "l1-deep", "lasso-real", "sharpness") else 20
                        for name in EXPERIMENTS}
# An experiment's draws stop once they have taken this long (the first one always runs), so
# that the suite stays within a minute or two whatever experiments are added.
SECONDS_PER_EXPERIMENT = float(os.environ.get("NDGM_FUZZ_SECONDS", "8"))


@pytest.mark.parametrize("name", list(EXPERIMENTS))
def test_fuzz_run_parameters(name, tmp_path_factory):
    counts: Counter = Counter()
    flags = _flags(name)
    work = tmp_path_factory.mktemp(f"fuzz-{name}")
    extra = ["--checkpoint-dir", str(work / "ck")] if "checkpoint_dir" in {p.name for p in EXPERIMENTS[name].params} \
        else []

    @fuzz_settings(CASES_PER_EXPERIMENT[name])
    @given(drawn=st.dictionaries(st.sampled_from(sorted(flags)), VALUES, min_size=1, max_size=2))
    def case(drawn):
        if counts["cases"] and time.monotonic() - started >= SECONDS_PER_EXPERIMENT and not EXAMPLES:
            return  # the budget is spent: later draws pass without running (an assume() here is flaky)
        out = Path(tempfile.mkdtemp(dir=work)) / "out"
        argv = ["run", name, *_tiny_argv(name, set(drawn)), *extra,
                *(f"{flags[k]}={v}" for k, v in drawn.items()), "--out", str(out), "--no-progress"]
        rc, stdout, err = _call(argv)
        counts["cases"] += 1
        counts["tracebacks"] += "Traceback" in err
        _check_exit(rc, err, argv, written=out)
        counts[rc] += 1
        if rc == 0:  # a recorded outcome: one sound run folder, its figures drawn
            runs, damaged = RunStore(out).scan()
            assert len(runs) == 1 and not damaged, (argv, damaged)
            assert "could not be drawn" not in err, (argv, err)
            assert all((runs[0].path / f).is_file() for f in runs[0].figures), argv
        shutil.rmtree(out.parent, ignore_errors=True)

    started = time.monotonic()
    case()
    _report(f"run {name}", counts)
    assert counts["cases"] >= 1 and counts["tracebacks"] == 0


# --- ndgm sweep: grid, set and seeds strings ---------------------------------------------------------------

SWEEP_EXPERIMENT = "lasso-2d"  # the fastest run: a valid draw costs little
SWEEP_NAMES = ["lr", "lr2", "w0", "iterations", "seed", "dtype", "nope", "", "lam-small", "lam_large", "1x"]
RANGE_PARTS = ["0", "-1", "1e-3", "0.01", "1", "2", "nan", "inf", "1e400", "1e308", "x", "", "3", "2.5",
               str(10**12)]
RANGES = st.builds(lambda a, b, n, s: ":".join([a, b, n] + ([s] if s else [])),
                   st.sampled_from(RANGE_PARTS), st.sampled_from(RANGE_PARTS),
                   st.sampled_from(["0", "1", "2", "3", "-2", "x", "2.0", str(10**12), ""]),
                   st.sampled_from(["", "log", "lin", "cubic"]))
LISTS = st.lists(st.sampled_from(["0.01", "0.02", "0", "-1", "nan", "1e308", "x", "", "60", "61", "float32"]),
                 min_size=0, max_size=3).map(",".join)
GRID_ITEMS = st.builds(lambda n, v: f"{n}={v}", st.sampled_from(SWEEP_NAMES), RANGES | LISTS) | \
    st.sampled_from(["lr", "=", "lr=", "=1", "lr==1"])
SET_ITEMS = st.builds(lambda n, v: f"{n}={v}", st.sampled_from(SWEEP_NAMES), VALUES) | st.sampled_from(["lr", "="])
SEEDS = st.none() | st.sampled_from(["0", "1", "2", "-1", "x", "", "1.5", str(10**11)])


@pytest.fixture(scope="module")
def cluster():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as c:
        yield c


def test_fuzz_sweep_strings(cluster, tmp_path_factory):
    counts: Counter = Counter()
    work = tmp_path_factory.mktemp("fuzz-sweep")

    @fuzz_settings(40)
    @given(grid=st.lists(GRID_ITEMS, max_size=2), sets=st.lists(SET_ITEMS, max_size=2), seeds=SEEDS)
    def case(grid, sets, seeds):
        out = Path(tempfile.mkdtemp(dir=work)) / "out"
        argv = ["sweep", SWEEP_EXPERIMENT, "--set", "iterations=60"]
        argv += [a for g in grid for a in ("--grid", g)] + [a for s in sets for a in ("--set", s)]
        argv += (["--seeds", seeds] if seeds is not None else [])
        argv += ["--scheduler", cluster.scheduler_address, "--out", str(out), "--no-progress"]
        rc, stdout, err = _call(argv)
        counts["cases"] += 1
        counts["tracebacks"] += "Traceback" in err
        _check_exit(rc, err, argv, written=out)
        counts[rc] += 1
        if rc == 0:  # every configuration finished and tabulated
            import pandas as pd

            table = pd.read_parquet(out / f"sweep-{SWEEP_EXPERIMENT}.parquet")
            assert len(table) >= 1 and set(table["status"]) == {"finished"}, argv
        shutil.rmtree(out.parent, ignore_errors=True)

    case()
    _report("sweep", counts)
    assert counts["tracebacks"] == 0 and counts[0] >= 1 and counts[2] >= 1


# --- list / show / compare on damaged run folders ----------------------------------------------------------

FILES = ["config.json", "result.json", "metrics.npz", "figures.json", "capture.png"]
JSON_VALUES = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                                        max_size=3),
                           max_leaves=8)
CLAIM_KEYS = ["claim", "source", "expected", "measured", "verdict", "rule", "n", "interval", "margin", "values"]


def _damage(folder: Path, how: str, file: str, frac: float, value, key: str) -> None:
    f = folder / file
    if how == "delete":
        f.unlink(missing_ok=True)
    elif how == "empty":
        f.write_bytes(b"")
    elif how == "truncate" and f.exists():
        data = f.read_bytes()
        f.write_bytes(data[: int(len(data) * frac)])
    elif how == "garbage":
        f.write_bytes(bytes(range(256))[: max(1, int(256 * frac))])
    elif how == "json":
        f.write_text(json.dumps(value))
    elif how == "field" and file in ("config.json", "result.json"):
        obj = json.loads(f.read_text())
        if file == "result.json" and obj.get("claims"):
            obj["claims"][0][key] = value  # a claim whose field has the wrong shape
        else:
            obj[key if key in obj else "summary"] = value
        f.write_text(json.dumps(obj))


COMMANDS = st.sampled_from(["list", "show-id", "show-prefix", "show-path", "show-plot", "show-json", "compare"])


@pytest.fixture(scope="module")
def pristine_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("pristine")
    small = ["--iterations", "40", "--n", "30", "--d", "5", "--quad-iterations", "20", "--no-progress"]
    for lr in ("0.01", "0.02"):
        assert main(["run", "capture", *small, "--lr", lr, "--out", str(root)]) == 0
    return [r.path for r in RunStore(root).runs()]


def test_fuzz_damaged_run_folders(pristine_runs, tmp_path_factory):
    counts: Counter = Counter()
    work = tmp_path_factory.mktemp("fuzz-store")

    @fuzz_settings(60)
    @given(how=st.sampled_from(["delete", "empty", "truncate", "garbage", "json", "field"]),
           file=st.sampled_from(FILES), frac=st.floats(0, 1), value=JSON_VALUES,
           key=st.sampled_from(CLAIM_KEYS + ["config", "experiment", "summary", "claims", "finished"]),
           command=COMMANDS)
    def case(how, file, frac, value, key, command):
        root = Path(tempfile.mkdtemp(dir=work)) / "store"
        good = shutil.copytree(pristine_runs[0], root / pristine_runs[0].name)
        bad = shutil.copytree(pristine_runs[1], root / pristine_runs[1].name)
        _damage(bad, how, file, frac, value, key)
        before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
        ref = {"show-id": bad.name, "show-prefix": bad.name[:-3], "show-path": str(bad), "show-plot": bad.name,
               "show-json": bad.name}
        if command == "list":
            argv = ["list"]
        elif command == "compare":
            argv = ["compare", good.name, bad.name, "--output", str(root.parent / "cmp.png")]
        else:
            argv = ["show", ref[command]] + (["--plot"] if command == "show-plot" else []) + \
                (["--json"] if command == "show-json" else [])
        argv += ["--out", str(root)]
        rc, stdout, err = _call(argv)
        counts["cases"] += 1
        counts["tracebacks"] += "Traceback" in err
        _check_exit(rc, err, argv)
        counts[rc] += 1
        if command == "list":
            assert rc == 0 and good.name in stdout, (argv, stdout)
        if rc == 2:  # nothing changed on disk
            assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == before, argv
        shutil.rmtree(root.parent, ignore_errors=True)

    case()
    _report("damaged folders", counts)
    assert counts["tracebacks"] == 0 and counts[0] >= 1 and counts[2] >= 1
