"""The top layers: the modules that do the most MACs, take the most time and write the most
activation bytes, each with its share of the whole forward (the run's ``top_layers`` table)."""

from __future__ import annotations

from effprof import schema as S
from effprof.report import numbers as fmt
from effprof.report import page
from effprof.report.sections import Finding, RenderContext, section

STANDS_OUT_SHARE = 0.25  # a layer "stands out" with over a quarter of the MACs...
STANDS_OUT_OVER_NEXT = 2.0  # ...and at least twice the MACs of the next heaviest layer


def heaviest_finding(ctx: RenderContext) -> Finding | None:
    """The one module that does the most MACs, when it stands out: over STANDS_OUT_SHARE of them
    and at least STANDS_OUT_OVER_NEXT times the next heaviest module (both quoted)."""
    table = ctx.subject.table("top_layers")
    if table is None or table.empty or not (table["macs_share"] > 0).any():
        return None
    ranked = table.sort_values("macs_share", ascending=False, kind="stable")
    top = ranked.iloc[0]
    following = ranked.iloc[1] if len(ranked) > 1 else None
    next_share = float(following["macs_share"]) if following is not None else 0.0
    if (
        top["macs_share"] < STANDS_OUT_SHARE
        or top["macs_share"] < STANDS_OUT_OVER_NEXT * next_share
    ):
        return None
    time = ""
    if top["time_share"] == top["time_share"]:  # measured (not NaN)
        time = f" and takes {fmt.pct(top['time_share'])} of the measured per-call time"
    after = (
        f", {fmt.times(top['macs_share'] / next_share)} the next heaviest layer "
        f"({following['module'] or '(the root module)'}, {fmt.pct(next_share)})"
        if following is not None and next_share > 0
        else ", the only layer that does any"
    )
    return "One layer stands out.", (
        f"{top['module'] or '(the root module)'} ({top['module_type']}) does "
        f"{fmt.pct(top['macs_share'])} of the MACs{after}{time}."
    )


@section("top_layers", label="Top layers", title="The heaviest layers",
         findings=lambda ctx: [heaviest_finding(ctx)],
         intro="The modules that do the most MACs, take the most time (measured per aten call) "
               "and write the most activation bytes, each with its share of the forward.")  # fmt: skip
def render(ctx: RenderContext) -> str:
    """The top-layers table (its time columns only when the run timed every call)."""
    table = ctx.subject.table("top_layers")
    if table is None:
        return page.note("This run has no top-layers table (profiled by an older effprof).")
    if table.empty:
        return page.note("No module of this model did any counted work.")
    timed = table["time_ms"].notna().any()
    columns = {"module": "module", "module_type": "type", "calls": "calls", "macs": "MACs",
               "macs_share": "share of MACs"}  # fmt: skip
    if timed:
        columns.update({"time_ms": "time", "time_share": "share of time"})
    columns.update({"activation_bytes": "activations written",
                    "activation_bytes_share": "share of activations"})  # fmt: skip
    formats = {"macs": lambda v: fmt.count(v, "MAC"), "macs_share": fmt.pct, "time_ms": fmt.ms,
               "time_share": fmt.pct, "activation_bytes": fmt.nbytes,
               "activation_bytes_share": fmt.pct, "calls": fmt.integer}  # fmt: skip
    shown = table.assign(module=table["module"].replace("", "(root)"))
    note = (
        ""
        if timed
        else page.note(
            "Time per layer was not measured in this run: "
            + (ctx.subject.reason(S.CALLTIME_TOTAL_MS) or "no per-call timing")
        )
    )
    return note + page.wide(page.table(shown, columns=columns, formats=formats))
