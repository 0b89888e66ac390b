"""The comparison page of ``effprof compare``: headline metrics with ratios, attribution side by
side, latency distributions, and a warning when the runs' times are not comparable.

Renders stored runs only (through ``effprof.runs``), with the report's shared look (``report.page``).
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from effprof import schema as S
from effprof.report import numbers as fmt
from effprof.report import page as ui
from effprof.runs import Comparison, load_table

TOP_MODULES = 15  # top-level modules shown in the module chart (by their largest MACs)

RUN_COLUMNS = {
    "label": "run", "run_id": "run id", "kind": "kind", "status": "status",
    "params.input": "input", "env.device_name": "device", "params.precision": "precision",
    f"metrics.{S.LATENCY.threads}": "threads", "env.effprof_version": "effprof", "created": "created",
}  # fmt: skip


def format_metric(value: Any, unit: str) -> str:
    """A headline value with its unit, as the profile page writes it (``report.numbers``)."""
    if unit == "ratio":  # SSIM and other unitless scores in 0..1
        return fmt.plain(value, 4)
    return fmt.with_unit(value, unit)


def format_ratio(ratio: float) -> str:
    """``0.52x`` (value / the first run's value), as every page writes a ratio."""
    return fmt.times(ratio)


def headline_cells(comparison: Comparison) -> pd.DataFrame:
    """Metric rows x run columns of ``value (×ratio)`` text, missing values with their reason."""
    rows = []
    for metric, group in comparison.headline.groupby("metric", sort=False):
        row: dict[str, str] = {"metric": str(metric)}
        for _, cell in group.iterrows():
            value, ratio = cell["value"], cell["ratio"]
            if math.isnan(value):
                text = f"missing ({cell['missing']})" if not pd.isna(cell["missing"]) else "—"
            elif cell["label"] == comparison.labels[0]:
                text = format_metric(value, cell["unit"])
            else:
                text = f"{format_metric(value, cell['unit'])} ({format_ratio(ratio)})"
            row[str(cell["label"])] = text
        rows.append(row)
    return pd.DataFrame(rows, columns=["metric", *comparison.labels])


def _labels(comparison: Comparison) -> dict[str, str]:
    return dict(zip(comparison.runs["run_id"], comparison.runs["label"], strict=True))


def _runs_section(comparison: Comparison) -> str:
    columns = {c: h for c, h in RUN_COLUMNS.items() if c in comparison.runs.columns}
    body = ui.wide(ui.table(comparison.runs, columns=columns))
    if comparison.warnings:
        body = ui.bullets([f"warning: {w}" for w in comparison.warnings], "missing") + body
    return ui.section("runs", "Runs", body, intro="Ratios are to run 1.")


def _headline_section(comparison: Comparison) -> str:
    cells = headline_cells(comparison)
    ratios = comparison.headline.dropna(subset=["ratio"])
    fig = go.Figure()
    for label in comparison.labels[1:]:
        part = ratios[ratios["label"] == label]
        fig.add_bar(
            x=[ui.chart_text(m) for m in part["metric"]],
            y=_floats(part["ratio"]),
            name=ui.chart_text(label),
        )
    fig.add_hline(y=1.0, line_dash="dot")
    fig.update_layout(xaxis_title="metric", yaxis_title="ratio to run 1 (×)", barmode="group")
    chart = ui.figure(fig, caption="Each metric of each run divided by run 1's (1 = the same).")
    return ui.section("headline", "Headline", ui.wide(ui.table(cells)) + chart)


def _floats(values: pd.Series) -> list[float | None]:
    """Plain floats for a chart (nullable pandas dtypes do not serialise), None where missing."""
    return [None if pd.isna(v) else float(v) for v in values]


def _grouped_bars(
    frame: pd.DataFrame, x: str, y: str, labels: dict[str, str], x_title: str, y_title: str
) -> go.Figure:
    fig = go.Figure()
    for run_id, part in frame.groupby("run_id", sort=False):
        fig.add_bar(
            x=[ui.chart_text(v) for v in part[x]],
            y=_floats(part[y]),
            name=ui.chart_text(labels[run_id]),
        )
    fig.update_layout(barmode="group", xaxis_title=x_title, yaxis_title=y_title)
    return fig


def _pivot(frame: pd.DataFrame, index: str, value: str, labels: dict[str, str]) -> pd.DataFrame:
    table = frame.pivot_table(index=index, columns="run_id", values=value, aggfunc="sum")
    table = table.reindex(columns=[r for r in labels if r in table.columns])
    return table.rename(columns=labels).reset_index()


def _attribution_section(comparison: Comparison) -> str:
    labels = _labels(comparison)
    runs = comparison.runs
    parts = []
    categories = load_table(runs, "categories")
    if "macs" in categories.columns:
        parts.append("<h3>FLOPs by op category (MACs in the table)</h3>")
        fig = _grouped_bars(categories, "category", "flops", labels, "op category", "FLOPs")
        parts.append(ui.figure(
            fig, caption="FLOPs per op category (counted on the meta device), one bar per run.",
            numbers=_pivot(categories, "category", "macs", labels),
            numbers_caption="MACs per op category",
        ))  # fmt: skip
    timing = load_table(runs, "optime_categories")
    if "share" in timing.columns:
        parts.append("<h3>Time by op category</h3>")
        fig = _grouped_bars(timing, "category", "share", labels, "op category", "share of op time")
        parts.append(ui.figure(
            fig, caption=(
                "Share of the profiled op time per category (torch.profiler), one bar per run. The "
                "times are measured under the profiler in forwards of their own, not parts of the "
                "latency median: profiling adds overhead to every op, so their sum can exceed it."
            ),
            numbers=_pivot(timing, "category", "time_ms", labels), numbers_caption="time per category (ms)",
        ))  # fmt: skip
    modules = load_table(runs, "modules")
    if "macs" in modules.columns:
        # the modules table holds each module's own ops: a top-level module's cost is the sum
        # over everything under it
        top = modules[modules["module"] != ""].assign(
            module=lambda f: f["module"].str.split(".").str[0]
        )
        top = top.groupby(["run_id", "module"], sort=False, as_index=False)["macs"].sum()
        keep = top.groupby("module")["macs"].max().nlargest(TOP_MODULES).index
        top = top[top["module"].isin(keep)]
        parts.append("<h3>MACs by top-level module</h3>")
        fig = _grouped_bars(top, "module", "macs", labels, "top-level module", "MACs")
        parts.append(ui.figure(
            fig, caption=f"MACs under each of the {TOP_MODULES} costliest top-level modules "
            "(the module and everything inside it), one bar per run.",
            numbers=_pivot(top, "module", "macs", labels), numbers_caption="MACs per module",
        ))  # fmt: skip
    if not parts:
        parts.append(ui.note("None of these runs stores attribution tables."))
    return ui.section("attribution", "Attribution side by side", "".join(parts))


def _latency_section(comparison: Comparison) -> str:
    labels = _labels(comparison)
    samples = load_table(comparison.runs, "latency")
    if "latency_ms" not in samples.columns:
        return ui.section(
            "latency", "Latency", ui.note("None of these runs stores latency samples.")
        )
    fig = go.Figure()
    for run_id, part in samples.groupby("run_id", sort=False):
        fig.add_box(
            y=_floats(part["latency_ms"]), name=ui.chart_text(labels[run_id]), boxpoints="all"
        )
    fig.update_layout(xaxis_title="run", yaxis_title="latency (ms)", showlegend=False)
    stats = samples.groupby("run_id", sort=False)["latency_ms"].describe(
        percentiles=[0.1, 0.5, 0.9]
    )
    stats = stats.rename(index=labels).reset_index()
    stats = stats.rename(columns={"run_id": "run", "count": "samples", "10%": "p10 ms",
                                  "50%": "median ms", "90%": "p90 ms"})  # fmt: skip
    body = ui.figure(
        fig, caption="Every timed forward of each run (box: quartiles; points: samples).",
        numbers=stats[["run", "samples", "p10 ms", "median ms", "p90 ms"]],
    )  # fmt: skip
    if comparison.warnings:
        body = ui.bullets([f"warning: {w}" for w in comparison.warnings], "missing") + body
    return ui.section("latency", "Latency distributions", body)


def render_comparison(comparison: Comparison) -> str:
    """The comparison page as one self-contained HTML document."""
    sections = [
        _runs_section(comparison),
        _headline_section(comparison),
        _attribution_section(comparison),
        _latency_section(comparison),
    ]
    nav = [("runs", "Runs"), ("headline", "Headline"), ("attribution", "Attribution"),
           ("latency", "Latency")]  # fmt: skip
    models = ", ".join(dict.fromkeys(str(m) for m in comparison.runs["model"]))
    return ui.page(
        f"effprof comparison: {len(comparison.runs)} runs",
        sections,
        subtitle=f"{models} — ratios to run 1",
        nav=nav,
        footer="Rendered by effprof from stored runs.",
    )
