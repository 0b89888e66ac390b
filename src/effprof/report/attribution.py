"""The attribution section: MACs, parameters, memory traffic and measured time by stage, part and
op category."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from effprof import schema as S
from effprof.report import numbers as fmt
from effprof.report import page
from effprof.report.facts import dimension
from effprof.report.runview import RunView
from effprof.report.sections import Finding, RenderContext, section
from effprof.report.time_shares import (
    MAC_CATEGORIES,
    TIME_FOLLOWS,
    calltime_note,
    category_caption,
    time_finding,
)

SAME_PARAMS = 1.3  # stages whose parameter shares are within 1.3x of each other: "about the same"

SHARES = (
    ("params_share", "parameters"),
    ("macs_share", "MACs"),
    ("written_bytes_share", "activations written"),
    ("time_ms_share", "measured time"),
)
COLUMNS = {
    "group": "group", "macs": "MACs", "per_block_macs": "MACs per block", "params": "params",
    "written_bytes": "written", "time_ms": "time", "macs_share": "MACs %", "time_ms_share": "time %",
}  # fmt: skip
FORMATS = {
    "macs": lambda v: fmt.count(v, "MAC"), "per_block_macs": lambda v: fmt.count(v, "MAC"),
    "params": fmt.count, "written_bytes": fmt.nbytes,
    "time_ms": fmt.ms, "macs_share": fmt.pct, "time_ms_share": fmt.pct,
    "flops": lambda v: fmt.count(v, "FLOP"), "flops_share": fmt.pct,
}  # fmt: skip


def share_chart(
    rows: pd.DataFrame, dimension: str, caption: str, height: int = 340, horizontal: bool = False
) -> str:
    """Grouped bars: each group's share of params, MACs, written bytes and time, with a table."""
    fig = go.Figure()
    labels = [page.chart_text(g) for g in rows["group"]]
    for column, name in SHARES:
        values = rows[column]
        if values.notna().any() and (values.fillna(0) != 0).any():
            if horizontal:
                fig.add_bar(y=labels, x=100 * values, name=name, orientation="h",
                            marker_color=page.COLORS[name])  # fmt: skip
            else:
                fig.add_bar(x=labels, y=100 * values, name=name, marker_color=page.COLORS[name])
    if horizontal:
        fig.update_layout(barmode="group", yaxis_title=dimension, xaxis_title="share of total (%)",
                          yaxis={"autorange": "reversed"}, margin={"l": 130})  # fmt: skip
    else:
        fig.update_layout(barmode="group", xaxis_title=dimension, yaxis_title="share of total (%)")
    columns = {k: v for k, v in COLUMNS.items() if k in rows and rows[k].notna().any()}
    columns["group"] = dimension
    return page.figure(
        fig, caption=caption, numbers=rows, columns=columns, formats=FORMATS, height=height
    )


def category_chart(view: RunView, rows: pd.DataFrame) -> str:
    """FLOPs share vs measured time share per op category (per-call time and profiler time)."""
    fig = go.Figure()
    labels = [page.chart_text(g) for g in rows["group"]]
    fig.add_bar(
        x=labels, y=100 * rows["flops_share"], name="FLOPs", marker_color=page.COLORS["FLOPs"]
    )
    timed = bool(rows["time_ms_share"].notna().any())
    if timed:
        fig.add_bar(x=labels, y=100 * rows["time_ms_share"], name="time (per-call timing)",
                    marker_color=page.COLORS["measured time"])  # fmt: skip
    table = rows[["group", "calls", "flops", "flops_share", "time_ms", "time_ms_share"]].copy()
    optime = view.table("optime_categories")
    if optime is not None:
        shares = optime.set_index("category")["share"]
        table["profiler_share"] = table["group"].map(shares)
        fig.add_bar(x=labels, y=100 * table["profiler_share"].fillna(0), name="time (torch.profiler)",
                    marker_color=page.COLORS["time (torch.profiler)"])  # fmt: skip
    fig.update_layout(barmode="group", xaxis_title="op category", yaxis_title="share of total (%)")
    return page.figure(
        fig,
        caption=category_caption(rows, "time_ms_share" if timed else None),
        numbers=table,
        columns={"group": "category", "calls": "calls", "flops": "FLOPs", "flops_share": "FLOPs %",
                 "time_ms": "time", "time_ms_share": "time %", "profiler_share": "profiler %"},
        formats={**FORMATS, "profiler_share": fmt.pct},
    )  # fmt: skip


def _same_params_text(stages: pd.DataFrame) -> str:
    """Stages that hold about the same parameters (within SAME_PARAMS of each other) but do
    different MACs: the difference is the resolution they run at (the model has scales)."""
    params, macs = stages["params_share"], stages["macs_share"]
    return (
        f" Every stage holds about the same parameters ({fmt.pct(params.min())} to "
        f"{fmt.pct(params.max())}, within {SAME_PARAMS:g}x of each other) while their MACs range "
        f"from {fmt.pct(macs.min())} to {fmt.pct(macs.max())}: the stages run at different "
        "resolutions (see By scale)."
    )


def _note(view: RunView, dimension: str) -> str:
    notes = view.table("component_notes")
    if notes is None:
        return ""
    rows = notes[notes["dimension"] == dimension]
    return " " + str(rows["note"].iloc[0]) if len(rows) else ""


def _with_per_block(rows: pd.DataFrame) -> pd.DataFrame:
    if "repeats" not in rows or not (rows["repeats"] > 1).any():
        return rows
    shown = rows.copy()
    shown["per_block_macs"] = shown["macs"] / shown["repeats"]
    return shown


@section("attribution", label="Attribution", title="Where the cost goes",
         findings=lambda ctx: _findings(ctx),
         intro="Counted MACs, parameters and activation traffic, and measured time, rolled up by "
               "the network's architecture.")  # fmt: skip
def render(ctx: RenderContext) -> str:
    """The attribution section body."""
    view = ctx.subject
    table = view.table("attribution")
    if table is None:
        return page.note("This run has no attribution table (profiled by an older effprof).")
    parts = [page.note(calltime_note(view))]
    mapped = view.metric(S.COMPONENT_MAP) or "module tree"
    by = {
        dim: table[table["dimension"] == dim].reset_index(drop=True)
        for dim in table["dimension"].unique()
    }
    if "stage" in by:
        parts.append("<h3>By stage</h3>")
        params = by["stage"]["params_share"]
        same = params.min() > 0 and params.max() / params.min() < SAME_PARAMS
        parts.append(
            share_chart(
                by["stage"], "stage",
                "Each stage's share of parameters, MACs, activation bytes and time."
                + (_same_params_text(by["stage"]) if same and "scale" in by else "")
                + _note(view, "stage"),
            )
        )  # fmt: skip
    part_rows = by.get("part")
    duplicate = (
        part_rows is not None and "stage" in by and len(part_rows) == len(by["stage"])
    )  # a hierarchy whose rows are its stages: one chart says it
    if part_rows is not None and not duplicate:
        parts.append("<h3>By part</h3>")
        parts.append(
            share_chart(
                _with_per_block(part_rows), "part",
                f"Each part's share of parameters, MACs, activation bytes and time ({mapped})."
                + _note(view, "part"),
                height=max(360, 56 * len(part_rows)), horizontal=True,
            )
        )  # fmt: skip
    if "block part" in by:
        parts.append("<h3>Inside the repeated blocks</h3>")
        parts.append(
            share_chart(
                by["block part"], "block part",
                "Each part of the repeated blocks, summed over all of them, as a share of the "
                "whole model." + _note(view, "block part"),
                height=max(320, 48 * len(by["block part"])), horizontal=True,
            )
        )  # fmt: skip
    if "scale" in by:
        parts.append("<h3>By scale</h3>")
        parts.append(
            page.table(
                by["scale"],
                caption=_note(view, "scale").strip() or None,
                columns={"group": "scale",
                         **{k: v for k, v in COLUMNS.items() if k != "group" and k in by["scale"]},
                         "params_share": "params %", "live_peak_bytes": "peak live while running"},
                formats={**FORMATS, "params_share": fmt.pct, "live_peak_bytes": fmt.nbytes},
            )
        )  # fmt: skip
    if "category" in by:
        parts.append("<h3>By op category</h3>")
        parts.append(category_chart(view, by["category"]))
    inherited = " Ops a forward runs outside any submodule take the stage (and scale) of the module that consumes them."
    parts.append(
        page.note(
            "Every aten call is in exactly one group of each dimension, so each dimension's "
            "columns sum to the model's totals."
            + (inherited if {"stage", "scale"} & set(by) else "")
        )
    )
    return "".join(parts)


def scale_finding(view: RunView) -> Finding | None:
    """Share of parameters vs MACs carried by the coarse scales (models whose map has scales)."""
    scales = dimension(view, "scale")
    labels = view.table("op_labels")
    if scales is None or len(scales) < 2:
        return None
    finest = "full" if "full" in list(scales["group"]) else list(scales["group"])[-1]
    coarse, fine = scales[scales["group"] != finest], scales[scales["group"] == finest]
    stages_text = ""
    if labels is not None and "stage" in labels.columns:
        per_scale = labels.groupby("scale")["stage"].nunique()
        n_coarse = int(per_scale.reindex(coarse["group"]).fillna(0).sum())
        stages_text = f" run {n_coarse} of {int(per_scale.sum())} stages,"
    params_share, macs_share = coarse["params_share"].sum(), coarse["macs_share"].sum()
    if params_share <= macs_share:
        return None  # the lead below would not hold
    text = (
        f"The coarse scales ({', '.join(coarse['group'])}){stages_text} hold "
        f"{fmt.pct(params_share)} of the parameters but do only {fmt.pct(macs_share)} of the "
        f"MACs ({fmt.times(macs_share / params_share)} their share of the parameters), because "
        f"they work at {' and '.join(coarse['group'])} resolution; the {finest}-resolution part "
        f"does {fmt.pct(fine['macs_share'].sum())} of the MACs."
    )
    if coarse["time_ms_share"].notna().all() and macs_share > 0:
        time_share = coarse["time_ms_share"].sum()
        ratio = time_share / macs_share
        agrees = 1 / TIME_FOLLOWS <= ratio <= TIME_FOLLOWS
        verdict = "agrees" if agrees else "is less lopsided" if ratio > 1 else "is more lopsided"
        text += (
            f" Measured time {verdict}: the coarse scales take {fmt.pct(time_share)} of it "
            f"({fmt.times(ratio)} their MAC share, {'within' if agrees else 'beyond'} "
            f"{TIME_FOLLOWS:g}x either way)."
        )
    return "Coarse scales carry more weights than MACs.", text


def part_finding(view: RunView) -> Finding | None:
    """Which module-tree rows carry the MACs (repeated blocks with their per-block share)."""
    if dimension(view, "scale") is not None:
        return None  # a registered map with scales says it better (scale_finding)
    parts = dimension(view, "part")
    if parts is None or view.number(S.MACS) in (None, 0):
        return None
    top = parts.sort_values("macs_share", ascending=False).head(2)
    top = top[top["macs_share"] > 0]
    if top.empty:
        return None
    texts = []
    for row in top.itertuples():
        repeats = int(getattr(row, "repeats", 1) or 1)
        if repeats > 1:
            texts.append(
                f"the {repeats} repeated blocks {row.group} do {fmt.pct(row.macs_share)} of the "
                f"MACs ({fmt.pct(row.macs_share / repeats)} each) and hold "
                f"{fmt.pct(row.params_share)} of the parameters"
            )
        else:
            texts.append(
                f"{row.group} does {fmt.pct(row.macs_share)} of the MACs with "
                f"{fmt.pct(row.params_share)} of the parameters"
            )
    by = (
        "By part of the module tree" if view.metric(S.COMPONENT_MAP) == "module tree" else "By part"
    )
    return "Where the MACs are.", f"{by}: " + "; ".join(texts) + "."


def block_finding(view: RunView) -> Finding | None:
    """Inside the repeated blocks: which of their parts carries the MACs."""
    parts = dimension(view, "block part")
    if parts is None:
        return None
    inside = parts[~parts["group"].astype(str).str.startswith("(")]
    inside = inside[inside["macs_share"] > 0].sort_values("macs_share", ascending=False)
    if len(inside) < 2:
        return None
    listed = ", ".join(f"'{r.group}' {fmt.pct(r.macs_share)}" for r in inside.head(3).itertuples())
    return "Inside the blocks.", (
        f"Summed over every repeated block, the submodules of each block do these shares of the "
        f"model's MACs: {listed}."
    )


def category_finding(view: RunView) -> Finding | None:
    """MACs by op category (convolution, linear/matmul, attention), from the category table."""
    categories = dimension(view, "category")
    if categories is None or not view.number(S.MACS):
        return None
    rows = categories[categories["group"].isin(MAC_CATEGORIES) & (categories["macs_share"] > 0)]
    rows = rows.sort_values("macs_share", ascending=False)
    if rows.empty:
        return None
    names = {"attention": "attention (QK^T and AV)"}
    listed = ", ".join(
        f"{names.get(r.group, r.group)} {fmt.pct(r.macs_share)}" for r in rows.itertuples()
    )
    return "What kind of work.", (
        f"By op category (what the ops compute, whichever module runs them), the MACs are {listed}."
    )


def uncalled_finding(view: RunView) -> Finding | None:
    """Modules whose parameters no op of the forward read."""
    uncalled = view.table("uncalled_modules")
    if uncalled is None or uncalled.empty:
        return None
    names = ", ".join(uncalled["module"].astype(str).head(5)) + (
        " ..." if len(uncalled) > 5 else ""
    )
    return "Unused weights.", (
        f"{len(uncalled)} module(s) holding {fmt.count(int(uncalled['params'].sum()))} parameters "
        f"never run in this forward: no op read their weights ({names})."
    )


def _findings(ctx: RenderContext) -> list[Finding | None]:
    view = ctx.subject
    return [scale_finding(view), part_finding(view), block_finding(view), category_finding(view),
            time_finding(view), uncalled_finding(view)]  # fmt: skip
