"""The summary: headline numbers, the answer in a few sentences (each with its numbers), one chart."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from effprof.report import numbers as fmt
from effprof.report import page
from effprof.report.runview import RunView

MEMORY_BOUND = (
    "elementwise",
    "activation",
    "resize",
    "layout copies",
    "normalization",
    "reduction",
)


def headline_cards(view: RunView) -> str:
    """Params, MACs per pixel, latency, throughput, peak memory, FLOPs on this device."""
    m = view.metrics
    device = view.record.env.get("device_name") or view.record.params.get("device", "")
    latency_detail = (
        f"p10 {fmt.ms(m.get('latency_p10_ms'))} / p90 {fmt.ms(m.get('latency_p90_ms'))}, {device}"
        if m.get("latency_median_ms") is not None
        else (view.reason("latency_median_ms") or "not measured")
    )
    peak = m.get("memory_activation_peak_bytes")
    return page.cards([
        ("Parameters", fmt.count(m.get("param_count")), f"{fmt.nbytes(m.get('weights_bytes'))} of weights"),
        ("MACs per output pixel", fmt.count(m.get("macs_per_output_pixel")),
         f"{fmt.count(m.get('macs'), 'MAC')} for {m.get('input_shape', '?')}"),
        ("Latency (median)", fmt.ms(m.get("latency_median_ms")), latency_detail),
        ("Throughput", f"{fmt.plain(m.get('throughput_mpix_s'))} MP/s", "output megapixels per second"),
        ("Peak activation memory", fmt.nbytes(peak if peak is not None else m.get("activation_peak_bytes")),
         f"measured ({'CUDA allocator' if view.record.params.get('device') == 'cuda' else 'peak RSS'}); "
         f"meta trace {fmt.nbytes(m.get('activation_peak_bytes'))}"
         if peak is not None else "meta-trace estimate (not measured)"),
        ("FLOPs", fmt.count(m.get("flops"), "FLOP"), "2 x MACs + other ops"),
    ])  # fmt: skip


def _dimension(view: RunView, name: str) -> pd.DataFrame | None:
    table = view.table("attribution")
    if table is None:
        return None
    rows = table[table["dimension"] == name]
    return rows.reset_index(drop=True) if len(rows) else None


def _finest(groups: list[str]) -> str:
    return "full" if "full" in groups else groups[-1]


def scale_finding(view: RunView) -> tuple[str, str] | None:
    """Share of parameters vs MACs carried by the coarse scales."""
    scales = _dimension(view, "scale")
    labels = view.table("op_labels")
    if scales is None or len(scales) < 2:
        return None
    finest = _finest(list(scales["group"]))
    coarse = scales[scales["group"] != finest]
    fine = scales[scales["group"] == finest]
    stages_text = ""
    if labels is not None and "stage" in labels.columns:
        per_scale = labels.groupby("scale")["stage"].nunique()
        n_coarse = int(per_scale.reindex(coarse["group"]).fillna(0).sum())
        stages_text = f" run {n_coarse} of {int(per_scale.sum())} stages,"
    text = (
        f"The coarse scales ({', '.join(coarse['group'])}){stages_text} hold "
        f"{fmt.pct(coarse['params_share'].sum())} of the parameters but do only "
        f"{fmt.pct(coarse['macs_share'].sum())} of the MACs, because they work on "
        f"{' and '.join(coarse['group'])} resolution; the {finest}-resolution stages do "
        f"{fmt.pct(fine['macs_share'].sum())} of the MACs."
    )
    if coarse["time_ms_share"].notna().all():
        time_share, macs_share = coarse["time_ms_share"].sum(), coarse["macs_share"].sum()
        if time_share > 1.25 * macs_share:
            text += (
                f" Measured time is less lopsided: the coarse scales take {fmt.pct(time_share)} "
                "of it (small tensors use the hardware less well)."
            )
        else:
            text += f" Measured time agrees: the coarse scales take {fmt.pct(time_share)} of it."
    return "Coarse scales are nearly free.", text


def counterfactual_finding(view: RunView) -> tuple[str, str] | None:
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
    return "Each design idea saves compute.", (
        "Counted on the meta device, the same network " + "; ".join(parts) + "."
    )


def time_finding(view: RunView) -> tuple[str, str] | None:
    """Where the time goes on this device: convolution vs memory-bound ops."""
    categories = _dimension(view, "category")
    device = view.record.env.get("device_name") or "this device"
    basis = "measured per-call time"
    if categories is None or categories["time_ms_share"].isna().all():
        optime = view.table("optime_categories")
        if optime is None:
            return None
        categories = optime.rename(columns={"category": "group", "share": "time_ms_share"})
        basis = "torch.profiler time"
    conv = categories.loc[
        categories["group"].isin(["convolution", "matmul"]), "time_ms_share"
    ].sum()
    memory = categories.loc[categories["group"].isin(MEMORY_BOUND), "time_ms_share"].sum()
    flops = _dimension(view, "category")
    conv_flops = (
        flops.loc[flops["group"].isin(["convolution", "matmul"]), "flops_share"].sum()
        if flops is not None
        else None
    )
    flops_text = f" for {fmt.pct(conv_flops)} of the FLOPs" if conv_flops is not None else ""
    return "FLOPs are not time.", (
        f"On {device}, convolutions take {fmt.pct(conv)} of the {basis}{flops_text}; "
        f"memory-bound ops (elementwise, activations, resizes, layout copies) take {fmt.pct(memory)}."
    )


def roofline_finding(view: RunView) -> tuple[str, str]:
    """Distance to the compute floor, or how to get it."""
    ratio = view.number("roofline_latency_over_compute_floor")
    if ratio is None:
        reason = view.reason("roofline_floor_ms") or "device ceilings not measured"
        return "Roofline not measured:", f"{reason}."
    return "Distance to the hardware.", (
        f"The measured latency is {fmt.times(ratio)} the compute floor "
        f"({fmt.ms(view.metric('roofline_compute_floor_ms'))} at this device's measured peak): "
        f"the model runs at {fmt.pct(view.number('roofline_fraction_of_peak'))} of peak; "
        f"{fmt.pct(view.number('roofline_memory_bound_time_share'))} of its time is in memory-bound layers."
    )


def scaling_finding(view: RunView) -> tuple[str, str]:
    """The fitted law and the 3x answer."""
    r2 = view.number("scaling_macs_r2")
    three = view.table("scaling_3x")
    if r2 is None or three is None:
        per_pixel = fmt.count(view.metric("macs_per_output_pixel"))
        return "Linear in pixels.", (
            f"Cost per output pixel is {per_pixel} MACs whatever the size (a convolutional network): "
            "an image 3x larger per side costs 9x. Run with --resolutions to fit and check it."
        )
    rows = three[(three["quantity"] == "macs")]
    text = f"MACs grow linearly with pixels (R² = {r2:.6f})"
    if len(rows):
        row = rows.iloc[0]
        text += (
            f": an image 3x larger per side ({row['larger']}) costs {fmt.times(row['ratio_predicted'])} "
            f"the MACs ({fmt.count(row['predicted'], 'MAC')})"
        )
    latency = three[(three["quantity"] == "latency_median_ms")]
    if len(latency) and latency.iloc[0]["predicted"] > latency.iloc[0]["base_value"] > 0:
        row = latency.iloc[0]
        text += f"; predicted latency there {fmt.ms(row['predicted'])}"
        if pd.notna(row["checked"]):
            text += f", measured {fmt.ms(row['checked'])} ({100 * row['error']:+.1f} %)"
    elif len(latency):
        text += (
            "; the measured latencies do not grow with size (a busy machine?), so no latency "
            "prediction is made"
        )
    return "Linear in pixels.", text + "."


def findings(view: RunView) -> list[tuple[str, str]]:
    """The answer, finding by finding (bold lead, sentence), each from this run's numbers."""
    per_pixel = view.metric("macs_per_output_pixel")
    items = [
        ("Small per pixel.",
         f"Every output pixel costs {fmt.count(per_pixel)} MACs ({fmt.count(view.metric('macs'), 'MAC')} "
         f"for {view.metric('input_shape')}), with {fmt.count(view.metric('param_count'))} parameters.")
        if per_pixel is not None else None,
        scale_finding(view), counterfactual_finding(view), time_finding(view),
        roofline_finding(view), scaling_finding(view),
    ]  # fmt: skip
    return [item for item in items if item]


def overview_chart(view: RunView) -> str:
    """Shares of parameters, MACs and measured time per scale (or per top-level module)."""
    dim = "scale"
    rows = _dimension(view, dim)
    if rows is None:
        dim = "part"
        rows = _dimension(view, dim)
        if rows is None:
            return ""
        rows = rows.sort_values("macs", ascending=False).head(8)
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
                      yaxis_title="scale (feature resolution)" if dim == "scale" else "module",
                      yaxis={"autorange": "reversed"})  # fmt: skip
    numbers = rows[["group", "params_share", "macs_share", "time_ms_share"]]
    what = "scale" if dim == "scale" else "top-level module"
    return page.figure(
        fig,
        caption=(
            f"Where the cost sits: each bar is one {what}'s share of the whole network's "
            "parameters, MACs (counted) and time (measured per aten call on this device)."
        ),
        numbers=numbers,
        columns={"group": dim, "params_share": "params", "macs_share": "MACs",
                 "time_ms_share": "time"},
        formats={c: fmt.pct for c in ("params_share", "macs_share", "time_ms_share")},
        height=300,
    )  # fmt: skip


def render(view: RunView) -> str:
    """The summary section body."""
    answer = (
        '<div class="answer"><strong>The answer in numbers</strong>'
        + page.findings(findings(view))
        + "</div>"
    )
    notes = [
        n for n in view.record.notes if not n.startswith(("latency:", "memory:", "attribution:"))
    ]
    caveats = "".join(page.warning(n) for n in notes)
    if view.metric("outputs_finite") is False:  # the note above says which outputs, from where
        caveats = (
            page.warning(
                "This model's outputs are not finite numbers (NaN or infinity): its costs below "
                "are measured, but what it computes is unusable."
            )
            + caveats
        )
    return headline_cards(view) + caveats + answer + overview_chart(view)
