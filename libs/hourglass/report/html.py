"""HTML pieces of the report: escaped tables, figures embedded as data URIs, one page.

The page needs nothing but itself (inline CSS, images as base64), so it can be mailed or
attached to a ticket; the same PNGs are written beside it for slides.
"""

from __future__ import annotations

import base64
import html
import math
import re
from collections.abc import Sequence
from pathlib import Path

CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 1250px; color: #222; line-height: 1.4; padding: 0 1em; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ccc; margin-top: 2em; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.85em; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { background: #f3f3f3; } tr.sub td:first-child { padding-left: 1.8em; font-style: italic; }
figure { margin: 1em 0; } img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: 0.85em; color: #555; } .note { color: #555; font-size: 0.9em; }
.lead { max-width: 60em; }
.verdict-yes { color: #b00020; font-weight: bold; } .verdict-no { color: #1b5e20; }
nav a { margin-right: 1em; }
"""


class Markup(str):
    """A cell that is already HTML (a coloured verdict); `table` does not escape it."""


def esc(value: object) -> str:
    return html.escape(str(value))


def fmt(value: object, digits: int = 4) -> str:
    """Numbers for people: thousands separators, fixed decimals, big capacities as 1.2e+10."""
    if hasattr(value, "item") and not isinstance(value, (list, tuple)):
        value = value.item()  # numpy scalar
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer()
                                  and abs(value) < 1e12):
        return f"{int(value):,}"
    if isinstance(value, float):
        return f"{value:.3e}" if abs(value) >= 1e12 else f"{value:.{digits}f}"
    return str(value)


def table(header: Sequence[str], rows: Sequence[Sequence[object]],
          row_classes: Sequence[str] | None = None, bold: Sequence[set[int]] | None = None) -> str:
    """A table; `bold[i]` names the cells (column indices) of row i to emphasise."""
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = []
    for i, row in enumerate(rows):
        cls = f' class="{row_classes[i]}"' if row_classes and row_classes[i] else ""
        cells = []
        for j, v in enumerate(row):
            text = v if isinstance(v, Markup) else esc(v if isinstance(v, str) else fmt(v))
            cells.append(f"<td><b>{text}</b></td>" if bold and j in bold[i] else f"<td>{text}</td>")
        body.append(f"<tr{cls}>{''.join(cells)}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def figure(path: Path, caption: str) -> str:
    """The PNG at `path` inlined as a data URI, with a link to the file beside the page."""
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return (f'<figure><img alt="{esc(caption)}" src="data:image/png;base64,{data}">'
            f'<figcaption>{esc(caption)} (<a href="{esc(path.name)}">{esc(path.name)}</a>)'
            f"</figcaption></figure>")


FIRST = {"popularity": 0, "none": 1}


def natural_key(name: str) -> tuple:
    """The popularity baseline, then `none`, then the rest with 'topk_20' before 'topk_200'."""
    parts = re.split(r"(\d+)", name)
    return (FIRST.get(name, 2), [(0, int(p)) if p.isdigit() else (1, p) for p in parts])


def page(title: str, nav: Sequence[tuple[str, str]], sections: Sequence[str], footer: str,
         note: str = "") -> str:
    """The whole page; `note`, when given, is a paragraph under the title (plain text)."""
    links = "".join(f'<a href="#{esc(a)}">{esc(t)}</a>' for a, t in nav)
    lead = f"<p class='lead'>{esc(note)}</p>" if note else ""
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{esc(title)}</title>"
            f"<style>{CSS}</style></head><body><h1>{esc(title)}</h1>{lead}<nav>{links}</nav>"
            f"{''.join(sections)}<hr><p class='note'>{footer}</p></body></html>")
