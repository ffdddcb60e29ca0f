"""The self-contained HTML report: the claims ledger first, then a section per experiment.

Everything is rebuilt from run folders: the title, source and description the run stored
in ``config.json`` (not today's text of the experiment, which this module never imports),
``result.json`` and the files listed in ``figures.json``. Figures are embedded as base64
PNGs and text artifacts (``table2.md``) as preformatted text, so the single file can be
mailed or archived. The description (the experiment's numpydoc docstring) is rendered:
paragraphs, bullet lists, ``code`` and :math:`roles` without their reStructuredText marks.

The page checks itself when it loads (`CHECK_SCRIPT`): ``data-figures-loaded`` (images
decoded / images), ``data-ledger-rows`` and ``data-numbers-split`` (numbers in the tables
that the layout broke across two lines; numbers only break at the spaces between them).
"""

from __future__ import annotations

import base64
import html
import re
import time
from pathlib import Path
from typing import Iterable

from ..claims import VERDICTS, Claim, ledger_row, verdict_counts
from ..store import StoredRun, atomic_write, flatten_summary
from .claims import expected_text, fmt, measured_text

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}
h1{margin-bottom:.2em} .meta{color:#666;font-size:.9em}
table{border-collapse:collapse;margin:.6em 0 1.2em;font-size:.88em;width:100%}
th,td{border:1px solid #ddd;padding:4px 6px;text-align:left;vertical-align:top}
th{background:#f4f4f4} td.num{font-family:ui-monospace,Menlo,monospace;max-width:24em;overflow-wrap:normal;word-break:normal}
.reproduced{background:#e6f4ea;color:#137333;font-weight:600}
.contradicted{background:#fce8e6;color:#a50e0e;font-weight:600}
.inconclusive{background:#fef7e0;color:#8a5a00;font-weight:600}
.notrun{background:#f1f3f4;color:#5f6368}
td.rule{font-size:.85em;color:#444;max-width:22em} svg.seeds{display:block;margin-top:3px}
section{border-top:2px solid #eee;margin-top:2em;padding-top:.5em}
figure{margin:1em 0} figure img{max-width:100%;border:1px solid #eee}
pre.doc,div.doc{white-space:pre-wrap;background:#fafafa;border-left:3px solid #ccc;padding:.6em;font-size:.9em}
div.doc{white-space:normal} div.doc p{margin:.4em 0} div.doc ul{margin:.3em 0 .3em 1.2em;padding:0}
div.doc code{background:#eee;padding:0 .2em;border-radius:2px} span.math{font-style:italic}
details summary{cursor:pointer;color:#444} span.nb{white-space:nowrap}
"""

CHECK_SCRIPT = """
window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.images);
  var ok = imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;
  document.body.setAttribute('data-figures-loaded', ok + '/' + imgs.length);
  document.body.setAttribute('data-ledger-rows', document.querySelectorAll('#ledger tbody tr').length);
  // A number broken across two lines has more than one line box.
  var split = 0, examples = [], re = /[-+]?\d[\d.]*(?:e[-+]?\d+)?/g;
  document.querySelectorAll('td').forEach(function (td) {
    var walker = document.createTreeWalker(td, NodeFilter.SHOW_TEXT), node;
    while ((node = walker.nextNode())) {
      var m;
      re.lastIndex = 0;
      while ((m = re.exec(node.data)) !== null) {
        if (m[0].length < 2) continue;
        var r = document.createRange();
        r.setStart(node, m.index);
        r.setEnd(node, m.index + m[0].length);
        var tops = {};
        Array.prototype.forEach.call(r.getClientRects(), function (b) { if (b.width > 0) tops[Math.round(b.top)] = 1; });
        if (Object.keys(tops).length > 1) { split += 1; if (examples.length < 5) examples.push(m[0]); }
      }
    }
  });
  document.body.setAttribute('data-numbers-split', split);
  document.body.setAttribute('data-numbers-split-examples', examples.join(' '));
});
"""


def doc_html(text: str) -> str:
    """A numpydoc / reStructuredText docstring as HTML: blank-line paragraphs, ``*``/``-``
    bullet lists, ````code```` and `name` as code, :role:`x` as its text (math in italics),
    the rest escaped. Not a full reStructuredText renderer: what the module docstrings use."""
    blocks = re.split(r"\n\s*\n", text.strip())
    out = []
    for block in blocks:
        lines = block.splitlines()
        if lines and all(re.match(r"\s*[*-] ", ln) or (ln.startswith("  ") and i) for i, ln in enumerate(lines)):
            items, cur = [], []
            for ln in lines:
                if re.match(r"\s*[*-] ", ln):
                    if cur:
                        items.append(" ".join(cur))
                    cur = [re.sub(r"^\s*[*-] ", "", ln)]
                else:
                    cur.append(ln.strip())
            items.append(" ".join(cur))
            out.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in items) + "</ul>")
        else:
            out.append(f"<p>{_inline(' '.join(ln.strip() for ln in lines))}</p>")
    return "".join(out)


def _inline(text: str) -> str:
    """Inline reStructuredText marks to HTML (on escaped text)."""
    t = html.escape(text, quote=False)
    t = re.sub(r":math:`([^`]+)`", r'<span class="math">\1</span>', t)
    t = re.sub(r":[a-z]+:`~?([^`]+)`", r"<code>\1</code>", t)
    t = re.sub(r"``([^`]+)``", r"<code>\1</code>", t)
    t = re.sub(r"`([^`]+)`_?", r"<code>\1</code>", t)
    t = re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", t)
    return t.replace("`", "")


_NUMBER = re.compile(r"[-+]?\d[\d.]*(?:e[-+]?\d+)?")


def _text(value) -> str:
    """Escaped text with every number kept on one line (``1.13e-14`` may otherwise break
    at its hyphen, ``4461.786221675728`` anywhere in a narrow cell)."""
    out, last = [], 0
    text = str("" if value is None else value)
    for m in _NUMBER.finditer(text):
        out.append(html.escape(text[last:m.start()]))
        token = html.escape(m.group())
        out.append(f'<span class="nb">{token}</span>' if len(m.group()) > 1 else token)
        last = m.end()
    out.append(html.escape(text[last:]))
    return "".join(out)


def _verdict_cell(row: dict) -> str:
    text = Claim.from_dict(row).verdict
    return f'<td class="{text.replace(" ", "")}">{text}</td>'


def _seed_strip(row: dict, width: int = 180, height: int = 26) -> str:
    """An inline SVG of a statistical row: its per-unit values (dots), the 95% interval (bar)
    and the margin (red tick), on one shared axis."""
    try:
        values = [float(v) for v in row.get("values") or []]
        interval = [float(v) for v in row["interval"]] if row.get("interval") else None
        margin = float(row["margin"]) if row.get("margin") is not None else None
    except (TypeError, ValueError):  # a row read from disk that is not a statistical one after all
        return ""
    values = [v for v in values if v == v and abs(v) != float("inf")]
    pts = values + (interval or []) + ([margin] if margin is not None else [])
    pts = [p for p in pts if p == p and abs(p) != float("inf")]
    if not pts:
        return ""
    lo, hi = min(pts), max(pts)
    span = (hi - lo) or (abs(hi) or 1.0)
    lo, hi = lo - 0.05 * span, hi + 0.05 * span

    def x(v: float) -> float:
        return 4 + (width - 8) * (float(v) - lo) / (hi - lo)

    parts = []
    if interval:
        parts.append(f'<line x1="{x(interval[0]):.1f}" x2="{x(interval[1]):.1f}" y1="8" y2="8" '
                     'stroke="#1a73e8" stroke-width="4"/>')
    if margin is not None:
        parts.append(f'<line x1="{x(margin):.1f}" x2="{x(margin):.1f}" y1="2" y2="{height - 2}" stroke="#d93025"/>')
    for v in values:
        parts.append(f'<circle cx="{x(v):.1f}" cy="18" r="2.5" fill="#333" fill-opacity="0.7"/>')
    title = html.escape(f"values {fmt([float(v) for v in values])}; interval {fmt(interval)}; margin {fmt(margin)}")
    return (f'<svg class="seeds" width="{width}" height="{height}" role="img"><title>{title}</title>'
            + "".join(parts) + "</svg>")


def _claims_rows(claims: Iterable[dict], with_experiment: bool) -> str:
    rows = []
    for c in claims:
        cells = []
        if with_experiment:
            cells.append(f'<td><a href="#{html.escape(c.get("experiment", ""))}">{html.escape(c.get("experiment", ""))}</a></td>')
        cells += [f"<td>{_text(c.get('claim', ''))}</td>", f"<td>{_text(c.get('source', ''))}</td>",
                  f'<td class="num">{_text(expected_text(c))}</td>',
                  f'<td class="num">{_text(measured_text(c))}{_seed_strip(c)}</td>',
                  f'<td class="rule">{_text(c.get("rule", "") or "")}</td>', _verdict_cell(c),
                  f"<td>{_text(c.get('detail', '') or '')}</td>"]
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return "\n".join(rows)


def _claims_table(claims: list[dict], with_experiment: bool, table_id: str = "") -> str:
    head = (["experiment"] if with_experiment else []) + ["claim", "source", "paper / expected", "measured", "rule", "verdict", "detail"]
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
    numbers = "".join(f'<tr><td>{html.escape(k)}</td><td class="num">{_text(fmt(v))}</td></tr>'
                      for k, v in flatten_summary(run.result.get("summary", {}), max_list=8))
    return f"""
<section id="{html.escape(run.experiment)}">
<h2>{html.escape(title)} <small class="meta">({html.escape(run.experiment)}; {html.escape(source)})</small></h2>
<h3>What the paper claims, and how it is checked</h3>
<div class="doc">{doc_html(doc)}</div>
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
    counts = verdict_counts(ledger)
    body = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>{CSS}</style><script>{CHECK_SCRIPT}</script></head>
<body>
<h1>{html.escape(title)}</h1>
<p class="meta">generated {time.strftime('%Y-%m-%d %H:%M:%S')}; {len(runs)} experiment runs;
{', '.join(f'<b>{counts[v]}</b> {v}' for v in VERDICTS)} (of {len(ledger)} claims).</p>
<h2>Claims ledger</h2>
{_claims_table(ledger, with_experiment=True, table_id="ledger")}
{''.join(_section(r) for r in runs)}
</body></html>
"""
    path = Path(path)
    atomic_write(path, lambda tmp: tmp.write_text(body, encoding="utf-8"))
    return path
