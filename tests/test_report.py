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
    # A run with a text artifact beside its PNGs (l1-deep's table2.md): text, never an <img>.
    with_md = paths[1]
    (with_md / "table2.md").write_text("| optimizer | lam=2 |\n|---|---|\n| sgd | 0.18 |\n")
    names = json.loads((with_md / "figures.json").read_text())
    (with_md / "figures.json").write_text(json.dumps(names + ["table2.md"]))
    runs = [store.load(p) for p in paths]
    ledger = [ledger_row(r.experiment, c) for r in runs for c in r.result["claims"]]
    # The ledger's widest numbers: a bit-pattern headline and values that differ past 6 digits.
    ledger.append(ledger_row("capture", {"claim": "headline", "source": "paper", "expected": 4461.786221675728,
                                         "measured": 4461.786221675728, "verdict": "reproduced", "rule": "exact"}))
    ledger.append(ledger_row("l1-deep", {"claim": "more small weights", "source": "Table 2", "expected": 100.0,
                                         "measured": 99.99999, "verdict": "contradicted", "rule": "bound"}))
    write_report(out / "report.html", runs, ledger)
    return out


def test_report_is_self_contained(report_dir):
    text = (report_dir / "report.html").read_text()
    assert 'id="ledger"' in text and text.count("data:image/png;base64,") == 4
    assert not re.search(r'src="(?!data:)', text)  # no external resources
    assert "What the paper claims" in text and "reproduced" in text
    assert 'alt="table2.md"' not in text and "| sgd | 0.18 |" in text  # a text artifact is text


def test_paper_claims_boxes_render_the_docstring_without_rst_marks(report_dir):
    text = (report_dir / "report.html").read_text()
    boxes = re.findall(r'<div class="doc">(.*?)</div>', text, flags=re.S)
    assert len(boxes) == 2
    for box in boxes:
        assert "`" not in box and ":math:" not in box
        assert "<code>y_i &lt;= 0</code>" in box and box.count("<p>") >= 3  # ``y_i <= 0``, paragraphs


def test_doc_html_renders_lists_code_and_roles():
    from ndgm.report.html import doc_html

    html_ = doc_html("Intro ``a < b`` and `ndgm.claims`.\n\n* one\n  more\n* :math:`x^2` two\n\nEnd :class:`~torch.nn.Module`.")
    assert html_ == ('<p>Intro <code>a &lt; b</code> and <code>ndgm.claims</code>.</p>'
                     '<ul><li>one more</li><li><span class="math">x^2</span> two</li></ul>'
                     '<p>End <code>torch.nn.Module</code>.</p>')


def test_values_that_differ_print_differently():
    from ndgm.report.claims import expected_text, fmt_pair, measured_text

    assert fmt_pair(100.0, 99.99) == ("100", "99.99")
    assert fmt_pair(100.0, 99.999999) == ("100", "99.999999")
    assert fmt_pair(1.0, 1.0 + 2**-52) == ("1.0", "1.0000000000000002")
    assert fmt_pair([100.0, 5.0], [99.9999999, 5.0]) == ("[100, 5]", "[99.9999999, 5]")
    assert fmt_pair(0.5, 0.5) == ("0.5", "0.5") and fmt_pair("a", 3) == ("a", "3")
    row = {"expected": 100.0, "measured": 99.99999}
    assert (expected_text(row), measured_text(row)) == ("100", "99.99999")
    # a statistical row whose interval end clears the margin by less than 4 digits show
    stat = {"expected": "> 0.1", "measured": "0.15 [0.1, 0.2]", "interval": [0.100001, 0.2], "margin": 0.1, "n": 5}
    assert measured_text(stat) == "0.15 [0.100001, 0.2] (margin 0.1) (n = 5)"
    stat_clear = dict(stat, interval=[0.12, 0.2], measured="0.15 [0.12, 0.2]")
    assert measured_text(stat_clear) == "0.15 [0.12, 0.2] (n = 5)"


@pytest.mark.parametrize("width", [80, 120])
def test_terminal_claims_table_fits_the_width(report_dir, width):
    from ndgm.report.claims import claims_table

    ledger = json.loads(json.dumps([c for p in sorted((report_dir / "runs").iterdir())
                                    for c in json.loads((p / "result.json").read_text())["claims"]]))
    rows = [dict(c, experiment="capture") for c in ledger]
    table = claims_table(rows, width=width)
    lines = table.splitlines()
    assert max(len(ln) for ln in lines) <= width
    assert len(lines) == len(rows) + 2 and all(ln.endswith(("reproduced", "CONTRADICTED", "INCONCLUSIVE", "not run")) for ln in lines[2:])
    if width == 80:
        assert "rule" not in lines[0] and "source" not in lines[0]  # left out first; claims.md has them


def test_terminal_claims_table_too_narrow_prints_a_summary(report_dir):
    from ndgm.report.claims import claims_table

    rows = [{"experiment": "capture", "claim": "c" * 40, "source": "s", "expected": 1.0, "measured": 2.0,
             "verdict": v, "rule": "r"} for v in ("reproduced", "contradicted", "contradicted")]
    text = claims_table(rows, width=40, full="the full table: out/claims.md")
    assert text.startswith("3 claims (the table does not fit 40") and "out/claims.md" in text
    assert "capture: 1 reproduced, 2 contradicted" in text and max(len(ln) for ln in text.splitlines()) <= 40


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
    dom = subprocess.run([chromium, *flags, "--window-size=1000,1600", "--dump-dom", url], capture_output=True,
                         text=True, timeout=120).stdout
    loaded = re.search(r'data-figures-loaded="(\d+)/(\d+)"', dom)
    assert loaded, "the page's load script did not run"
    assert loaded.group(1) == loaded.group(2) == "4"  # every embedded figure decoded, the .md is no <img>
    # two capture runs of 10 rows each (issue 12: two rows on the exact loss of the tail; issue 13: version 1's inf-norm row)
    n_claims = sum(len(json.loads((p / "result.json").read_text())["claims"]) for p in (report_dir / "runs").iterdir())
    assert n_claims == 20 and re.search(r'data-ledger-rows="(\d+)"', dom).group(1) == str(n_claims + 2)
    # the page's own count of numbers the layout broke across two lines (4461.786221 / 675728)
    assert re.search(r'data-numbers-split="(\d+)"', dom).group(1) == "0"
    assert "4461.786221675728" in dom and ">99.99999<" in dom and ">100<" in dom
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
