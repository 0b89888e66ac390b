"""The peers section: published numbers of networks for the model's task, as its registry entry
gave them to the profile (the run's ``peers`` and ``peers_meta`` tables). Cited, never measured
here. A model whose entry has no peers table has no such section."""

from __future__ import annotations

import json

import pandas as pd
import plotly.graph_objects as go

from effprof import schema as S
from effprof.report import numbers as fmt
from effprof.report import page
from effprof.report.runview import RunView
from effprof.report.sections import RenderContext, section


def _meta(view: RunView) -> dict | None:
    meta = view.table("peers_meta")
    if meta is None or meta.empty or view.table("peers") is None:
        return None
    row = meta.iloc[0].to_dict()
    row["columns"] = json.loads(row["columns"])
    return row


def has_peers(view: RunView) -> bool:
    """True when the run stored a peers table (its model's entry declares one)."""
    return _meta(view) is not None


def params_below_peers(view: RunView) -> tuple[int, int] | None:
    """(how many published peers have more parameters than this run's network, how many peers
    publish a parameter count), or None when the run has no such peer or no parameter count."""
    meta, params = _meta(view), view.number(S.PARAM_COUNT)
    if meta is None or params is None or not meta.get("params"):
        return None
    published = pd.to_numeric(view.table("peers")[meta["params"]], errors="coerce").dropna()
    if published.empty:
        return None
    return int((published * 1e6 > params).sum()), len(published)


def title(view: RunView) -> str:
    """The page's question. "Why is X so cheap?" states that X is cheap, so it is asked only when
    the run shows it: fewer parameters than most published peers of its task. Otherwise the
    page asks where the cost goes."""
    below = params_below_peers(view)
    if below is not None and below[0] * 2 > below[1]:
        return f"Why is {view.title_name} so cheap?"
    return f"Where does {view.title_name}'s cost go?"


def _value_format(key: str, frame: pd.DataFrame):
    if pd.api.types.is_numeric_dtype(frame[key]):
        return lambda v: f"{v:g}"
    return None


def _scatter(frame: pd.DataFrame, x: str, y: str, columns: dict[str, str], caption: str,
             view: RunView, mark_params: bool) -> str:  # fmt: skip
    known = frame[frame[x].notna() & frame[y].notna()]
    if known.empty:
        return ""
    fig = go.Figure()
    fig.add_scatter(x=known[x], y=known[y], mode="markers", name="published",
                    marker={"size": 10, "color": "#8c98a8"},
                    hovertext=[page.chart_text(n) for n in known["network"]])  # fmt: skip
    params = view.number(S.PARAM_COUNT)
    if mark_params and params is not None:
        fig.add_vline(x=params / 1e6, line={"dash": "dot", "color": "#2f6fb0"})
    fig.update_layout(xaxis_title=f"{columns[x]}, published", yaxis_title=f"{columns[y]}, published",
                      showlegend=False)  # fmt: skip
    formats = {k: f for k in (x, y) if (f := _value_format(k, known))}
    return page.figure(fig, caption=caption, numbers=known[["network", x, y]],
                       columns={"network": "network", x: columns[x], y: columns[y]},
                       formats=formats, height=340)  # fmt: skip


@section("peers", label="Peers", title="Published peers",
         intro="Networks for the same task as their authors published them (not measured here).")  # fmt: skip
def render(ctx: RenderContext) -> str:
    """The peers section body."""
    view = ctx.subject
    meta = _meta(view)
    if meta is None:
        return ""  # the model's registry entry lists no peers: no section
    frame, columns = view.table("peers"), meta["columns"]
    params = view.number(S.PARAM_COUNT)
    parts = [page.paragraph(meta["about"])]
    quality, size, runtime, comparable = (
        meta.get(k) for k in ("quality", "params", "runtime", "comparable")
    )
    if quality and size:
        mark = (
            f" The dotted line is this run's network: {fmt.count(params)} parameters, counted here; its quality depends on its weights and is not claimed."
            if params is not None
            else ""
        )
        parts.append(_scatter(frame, size, quality, columns,
                              f"Published {columns[quality]} against published {columns[size]}." + mark,
                              view, mark_params=True))  # fmt: skip
    if quality and runtime and comparable and frame[runtime].notna().any():
        groups = frame[frame[runtime].notna()].groupby(comparable)[runtime].size()
        source = groups.idxmax()
        parts.append(_scatter(frame[frame[comparable] == source], runtime, quality, columns,
                              f"Published quality against published runtime from one source that "
                              f"timed every network it lists the same way ({source}): comparable "
                              "with each other, not with this run.", view, mark_params=False))  # fmt: skip
    shown = {"network": "network", **columns, "citation": "published in"}
    formats = {k: f for k in columns if (f := _value_format(k, frame))}
    parts.append(page.wide(page.table(frame, columns=shown, formats=formats)))
    return "".join(parts)
