"""The counters section: effprof, FlopCounterMode, fvcore and thop side by side, each explained."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from effprof import schema as S
from effprof.report import numbers as fmt
from effprof.report import page
from effprof.report.runview import RunView
from effprof.report.sections import RenderContext, section


def uncounted_table(uncounted: pd.DataFrame, ops: pd.DataFrame | None) -> str:
    """The ops listed without a formula, with what of them *is* in the totals: a fused call
    (one attention row) whose inner ops have formulas but for one is counted in part, and its
    caption says which rows are left out of the totals and which only in part."""
    shown = uncounted.copy()
    if ops is not None and {"op", "counted", "macs", "flops"} <= set(ops.columns):
        counted_part = ops[~ops["counted"].astype(bool)].groupby("op")[["macs", "flops"]].sum()
        shown["macs"] = shown["op"].map(counted_part["macs"]).fillna(0)
        shown["flops"] = shown["op"].map(counted_part["flops"]).fillna(0)
    inside = int((shown.get("flops", pd.Series(0, index=shown.index)) > 0).sum())
    caption = (
        "Ops without a formula: what they compute is not in effprof's totals"
        if not inside
        else (
            f"Ops without a formula, or holding one: {inside} of these rows are counted in part "
            "(their MACs and FLOPs below are in effprof's totals, the work of the ops without a "
            "formula is not); the others are not in the totals"
        )
    )
    columns = {"op": "op", "calls": "calls", "reason": "why"}
    if inside:
        columns.update({"macs": "MACs in the totals", "flops": "FLOPs in the totals"})
    return page.table(shown, caption=caption, columns=columns,
                      formats={"macs": fmt.integer, "flops": fmt.integer})  # fmt: skip


def _skipped_reason(view: RunView, step: str) -> str | None:
    """Why the profile skipped ``step`` (its steps table), None when it ran or is not recorded."""
    steps = view.table("steps")
    if steps is None or "step" not in steps:
        return None
    rows = steps[(steps["step"] == step) & (steps["status"] != "ran")]
    reason = rows["reason"].iloc[0] if len(rows) else None
    return str(reason) if isinstance(reason, str) and reason else None


def _crosscheck(table: pd.DataFrame) -> list[str]:
    ran = table[table["tool_value"].notna()]
    fig = go.Figure()
    names = [
        page.chart_text(f"{c} @ {s}")
        for c, s in zip(ran["counter"], ran["input_shape"], strict=True)
    ]
    fig.add_bar(y=names, x=ran["tool_value"].astype(float), orientation="h",
                marker={"color": ["#2f6fb0" if c == "effprof" else "#8c98a8" for c in ran["counter"]]})  # fmt: skip
    fig.update_layout(xaxis={"title": {"text": "number each tool reports (in its own unit)"},
                             "tickformat": "~s"},
                      yaxis_title="counter @ input", yaxis={"autorange": "reversed"})  # fmt: skip
    return [
        page.figure(
            fig,
            caption=(
                "What each counter reports for the same model. The tools disagree on the unit "
                "(MACs or FLOPs) and on what they count; the table below says why each number is "
                "what it is."
            ),
            numbers=ran,
            columns={"counter": "counter", "input_shape": "input", "tool_value": "reported",
                     "macs": "as MACs"},
            formats={"tool_value": fmt.count, "macs": lambda v: fmt.count(v, "MAC")},
            height=300,
        ),
        "<h3>Each number explained</h3>",
        page.wide(
            page.table(
                table,
                columns={"counter": "counter", "input_shape": "input", "reports": "what it reports",
                         "tool_value": "reported", "params": "params", "seconds": "time (s)",
                         "status": "status", "explanation": "explanation"},
                formats={"tool_value": fmt.integer, "params": fmt.integer, "seconds": fmt.plain},
            )
        ),
    ]  # fmt: skip


@section("counters", label="Counters", title="Counters side by side",
         intro="The same model counted by effprof, FlopCounterMode, fvcore and thop, each number explained.")  # fmt: skip
def render(ctx: RenderContext) -> str:
    """The counters section body: the cross-check when it ran, and always the ops effprof has no
    formula for and the modules the forward never calls."""
    view = ctx.subject
    table = view.table("crosscheck")
    if table is None:
        why = _skipped_reason(view, "crosscheck") or "this run has no cross-check table"
        parts = [
            page.note(
                f"No cross-check in this run: {why}. effprof's own counts: "
                f"{fmt.count(view.metric(S.MACS), 'MAC')}, {fmt.count(view.metric(S.FLOPS), 'FLOP')}."
            )
        ]
    else:
        parts = _crosscheck(table)
    uncounted = view.table("uncounted")
    if uncounted is not None and len(uncounted):
        parts.append(uncounted_table(uncounted, view.table("ops")))
    uncalled = view.table("uncalled_modules")
    if uncalled is not None and len(uncalled):
        parts.append(
            page.table(uncalled, caption="Modules with parameters that this forward never calls",
                       columns={"module": "module", "module_type": "type", "params": "params"})
        )  # fmt: skip
    policy = view.record.params.get("counting_policy")
    if policy:
        parts.append(page.note(f"Counting policy: {policy}"))
    return "".join(parts)
