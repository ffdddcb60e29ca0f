"""The self-contained HTML report: the claims ledger first, then a section per experiment.

Everything is rebuilt from run folders: the title, source and description the run stored
in ``config.json`` (not today's text of the experiment, which this module never imports),
``result.json`` and the files listed in ``figures.json``. Figures are embedded as base64
PNGs and text artifacts (``table2.md``) as preformatted text, so the single file can be
mailed or archived.
"""

from __future__ import annotations

import base64
import html
import time
from pathlib import Path
from typing import Iterable

from ..claims import ledger_row, verdict
from ..store import StoredRun, atomic_write, flatten_summary
from .claims import _fmt

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}
h1{margin-bottom:.2em} .meta{color:#666;font-size:.9em}
table{border-collapse:collapse;margin:.6em 0 1.2em;font-size:.88em;width:100%}
th,td{border:1px solid #ddd;padding:4px 6px;text-align:left;vertical-align:top}
th{background:#f4f4f4} td.num{font-family:ui-monospace,Menlo,monospace;max-width:24em;overflow-wrap:anywhere}
.reproduced{background:#e6f4ea;color:#137333;font-weight:600}
.differs{background:#fce8e6;color:#a50e0e;font-weight:600}
.notrun{background:#f1f3f4;color:#5f6368}
section{border-top:2px solid #eee;margin-top:2em;padding-top:.5em}
figure{margin:1em 0} figure img{max-width:100%;border:1px solid #eee}
pre.doc{white-space:pre-wrap;background:#fafafa;border-left:3px solid #ccc;padding:.6em;font-size:.9em}
details summary{cursor:pointer;color:#444}
"""

CHECK_SCRIPT = """
window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.images);
  var ok = imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;
  document.body.setAttribute('data-figures-loaded', ok + '/' + imgs.length);
  document.body.setAttribute('data-ledger-rows', document.querySelectorAll('#ledger tbody tr').length);
});
"""


def _verdict_cell(passed) -> str:
    text = verdict(passed)
    return f'<td class="{text.replace(" ", "")}">{text}</td>'


def _claims_rows(claims: Iterable[dict], with_experiment: bool) -> str:
    rows = []
    for c in claims:
        cells = []
        if with_experiment:
            cells.append(f'<td><a href="#{html.escape(c.get("experiment", ""))}">{html.escape(c.get("experiment", ""))}</a></td>')
        cells += [f"<td>{html.escape(c['claim'])}</td>", f"<td>{html.escape(c.get('source', ''))}</td>",
                  f'<td class="num">{html.escape(_fmt(c["expected"]))}</td>',
                  f'<td class="num">{html.escape(_fmt(c["measured"]))}</td>', _verdict_cell(c.get("passed")),
                  f"<td>{html.escape(str(c.get('detail', '') or ''))}</td>"]
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return "\n".join(rows)


def _claims_table(claims: list[dict], with_experiment: bool, table_id: str = "") -> str:
    head = (["experiment"] if with_experiment else []) + ["claim", "source", "paper / expected", "measured", "verdict", "detail"]
    ident = f' id="{table_id}"' if table_id else ""
    return (f"<table{ident}><thead><tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr></thead><tbody>"
            + _claims_rows(claims, with_experiment) + "</tbody></table>")


def _artifact(path: Path) -> str:
    """A PNG as an embedded image; any other file (``table2.md``) as preformatted text."""
    name = html.escape(path.name)
    if path.suffix.lower() == ".png":
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        return f'<figure><img alt="{name}" src="data:image/png;base64,{data}"><figcaption>{name}</figcaption></figure>'
    text = path.read_text(encoding="utf-8", errors="replace")
    return f'<figure><pre class="doc">{html.escape(text)}</pre><figcaption>{name}</figcaption></figure>'


def _section(run: StoredRun) -> str:
    title, source, doc = run.title, run.source, run.description
    cfg = run.config.get("config", {})
    claims = run.result.get("claims", [])
    figs = [run.path / f for f in run.figures if (run.path / f).is_file()]
    numbers = "".join(f'<tr><td>{html.escape(k)}</td><td class="num">{html.escape(_fmt(v))}</td></tr>' for k, v in flatten_summary(run.result.get("summary", {}), max_list=8))
    return f"""
<section id="{html.escape(run.experiment)}">
<h2>{html.escape(title)} <small class="meta">({html.escape(run.experiment)}; {html.escape(source)})</small></h2>
<h3>What the paper claims, and how it is checked</h3>
<pre class="doc">{html.escape(doc)}</pre>
<h3>What ran</h3>
<p class="meta">run <code>{html.escape(run.run_id)}</code>, finished {html.escape(run.config.get('finished', ''))};
torch {html.escape(str(run.config.get('versions', {}).get('torch')))}</p>
<p>{html.escape(', '.join(f'{k}={v}' for k, v in cfg.items()))}</p>
<h3>Claims</h3>
{_claims_table([ledger_row(run.experiment, c) for c in claims], with_experiment=False)}
<h3>Figures</h3>
{''.join(_artifact(f) for f in figs) or '<p class="meta">no figures</p>'}
<details><summary>Numbers ({len(numbers) and numbers.count('<tr>')} values)</summary><table><tbody>{numbers}</tbody></table></details>
</section>"""


def write_report(path: Path, runs: list[StoredRun], ledger: list[dict], title: str = "ndgm reproduction report") -> Path:
    """Write the self-contained ``report.html`` for ``runs`` with ``ledger`` on top."""
    n_ok = sum(c.get("passed") is True for c in ledger)
    n_bad = sum(c.get("passed") is False for c in ledger)
    n_na = len(ledger) - n_ok - n_bad
    body = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>{CSS}</style><script>{CHECK_SCRIPT}</script></head>
<body>
<h1>{html.escape(title)}</h1>
<p class="meta">generated {time.strftime('%Y-%m-%d %H:%M:%S')}; {len(runs)} experiment runs;
<b>{n_ok}</b> claims reproduced, <b>{n_bad}</b> differ, <b>{n_na}</b> not run here.</p>
<h2>Claims ledger</h2>
{_claims_table(ledger, with_experiment=True, table_id="ledger")}
{''.join(_section(r) for r in runs)}
</body></html>
"""
    path = Path(path)
    atomic_write(path, lambda tmp: tmp.write_text(body, encoding="utf-8"))
    return path
