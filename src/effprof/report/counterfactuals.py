"""The counterfactuals section: the same network with one design decision switched off, and the
other width variants, counted on the meta device."""

from __future__ import annotations

import plotly.graph_objects as go

from effprof import schema as S
from effprof.report import numbers as fmt
from effprof.report import page
from effprof.report.runview import RunView
from effprof.report.sections import Finding, RenderContext, section


def _changes(groups, dimension: str) -> str:
    """Which groups each counterfactual changes (by more than 0.5 %), from the stored ratios:
    ``no pixel-unshuffle: stage 1 (3.96x), 2.1 (3.97x), the other 4 unchanged``."""
    texts = []
    for name, rows in groups[groups["name"] != "real network"].groupby("name", sort=False):
        changed = rows[(rows["ratio_to_real"] - 1).abs() > 0.005]
        if changed.empty:
            texts.append(f"{name}: no {dimension} changes")
            continue
        listed = ", ".join(
            f"{g} ({fmt.times(r)})"
            for g, r in zip(changed["group"], changed["ratio_to_real"], strict=True)
        )
        same = len(rows) - len(changed)
        texts.append(
            f"{name}: {dimension} {listed}" + (f", the other {same} unchanged" if same else "")
        )
    return (" " + "; ".join(texts) + ".") if texts else ""


@section("counterfactuals", label="Counterfactuals", title="What each design decision saves",
         findings=lambda ctx: [counterfactual_finding(ctx.subject)],
         intro="The same network with one idea switched off, and its other widths, counted on "
               "the meta device.")  # fmt: skip
def render(ctx: RenderContext) -> str:
    """The counterfactuals section body."""
    view = ctx.subject
    table = view.table("counterfactuals")
    if table is None:
        reason = view.reason(S.COUNTERFACTUALS) or "this run has no counterfactual table"
        return page.note(f"No counterfactuals: {reason}.")
    names = [page.chart_text(n) for n in table["name"]]
    fig = go.Figure()
    for column, label in (
        ("macs_ratio", "MACs"),
        ("activation_ratio", "peak activation memory"),
        ("params_ratio", "parameters"),
    ):
        fig.add_bar(x=names, y=table[column], name=label, marker_color=page.COLORS[label])  # fmt: skip
    fig.update_layout(barmode="group", xaxis_title="network",
                      yaxis_title="relative to the real network (x)")  # fmt: skip
    parts = [
        page.figure(
            fig,
            caption=(
                f"Cost of each counterfactual relative to the profiled network "
                f"({view.metric(S.PADDED_SHAPE) or view.metric(S.INPUT_SHAPE)}, counted on the meta "
                "device: nothing was run). 1.0 = the real network."
            ),
            numbers=table,
            columns={"name": "network", "macs": "MACs", "macs_ratio": "MACs x",
                     "activation_peak_bytes": "activation peak", "activation_ratio": "memory x",
                     "params": "params"},
            formats={"macs": lambda v: fmt.count(v, "MAC"), "macs_ratio": fmt.times,
                     "activation_peak_bytes": fmt.nbytes, "activation_ratio": fmt.times,
                     "params": fmt.count},
        )
    ]  # fmt: skip
    parts.append("<h3>What each comparison isolates</h3>")
    parts.append(
        page.table(
            table[table["kind"] != "real"],
            columns={"name": "network", "isolates": "what changes (all else equal)",
                     "macs_ratio": "MACs x", "activation_ratio": "memory x"},
            formats={"macs_ratio": fmt.times, "activation_ratio": fmt.times},
        )
    )  # fmt: skip
    groups = view.table("counterfactual_groups")
    if groups is not None and len(groups):
        dimension = str(groups["dimension"].iloc[0])
        designs = set(table.loc[table["kind"].isin(["real", "design"]), "name"])
        shown = groups[groups["name"].isin(designs)]
        fig = go.Figure()
        colors = iter(("#8c6d52", "#7f62b3", "#d36fb0", "#6b7683"))
        for name, rows in shown.groupby("name", sort=False):
            color = "#1d2430" if name == "real network" else next(colors, "#6b7683")
            fig.add_bar(x=[page.chart_text(g) for g in rows["group"]], y=rows["macs"],
                        name=page.chart_text(name), marker_color=color)  # fmt: skip
        fig.update_layout(barmode="group", xaxis_title=dimension,
                          yaxis={"title": {"text": "MACs"}, "tickformat": "~s"})  # fmt: skip
        wide = shown.pivot_table(index="group", columns="name", values="ratio_to_real", sort=False)
        wide = wide.reset_index()
        parts.append(f"<h3>Where a change costs, per {dimension}</h3>")
        parts.append(
            page.figure(
                fig,
                caption=(
                    f"MACs per {dimension} of the real network and of each design counterfactual."
                    + _changes(shown, dimension)
                ),
                numbers=wide,
                columns={c: ("x real: " + c if c != "group" else dimension) for c in wide.columns},
                formats={c: fmt.times for c in wide.columns if c != "group"},
            )
        )
    return "".join(parts)


def counterfactual_finding(view: RunView) -> Finding | None:
    """What each switched-off design idea would cost."""
    table = view.table("counterfactuals")
    if table is None:
        return None
    designs = table[table["kind"] == "design"]
    if designs.empty:
        return None
    parts = [
        f"{row.name}: {fmt.times(row.macs_ratio)} the MACs and {fmt.times(row.activation_ratio)} "
        "the activation memory"
        for row in designs.itertuples()
    ]
    ratios = designs["macs_ratio"].astype(float)
    if (ratios > 1).all():
        lead = "Each design idea saves compute."
    elif (ratios < 1).all():  # the alternative is cheaper in MACs: the design buys something else
        lead = "The alternatives count fewer MACs."
    else:
        lead = "Design ideas against their alternatives."
    return lead, (
        "Counted on the meta device against this network, the alternatives cost: "
        + "; ".join(parts)
        + "."
    )
