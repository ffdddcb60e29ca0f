"""Claims tables: plain text for the terminal, Markdown for pasting.

Both take ledger rows (``ndgm.claims.ledger_row``: ``experiment`` plus a `Claim`'s fields),
as stored in ``claims.json`` or built from a run folder's ``result.json``. Every row shows
its rule; statistical rows show ``n`` and the 95% interval in the measured column.

Numbers are printed with enough digits to show the difference the rule saw: an expected
100.0 and a measured 99.99 are not both "100", and an interval that clears its margin does
not print its end as the margin. The terminal table fits the terminal's width: it drops
the rule and source columns, then shortens the text columns, and below a usable width
prints a per-experiment summary that points to the full table.
"""

from __future__ import annotations

import math
import shutil
import textwrap
from typing import Iterable

from ..claims import CONTRADICTED, INCONCLUSIVE, VERDICTS, Claim

__all__ = ["fmt", "fmt_pair", "measured_text", "expected_text", "claims_table", "claims_markdown", "HEADER"]


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def fmt(v, digits: int = 6) -> str:
    """A value as the ledger prints it: floats >= 1e3 or < 1e-3 keep every digit (the claims
    compare bit patterns like 4461.786221675728), others ``digits`` significant digits."""
    if isinstance(v, float):
        if not math.isfinite(v):
            return repr(v)
        return repr(v) if (abs(v) >= 1e3 or (v != 0 and abs(v) < 1e-3) or digits >= 17) else f"{v:.{digits}g}"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(fmt(x, digits) for x in v) + "]"
    return str(v)


def _differs(a, b) -> bool:
    """Whether two values differ as numbers (elementwise for equal-length lists)."""
    if _number(a) and _number(b):
        return a != b and not (a != a and b != b)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)) and len(a) == len(b):
        return any(_differs(x, y) for x, y in zip(a, b))
    return False


def fmt_pair(a, b) -> tuple[str, str]:
    """``fmt`` of two values, with as many significant digits as it takes (up to all 17) for
    values that differ to print differently: 100.0 and 99.99 print as 100 and 99.99, not both 100."""
    for digits in (6, 8, 10, 12, 14, 17):
        ta, tb = fmt(a, digits), fmt(b, digits)
        if ta != tb or not _differs(a, b):
            return ta, tb
    return ta, tb  # pragma: no cover - repr always tells different floats apart


def _num(x: float, digits: int = 4) -> str:
    return f"{x:.{digits}g}"


def _interval_text(row: dict) -> str | None:
    """A statistical row's ``estimate [low, high]`` with enough digits that an end which
    clears the margin does not print as the margin."""
    interval, margin, measured = row.get("interval"), row.get("margin"), row.get("measured")
    if not (isinstance(interval, (list, tuple)) and len(interval) == 2 and _number(margin)
            and all(_number(x) for x in interval) and isinstance(measured, str) and " [" in measured):
        return None
    low, high = (float(x) for x in interval)
    digits = 4
    while digits < 17 and any(x != margin and _num(x, digits) == _num(margin, digits) for x in (low, high)):
        digits += 2
    if digits == 4:
        return None  # the stored text already tells them apart
    estimate = measured.split(" [", 1)[0]
    return f"{estimate} [{_num(low, digits)}, {_num(high, digits)}] (margin {_num(margin, digits)})"


def measured_text(row: dict) -> str:
    """The measured value, with ``(n = ...)`` for a statistical row."""
    text = _interval_text(row)
    if text is None:
        text = fmt_pair(row.get("expected"), row.get("measured"))[1]
    if row.get("n") is not None:
        text += f" (n = {row['n']})"
    return text


def expected_text(row: dict) -> str:
    """The expected value, with the digits `fmt_pair` needs against the measured one."""
    return fmt_pair(row.get("expected"), row.get("measured"))[0]


def _verdict(row: dict) -> str:
    word = Claim.from_dict(row).verdict
    return word.upper() if word in (CONTRADICTED, INCONCLUSIVE) else word  # these stand out in the table


def _text(x) -> str:
    """A cell: any value as one line of text (a row read from disk may hold anything)."""
    return " ".join(str("" if x is None else x).split())


def _rows(claims: Iterable[dict]) -> list[list[str]]:
    return [[_text(x) for x in (c.get("experiment", ""), c.get("claim", ""), c.get("source", ""), expected_text(c),
                                measured_text(c), c.get("rule", ""), _verdict(c))] for c in claims]


HEADER = ["experiment", "claim", "source", "expected", "measured", "rule", "verdict"]
# Columns left out, in this order, when the table is wider than the terminal (claims.md has them all).
_OPTIONAL = ("rule", "source")
# Columns shortened, in this order of generosity, down to these widths, before giving up on a table.
_SHRINK = {"claim": 24, "measured": 14, "expected": 12, "experiment": 10}
_GAP = 2


def _fit(rows: list[list[str]], width: int) -> tuple[list[int], dict[int, int]] | None:
    """The columns to show and their widths in ``width`` characters, or None if they cannot fit."""
    natural = {i: min(max(len(r[i]) for r in rows + [HEADER]), 60) for i in range(len(HEADER))}
    cols = list(range(len(HEADER)))

    def total() -> int:
        return sum(natural[i] for i in cols) + _GAP * (len(cols) - 1)

    for name in _OPTIONAL:
        if total() <= width:
            break
        cols.remove(HEADER.index(name))
    over = total() - width
    if over > 0:
        slack = {HEADER.index(n): max(0, natural[HEADER.index(n)] - m) for n, m in _SHRINK.items()}
        room = sum(slack.values())
        if room < over:
            return None
        for i, s in slack.items():  # shorten each column in proportion to what it can give
            cut = min(s, math.ceil(over * s / room))
            natural[i] -= cut
        while total() > width:  # rounding: take the rest from the widest shrinkable column
            i = max(slack, key=lambda j: natural[j] - _SHRINK[HEADER[j]])
            natural[i] -= 1
    return cols, natural


def _summary(rows: list[list[str]], width: int, full: str) -> str:
    by_exp: dict[str, dict[str, int]] = {}
    for r in rows:
        counts = by_exp.setdefault(r[0], dict.fromkeys(VERDICTS, 0))
        counts[r[6].lower()] += 1
    lines = textwrap.wrap(f"{len(rows)} claims (the table does not fit {width} columns; {full}):", width,
                          break_long_words=False, break_on_hyphens=False)
    for exp, counts in by_exp.items():
        text = ", ".join(f"{v} {k}" for k, v in counts.items() if v)
        lines += textwrap.wrap(f"{exp}: {text}", width, initial_indent="  ", subsequent_indent="    ",
                               break_long_words=False)
    return "\n".join(lines)


def claims_table(claims: Iterable[dict], width: int | None = None,
                 full: str = "the full table: 'ndgm show RUN --json' or claims.md") -> str:
    """Fixed-width text table of ledger rows, at most ``width`` characters per line.

    ``width`` defaults to the terminal's (``COLUMNS``, else 120 when not a terminal). A table
    wider than that loses its rule and source columns, then shortens its text columns (cut
    with an ellipsis); where even that does not fit, a per-experiment count of verdicts is
    printed with ``full``, which says where the whole table is.
    """
    rows = _rows(claims)
    width = width or shutil.get_terminal_size((120, 24)).columns
    if not rows:
        return "no claims"
    fitted = _fit(rows, width)
    if fitted is None:
        return _summary(rows, width, full)
    cols, widths = fitted

    def cell(x: str, w: int) -> str:
        return (x if len(x) <= w else x[: w - 1] + "…").ljust(w)

    def line(r):
        return (" " * _GAP).join(cell(r[i], widths[i]) for i in cols).rstrip()

    return "\n".join([line(HEADER), line(["-" * widths[i] for i in range(len(HEADER))])] + [line(r) for r in rows])


def claims_markdown(claims: Iterable[dict]) -> str:
    """Markdown table of ledger rows."""
    rows = _rows(claims)
    esc = lambda s: s.replace("|", "\\|").replace("\n", " ")  # noqa: E731
    out = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    out += ["| " + " | ".join(esc(x) for x in r) + " |" for r in rows]
    return "\n".join(out)
