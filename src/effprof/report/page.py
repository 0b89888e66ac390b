"""The look shared by every effprof HTML page: shell, CSS, tables, charts with their numbers.

A page is one self-contained file: plotly.js is inlined once (from the installed plotly package),
every chart's figure is embedded as JSON, and a Content-Security-Policy forbids any network
request, so the file opens offline and leaks nothing. Everything that came from a user (model
names, paths, config values, notes) goes through :func:`escape`; chart text through
:func:`chart_text`. Stable API (the comparison page of ``effprof compare`` uses it too):

    page(title, sections, subtitle=..., nav=...) -> str            # the whole document
    section(section_id, title, body, intro=...) -> str              # <section id=...>
    table(frame, columns=..., formats=..., caption=...) -> str      # a numbers table
    figure(fig, caption=..., numbers=..., formats=...) -> str       # chart + caption + its numbers
    cards([(label, value, detail), ...]) -> str                     # headline numbers
    paragraph(text) / bullets(items) / findings(pairs) / note(text) / warning(text)
    escape(value) / chart_text(value)
"""

from __future__ import annotations

import html
import itertools
import json
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import lru_cache
from typing import Any

import pandas as pd
import plotly.graph_objects as go

Formatter = Callable[[Any], str]

# No network request of any kind: scripts and styles only inline, images only data: URIs.
CSP = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "img-src data:; font-src data:; connect-src 'none'; base-uri 'none'; form-action 'none'"
)
PLOTLY_CONFIG = {"displaylogo": False, "responsive": True, "modeBarButtonsToRemove": ["sendDataToCloud"]}  # fmt: skip
PALETTE = ("#2f6fb0", "#e0803a", "#3c9a5f", "#c2464b", "#7f62b3", "#8c6d52", "#d36fb0", "#6b7683")
# One colour per quantity, the same in every chart of every page.
COLORS = {
    "parameters": "#2f6fb0", "MACs": "#e0803a", "FLOPs": "#e0803a", "activations written": "#3c9a5f",
    "measured time": "#c2464b", "time (per-call timing)": "#c2464b", "time (torch.profiler)": "#7f62b3",
    "peak activation memory": "#3c9a5f",
}  # fmt: skip
FONT = "-apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, sans-serif"

CSS = """
:root { --ink:#1d2430; --muted:#5b6575; --line:#dfe3ea; --soft:#f5f7fa; --accent:#2f6fb0; }
* { box-sizing: border-box; }
body { margin:0; font-family:FONT_FAMILY; color:var(--ink); background:#fff; line-height:1.5;
       font-size:15px; }
header.top { background:var(--soft); border-bottom:1px solid var(--line); }
header.top .inner, main, nav.sections .inner { max-width:1280px; margin:0 auto; padding:0 24px; }
header.top .inner { padding-top:18px; padding-bottom:14px; }
h1 { font-size:24px; margin:0 0 2px; }
.subtitle { color:var(--muted); margin:0; }
nav.sections { position:sticky; top:0; background:#fff; border-bottom:1px solid var(--line);
               z-index:10; }
nav.sections a { display:inline-block; padding:8px 10px; color:var(--accent); text-decoration:none;
                 font-size:14px; }
nav.sections a:hover { background:var(--soft); }
section { padding:18px 0 26px; border-bottom:1px solid var(--line); }
section:last-child { border-bottom:none; }
h2 { font-size:20px; margin:4px 0 6px; }
h3 { font-size:16px; margin:18px 0 6px; }
.intro { color:var(--muted); max-width:900px; margin:0 0 12px; }
.cards { display:grid; grid-template-columns:repeat(auto-fit, minmax(170px, 1fr)); gap:10px;
         margin:10px 0 16px; }
.card { border:1px solid var(--line); border-radius:8px; padding:10px 12px; background:#fff; }
.card .label { color:var(--muted); font-size:13px; }
.card .value { font-size:22px; font-weight:600; margin-top:2px; }
.card .detail { color:var(--muted); font-size:12px; }
.card.muted { background:var(--soft); border-style:dashed; }
.card.muted .value { color:#8a94a3; font-weight:500; }
.answer { background:#f3f7fc; border-left:4px solid var(--accent); padding:10px 16px;
          margin:8px 0 14px; border-radius:4px; }
.answer ul { margin:4px 0; padding-left:20px; }
.answer li { margin:4px 0; }
.note { color:var(--muted); font-size:13px; margin:6px 0; }
.warning { background:#fdf6ec; border-left:4px solid #e0a23a; color:#6b4a12; font-size:13px;
           padding:6px 12px; margin:8px 0; border-radius:4px; }
.missing { color:#9a5b00; }
/* the numbers beside a chart take the width they need (up to 45 %, and never less than their
   narrowest layout, headers wrapped): the chart gives way, the table is never cut off */
.figure-row { display:grid; grid-template-columns:minmax(280px, 1fr) fit-content(45%); gap:18px;
              align-items:start; margin:10px 0 18px; }
@media (max-width: 1000px) { .figure-row { grid-template-columns:1fr; } }
.figure-row > .numbers { min-width:min-content; }
figure { margin:0; }
.chart { width:100%; height:360px; }
figcaption { color:var(--muted); font-size:13px; margin-top:4px; }
.numbers { max-height:420px; overflow:auto; }
table.data { border-collapse:collapse; font-size:13px; width:100%; }
table.data caption { text-align:left; color:var(--muted); font-size:12px; padding-bottom:4px; }
table.data th, table.data td { border-bottom:1px solid var(--line); padding:3px 8px;
                               vertical-align:top; }
table.data th { background:var(--soft); text-align:left; }
.numbers table.data th { position:sticky; top:0; }  /* in its scrolling box, not over the page */
table.data td.num { text-align:right; font-variant-numeric:tabular-nums; white-space:nowrap; }
table.data tr:hover td { background:#fafbfd; }
.wide { overflow-x:auto; margin:8px 0 14px; }
.badge { display:inline-block; font-size:11px; padding:1px 6px; border-radius:9px;
         background:#fdf1e1; color:#8a4b00; border:1px solid #f1d2a6; }
code { background:var(--soft); padding:1px 4px; border-radius:3px; font-size:13px; }
footer { color:var(--muted); font-size:12px; padding:16px 24px 30px; max-width:1280px;
         margin:0 auto; }
""".replace("FONT_FAMILY", FONT)

BOOT_JS = """
(function () {
  var charts = document.querySelectorAll('div.chart[data-figure]');
  charts.forEach(function (div) {
    var spec = JSON.parse(document.getElementById(div.getAttribute('data-figure')).textContent);
    Plotly.newPlot(div, spec.data, spec.layout, spec.config);
  });
})();
"""


def escape(value: Any) -> str:
    """HTML-escape any value's text (quotes too), so user input always shows as text."""
    return html.escape("" if value is None else str(value), quote=True)


LONG_TOKEN = 32  # characters without a space: a hash, a path, a run id
_TOKEN = re.compile(rf"\S{{{LONG_TOKEN},}}")


def breakable(value: Any) -> str:
    """Escaped text in which a long unbroken token (a SHA-256, a path) may wrap every 16
    characters (``<wbr>``), so it never pushes its table past the page; words keep whole.

    >>> breakable("sha " + "ab" * 20)
    'sha abababababababab<wbr>abababababababab<wbr>abababab'
    """
    text = "" if value is None else str(value)
    parts, last = [], 0
    for match in _TOKEN.finditer(text):
        token = match.group()
        parts.append(escape(text[last : match.start()]))
        parts.append("<wbr>".join(escape(token[i : i + 16]) for i in range(0, len(token), 16)))
        last = match.end()
    parts.append(escape(text[last:]))
    return "".join(parts)


def chart_text(value: Any) -> str:
    """Text for a plotly label: plotly reads a small HTML subset, so user text is escaped too."""
    return escape(value)


@lru_cache(maxsize=1)
def plotly_js() -> str:
    """The installed plotly package's plotly.min.js, safe to inline in a <script> element."""
    from plotly.offline import get_plotlyjs

    return get_plotlyjs().replace("</script", "<\\/script")


def _json_for_script(data: Any) -> str:
    # "<", ">" and "&" only occur inside JSON strings, where \\u escapes mean the same text.
    text = json.dumps(data, separators=(",", ":"), allow_nan=False, default=_json_default)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _json_default(value: Any) -> Any:
    """numpy / torch scalars and arrays (an array's ``item()`` fails unless it has one element)."""
    if getattr(value, "ndim", 0) == 0 and hasattr(value, "item"):
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _is_missing(value: Any) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, float) and math.isnan(value)


def format_value(value: Any) -> str:
    """Default cell text: thousands separators for integers, 4 significant digits for floats."""
    if _is_missing(value):
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int) or (hasattr(value, "dtype") and "int" in str(value.dtype)):
        return f"{int(value):,}"
    if isinstance(value, float) or hasattr(value, "dtype"):
        number = float(value)
        if number.is_integer() and abs(number) < 1e15:
            return f"{int(number):,}"
        if number != 0 and (abs(number) >= 1e15 or abs(number) < 1e-3):
            return f"{number:.4g}"
        return f"{number:,.4g}" if abs(number) < 1000 else f"{number:,.0f}"
    return str(value)


def _is_numeric(value: Any) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)) or (
        hasattr(value, "dtype") and getattr(value.dtype, "kind", "") in "iuf"
    )


def table(
    frame: pd.DataFrame,
    *,
    columns: Mapping[str, str] | None = None,
    formats: Mapping[str, Formatter] | None = None,
    caption: str | None = None,
    max_rows: int | None = None,
    html_columns: Sequence[str] = (),
) -> str:
    """A data table: ``columns`` maps column -> header (and picks the order); ``formats`` maps
    column -> formatter; every cell is escaped except the columns named in ``html_columns``
    (whose values the caller built with :func:`escape`)."""
    columns = dict(columns) if columns is not None else {c: str(c) for c in frame.columns}
    formats = dict(formats or {})
    shown = frame if max_rows is None else frame.head(max_rows)
    head = "".join(f"<th>{escape(label)}</th>" for label in columns.values())
    rows = []
    for record in shown.to_dict("records"):
        cells = []
        for column in columns:
            value = record.get(column)
            text = (
                formats[column](value)
                if column in formats and not _is_missing(value)
                else format_value(value)
            )
            body = text if column in html_columns else breakable(text)
            cls = ' class="num"' if _is_numeric(value) else ""
            cells.append(f"<td{cls}>{body}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    more = ""
    if max_rows is not None and len(frame) > max_rows:
        more = f'<p class="note">{len(frame) - max_rows:,} more rows in the run\'s table.</p>'
    cap = f"<caption>{escape(caption)}</caption>" if caption else ""
    return (
        f'<table class="data">{cap}<thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>{more}"
    )


_figure_ids = itertools.count(1)


def _axis_titles_missing(layout: Mapping[str, Any]) -> list[str]:
    missing = []
    for key, axis in layout.items():
        if not (key.startswith("xaxis") or key.startswith("yaxis")) or not isinstance(axis, dict):
            continue
        if axis.get("visible") is False:
            continue
        title = axis.get("title")
        text = title.get("text") if isinstance(title, dict) else title
        if not text:
            missing.append(key)
    return missing


def log_axis(title: str, values: Iterable[float]) -> dict[str, Any]:
    """A logarithmic axis whose tick labels never crowd: powers of ten over two decades or
    more, 1-2-5 steps below; labels in SI (``2k``, ``10M``), never bare mantissas."""
    positive = [float(v) for v in values if v is not None and v == v and float(v) > 0]
    decades = math.log10(max(positive) / min(positive)) if len(positive) > 1 else 0.0
    return {"type": "log", "title": {"text": title}, "tickformat": "~s",
            "dtick": 1 if decades >= 2 else "D2"}  # fmt: skip


def style_figure(fig: go.Figure, height: int = 360) -> go.Figure:
    """The house chart style: light template, house palette and font, compact margins."""
    fig.update_layout(
        template="plotly_white",
        colorway=list(PALETTE),
        font={"family": FONT, "size": 12, "color": "#1d2430"},
        margin={"l": 60, "r": 20, "t": 30, "b": 50},
        height=height,
        legend={"orientation": "h", "y": -0.2},
    )
    return fig


def figure(
    fig: go.Figure,
    *,
    caption: str,
    numbers: pd.DataFrame | None = None,
    columns: Mapping[str, str] | None = None,
    formats: Mapping[str, Formatter] | None = None,
    numbers_caption: str | None = None,
    max_rows: int | None = 60,
    height: int = 360,
) -> str:
    """A chart with its caption, and the numbers it plots as a table beside it.

    Every visible cartesian axis must have a title (with its unit): a chart without units is a
    programming error here, not something to discover in a browser.
    """
    style_figure(fig, height)
    spec = fig.to_plotly_json()
    missing = _axis_titles_missing(spec.get("layout", {}))
    if missing and any(
        trace.get("type", "scatter") not in ("pie", "table") for trace in spec["data"]
    ):
        raise ValueError(f"chart axes without a title (unit): {', '.join(missing)}")
    figure_id = f"fig-{next(_figure_ids)}"
    payload = _json_for_script(
        {"data": spec["data"], "layout": spec["layout"], "config": PLOTLY_CONFIG}
    )
    chart = (
        f'<figure><div class="chart" id="{figure_id}" data-figure="{figure_id}-data" '
        f'style="height:{int(height)}px"></div>'
        f'<script type="application/json" id="{figure_id}-data">{payload}</script>'
        f"<figcaption>{escape(caption)}</figcaption></figure>"
    )
    side = ""
    if numbers is not None:
        side = '<div class="numbers">' + table(
            numbers, columns=columns, formats=formats, caption=numbers_caption, max_rows=max_rows
        ) + "</div>"  # fmt: skip
    return f'<div class="figure-row">{chart}{side}</div>'


def cards(items: Iterable[tuple[str, str, str]], muted: Iterable[int] = ()) -> str:
    """Headline numbers: (label, value, detail) cards; all three are escaped. Cards whose index
    is in ``muted`` are greyed (a number measured under contention: never a headline)."""
    grey = set(muted)
    body = "".join(
        f'<div class="card{" muted" if i in grey else ""}"><div class="label">{escape(label)}</div>'
        f'<div class="value">{escape(value)}</div><div class="detail">{escape(detail)}</div></div>'
        for i, (label, value, detail) in enumerate(items)
    )
    return f'<div class="cards">{body}</div>'


def paragraph(text: str, cls: str = "") -> str:
    """An escaped paragraph."""
    attr = f' class="{escape(cls)}"' if cls else ""
    return f"<p{attr}>{escape(text)}</p>"


def note(text: str) -> str:
    """A small muted paragraph (how a number was measured, what is missing)."""
    return paragraph(text, "note")


def findings(items: Iterable[tuple[str, str]]) -> str:
    """A list of (lead, sentence) findings; the lead is bold. Both are escaped."""
    body = "".join(
        f"<li><strong>{escape(lead)}</strong> {escape(text)}</li>" for lead, text in items
    )
    return f"<ul>{body}</ul>"


def warning(text: str) -> str:
    """A caveat the reader must not miss (busy host, padded input): amber, escaped."""
    return paragraph(text, "warning")


def bullets(items: Iterable[str], cls: str = "") -> str:
    """An escaped bullet list."""
    attr = f' class="{escape(cls)}"' if cls else ""
    return f"<ul{attr}>" + "".join(f"<li>{escape(item)}</li>" for item in items) + "</ul>"


def wide(html_text: str) -> str:
    """Wrap a wide table so it scrolls sideways instead of stretching the page."""
    return f'<div class="wide">{html_text}</div>'


def section(section_id: str, title: str, body: str, intro: str = "") -> str:
    """A page section with a stable id (used in links and by tests)."""
    lead = f'<p class="intro">{escape(intro)}</p>' if intro else ""
    return f'<section id="{escape(section_id)}"><h2>{escape(title)}</h2>{lead}{body}</section>'


def fragment(body: str) -> str:
    """A piece of a page to embed elsewhere (a notebook cell's output): the page's styles scoped
    to one ``div.effprof``, no scripts."""
    scoped = []
    for rule in CSS.split("}"):
        if "{" not in rule:
            continue
        selectors, declarations = rule.split("{", 1)
        if selectors.strip().startswith(("@", ":root", "*", "body")):
            continue
        names = ", ".join(f"div.effprof {s.strip()}" for s in selectors.split(",") if s.strip())
        scoped.append(f"{names} {{{declarations}}}")
    variables = "div.effprof { --ink:#1d2430; --muted:#5b6575; --line:#dfe3ea; --soft:#f5f7fa; "
    variables += f"--accent:#2f6fb0; font-family:{FONT}; color:var(--ink); line-height:1.5; }}"
    return f'<div class="effprof"><style>{variables} {" ".join(scoped)}</style>{body}</div>'


def page(
    title: str,
    sections: Sequence[str],
    *,
    subtitle: str = "",
    nav: Sequence[tuple[str, str]] = (),
    footer: str = "",
) -> str:
    """The whole self-contained HTML document (plotly.js inlined once, no network access)."""
    links = "".join(f'<a href="#{escape(sid)}">{escape(label)}</a>' for sid, label in nav)
    nav_html = f'<nav class="sections"><div class="inner">{links}</div></nav>' if links else ""
    sub = f'<p class="subtitle">{escape(subtitle)}</p>' if subtitle else ""
    foot = f"<footer>{escape(footer)}</footer>" if footer else ""
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{CSS}</style>"
        f"<script>{plotly_js()}</script></head><body>"
        f'<header class="top"><div class="inner"><h1>{escape(title)}</h1>{sub}</div></header>'
        f"{nav_html}<main>{''.join(sections)}</main>{foot}"
        f"<script>{BOOT_JS}</script></body></html>\n"
    )
