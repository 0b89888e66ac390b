"""The scaling section: cost against input size, the fitted laws (with what they refuse), where
attention overtakes the rest, and what a 3x larger input costs. Reads the run's ``scaling``,
``scaling_fits`` and ``scaling_3x`` tables; every number shown is one of theirs."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from effprof import schema as S
from effprof.report import numbers as fmt
from effprof.report import page
from effprof.report.facts import batch_of
from effprof.report.runview import RunView
from effprof.report.sections import Finding, RenderContext, section
from effprof.units import RESOLUTIONS

_NAMES = {f"{h}x{w}": name for name, (h, w) in reversed(list(RESOLUTIONS.items()))}
COUNT_LAW = "a + b p + c p^2"
# quantity -> (title, axis title with unit, scale of the axis, formatter, unit of a coefficient)
# Axes plot raw values with SI ticks (2M, 10G): no "500µ" of a value divided into G.
QUANTITY = {
    "macs": ("MACs", "MACs", 1.0, lambda v: fmt.count(v, "MAC"), "MAC"),
    "macs_attention": ("attention MACs", "MACs", 1.0, lambda v: fmt.count(v, "MAC"), "MAC"),
    "macs_other": ("MACs outside attention", "MACs", 1.0, lambda v: fmt.count(v, "MAC"), "MAC"),
    "flops": ("FLOPs", "FLOPs", 1.0, lambda v: fmt.count(v, "FLOP"), "FLOP"),
    "activation_peak_bytes": ("peak activation memory (meta trace)", "memory (bytes)", 1.0,
                              fmt.nbytes, "B"),
    "latency_median_ms": ("latency (median)", "latency (ms)", 1.0, fmt.ms, "ms"),
}  # fmt: skip


def sweep_table(view: RunView) -> pd.DataFrame | None:
    """The run's counts at every size, numbers as floats (counts are stored as integers that are
    null at a size that could not be counted)."""
    sweep = view.table("scaling")
    if sweep is None:
        return None
    nullable = [c for c in sweep.columns if pd.api.types.is_extension_array_dtype(sweep[c].dtype)
                and pd.api.types.is_integer_dtype(sweep[c].dtype)]  # fmt: skip
    return sweep.astype({c: "float64" for c in nullable})


def label(resolution: str) -> str:
    """``720x1280`` -> ``720x1280 (720p)`` for named sizes."""
    name = _NAMES.get(resolution)
    return f"{resolution} ({name})" if name else resolution


def _positions(sweep: pd.DataFrame) -> pd.Series:
    return sweep["positions"] if "positions" in sweep else sweep["padded_pixels"]


def _unit(view: RunView) -> str:
    """What the sizes count: "points" of a cloud, else "input pixels" (of the padded input the
    model computes on: a 3x upsampler's output has 9x as many)."""
    return "points" if "points" in str(view.metric(S.INPUTS) or "") else "input pixels"


def _one(unit: str) -> str:
    """``input pixels`` -> ``input pixel``."""
    return unit.removesuffix("s")


def _law_text(law: pd.Series, quantity: str, unit: str) -> str:
    """The law in words with units: ``41.2 GMAC + 623 kMAC per pixel`` or ``0.021 ms x p^1.04``."""
    formatter, coef_unit = QUANTITY[quantity][3], QUANTITY[quantity][4]
    # a coefficient in the unit of its quantity: bytes binary, as the tables beside it
    coefficient = formatter if coef_unit == "B" else (lambda v: fmt.count(v, coef_unit))
    if law["law"] == COUNT_LAW:
        terms = []
        if law["a"] > 0:
            terms.append(formatter(law["a"]))
        if law["b"] > 0:
            terms.append(f"{coefficient(law['b'])} per {_one(unit)}")
        if law["c"] > 0 and law["c"] * law["p_max"] ** 2 > 1e-6 * max(law["b"] * law["p_max"], 1):
            mega = "input megapixel" if unit == "input pixels" else f"million {unit}"
            terms.append(f"{coefficient(law['c'] * 1e12)} per {mega} squared")
        return " + ".join(terms) or "0"
    return f"{fmt.plain(law['k'])} {coef_unit} x {unit}^{law['alpha']:.2f}"


def _law_chart(sweep: pd.DataFrame, fits: pd.DataFrame, quantity: str, unit: str) -> str:
    title, axis, scale, formatter, _ = QUANTITY[quantity]
    points = sweep[sweep[quantity].notna()] if quantity in sweep else sweep.iloc[:0]
    if len(points) < 2:
        return page.note(
            f"{title}: measured at {len(points)} size(s), too few for a chart or a law."
        )
    xs_points = _positions(points).astype(float)
    fig = go.Figure()
    fig.add_scatter(x=xs_points, y=points[quantity] / scale, mode="markers", name=title,
                    marker={"size": 9}, hovertext=[label(r) for r in points["resolution"]])  # fmt: skip
    fit = fits[fits["quantity"] == quantity]
    caption = f"{title} against the {unit} the model computes on (after padding)."
    if len(fit) and bool(fit["passed"].iloc[0]):
        law = fit.iloc[0]
        xs = np.geomspace(float(xs_points.min()), float(xs_points.max()), 50)
        ys = (law["a"] + law["b"] * xs + law["c"] * xs**2 if law["law"] == COUNT_LAW
              else law["k"] * xs ** law["alpha"])  # fmt: skip
        fig.add_scatter(x=xs, y=ys / scale, mode="lines", name="fitted law", line={"dash": "dot"})
        caption += f" Fitted law: {_law_text(law, quantity, unit)} (largest error {100 * law['max_error']:.2g}%)."
    elif len(fit):
        caption += f" No law: {fit['missing'].iloc[0]}."
    spread = float(xs_points.max() / xs_points.min())
    kind = "log" if spread > 8 else "linear"
    ys = (points[quantity] / scale).tolist()
    if kind == "log":
        xaxis = page.log_axis(f"{unit} (padded)", xs_points)
        yaxis = page.log_axis(axis, ys)
    else:
        xaxis = {"title": {"text": f"{unit} (padded)"}, "tickformat": "~s"}
        yaxis = {"title": {"text": axis}, "tickformat": "~s"}
    fig.update_layout(xaxis=xaxis, yaxis=yaxis, showlegend=False)
    if kind == "log":
        caption += " Both axes are logarithmic: a straight line of slope 1 means constant cost per position."
    numbers = points.assign(size=[label(r) for r in points["resolution"]], p=xs_points)
    columns = {"size": "size", "p": unit, quantity: title}
    formats = {quantity: formatter, "p": fmt.integer}
    if f"{quantity}_residual" in numbers:
        columns[f"{quantity}_residual"] = "off the law"
        formats[f"{quantity}_residual"] = lambda v: f"{100 * v:+.1f} %"
    return page.figure(fig, caption=caption, numbers=numbers, columns=columns, formats=formats,
                       height=320)  # fmt: skip


def _laws_table(fits: pd.DataFrame, unit: str) -> str:
    rows = []
    attention = fits[fits["quantity"] == "macs_attention"]
    if len(attention) and not attention[["a", "b", "c"]].fillna(0).gt(0).any(axis=None):
        fits = fits[~fits["quantity"].isin(["macs_attention", "macs_other"])]  # no attention
    for law in fits.itertuples():
        name = QUANTITY.get(law.quantity, (law.quantity,))[0]
        passed = bool(law.passed) if pd.notna(law.passed) else False
        fitted = pd.notna(law.a) or pd.notna(law.k)
        text = _law_text(pd.Series(law._asdict()), law.quantity, unit) if fitted else "—"
        rows.append({"quantity": name, "form": law.law, "law": text, "sizes": law.n,
                     "largest error": law.max_error, "exponent": law.exponent_at_max,
                     "passed": "yes" if passed else f"no: {law.missing}"})  # fmt: skip
    return page.table(
        pd.DataFrame(rows),
        caption=(
            f"p = {unit} computed on. Counts: a + b p + c p^2 with a, b, c >= 0 (non-negative least "
            "squares), passed when every count is within 2%. Measured: k p^alpha fitted in log-log "
            "space, passed when every point is within 25% and alpha is in 0.3-3. 'exponent' is the "
            "local growth exponent at the largest size (1 = linear, 2 = quadratic)."
        ),
        formats={"largest error": lambda v: f"{100 * v:.2g} %", "exponent": lambda v: f"{v:.2f}"},
    )


@section("scaling", label="Scaling", title="Cost against input size",
         findings=lambda ctx: [scaling_finding(ctx.subject)],
         intro="Counts at every size, latency where it fits the time budget, and the fitted law.")  # fmt: skip
def render(ctx: RenderContext) -> str:
    """The scaling section body."""
    view = ctx.subject
    sweep, fits = sweep_table(view), view.table("scaling_fits")
    unit = _unit(view)
    if sweep is None or fits is None or "passed" not in fits:
        reason = view.reason(S.SCALING_MACS_EXPONENT) or (
            "this run has no size sweep"
            if sweep is None
            else "this run's laws are of an older kind"
        )
        return page.note(
            f"No scaling laws: {reason}. effprof counts at several sizes on the meta device when "
            "the model takes inputs of any size; effprof profile --resolutions 256,512,720p also "
            "times them."
        )
    parts = [_law_chart(sweep, fits, q, unit) for q in ("macs", "latency_median_ms", "activation_peak_bytes")
             if q in sweep and sweep[q].notna().any()]  # fmt: skip
    if "macs_attention" in sweep and sweep["macs_attention"].fillna(0).gt(0).any():
        parts.append(_attention_chart(view, sweep, unit))
    problems = [f"{label(r.resolution)}: {r.count_missing}" for r in sweep.itertuples()
                if isinstance(getattr(r, "count_missing", None), str)]  # fmt: skip
    if "latency_missing" in sweep:
        problems += [f"{label(r.resolution)}: latency {r.latency_missing}" for r in sweep.itertuples()
                     if isinstance(r.latency_missing, str)]  # fmt: skip
    if problems:
        parts.append(page.bullets(problems))
    parts.append("<h3>Fitted laws</h3>")
    parts.append(_laws_table(fits, unit))
    three = view.table("scaling_3x")
    if three is not None and len(three):
        larger = "with 3x the points" if unit == "points" else "3x larger per side"
        parts.append(f"<h3>What an input {larger} costs</h3>")
        parts.append(_three_table(three))
    else:
        parts.append(page.note("No 3x prediction: no law passed for a quantity measured here."))
    parts.append(
        page.note(
            "Counts are exact at every size (meta device). Latency is measured only with "
            "--resolutions, smallest first, 1 warm-up and 3 timed forwards, and a size is skipped "
            "when its predicted time would pass the sweep's time budget."
        )
    )
    return "".join(parts)


def _attention_chart(view: RunView, sweep: pd.DataFrame, unit: str) -> str:
    points = sweep[sweep["macs"].notna()]
    xs = _positions(points).astype(float)
    fig = go.Figure()
    for column, name in (
        ("macs_attention", "attention (QK^T, AV)"),
        ("macs_other", "everything else"),
    ):
        fig.add_scatter(x=xs, y=points[column], mode="lines+markers", name=name)
    values = [*points["macs_attention"], *points["macs_other"]]
    fig.update_layout(xaxis=page.log_axis(f"{unit} (padded)", xs),
                      yaxis=page.log_axis("MACs", values),
                      legend={"orientation": "h", "y": -0.3})  # fmt: skip
    caption = "Attention's MACs against all other MACs at every size counted."
    relation = attention_relation(view)
    if relation:
        caption += f" {relation[0].upper()}{relation[1:]}."
    share = (points["macs_attention"] / points["macs"]).rename("attention_share")
    numbers = points.assign(size=[label(r) for r in points["resolution"]], attention_share=share)
    return page.figure(
        fig, caption=caption, numbers=numbers,
        columns={"size": "size", "macs_attention": "attention", "macs_other": "other",
                 "attention_share": "attention %"},
        formats={"macs_attention": lambda v: fmt.count(v, "MAC"), "macs_other": lambda v: fmt.count(v, "MAC"),
                 "attention_share": fmt.pct},
        height=320,
    )  # fmt: skip


def _three_table(three: pd.DataFrame) -> str:
    shown = three.copy()
    shown["name"] = [QUANTITY.get(q, (q,))[0] for q in three["quantity"]]
    for column in ("base_value", "predicted", "checked"):
        shown[column] = [
            QUANTITY[q][3](v) if q in QUANTITY and pd.notna(v) else "—"
            for q, v in zip(three["quantity"], three[column], strict=True)
        ]
    return page.table(
        shown,
        columns={"name": "quantity", "base": "from", "larger": "to", "base_value": "at base",
                 "predicted": "predicted", "ratio_predicted": "x", "checked": "checked",
                 "check_source": "checked by", "error": "prediction error"},
        formats={"ratio_predicted": fmt.times, "error": fmt.signed_pct},
    )  # fmt: skip


NEARLY_LINEAR = 2.2  # doubling the input multiplies the MACs by less: "nearly linear"


def _positions_text(view: RunView, positions: float) -> str:
    if "points" in str(view.metric(S.INPUTS) or ""):
        return f"{fmt.count(positions)} points"
    side = math.sqrt(positions / max(batch_of(view), 1))
    return f"about {side:,.0f}x{side:,.0f} pixels"


def _law_value(law: pd.Series, p: float) -> float:
    return float(law["a"] + law["b"] * p + law["c"] * p * p)


def _quadratic(fits: pd.DataFrame, quantity: str) -> bool | None:
    """Whether a passed count law's squared term is over 1% of its value at the largest size
    (the rule the profile stores as ``scaling_*_quadratic``); None without such a law."""
    rows = fits[(fits["quantity"] == quantity) & fits["passed"].fillna(False).astype(bool)]
    if rows.empty or rows.iloc[0]["law"] != COUNT_LAW:
        return None
    law = rows.iloc[0]
    return bool(law["c"] * law["p_max"] ** 2 > 0.01 * _law_value(law, float(law["p_max"])))


def _share_span(shares: pd.Series) -> str:
    low, high = fmt.pct(shares.min()), fmt.pct(shares.max())
    return low if low == high else f"{low.removesuffix(' %')}-{high}"


def attention_relation(view: RunView) -> str | None:
    """Attention's MACs against all the other MACs, read from the counts at every size: above
    them at every size, below them at every size, or overtaking them (where the fitted laws
    cross, quoted only when the counts agree with it); None without attention MACs."""
    sweep = sweep_table(view)
    if sweep is None or "macs_attention" not in sweep or "macs_other" not in sweep:
        return None
    rows = sweep[sweep["macs"].notna() & sweep["macs_attention"].notna()]
    rows = rows.assign(p=_positions(rows).astype(float)).sort_values("p")
    if rows.empty or not (rows["macs_attention"] > 0).any():
        return None
    span = _share_span(rows["macs_attention"] / rows["macs"])
    above = rows["macs_attention"] > rows["macs_other"]
    counted = f"{span} of the MACs at the {len(rows)} sizes counted"
    if above.all():
        return f"attention does more MACs than everything else at every size counted ({counted})"
    crossing = view.number(S.SCALING_ATTENTION_CROSSOVER)
    agrees = crossing is not None and (above == (rows["p"] > crossing)).all()
    if agrees:
        return (
            f"attention's MACs overtake all the other MACs at {_positions_text(view, crossing)} "
            f"by the fitted laws ({counted})"
        )
    if not above.any():
        return f"attention does fewer MACs than everything else at every size counted ({counted})"
    first = rows[above].iloc[0]
    return (
        f"attention does more MACs than everything else from {label(str(first['resolution']))} "
        f"on ({counted})"
    )


def scaling_finding(view: RunView) -> Finding | None:
    """The fitted MACs law, attention against the rest, and the 3x answer."""
    fits, three = view.table("scaling_fits"), view.table("scaling_3x")
    if fits is None or "passed" not in fits:
        return None  # no sweep, or a run made before the laws refused nonsense
    macs = fits[(fits["quantity"] == "macs") & fits["passed"].fillna(False).astype(bool)]
    if macs.empty:
        return None
    law = macs.iloc[0]
    unit = _unit(view)
    error = (
        "the law reproduces every count exactly"
        if law["max_error"] < 1e-9
        else f"the law reproduces every count within {100 * law['max_error']:.2g}%"
    )
    short = unit.removeprefix("input ")  # "Linear in pixels."
    if not bool(view.metric(S.SCALING_MACS_QUADRATIC)):
        text = f"MACs grow linearly with the {unit} ({error})"
        p = float(law["p_max"])
        squared = law["c"] * p * p / _law_value(law, p)
        if squared > 0:  # a squared term too small to count: say how small
            text = (
                f"MACs grow linearly with the {unit}: the law's squared term is "
                f"{fmt.pct(squared, 2)} of them at the largest size, under the 1 % this lead "
                f"allows ({error})"
            )
        lead = f"Linear in {short}."
    else:
        p = float(law["p_max"])
        ratio = _law_value(law, 2 * p) / _law_value(law, p)
        text = (
            f"MACs grow faster than the {unit}: the law has a squared term, so doubling the "
            f"{unit} from the largest size counted ({_positions_text(view, p)}) multiplies them "
            f"by {ratio:.2f} ({error})"
        )
        # "nearly linear" below NEARLY_LINEAR; attention named only where its own MACs carry the
        # squared term (its law is quadratic and the law of everything else is not)
        square = "points" if unit == "points" else "tokens"
        if ratio < NEARLY_LINEAR:
            lead = f"Nearly linear in {short}."
            text += f", under the {NEARLY_LINEAR:g} this lead allows"
        elif _quadratic(fits, "macs_attention") and _quadratic(fits, "macs_other") is False:
            lead = f"Attention grows with the square of the {square}."
        else:
            lead = f"Faster than linear in {short}."
    relation = attention_relation(view)
    if relation:
        text += f"; {relation}"
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
