"""The ``metrics list`` table: which metric columns, and the table as text, CSV or Markdown.

Pure functions over rows of strings, so the width rules are tested without a terminal;
the CLI picks the width (the terminal's, or none for a pipe) and prints.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Sequence
from fnmatch import fnmatchcase

__all__ = ["Table", "fit_table", "select_metrics", "to_csv", "to_markdown"]

#: Space between text columns.
GAP = "  "

#: A table as rows of cells; the first row is the header.
Table = list[list[str]]


def select_metrics(
    names: Iterable[str],
    picked: Sequence[str] = (),
    keep: Sequence[str] = (),
    drop: Sequence[str] = (),
) -> list[str]:
    """The metric names to show, in the order given by ``picked`` or else sorted.

    Args:
        names: every metric name the records have.
        picked: ``--metric`` values: exact names or globs (``eval.*``); empty for all.
        keep: regexes (``re.search``); a name must match one of them, if any are given.
        drop: regexes; a name matching any of them is left out.

    Returns:
        The names, each once: in the order of the first ``picked`` entry that matched
        (names one glob matches sorted), or sorted when nothing was picked.
    """
    available = sorted(set(names))
    if picked:
        chosen: list[str] = []
        for pattern in picked:
            for name in available if pattern not in available else [pattern]:
                if (name == pattern or fnmatchcase(name, pattern)) and name not in chosen:
                    chosen.append(name)
    else:
        chosen = available
    keeps = [re.compile(k) for k in keep]
    drops = [re.compile(d) for d in drop]
    return [
        name
        for name in chosen
        if (not keeps or any(k.search(name) for k in keeps))
        and not any(d.search(name) for d in drops)
    ]


def fit_table(rows: Table, width: int | None, fixed: int = 1) -> tuple[list[str], int]:
    """Lay out ``rows`` as left-aligned columns, leaving out those beyond ``width``.

    The first ``fixed`` columns (the tag and its facts) are always kept; metric columns
    follow while the line still fits. A line that cannot fit even so is cut, so no line
    is ever wider than ``width``.

    Args:
        rows: the header row, then one row per tag.
        width: the widest line allowed (at least 1), or None for every column.
        fixed: how many leading columns are always shown.

    Returns:
        The lines (trailing spaces stripped) and how many columns were left out.
    """
    if not rows:
        return [], 0
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    shown = len(widths)
    if width is not None:
        used = sum(widths[:fixed]) + len(GAP) * (fixed - 1)
        shown = min(fixed, len(widths))
        while shown < len(widths) and used + len(GAP) + widths[shown] <= width:
            used += len(GAP) + widths[shown]
            shown += 1
    lines = []
    for row in rows:
        cells = zip(row[:shown], widths[:shown], strict=True)
        line = GAP.join(cell.ljust(w) for cell, w in cells).rstrip()
        if width is not None and len(line) > width:
            line = line[: width - 1] + "…"
        lines.append(line)
    return lines, len(widths) - shown


def to_csv(rows: Table) -> str:
    """The rows as CSV (RFC 4180: CRLF line ends, fields quoted when they must be)."""
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows(rows)
    return out.getvalue()


def _markdown_cell(cell: str) -> str:
    # A pipe would end the cell and a line break the row; a backslash is escaped first
    # so that an escaped pipe cannot be undone by the cell's own backslash.
    text = cell.replace("\\", "\\\\").replace("|", "\\|")
    return " ".join(text.splitlines()) if text else ""


def to_markdown(rows: Table) -> str:
    """The rows as a Markdown (GitHub) table, the first row as its header."""
    if not rows:
        return ""
    lines = ["| " + " | ".join(_markdown_cell(c) for c in row) + " |" for row in rows]
    lines.insert(1, "|" + "|".join("---" for _ in rows[0]) + "|")
    return "\n".join(lines) + "\n"
