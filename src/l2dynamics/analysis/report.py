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
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from l2dynamics.analysis.summary_text import Item, format_value, headline, summary_items
from l2dynamics.files import write_text

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 2em auto;
       max-width: 1150px; padding: 0 1em; color: #222; line-height: 1.45; }
h1 { font-size: 1.6em; margin-bottom: 0.1em; }
h2 { font-size: 1.2em; border-bottom: 1px solid #ddd; padding-bottom: 0.2em; margin-top: 1.6em; }
.date { color: #666; margin-top: 0; }
dl.summary { display: grid; grid-template-columns: minmax(12em, 26em) minmax(0, 1fr);
             gap: 0.2em 1.5em; margin: 0.3em 0; }
dl.summary dt { font-weight: 600; }
dl.summary dd { margin: 0; overflow-wrap: anywhere; }
dl.summary .group { grid-column: 1 / -1; }
dl.summary dd.group { margin-left: 1.5em; }
p.lead { margin: 0.3em 0; }
figure { margin: 1em 0; width: min(96vw, 1800px); position: relative; left: 50%;
         transform: translateX(-50%); }  /* wider than the text: panels keep legible labels */
figure img { display: block; margin: 0 auto; max-width: 100%; height: auto;
             border: 1px solid #eee; }
figcaption { color: #444; font-size: 0.95em; margin: 0.3em auto 0; max-width: 1150px;
             padding: 0 1em; }
.missing { color: #a00; }
.table-wrap { overflow-x: auto; max-height: 40em; overflow-y: auto; }
table.data { border-collapse: collapse; font-size: 0.85em; }
table.data th, table.data td { border: 1px solid #ddd; padding: 0.2em 0.5em; text-align: right; }
table.data th { background: #f4f4f4; position: sticky; top: 0; }
table.data tr:nth-child(even) td { background: #fafafa; }
ul.notes li { margin-bottom: 0.3em; }
"""


def _summary_html(summary: Mapping[str, Any]) -> str:
    """The summary's findings as sentences, then every value by its label
    (:func:`~l2dynamics.analysis.summary_text.summary_items`)."""
    lead = "".join(f'<p class="lead">{html.escape(s)}</p>' for s in headline(summary))
    items = summary_items(summary)
    return lead + (_items_html(items) if items else "<p>(empty)</p>")


def _items_html(items: Sequence[Item]) -> str:
    """Label/value rows; a nested summary is a full-width group of its own rows."""
    rows = []
    for key, value in items:
        if isinstance(value, list):
            rows.append(f'<dt class="group">{html.escape(key)}</dt>')
            rows.append(f'<dd class="group">{_items_html(value)}</dd>')
        else:
            rows.append(f"<dt>{html.escape(key)}</dt><dd>{html.escape(value)}</dd>")
    return f'<dl class="summary">{"".join(rows)}</dl>'


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
        summary: key values: the findings as sentences, then each value by its label and
            unit (:mod:`l2dynamics.analysis.summary_text`; numbers to 4 significant digits).
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
