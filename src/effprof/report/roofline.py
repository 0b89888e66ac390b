"""The roofline section: layers against this device's measured ceilings; the model's floors."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from effprof import schema as S
from effprof.report import numbers as fmt
from effprof.report import page
from effprof.report.runview import RunView
from effprof.report.sections import Finding, RenderContext, section

FORMULA = (
    "Arithmetic intensity = FLOPs / bytes moved, where bytes moved = bytes of every input "
    "(activations and weights) read once + bytes of every output written once, per op, in the "
    "precision used (no reuse between ops is assumed, so this is the traffic of an unfused eager "
    "run). Roofline time = max(FLOPs / peak FLOP/s, bytes / bandwidth); a layer is memory-bound when "
    "its intensity is below the ridge point peak / bandwidth. A layer is one module's ops of one "
    "category (e.g. one conv)."
)


def _cards(view: RunView) -> str:
    m = view.metrics
    return page.cards([
        ("Compute floor", fmt.ms(m.get(S.ROOFLINE_COMPUTE_FLOOR_MS)),
         "total FLOPs / measured peak FLOP/s"),
        ("Memory floor", fmt.ms(m.get(S.ROOFLINE_MEMORY_FLOOR_MS)),
         f"{fmt.nbytes(m.get(S.ROOFLINE_BYTES_MOVED))} moved / bandwidth"),
        ("Roofline floor", fmt.ms(m.get(S.ROOFLINE_FLOOR_MS)), "sum of each layer's roofline time"),
        ("Measured latency", fmt.ms(m.get(S.LATENCY.median_ms)),
         f"{fmt.times(m.get(S.ROOFLINE_OVER_COMPUTE_FLOOR))} the compute floor"),
        ("Share of peak", fmt.pct(m.get(S.ROOFLINE_FRACTION_OF_PEAK)), "compute floor / latency"),
        ("Time in memory-bound layers", fmt.pct(m.get(S.ROOFLINE_MEMORY_BOUND_SHARE)),
         str(m.get(S.ROOFLINE_MEMORY_BOUND_BASIS) or "")),
    ])  # fmt: skip


def _chart(view: RunView) -> str:
    layers = view.table("roofline_layers")
    peak = view.number(S.CEILING_PEAK) or view.number(S.CEILING_MATMUL)
    bandwidth = view.number(S.CEILING_COPY)
    if layers is None or peak is None or bandwidth is None:
        return ""
    shown = layers[(layers["flops"] > 0)].copy()
    measured = shown["measured_ms"].notna().any()
    shown["y"] = (
        shown["attained_flops_per_s"] if measured else shown["flops"] / (shown["roofline_ms"] / 1e3)
    )
    shown = shown[np.isfinite(shown["y"]) & (shown["y"] > 0)]
    fig = go.Figure()
    lo = max(float(shown["intensity_flops_per_byte"].min()) / 2, 1e-3) if len(shown) else 0.01
    hi = (
        max(float(shown["intensity_flops_per_byte"].max()) * 2, 10 * peak / bandwidth)
        if len(shown)
        else 1e3
    )
    xs = np.geomspace(lo, hi, 200)
    fig.add_scatter(x=xs, y=np.minimum(peak, bandwidth * xs), mode="lines",
                    name="roofline (measured ceilings)", line={"color": "#1d2430", "width": 2})  # fmt: skip
    for category, rows in shown.groupby("category", sort=False):
        hover = [
            page.chart_text(f"{mod} ({cat})")
            for mod, cat in zip(rows["module"], rows["category"], strict=True)
        ]
        fig.add_scatter(
            x=rows["intensity_flops_per_byte"], y=rows["y"], mode="markers",
            name=page.chart_text(category), text=hover, marker={"size": 6, "opacity": 0.75},
            hovertemplate="%{text}<br>%{x:.3g} FLOP/byte<br>%{y:.3s}FLOP/s<extra></extra>",
        )  # fmt: skip
    fig.update_layout(
        xaxis=page.log_axis("arithmetic intensity (FLOP/byte)", xs),
        yaxis=page.log_axis(
            "attained FLOP/s" + ("" if measured else " (roofline estimate)"),
            [*shown["y"], peak],
        ),
    )  # fmt: skip
    above = int((shown["y"] > peak * 1.05).sum()) if measured else 0
    warning = (
        page.warning(
            f"{above} layers attain more than the measured peak, so the roof is too low here: "
            "the ceilings were measured while the machine was busier than during the per-call "
            "timing, or these layers' shapes suit the hardware better than the benchmark kernels. "
            "Re-measure on an idle machine with effprof profile --roofline."
        )
        if above
        else ""
    )
    layers = layers.assign(module=layers["module"].replace("", "(root)"))
    top = layers.sort_values("measured_ms" if measured else "roofline_ms", ascending=False).head(25)
    return page.figure(
        fig,
        caption=(
            "Each point is a layer: its arithmetic intensity and the FLOP rate it attained "
            "(FLOPs / measured time of its calls). The line is the roofline from this device's "
            "measured ceilings; points far below it lose time to overheads, not to the hardware's "
            "limits. Layers without FLOPs (data movement) are in the table only."
        ),
        numbers=top,
        numbers_caption="The 25 layers that take the most time",
        columns={"module": "layer", "intensity_flops_per_byte": "FLOP/byte", "bound": "bound",
                 "measured_ms": "measured", "roofline_fraction": "of roof"},
        formats={"intensity_flops_per_byte": fmt.plain, "measured_ms": fmt.ms, "roofline_ms": fmt.ms,
                 "roofline_fraction": fmt.pct},
        height=420,
    ) + warning  # fmt: skip


def _bound_table(view: RunView) -> str:
    layers = view.table("roofline_layers")
    if layers is None:
        return ""
    grouped = layers.groupby(["category", "bound"], as_index=False).agg(
        layers=("module", "size"), flops=("flops", "sum"), measured_ms=("measured_ms", "sum"),
        roofline_ms=("roofline_ms", "sum"),
    )  # fmt: skip
    return page.table(
        grouped,
        caption="Layers per category and bound: summed measured time against their roofline time",
        columns={"category": "category", "bound": "bound", "layers": "layers", "flops": "FLOPs",
                 "measured_ms": "measured", "roofline_ms": "roofline"},
        formats={"flops": lambda v: fmt.count(v, "FLOP"), "measured_ms": fmt.ms, "roofline_ms": fmt.ms},
    )  # fmt: skip


@section("roofline", label="Roofline", title="How close to the hardware",
         findings=lambda ctx: [roofline_finding(ctx.subject)],
         intro="Each layer against this device's measured compute and bandwidth ceilings.")  # fmt: skip
def render(ctx: RenderContext) -> str:
    """The roofline section body."""
    view = ctx.subject
    if view.number(S.CEILING_COPY) is None:
        reason = (
            view.reason(S.ROOFLINE_FLOOR_MS) or "device ceilings were not measured for this run"
        )
        return page.note(f"No roofline: {reason}.") + page.note(FORMULA)
    m = view.metrics
    ceilings = page.note(
        f"Ceilings of {view.record.env.get('device_name', 'this device')} "
        f"({view.record.params.get('precision', '')}, measured {m.get(S.CEILING_MEASURED_AT)}): "
        f"peak {fmt.count(m.get(S.CEILING_PEAK) or m.get(S.CEILING_MATMUL), 'FLOP/s')} "
        f"(matmul {fmt.count(m.get(S.CEILING_MATMUL), 'FLOP/s')}, 3x3 conv "
        f"{fmt.count(m.get(S.CEILING_CONV), 'FLOP/s')}), bandwidth "
        f"{fmt.nbytes(m.get(S.CEILING_COPY))}/s, ridge point "
        f"{fmt.plain(m.get(S.CEILING_RIDGE))} FLOP/byte. Method: {m.get(S.CEILING_METHOD)}."
    )
    return _cards(view) + ceilings + _chart(view) + _bound_table(view) + page.note(FORMULA)


def roofline_finding(view: RunView) -> Finding | None:
    """Distance to the compute floor (only when the ceilings were measured)."""
    ratio = view.number(S.ROOFLINE_OVER_COMPUTE_FLOOR)
    if ratio is None:
        return None
    return "Distance to the hardware.", (
        f"The measured latency is {fmt.times(ratio)} the compute floor "
        f"({fmt.ms(view.metric(S.ROOFLINE_COMPUTE_FLOOR_MS))} at this device's measured peak): "
        f"the model runs at {fmt.pct(view.number(S.ROOFLINE_FRACTION_OF_PEAK))} of peak; "
        f"{fmt.pct(view.number(S.ROOFLINE_MEMORY_BOUND_SHARE))} of its time is in memory-bound layers."
    )
