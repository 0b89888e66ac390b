"""The summary: headline numbers, the answer in a few sentences, one chart.

Every sentence is built from a fact this run stored, and is left out when the fact is absent or
does not hold for the model: no cost per output pixel for a model that returns no image, no
"linear in pixels" without a law that shows it, no convolution share for a network without
convolutions. Each finding is a function returning (bold lead, sentence) or None; ``findings``
keeps those that returned one.
"""

from __future__ import annotations

import plotly.graph_objects as go

from effprof import schema as S
from effprof.report import numbers as fmt
from effprof.report import page
from effprof.report.facts import (
    cost_basis,
    dimension,
    throughput,
)
from effprof.report.runview import RunView
from effprof.report.sections import Finding, RenderContext, section


def _latency_card(view: RunView) -> tuple[str, str, str]:
    m = view.metrics
    device = view.record.env.get("device_name") or view.record.params.get("device", "")
    if m.get(S.LATENCY.median_ms) is None:
        return "Latency (median)", "—", view.reason(S.LATENCY.median_ms) or "not measured"
    detail = (
        f"p10 {fmt.ms(m.get(S.LATENCY.p10_ms))} / p90 {fmt.ms(m.get(S.LATENCY.p90_ms))}, {device}"
    )
    if m.get(S.LATENCY.reliable) is False:
        why = (
            m.get(S.LATENCY.unreliable_reason)
            or view.reason(S.LATENCY.reliable)
            or "spread or load"
        )
        return (
            "Latency (median, unreliable)",
            fmt.ms(m.get(S.LATENCY.median_ms)),
            f"unreliable: {why}",
        )
    return "Latency (median)", fmt.ms(m.get(S.LATENCY.median_ms)), detail


def headline_cards(view: RunView) -> str:
    """Params, MACs per output pixel / token / image, latency, throughput, peak memory, FLOPs."""
    m = view.metrics
    basis = cost_basis(view)
    peak = m.get(S.MEMORY_ACTIVATION_PEAK_BYTES)
    latency = _latency_card(view)
    rate = throughput(view)
    cards = [
        ("Parameters", fmt.count(m.get(S.PARAM_COUNT)), f"{fmt.nbytes(m.get(S.WEIGHTS_BYTES))} of weights"),
        (basis.label, fmt.count(basis.per_unit), f"{fmt.count(m.get(S.MACS), 'MAC')} for {m.get(S.INPUTS) or m.get(S.INPUT_SHAPE, '?')}"),
        latency,
        ("Throughput", rate.text(), rate.detail),
        ("Peak activation memory", fmt.nbytes(peak if peak is not None else m.get(S.ACTIVATION_PEAK_BYTES)),
         f"measured ({'CUDA allocator' if view.record.params.get('device') == 'cuda' else 'peak RSS'}); "
         f"meta trace {fmt.nbytes(m.get(S.ACTIVATION_PEAK_BYTES))}"
         if peak is not None else "meta-trace estimate (not measured)"),
        ("FLOPs", fmt.count(m.get(S.FLOPS), "FLOP"), "2 x MACs + other ops"),
    ]  # fmt: skip
    # an unreliable latency greys its card and the throughput computed from it (cards 2 and 3)
    muted = {2, 3} if latency[0].endswith("unreliable)") else set()
    return page.cards(cards, muted=muted)


def cost_finding(view: RunView) -> Finding | None:
    """What the model costs per unit of its cost basis (:func:`~effprof.report.facts.cost_basis`:
    output pixel, token, point, output token, image or forward), with the whole forward's MACs
    and what the division was by. A neutral lead: whether that is small needs a comparison, and
    the counterfactuals and the scales make theirs."""
    basis = cost_basis(view)
    if basis.per_unit is None:
        return None
    macs, params = view.metric(S.MACS), view.metric(S.PARAM_COUNT)
    inputs = view.metric(S.INPUTS) or view.metric(S.INPUT_SHAPE)
    whole = f"{fmt.count(macs, 'MAC')} for {inputs}"
    weights = f"with {fmt.count(params)} parameters"
    per = fmt.count(basis.per_unit)
    lead = f"Cost per {basis.unit}."
    if basis.unit in ("output pixel", "token", "point"):
        return lead, f"Every {basis.unit} costs {per} MACs: {whole} over {basis.detail}, {weights}."
    if basis.unit == "output token":
        return lead, (
            f"One forward costs {whole}, {weights}; {basis.detail}, {per} MACs per output token."
        )
    if basis.units and basis.units > 1:
        return (
            lead,
            f"One {basis.unit} costs {fmt.count(basis.per_unit, 'MAC')}: {whole} ({basis.detail}), {weights}.",
        )
    return lead, f"One forward costs {whole}, {weights}."


def overview_chart(view: RunView) -> str:
    """Shares of parameters, MACs and measured time per scale (or per part of the module tree)."""
    dim = "scale"
    rows = dimension(view, dim)
    if rows is None:
        dim = "part"
        rows = dimension(view, dim)
        if rows is None:
            return ""
        rows = rows.sort_values("macs", ascending=False).head(8)
    shares = rows[["params_share", "macs_share", "time_ms_share"]].fillna(0)
    rows = rows[(shares > 0).any(axis=1)]  # rows without parameters, MACs or time say nothing
    fig = go.Figure()
    series = [
        ("params_share", "parameters"),
        ("macs_share", "MACs"),
        ("time_ms_share", "measured time"),
    ]
    for column, label in series:
        if rows[column].notna().any():
            fig.add_bar(y=[page.chart_text(g) for g in rows["group"]], x=100 * rows[column],
                        name=label, orientation="h", marker_color=page.COLORS[label])  # fmt: skip
    fig.update_layout(barmode="group", xaxis_title="share of the model's total (%)",
                      yaxis_title="scale (feature resolution)" if dim == "scale" else "part",
                      yaxis={"autorange": "reversed", "automargin": True})  # fmt: skip
    shown = [c for c in ("params_share", "macs_share", "time_ms_share") if rows[c].notna().any()]
    numbers = rows[["group", *shown]]
    what = "scale" if dim == "scale" else "part of the module tree"
    timed = "time_ms_share" in shown
    return page.figure(
        fig,
        caption=(
            f"Where the cost sits: each bar is one {what}'s share of the whole network's "
            "parameters and MACs (counted)"
            + (" and time (measured per aten call on this device)." if timed else ".")
        ),
        numbers=numbers,
        columns={"group": dim, **{c: {"params_share": "params", "macs_share": "MACs",
                                      "time_ms_share": "time"}[c] for c in shown}},
        formats={c: fmt.pct for c in ("params_share", "macs_share", "time_ms_share")},
        height=max(300, 40 * len(rows) + 120),
    )  # fmt: skip


def _findings(ctx: RenderContext) -> list[Finding | None]:
    return [cost_finding(ctx.subject)]


@section("summary", label="Summary", title="The answer", findings=_findings,
         intro="The headline numbers on this device and the answer, each sentence computed from "
               "this run.")  # fmt: skip
def render(ctx: RenderContext) -> str:
    """Headline cards, caveats, the answer (every section's findings, in page order), a chart."""
    view = ctx.subject
    return headline_cards(view) + caveats(view) + answer_box(ctx) + overview_chart(view)


def answer_box(ctx: RenderContext) -> str:
    """The answer in numbers: every section's findings, in the page's order."""
    return (
        '<div class="answer"><strong>The answer in numbers</strong>'
        + page.findings(ctx.findings())
        + "</div>"
    )


def caveats(view: RunView) -> str:
    """The run's notes worth a warning (not the per-measurement ones), non-finite outputs first."""
    notes = [
        n
        for n in view.record.notes
        # the per-measurement notes (and INT8's method, which its section states) are not caveats
        if not n.startswith(("latency:", "memory:", "attribution:", "int8:"))
    ]
    # where the weights came from: a warning when untrained or unknown, else a plain note
    untrained = view.record.params.get("weights_origin") in ("random", "factory", "module")
    text = "".join(
        page.note(n) if n.startswith("weights:") and not untrained else page.warning(n)
        for n in notes
    )
    if view.metric(S.OUTPUTS_FINITE) is False:  # the note above says which outputs, from where
        text = (
            page.warning(
                "This model's outputs are not finite numbers (NaN or infinity): its costs below "
                "are measured, but what it computes is unusable."
            )
            + text
        )
    return text
