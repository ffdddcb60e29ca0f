"""Claims tables: plain text for the terminal, Markdown for pasting.

Both take ledger rows (``ndgm.claims.ledger_row``: ``experiment`` plus a `Claim`'s fields),
as stored in ``claims.json`` or built from a run folder's ``result.json``. Every row shows
its rule; statistical rows show ``n`` and the 95% interval in the measured column.
"""

from __future__ import annotations

from typing import Iterable

from ..claims import CONTRADICTED, INCONCLUSIVE, Claim


def fmt(v) -> str:
    """A value as the ledger prints it: floats >= 1e3 or < 1e-3 keep every digit (the claims
    compare bit patterns like 4461.786221675728), others 6 significant digits."""
    if isinstance(v, float):
        return repr(v) if (abs(v) >= 1e3 or (v != 0 and abs(v) < 1e-3)) else f"{v:.6g}"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(fmt(x) for x in v) + "]"
    return str(v)


def measured_text(row: dict) -> str:
    """The measured value, with ``(n = ...)`` for a statistical row."""
    text = fmt(row.get("measured"))
    if row.get("n") is not None:
        text += f" (n = {row['n']})"
    return text


def _verdict(row: dict) -> str:
    word = Claim.from_dict(row).verdict
    return word.upper() if word in (CONTRADICTED, INCONCLUSIVE) else word  # these stand out in the table


def _rows(claims: Iterable[dict]) -> list[list[str]]:
    return [[c.get("experiment", ""), c["claim"], c.get("source", ""), fmt(c["expected"]), measured_text(c),
             c.get("rule", "") or "", _verdict(c)] for c in claims]


HEADER = ["experiment", "claim", "source", "expected", "measured", "rule", "verdict"]


def claims_table(claims: Iterable[dict]) -> str:
    """Fixed-width text table of ledger rows."""
    rows = _rows(claims)
    widths = [min(max(len(r[i]) for r in rows + [HEADER]), 60) for i in range(len(HEADER))]

    def line(r):
        return "  ".join((x if len(x) <= w else x[: w - 1] + "…").ljust(w) for x, w in zip(r, widths)).rstrip()

    return "\n".join([line(HEADER), line(["-" * w for w in widths])] + [line(r) for r in rows])


def claims_markdown(claims: Iterable[dict]) -> str:
    """Markdown table of ledger rows."""
    rows = _rows(claims)
    esc = lambda s: s.replace("|", "\\|")  # noqa: E731
    out = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    out += ["| " + " | ".join(esc(x) for x in r) + " |" for r in rows]
    return "\n".join(out)
