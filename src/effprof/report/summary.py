"""The summary: headline numbers, the answer in a few sentences, one chart.

Every sentence is built from a fact this run stored, and is left out when the fact is absent or
does not hold for the model: no cost per output pixel for a model that returns no image, no
"linear in pixels" without a law that shows it, no convolution share for a network without
convolutions. Each finding is a function returning (bold lead, sentence) or None; ``findings``
keeps those that returned one.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import pandas as pd
import plotly.graph_objects as go

from effprof.report import numbers as fmt
from effprof.report import page
from effprof.report.runview import RunView

MAC_CATEGORIES = ("convolution", "linear/matmul", "attention")
MEMORY_BOUND = (
    "elementwise", "activation", "resampling", "data movement", "normalization", "reduction",
    # names of runs made before the categories were renamed
    "resize", "layout copies",
)  # fmt: skip
Finding = tuple[str, str]


def _dimension(view: RunView, name: str) -> pd.DataFrame | None:
    table = view.table("attribution")
    if table is None:
        return None
    rows = table[table["dimension"] == name]
    return rows.reset_index(drop=True) if len(rows) else None


def is_image_output(view: RunView) -> bool:
    """True for an image-to-image model (restoration, super-resolution): cost per output pixel."""
    kind = view.metric("output_kind")
    if kind is None:  # runs made before output kinds were recorded: MACs per pixel was their basis
        return view.metric("macs_per_output_pixel") is not None
    return kind == "image"


NEARLY_LINEAR = 2.2  # doubling the input multiplies the MACs by less: "nearly linear"


def points_of(view: RunView) -> int | None:
    """Points in the cloud of a point model (its input is N x C points), None for other models."""
    if view.metric("output_kind") != "points":
        return None
    first = str(view.metric("input_shape") or "").split("x")[0]
    return int(first) if first.isdigit() and int(first) > 0 else None


def batch_of(view: RunView) -> int:
    """Images per forward: the first dimension of the profiled input (one cloud for points)."""
    if view.metric("output_kind") == "points":
        return 1
    shape = str(view.metric("input_shape") or "1")
    first = shape.split("x")[0]
    return int(first) if first.isdigit() and int(first) > 0 else 1


def tokens_of(view: RunView) -> int | None:
    """Tokens per image of a model whose main output is N x L x C tokens (None otherwise)."""
    if view.metric("output_kind") != "tokens":
        return None
    shapes = [s for s in str(view.metric("output_shapes") or "").split(", ") if s.count("x") == 2]
    if not shapes:
        return None
    dims = [
        int(d)
        for d in max(shapes, key=lambda s: math.prod(int(d) for d in s.split("x"))).split("x")
    ]
    return dims[1]


def cost_basis(view: RunView) -> tuple[str, float | None, str]:
    """(label, MACs per unit, detail) for the headline: per output pixel, per token or per image."""
    macs = view.number("macs")
    if is_image_output(view):
        return "MACs per output pixel", view.number("macs_per_output_pixel"), "output pixels"
    tokens = tokens_of(view)
    if tokens and macs is not None:
        return "MACs per token", macs / batch_of(view) / tokens, f"{tokens} tokens per image"
    points = points_of(view)
    if points and macs is not None:
        return "MACs per point", macs / points, f"{points:,} points in the cloud"
    return "MACs per image", (macs / batch_of(view) if macs is not None else None), "image"


def _latency_card(view: RunView) -> tuple[str, str, str]:
    m = view.metrics
    device = view.record.env.get("device_name") or view.record.params.get("device", "")
    if m.get("latency_median_ms") is None:
        return "Latency (median)", "—", view.reason("latency_median_ms") or "not measured"
    detail = (
        f"p10 {fmt.ms(m.get('latency_p10_ms'))} / p90 {fmt.ms(m.get('latency_p90_ms'))}, {device}"
    )
    if m.get("latency_reliable") is False:
        why = (
            m.get("latency_unreliable_reason")
            or view.reason("latency_reliable")
            or "spread or load"
        )
        return (
            "Latency (median, unreliable)",
            fmt.ms(m.get("latency_median_ms")),
            f"unreliable: {why}",
        )
    return "Latency (median)", fmt.ms(m.get("latency_median_ms")), detail


def headline_cards(view: RunView) -> str:
    """Params, MACs per output pixel / token / image, latency, throughput, peak memory, FLOPs."""
    m = view.metrics
    label, per_unit, _ = cost_basis(view)
    peak = m.get("memory_activation_peak_bytes")
    latency = _latency_card(view)
    if is_image_output(view):
        throughput = (
            f"{fmt.plain(m.get('throughput_mpix_s'))} MP/s",
            "output megapixels per second",
        )
    elif view.number("latency_median_ms") and points_of(view):
        rate = points_of(view) / (view.number("latency_median_ms") / 1e3)
        throughput = (f"{fmt.count(rate)} /s", "points per second at the median latency")
    elif view.number("latency_median_ms"):
        rate = batch_of(view) / (view.number("latency_median_ms") / 1e3)
        throughput = (f"{fmt.count(rate)} /s", "inputs per second at the median latency")
    else:
        throughput = ("—", view.reason("latency_median_ms") or "latency not measured")
    cards = [
        ("Parameters", fmt.count(m.get("param_count")), f"{fmt.nbytes(m.get('weights_bytes'))} of weights"),
        (label, fmt.count(per_unit), f"{fmt.count(m.get('macs'), 'MAC')} for {m.get('inputs') or m.get('input_shape', '?')}"),
        latency,
        ("Throughput", *throughput),
        ("Peak activation memory", fmt.nbytes(peak if peak is not None else m.get("activation_peak_bytes")),
         f"measured ({'CUDA allocator' if view.record.params.get('device') == 'cuda' else 'peak RSS'}); "
         f"meta trace {fmt.nbytes(m.get('activation_peak_bytes'))}"
         if peak is not None else "meta-trace estimate (not measured)"),
        ("FLOPs", fmt.count(m.get("flops"), "FLOP"), "2 x MACs + other ops"),
    ]  # fmt: skip
    # an unreliable latency greys its card and the throughput computed from it (cards 2 and 3)
    muted = {2, 3} if latency[0].endswith("unreliable)") else set()
    return page.cards(cards, muted=muted)


def cost_finding(view: RunView) -> Finding | None:
    """What one output pixel (or token, or input) costs."""
    label, per_unit, detail = cost_basis(view)
    if per_unit is None:
        return None
    macs, params = view.metric("macs"), view.metric("param_count")
    inputs = view.metric("inputs") or view.metric("input_shape")
    whole = f"{fmt.count(macs, 'MAC')} for {inputs}, with {fmt.count(params)} parameters"
    if label == "MACs per output pixel":
        return "Small per pixel.", f"Every output pixel costs {fmt.count(per_unit)} MACs ({whole})."
    if label == "MACs per token":
        return "Cost per token.", (
            f"Every token costs {fmt.count(per_unit)} MACs ({detail}; {whole})."
        )
    if label == "MACs per point":
        return "Cost per point.", (
            f"Every point costs {fmt.count(per_unit)} MACs ({detail}; {whole})."
        )
    batch = batch_of(view)
    if batch > 1:
        return "Cost per input.", f"One {detail} costs {fmt.count(per_unit, 'MAC')} ({whole})."
    return "Cost per input.", f"One forward costs {whole}."


def scale_finding(view: RunView) -> Finding | None:
    """Share of parameters vs MACs carried by the coarse scales (models whose map has scales)."""
    scales = _dimension(view, "scale")
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
    if coarse["params_share"].sum() <= coarse["macs_share"].sum():
        return None  # the claim below would not hold
    text = (
        f"The coarse scales ({', '.join(coarse['group'])}){stages_text} hold "
        f"{fmt.pct(coarse['params_share'].sum())} of the parameters but do only "
        f"{fmt.pct(coarse['macs_share'].sum())} of the MACs, because they work at "
        f"{' and '.join(coarse['group'])} resolution; the {finest}-resolution part does "
        f"{fmt.pct(fine['macs_share'].sum())} of the MACs."
    )
    if coarse["time_ms_share"].notna().all():
        time_share, macs_share = coarse["time_ms_share"].sum(), coarse["macs_share"].sum()
        if time_share > 1.25 * macs_share:
            text += (
                f" Measured time is less lopsided: the coarse scales take {fmt.pct(time_share)} "
                "of it."
            )
        else:
            text += f" Measured time agrees: the coarse scales take {fmt.pct(time_share)} of it."
    return "Coarse scales are nearly free.", text


def part_finding(view: RunView) -> Finding | None:
    """Which module-tree rows carry the MACs (repeated blocks with their per-block share)."""
    if _dimension(view, "scale") is not None:
        return None  # a registered map with scales says it better (scale_finding)
    parts = _dimension(view, "part")
    if parts is None or view.number("macs") in (None, 0):
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
        "By part of the module tree" if view.metric("component_map") == "module tree" else "By part"
    )
    return "Where the MACs are.", f"{by}: " + "; ".join(texts) + "."


def block_finding(view: RunView) -> Finding | None:
    """Inside the repeated blocks: which of their parts carries the MACs."""
    parts = _dimension(view, "block part")
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
    categories = _dimension(view, "category")
    if categories is None or not view.number("macs"):
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


def _category_time_shares(view: RunView) -> tuple[pd.DataFrame, str] | None:
    categories = _dimension(view, "category")
    if categories is not None and categories["time_ms_share"].notna().any():
        return categories, "measured per-call time"
    optime = view.table("optime_categories")
    if optime is None:
        return None
    return optime.rename(
        columns={"category": "group", "share": "time_ms_share"}
    ), "torch.profiler time"


def time_finding(view: RunView) -> Finding | None:
    """Where the time goes on this device: the largest MAC category's time vs FLOP share, and the
    memory-bound ops' time."""
    shares = _category_time_shares(view)
    flops = _dimension(view, "category")
    if shares is None or flops is None:
        return None
    times, basis = shares
    mac_rows = flops[flops["group"].isin(MAC_CATEGORIES) & (flops["flops_share"] > 0)]
    if mac_rows.empty:
        return None
    main = mac_rows.sort_values("flops_share", ascending=False).iloc[0]
    main_time = float(times.loc[times["group"] == main["group"], "time_ms_share"].sum())
    present = [c for c in MEMORY_BOUND if c in set(times["group"])]
    memory = float(times.loc[times["group"].isin(present), "time_ms_share"].sum())
    device = view.record.env.get("device_name") or "this device"
    text = (
        f"On {device}, {main['group']} takes {fmt.pct(main_time)} of the {basis} for "
        f"{fmt.pct(main['flops_share'])} of the FLOPs"
    )
    if present:
        text += f"; memory-bound ops ({', '.join(present)}) take {fmt.pct(memory)} of it"
    if view.metric("latency_reliable") is False:
        text += " (measured while the host was contended: see the latency card)"
    return "FLOPs are not time.", text + "."


def roofline_finding(view: RunView) -> Finding | None:
    """Distance to the compute floor (only when the ceilings were measured)."""
    ratio = view.number("roofline_latency_over_compute_floor")
    if ratio is None:
        return None
    return "Distance to the hardware.", (
        f"The measured latency is {fmt.times(ratio)} the compute floor "
        f"({fmt.ms(view.metric('roofline_compute_floor_ms'))} at this device's measured peak): "
        f"the model runs at {fmt.pct(view.number('roofline_fraction_of_peak'))} of peak; "
        f"{fmt.pct(view.number('roofline_memory_bound_time_share'))} of its time is in memory-bound layers."
    )


def _positions_text(view: RunView, positions: float) -> str:
    if "points" in str(view.metric("inputs") or ""):
        return f"{fmt.count(positions)} points"
    side = math.sqrt(positions / max(batch_of(view), 1))
    return f"about {side:,.0f}x{side:,.0f} pixels"


def _law_value(law: pd.Series, p: float) -> float:
    return float(law["a"] + law["b"] * p + law["c"] * p * p)


def scaling_finding(view: RunView) -> Finding | None:
    """The fitted MACs law, where attention overtakes the rest, and the 3x answer."""
    fits, three = view.table("scaling_fits"), view.table("scaling_3x")
    if fits is None or "passed" not in fits:
        return None  # no sweep, or a run made before the laws refused nonsense
    macs = fits[(fits["quantity"] == "macs") & fits["passed"].fillna(False).astype(bool)]
    if macs.empty:
        return None
    law = macs.iloc[0]
    unit = "points" if "points" in str(view.metric("inputs") or "") else "pixels"
    error = (
        "the law reproduces every count exactly"
        if law["max_error"] < 1e-9
        else f"the law reproduces every count within {100 * law['max_error']:.2g}%"
    )
    quadratic = bool(view.metric("scaling_macs_quadratic"))
    if not quadratic:
        text = f"MACs grow linearly with {unit} ({error})"
        lead = f"Linear in {unit}."
    else:
        p = float(law["p_max"])
        ratio = _law_value(law, 2 * p) / _law_value(law, p)
        text = (
            f"MACs grow faster than {unit}: the law has a squared term, so doubling the {unit} "
            f"from the largest size counted ({_positions_text(view, p)}) multiplies them by "
            f"{ratio:.2f} ({error})"
        )
        crossing = view.number("scaling_attention_crossover_positions")
        # attention is named only where the run's own attention MACs grow quadratically, and
        # the square only where it shows (doubling the input more than NEARLY_LINEAR the MACs)
        tokens = "points" if unit == "points" else "tokens"
        if ratio < NEARLY_LINEAR:
            lead = f"Nearly linear in {unit}."
        elif view.metric("scaling_attention_quadratic"):
            lead = f"Attention grows with the square of the {tokens}."
        else:
            lead = f"Faster than linear in {unit}."
        if crossing is not None and crossing >= float(law["p_min"]):
            text += f"; attention's MACs overtake all the other MACs at {_positions_text(view, crossing)}"
        elif crossing is not None:
            text += "; attention already does more MACs than everything else at every size counted"
    if three is not None and len(three):
        rows = three[three["quantity"] == "macs"]
        if len(rows):
            row = rows.iloc[0]
            larger = "with 3x the points" if unit == "points" else "3x larger per side"
            size = str(row["larger"])
            size = f"{int(size):,} points" if size.isdigit() else size  # a point count
            text += (
                f"; an input {larger} ({size}) costs "
                f"{fmt.times(row['ratio_predicted'])} the MACs ({fmt.count(row['predicted'], 'MAC')})"
            )
        latency = three[three["quantity"] == "latency_median_ms"]
        if len(latency):
            row = latency.iloc[0]
            text += f"; the latency law predicts {fmt.ms(row['predicted'])} there"
            if pd.notna(row["checked"]):
                text += f", measured {fmt.ms(row['checked'])} ({100 * row['error']:+.1f} %)"
    refused = fits[
        (fits["quantity"] == "latency_median_ms") & ~fits["passed"].fillna(False).astype(bool)
    ]
    if len(refused):
        text += f"; no latency law: {refused.iloc[0]['missing']}"
    return lead, text + "."


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


FINDINGS: tuple[Callable[[RunView], Finding | None], ...] = (
    cost_finding, scale_finding, part_finding, block_finding, category_finding,
    counterfactual_finding, time_finding, roofline_finding, scaling_finding, uncalled_finding,
)  # fmt: skip


def findings(view: RunView, extra: tuple[Finding | None, ...] = ()) -> list[Finding]:
    """The answer, finding by finding (bold lead, sentence), each from this run's numbers."""
    items = [finding(view) for finding in FINDINGS]
    return [item for item in (*items, *extra) if item]


def overview_chart(view: RunView) -> str:
    """Shares of parameters, MACs and measured time per scale (or per part of the module tree)."""
    dim = "scale"
    rows = _dimension(view, dim)
    if rows is None:
        dim = "part"
        rows = _dimension(view, dim)
        if rows is None:
            return ""
        rows = rows.sort_values("macs", ascending=False).head(8)
    rows = rows[(rows["macs_share"] > 0) | (rows["params_share"] > 0)]  # empty rows say nothing
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


def render(view: RunView, extra: tuple[Finding | None, ...] = ()) -> str:
    """The summary section body; ``extra`` findings (compression) end the answer."""
    answer = (
        '<div class="answer"><strong>The answer in numbers</strong>'
        + page.findings(findings(view, extra))
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
