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
from effprof.report import compression
from effprof.report import numbers as fmt
from effprof.report import page as ui
from effprof.report.runview import RunView
from effprof.runs import Comparison, load_table

TOP_MODULES = 15  # top-level modules shown in the module chart (by their largest MACs)

RUN_COLUMNS = {
    "label": "run", "run_id": "run id", "kind": "kind", "status": "status",
    "params.input": "input", "params.weights_origin": "weights", "params.weights_source": "from",
    "env.device_name": "device", "params.precision": "precision",
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


# Every table of timed forwards a run may store, with the runtime it timed.
LATENCY_TABLES = (("latency", "torch"), ("torch_latency", "torch"),
                  ("ort_latency", "ONNX Runtime"), ("cuda_latency", "torch on CUDA"))  # fmt: skip


def latency_samples(comparison: Comparison) -> pd.DataFrame:
    """Every timed forward the runs store (profile, evaluate and compress runs alike): run_id,
    runtime, latency_ms; one box per run and runtime on the page."""
    frames = []
    for name, runtime in LATENCY_TABLES:
        samples = load_table(comparison.runs, name)
        if "latency_ms" in samples.columns and len(samples):
            frames.append(samples[["run_id", "latency_ms"]].assign(runtime=runtime))
    if not frames:
        return pd.DataFrame(columns=["run_id", "latency_ms", "runtime"])
    return pd.concat(frames, ignore_index=True)


def _latency_section(comparison: Comparison) -> str:
    labels = _labels(comparison)
    samples = latency_samples(comparison)
    if samples.empty:
        return ui.section(
            "latency", "Latency", ui.note("None of these runs stores timed forwards.")
        )
    several = samples["runtime"].nunique() > 1
    samples["box"] = [
        f"{labels[r]} ({runtime})" if several else labels[r]
        for r, runtime in zip(samples["run_id"], samples["runtime"], strict=True)
    ]
    fig = go.Figure()
    for box, part in samples.groupby("box", sort=False):
        fig.add_box(y=_floats(part["latency_ms"]), name=ui.chart_text(box), boxpoints="all")
    fig.update_layout(xaxis_title="run", yaxis_title="latency (ms)", showlegend=False)
    stats = samples.groupby("box", sort=False)["latency_ms"].describe(percentiles=[0.1, 0.5, 0.9])
    stats = stats.reset_index().rename(columns={"box": "run", "count": "samples", "10%": "p10 ms",
                                                "50%": "median ms", "90%": "p90 ms"})  # fmt: skip
    body = ui.figure(
        fig, caption=(
            "Every timed forward each run stored, per runtime (box: quartiles; points: samples). "
            "Each run was timed when it was made, under the load of that moment: compare them in "
            "the re-timed table, where they were timed together."
        ),
        numbers=stats[["run", "samples", "p10 ms", "median ms", "p90 ms"]],
    )  # fmt: skip
    if comparison.warnings:
        body = ui.bullets([f"warning: {w}" for w in comparison.warnings], "missing") + body
    return ui.section("latency", "Latency distributions", body)


def _retimed_section(comparison: Comparison) -> str:
    """The runs' models timed again together, interleaved, and the runs that were not."""
    notes = ui.bullets(comparison.retime_notes, "note") if comparison.retime_notes else ""
    frame = comparison.retimed
    if frame is None or frame.empty:
        if not notes:
            return ""
        return ui.section(
            "retimed", "Timed again together", ui.note("No run was re-timed.") + notes
        )
    rounds = int(pd.to_numeric(frame["rounds"], errors="coerce").max())
    shown = frame.copy()
    shown["reliable"] = [
        "yes" if ok is True else f"no: {str(why).split('; ')[0]}" if ok is False else "—"
        for ok, why in zip(shown.get("ratio_reliable", pd.Series([None] * len(shown))),
                           shown.get("ratio_unreliable_reason", pd.Series([None] * len(shown))),
                           strict=True)
    ]  # fmt: skip
    table = ui.table(
        shown,
        columns={"candidate": "model", "median_ms": "median (ms)", "ratio": "ratio to the reference",
                 "reference": "reference", "rounds": "rounds", "reliable": "ratio reliable"},
        formats={"median_ms": fmt.ms, "ratio": format_ratio, "rounds": fmt.integer},
    )  # fmt: skip
    intro = (
        f"Each run's model timed again now, all together, in {rounds} interleaved "
        f"round{'s' if rounds != 1 else ''} (the order reversed every other round); a ratio is "
        "taken within each round, then the median over rounds."
    )
    return ui.section("retimed", "Timed again together", ui.wide(table) + notes, intro=intro)


def _compression_section(comparison: Comparison) -> str:
    """The compress runs among those compared: their size, speed and quality as the
    compression table shows them (ratios to each pipeline's dense model)."""
    paths = [p for p, kind in zip(comparison.runs["path"], comparison.runs["kind"], strict=True)
             if kind == "compress"]  # fmt: skip
    if not paths:
        return ""
    body = compression.render([RunView.open(p) for p in paths])
    return ui.section(
        "compression",
        "Compression steps",
        body,
        intro="The compress runs among these: file size, speed and quality.",
    )


def render_comparison(comparison: Comparison) -> str:
    """The comparison page as one self-contained HTML document."""
    parts = [
        ("runs", "Runs", _runs_section(comparison)),
        ("headline", "Headline", _headline_section(comparison)),
        ("retimed", "Re-timed", _retimed_section(comparison)),
        ("compression", "Compression", _compression_section(comparison)),
        ("attribution", "Attribution", _attribution_section(comparison)),
        ("latency", "Latency", _latency_section(comparison)),
    ]
    parts = [part for part in parts if part[2]]  # a section with nothing to show is left out
    models = ", ".join(dict.fromkeys(str(m) for m in comparison.runs["model"]))
    return ui.page(
        f"effprof comparison: {len(comparison.runs)} runs",
        [body for _, _, body in parts],
        subtitle=f"{models} — ratios to run 1",
        nav=[(sid, label) for sid, label, _ in parts],
        footer="Rendered by effprof from stored runs.",
    )
