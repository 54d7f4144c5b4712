"""A self-contained HTML report: summary, figures, tables and notes in one file.

The file needs nothing else to be read offline: PNG figures are embedded as base64
``data:`` URIs, the CSS is inline, there is no script and no external link. Every text that
comes from data (summary keys and values, captions, table cells, notes) is HTML-escaped.
Check a report in a real browser with ``scripts/check_report.py``.
"""

from __future__ import annotations

import base64
import datetime
import html
import math
import numbers
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from l2dynamics.files import write_text

SIGNIFICANT = 4  # digits of the numbers shown in the summary and the tables

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 2em auto;
       max-width: 1150px; padding: 0 1em; color: #222; line-height: 1.45; }
h1 { font-size: 1.6em; margin-bottom: 0.1em; }
h2 { font-size: 1.2em; border-bottom: 1px solid #ddd; padding-bottom: 0.2em; margin-top: 1.6em; }
.date { color: #666; margin-top: 0; }
dl.summary { display: grid; grid-template-columns: max-content auto; gap: 0.2em 1.5em; }
dl.summary dt { font-weight: 600; }
dl.summary dd { margin: 0; font-family: ui-monospace, Menlo, Consolas, monospace;
                overflow-wrap: anywhere; }
figure { margin: 1em 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: #444; font-size: 0.95em; margin-top: 0.3em; }
.missing { color: #a00; }
.table-wrap { overflow-x: auto; max-height: 40em; overflow-y: auto; }
table.data { border-collapse: collapse; font-size: 0.85em; }
table.data th, table.data td { border: 1px solid #ddd; padding: 0.2em 0.5em; text-align: right; }
table.data th { background: #f4f4f4; position: sticky; top: 0; }
table.data tr:nth-child(even) td { background: #fafafa; }
ul.notes li { margin-bottom: 0.3em; }
"""


def format_value(value: Any) -> str:
    """A value as text: numbers to 4 significant digits, None/NaN/NA as "—", nested kept.

    Integers print in full; floats with 4 significant digits, except that |x| >= 10⁴ prints
    without a fractional part (90744, not 9.074e+04); infinities as ``inf``. Booleans print as
    yes/no, lists and tuples as ``[a, b]``, mappings as ``k: v, …``. The text is not escaped.
    """
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if value is None or value is pd.NA or value is pd.NaT:
        return "—"
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        return _format_float(float(value))
    if isinstance(value, Mapping):
        return ", ".join(f"{k}: {format_value(v)}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return "[" + ", ".join(format_value(v) for v in value) + "]"
    return str(value)


def _format_float(value: float) -> str:
    if math.isnan(value):
        return "—"
    if math.isinf(value) or not 1e4 <= abs(value) < 1e15:
        return f"{value:.{SIGNIFICANT}g}"
    return f"{value:.0f}"


def _summary_html(summary: Mapping[str, Any]) -> str:
    items = "".join(
        f"<dt>{html.escape(str(k))}</dt><dd>{html.escape(format_value(v))}</dd>"
        for k, v in summary.items()
    )
    return f'<dl class="summary">{items}</dl>' if items else "<p>(empty)</p>"


def _figure_html(caption: str, path: Path) -> str:
    """One figure as an <img> with its PNG inline, or a visible note when the file is missing."""
    path = Path(path)
    cap = html.escape(str(caption))
    if not path.is_file():
        note = html.escape(f"figure file missing: {path}")
        return f'<figure><p class="missing">{note}</p><figcaption>{cap}</figcaption></figure>'
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return (
        f'<figure><img src="data:image/png;base64,{data}" alt="{cap}">'
        f"<figcaption>{cap}</figcaption></figure>"
    )


def _table_html(table: pd.DataFrame) -> str:
    """A DataFrame as an escaped HTML table, each cell through :func:`format_value`."""
    if table.empty:
        return "<p>(no rows)</p>"
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in table.columns)
    rows = "".join(
        "<tr>" + "".join(f"<td>{html.escape(format_value(v))}</td>" for v in row) + "</tr>"
        for row in table.itertuples(index=False, name=None)
    )
    return (
        f'<div class="table-wrap"><table class="data"><thead><tr>{head}</tr></thead>'
        f"<tbody>{rows}</tbody></table></div>"
    )


def render_report(
    *,
    title: str,
    summary: Mapping[str, Any],
    figures: Sequence[tuple[str, Path]],
    tables: Mapping[str, pd.DataFrame],
    notes: Sequence[str] = (),
    date: datetime.datetime | None = None,
) -> str:
    """The HTML text of :func:`write_report` (``date`` defaults to now, UTC)."""
    date = date or datetime.datetime.now(datetime.UTC)
    t = html.escape(title)
    parts = [
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{t}</title>',
        f'<meta name="viewport" content="width=device-width, initial-scale=1"><style>{CSS}</style>',
        f'</head><body><h1>{t}</h1><p class="date">{date:%Y-%m-%d %H:%M %Z}</p>',
        "<h2>Summary</h2>",
        _summary_html(summary),
    ]
    if figures:
        parts += ["<h2>Figures</h2>", *(_figure_html(c, p) for c, p in figures)]
    for name, table in tables.items():
        parts += [f"<h2>{html.escape(str(name))}</h2>", _table_html(table)]
    if notes:
        items = "".join(f"<li>{html.escape(str(n))}</li>" for n in notes)
        parts += ["<h2>Notes</h2>", f'<ul class="notes">{items}</ul>']
    parts.append("</body></html>\n")
    return "\n".join(parts)


def write_report(
    path: str | os.PathLike,
    *,
    title: str,
    summary: Mapping[str, Any],
    figures: Sequence[tuple[str, Path]],
    tables: Mapping[str, pd.DataFrame],
    notes: Sequence[str] = (),
) -> Path:
    """Write one self-contained HTML report (readable offline, no script) atomically.

    Args:
        path: the HTML file to write (replaced atomically: a temporary file renamed into
            place, so a reader never sees half a report).
        title: page title and heading.
        summary: key values, shown as a definition list (numbers to 4 significant digits).
        figures: ``(caption, PNG path)`` pairs, embedded as base64 data URIs; a missing file
            is reported in the page instead of failing.
        tables: ``{heading: DataFrame}``, shown rounded and escaped.
        notes: sentences shown as a list at the end.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    text = render_report(title=title, summary=summary, figures=figures, tables=tables, notes=notes)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_text(path, text)


__all__ = ["format_value", "render_report", "write_report"]
