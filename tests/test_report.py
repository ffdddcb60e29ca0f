import json
import os
import re
import shutil
import subprocess

import pytest

from ndgm.cli import main
from ndgm.store import RunStore

SMALL = ["--iterations", "60", "--n", "40", "--d", "6", "--quad-iterations", "30", "--no-progress"]


def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    if os.environ.get("CI"):
        pytest.fail("chromium is not installed (CI installs Debian's chromium in .ci/run)")
    pytest.skip("chromium not installed here (apt-get install chromium)")


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("rep")
    # Reproduce on a small capture config: store two runs and build the report from the folders.
    from ndgm.claims import ledger_row
    from ndgm.experiments import get_experiment
    from ndgm.figures import write_figures
    from ndgm.report.html import write_report

    store = RunStore(out / "runs")
    exp = get_experiment("capture")
    paths = [store.save(exp.run(exp.config(iterations=60, n=40, d=6, quad_iterations=30, lr=lr)),
                        write_files=write_figures) for lr in (0.01, 0.02)]
    runs = [store.load(p) for p in paths]
    ledger = [ledger_row(r.experiment, c) for r in runs for c in r.result["claims"]]
    write_report(out / "report.html", runs, ledger)
    return out


def test_report_is_self_contained(report_dir):
    text = (report_dir / "report.html").read_text()
    assert 'id="ledger"' in text and text.count("data:image/png;base64,") == 4
    assert not re.search(r'src="(?!data:)', text)  # no external resources
    assert "What the paper claims" in text and "reproduced" in text


def test_report_shows_what_the_run_stored_not_todays_text(report_dir, tmp_path):
    from ndgm.report.html import write_report

    run = RunStore(report_dir / "runs").runs()[0]
    cfg = json.loads((run.path / "config.json").read_text())
    assert cfg["title"].startswith("Capture failure") and cfg["description"].startswith("Capture failure of NDGM")
    old = tmp_path / run.run_id
    shutil.copytree(run.path, old)
    cfg.update(title="An older title", source="an older source", description="An older description.")
    (old / "config.json").write_text(json.dumps(cfg))
    text = write_report(tmp_path / "r.html", [RunStore(tmp_path).load(old)], []).read_text()
    assert "An older title" in text and "an older source" in text and "An older description." in text
    assert "Capture failure" not in text


def test_report_renders_in_headless_chromium(report_dir, tmp_path):
    chromium = _chromium()
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=5000"]
    url = (report_dir / "report.html").as_uri()
    dom = subprocess.run([chromium, *flags, "--dump-dom", url], capture_output=True, text=True, timeout=120).stdout
    loaded = re.search(r'data-figures-loaded="(\d+)/(\d+)"', dom)
    assert loaded, "the page's load script did not run"
    assert loaded.group(1) == loaded.group(2) == "4"  # every embedded figure decoded
    # two capture runs of 10 rows each (issue 12: two rows on the exact loss of the tail; issue 13: version 1's inf-norm row)
    n_claims = sum(len(json.loads((p / "result.json").read_text())["claims"]) for p in (report_dir / "runs").iterdir())
    assert n_claims == 20 and re.search(r'data-ledger-rows="(\d+)"', dom).group(1) == str(n_claims)
    shot = tmp_path / "report.png"
    subprocess.run([chromium, *flags, f"--screenshot={shot}", "--window-size=1280,1600", url],
                   capture_output=True, timeout=120)
    assert shot.is_file() and shot.stat().st_size > 10_000


def test_compare_overlays_runs(report_dir, tmp_path, capsys):
    store = RunStore(report_dir / "runs")
    ids = [r.run_id for r in store.runs()]
    out = tmp_path / "cmp.png"
    assert main(["compare", *ids, "--out", str(report_dir / "runs"), "--output", str(out)]) == 0
    assert out.is_file() and out.stat().st_size > 10_000


def test_show_plot_rebuilds_figures_without_rerunning(tmp_path, capsys, monkeypatch):
    assert main(["run", "capture", *SMALL, "--out", str(tmp_path)]) == 0
    run = RunStore(tmp_path).runs()[0]
    for f in ("capture.png", "quadratic_contrast.png"):
        (run.path / f).unlink()
    from ndgm.experiments.capture import EXPERIMENT

    monkeypatch.setattr(EXPERIMENT, "run", lambda *a, **k: pytest.fail("show --plot must not re-run"))
    assert main(["show", run.run_id, "--out", str(tmp_path), "--plot"]) == 0
    assert (run.path / "capture.png").is_file() and (run.path / "quadratic_contrast.png").is_file()
