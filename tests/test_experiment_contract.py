"""The contract every registered experiment keeps, checked over the whole registry.

In the manner of scikit-learn's ``parametrize_with_checks``: for each experiment in
``ndgm.experiments.EXPERIMENTS``, with its tiny case from ``experiment_cases.py``,

* its configs validate (paper defaults, quick defaults, the tiny case; list parameters
  parse once, the same from text as from a list) and its figures are registered;
* a bad value exits 2 through ``ndgm.cli.main`` with one line ``ndgm: error: ...`` and
  nothing written under ``--out``;
* the run's summary survives a JSON round trip;
* the claims recomputed from the stored summary and config equal the stored claims;
* the figures rebuild from ``metrics.npz`` through `ndgm.figures` alone.

A new experiment without a tiny case fails here. The science of each experiment lives in
its family's test file.
"""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from ndgm.cli import main
from ndgm.experiments import EXPERIMENTS, REGISTRY
from ndgm.figures import FIGURES, get, render
from ndgm.store import RunStore, jsonable

from experiment_cases import BAD, TINY

NAMES = list(EXPERIMENTS)
BAD_CASES = [(name, argv, needle) for name in NAMES for argv, needle in BAD.get(name, [])]

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_config(name: str, tmp: Path) -> dict:
    exp = EXPERIMENTS[name]
    extra = {"checkpoint_dir": str(tmp / "checkpoints")} if "checkpoint_dir" in {p.name for p in exp.params} else {}
    return exp.config(**TINY[name], **extra)


def declared_figures(result, folder) -> list[str]:
    """A `RunStore.save` hook that lists the declared figures without drawing them: the
    contract draws each once, from ``metrics.npz`` (drawing at save time is tested with the CLI)."""
    return list(result.figures)


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    """``stored(name)``: the tiny run of ``name`` (run once per module) and its folder read back."""
    cache = {}

    def get_run(name):
        if name not in cache:
            tmp = tmp_path_factory.mktemp(name)
            store = RunStore(tmp / "runs")
            result = EXPERIMENTS[name].run(tiny_config(name, tmp))
            cache[name] = (result, store.load(store.save(result, write_files=declared_figures)))
        return cache[name]

    return get_run


def same(a, b) -> bool:
    """Equality that treats NaN as equal to NaN."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


def test_every_registered_experiment_has_a_tiny_case_and_bad_values():
    assert len(NAMES) == len(REGISTRY), "two registered experiments share a name"
    assert not set(NAMES) - set(TINY), f"no tiny case in tests/experiment_cases.py for {set(NAMES) - set(TINY)}"
    assert not set(NAMES) - set(BAD), f"no bad values in tests/experiment_cases.py for {set(NAMES) - set(BAD)}"
    assert not (set(TINY) | set(BAD)) - set(NAMES), "cases for experiments that are not registered"


@pytest.mark.parametrize("name", NAMES)
def test_config_validates_and_figures_are_registered(name, tmp_path):
    exp = EXPERIMENTS[name]
    assert exp.title and exp.source and exp.description, "title, source and a module docstring are stored with runs"
    assert exp.config() and exp.config(quick=True)
    cfg = tiny_config(name, tmp_path)
    assert json.loads(json.dumps(cfg)) == cfg, "a config is plain JSON"
    params = {p.name: p for p in exp.all_params()}
    for key, value in cfg.items():
        p = params[key]
        assert p.parse(p.show(value)) == value, f"--{key} {p.show(value)!r} does not parse back to {value!r}"
        if isinstance(value, list):
            assert p.parse(value) == value, "a list parameter parses the same from a list"
    assert exp.at_defaults(exp.config(), *(p.name for p in exp.params))
    assert exp.figures, "an experiment declares its figures"
    for f in exp.figures:
        assert callable(get(f)), f


@pytest.mark.parametrize("name,argv,needle", BAD_CASES, ids=[f"{n}-{' '.join(a)}" for n, a, _ in BAD_CASES])
def test_bad_value_exits_2_with_one_line_and_writes_nothing(name, argv, needle, capsys, tmp_path):
    out = tmp_path / "out"
    rc = main(["run", name, *argv, "--out", str(out), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("ndgm: error: ") and err.count("\n") == 1, err
    assert needle in err, err
    written = [p for p in out.rglob("*") if p.is_file()] if out.exists() else []
    assert not written, written


@pytest.mark.parametrize("name", NAMES)
def test_summary_survives_a_json_round_trip(name, stored):
    result, run = stored(name)
    back = json.loads(json.dumps(result.summary))  # raises on numpy arrays and numpy integers
    assert same(back, run.result["summary"]), "the stored summary differs from the JSON of the summary (NaN? int keys?)"
    assert same(json.loads(json.dumps(run.result["summary"])), run.result["summary"])


@pytest.mark.parametrize("name", NAMES)
def test_claims_recompute_from_the_stored_summary(name, stored):
    result, run = stored(name)
    assert run.result["claims"], "an experiment checks at least one claim"
    claims = EXPERIMENTS[name].claims(run.result["summary"], run.config["config"])
    again = [jsonable(c.as_dict() | {"verdict": c.verdict}) for c in claims]
    assert same(again, run.result["claims"])


@pytest.mark.parametrize("name", NAMES)
def test_every_row_states_its_rule(name, stored):
    from ndgm.claims import RULE_KINDS, VERDICTS

    result, run = stored(name)
    for row in run.result["claims"]:
        assert row["verdict"] in VERDICTS, row
        if row["verdict"] == "not run":
            assert row["detail"], f"a row not run says why: {row['claim']}"
            continue
        assert row["kind"] in RULE_KINDS and row["rule"].startswith(row["kind"] + ":"), row
        if row["kind"] == "statistical":
            lo, hi = row["interval"]
            assert isinstance(row["n"], int) and row["n"] >= 1 and lo <= hi and "margin" in row, row


@pytest.mark.parametrize("name", NAMES)
def test_figures_rebuild_from_metrics_npz(name, stored):
    result, run = stored(name)
    names = run.figures
    assert names == list(EXPERIMENTS[name].figures)
    paths = render(names, run.arrays(), run.result["summary"], run.config["config"], run.path)
    assert [p.name for p in paths] == names  # the tiny cases draw every figure they declare
    assert all(p.stat().st_size > (10_000 if p.suffix == ".png" else 0) for p in paths)


def test_title_source_and_description_are_stored(stored):
    result, run = stored("lasso-2d")
    exp = EXPERIMENTS["lasso-2d"]
    assert (run.title, run.source, run.description) == (exp.title, exp.source, exp.description)
    assert run.description.startswith("The toy LASSO")


def test_show_compare_and_report_import_no_experiment(stored, tmp_path):
    """Rendering a stored run needs the run folder and `ndgm.figures`, not the experiment's module."""
    _, run = stored("lasso-2d")
    _, deep = stored("l1-deep")
    render(deep.figures, deep.arrays(), deep.result["summary"], deep.config["config"], deep.path)
    script = f"""
import sys
from ndgm.cli import main
from ndgm.report.html import write_report
from ndgm.store import RunStore
paths = [{str(run.path)!r}, {str(deep.path)!r}]
assert main(["show", paths[0], "--plot"]) == 0
assert main(["compare", paths[0], paths[0], "--output", {str(tmp_path / "cmp.png")!r}]) == 0
write_report({str(tmp_path / "report.html")!r}, [RunStore().load(p) for p in paths], [])
loaded = sorted(m for m in sys.modules if m.startswith("ndgm.experiments"))
assert not loaded, loaded
"""
    p = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    html = (tmp_path / "report.html").read_text()
    assert run.title in html and "Table 2 layout" in html  # table2.md as text ...
    assert 'alt="table2.md"' not in html  # ... not as an image


def test_every_figure_module_registers_under_unique_file_names():
    get(next(iter(EXPERIMENTS["capture"].figures)))  # loads every figure module
    declared = [f for e in REGISTRY for f in e.figures]
    assert len(declared) == len(set(declared)), "two experiments declare the same figure file"
    assert set(declared) <= set(FIGURES)
