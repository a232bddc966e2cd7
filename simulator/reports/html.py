"""HTML building blocks of the report: escaped tables, figures as base64 PNG, the page
shell with its screen and print CSS. No templates engine: small functions that return
strings, every value escaped.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Iterable, Sequence
from typing import Any

CSS = """
:root { --ink:#1d2733; --muted:#5b6675; --line:#d7dde5; --accent:#0b5cad; --good:#1d7a35; }
* { box-sizing: border-box; }
body { font-family: -apple-system, "Segoe UI", "DejaVu Sans", Helvetica, Arial, sans-serif;
       color: var(--ink); max-width: 1080px; margin: 0 auto; padding: 24px 32px 64px;
       line-height: 1.45; font-size: 15px; }
h1 { font-size: 26px; margin: 0 0 4px; }
h2 { font-size: 20px; margin: 32px 0 8px; border-bottom: 2px solid var(--line);
     padding-bottom: 4px; }
h3 { font-size: 16px; margin: 20px 0 6px; }
.meta { color: var(--muted); font-size: 13px; }
.recommendation { border: 2px solid var(--good); border-radius: 8px; padding: 14px 18px;
                  background: #f3faf4; margin: 12px 0; }
.recommendation .headline { font-size: 19px; font-weight: 600; }
.kpis { display: flex; flex-wrap: wrap; gap: 12px; margin: 10px 0; }
.kpi { border: 1px solid var(--line); border-radius: 6px; padding: 8px 12px; min-width: 150px;
       background: white; }
.kpi .v { font-size: 18px; font-weight: 600; } .kpi .k { color: var(--muted); font-size: 12px; }
table { border-collapse: collapse; width: 100%; margin: 8px 0 16px; font-size: 13px; }
th, td { border: 1px solid var(--line); padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f2f5f9; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.chosen td { background: #eaf6ec; font-weight: 600; }
figure { margin: 16px 0 24px; page-break-inside: avoid; break-inside: avoid; }
figure img { max-width: 100%; height: auto; display: block; border: 1px solid var(--line); }
figcaption { color: var(--muted); font-size: 13px; margin-top: 4px; }
pre { background: #f6f8fa; border: 1px solid var(--line); padding: 10px; font-size: 12px;
      overflow-x: auto; white-space: pre-wrap; }
.note { color: var(--muted); font-size: 13px; }
.warn { color: #8a4b00; }
@media print {
  body { max-width: none; padding: 0; font-size: 11pt; }
  h2 { page-break-after: avoid; break-after: avoid; }
  table, .recommendation { page-break-inside: avoid; break-inside: avoid; }
  a { color: inherit; text-decoration: none; }
  @page { size: A4; margin: 14mm; }
}
"""

#: Runs after load in a browser: records how many embedded images decoded and where they
#: lie on the page, so a headless browser's DOM dump can be checked (no effect on reading).
IMAGE_CHECK_SCRIPT = """
<script>
window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.querySelectorAll('figure img'));
  var ok = imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; });
  var boxes = imgs.map(function (i) {
    var r = i.getBoundingClientRect();
    return [i.id, Math.round(r.left + window.scrollX), Math.round(r.top + window.scrollY),
            Math.round(r.width), Math.round(r.height)];
  });
  document.body.setAttribute('data-images-total', String(imgs.length));
  document.body.setAttribute('data-images-loaded', String(ok.length));
  document.body.setAttribute('data-image-boxes', JSON.stringify(boxes));
  document.body.setAttribute('data-page-height', String(document.body.scrollHeight));
});
</script>
"""


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def fmt(value: Any, digits: int = 3) -> str:
    """A number for a table: significant digits, thousands separators, '–' for missing."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        return f"{value:.{digits}g}"
    return str(value)


def usd(value: float | None, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if abs(value) >= 100:
        return f"${value:,.0f}"
    return f"${value:.{digits}g}"


def table(
    headers: Sequence[str] | None,
    rows: Iterable[Sequence[Any]],
    *,
    numeric: Sequence[bool] | None = None,
    highlight: Sequence[bool] | None = None,
    table_id: str | None = None,
) -> str:
    """An HTML table (no header row when ``headers`` is None); cells are escaped (pass
    pre-formatted strings for numbers)."""
    numeric = numeric or [False] * 64
    out = [f'<table id="{esc(table_id)}">' if table_id else "<table>"]
    if headers:
        out += ["<thead><tr>", *(f"<th>{esc(h)}</th>" for h in headers), "</tr></thead>"]
    out.append("<tbody>")
    for i, row in enumerate(rows):
        chosen = highlight is not None and i < len(highlight) and highlight[i]
        out.append('<tr class="chosen">' if chosen else "<tr>")
        for cell, is_num in zip(row, numeric, strict=False):
            cls = ' class="num"' if is_num else ""
            out.append(f"<td{cls}>{esc(cell)}</td>")
        out.append("</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def figure(fig_id: str, png: bytes, title: str, caption: str) -> str:
    """A figure with its PNG embedded as a data URI."""
    data = base64.b64encode(png).decode("ascii")
    return (
        f'<figure id="fig-{esc(fig_id)}"><h3>{esc(title)}</h3>'
        f'<img id="img-{esc(fig_id)}" alt="{esc(title)}" src="data:image/png;base64,{data}">'
        f"<figcaption>{esc(caption)}</figcaption></figure>"
    )


def kpi(label: str, value: str) -> str:
    return (
        f'<div class="kpi"><div class="v">{esc(value)}</div><div class="k">{esc(label)}</div></div>'
    )


def page(title: str, body: str) -> str:
    """The whole self-contained document."""
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{CSS}</style></head>"
        f"<body>{body}{IMAGE_CHECK_SCRIPT}</body></html>\n"
    )
