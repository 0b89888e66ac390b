"""The scaling section: cost against resolution, the fitted laws and the 3x-larger-image answer."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from effprof.report import numbers as fmt
from effprof.report import page
from effprof.report.runview import RunView
from effprof.units import RESOLUTIONS

_NAMES = {f"{h}x{w}": name for name, (h, w) in reversed(list(RESOLUTIONS.items()))}
QUANTITY = {
    "macs": ("MACs", "MACs (G)", 1e9, lambda v: fmt.count(v, "MAC")),
    "flops": ("FLOPs", "FLOPs (G)", 1e9, lambda v: fmt.count(v, "FLOP")),
    "activation_peak_bytes": (
        "peak activation memory (meta trace)",
        "memory (GiB)",
        2**30,
        fmt.nbytes,
    ),
    "latency_median_ms": ("latency (median)", "latency (ms)", 1.0, fmt.ms),
}


def label(resolution: str) -> str:
    """``720x1280`` -> ``720x1280 (720p)`` for named sizes."""
    name = _NAMES.get(resolution)
    return f"{resolution} ({name})" if name else resolution


def _law_chart(sweep, fits, quantity: str) -> str:
    title, axis, scale, formatter = QUANTITY[quantity]
    points = sweep[sweep[quantity].notna()]
    if len(points) < 2:
        return page.note(
            f"{title}: measured at {len(points)} size(s), too few for a chart or a law."
        )
    mp = points["padded_pixels"] / 1e6
    fig = go.Figure()
    fig.add_scatter(x=mp, y=points[quantity] / scale, mode="markers+text", name=title,
                    text=[label(r) for r in points["resolution"]], textposition="top center",
                    marker={"size": 9})  # fmt: skip
    fit = fits[fits["quantity"] == quantity]
    caption = f"{title} against megapixels computed (after padding)."
    if len(fit) and fit["missing"].isna().iloc[0]:
        a, b, r2 = (float(fit[c].iloc[0]) for c in ("a", "b", "r2"))
        if abs(a) < 1e-6 * abs(b) * float(sweep["padded_pixels"].min()):
            a = 0.0  # rounding noise of an exactly proportional law
        xs = np.geomspace(
            float(points["padded_pixels"].min()), float(points["padded_pixels"].max()), 50
        )
        fig.add_scatter(x=xs / 1e6, y=(a + b * xs) / scale, mode="lines", name="fitted law",
                        line={"dash": "dot"})  # fmt: skip
        caption += (
            f" Fitted law: {formatter(a)} + {formatter(b * 1e6)} per megapixel, R² = {r2:.6f}."
        )
    spread = float(points["padded_pixels"].max() / points["padded_pixels"].min())
    kind = "log" if spread > 8 else "linear"  # sizes from 256x256 to 4k: log axes keep them apart
    fig.update_layout(xaxis={"type": kind, "title": {"text": "megapixels (padded)"}},
                      yaxis={"type": kind, "title": {"text": axis}}, showlegend=False)  # fmt: skip
    if kind == "log":
        caption += " Both axes are logarithmic; a straight line of slope 1 means cost per pixel is constant."
    numbers = points.assign(size=[label(r) for r in points["resolution"]])
    return page.figure(
        fig, caption=caption, numbers=numbers,
        columns={"size": "size", "padded_pixels": "pixels", quantity: title},
        formats={quantity: formatter, "padded_pixels": fmt.integer}, height=320,
    )  # fmt: skip


def render(view: RunView) -> str:
    """The scaling section body."""
    sweep = view.table("scaling")
    fits = view.table("scaling_fits")
    if sweep is None or fits is None:
        per_pixel = fmt.count(view.metric("macs_per_output_pixel"))
        return page.note(
            "No resolution sweep in this run (run effprof profile --resolutions 256,512,720p,1080p,4k "
            f"to count at every size and time where it fits). At this size a pixel costs {per_pixel} "
            "MACs; in a fully convolutional network that cost per pixel does not change with size."
        )
    parts = [
        _law_chart(sweep, fits, q) for q in ("macs", "latency_median_ms", "activation_peak_bytes")
    ]
    skipped = (
        sweep[sweep["latency_missing"].notna()] if "latency_missing" in sweep else sweep.iloc[:0]
    )
    if len(skipped):
        parts.append(
            page.bullets(
                f"{label(r.resolution)}: latency {r.latency_missing}" for r in skipped.itertuples()
            )
        )
    parts.append("<h3>Fitted laws: cost = a + b x pixels</h3>")
    parts.append(
        page.table(
            fits.assign(name=[QUANTITY.get(q, (q,))[0] for q in fits["quantity"]]),
            columns={"name": "quantity", "a": "a (fixed part)", "b": "b (per pixel)", "r2": "R²",
                     "n": "sizes", "missing": "not fitted because"},
            formats={"a": fmt.plain, "b": fmt.plain, "r2": lambda v: f"{v:.6f}"},
        )
    )  # fmt: skip
    three = view.table("scaling_3x")
    if three is not None and len(three):
        parts.append("<h3>What a 3x larger image (9x the pixels) costs</h3>")
        shown = three.copy()
        shown["name"] = [QUANTITY.get(q, (q,))[0] for q in three["quantity"]]
        for column in ("base_value", "predicted", "checked"):
            shown[column] = [
                QUANTITY[q][3](v) if q in QUANTITY else fmt.plain(v)
                for q, v in zip(three["quantity"], three[column], strict=True)
            ]
        parts.append(
            page.table(
                shown,
                columns={"name": "quantity", "base": "from", "larger": "to", "base_value": "at base",
                         "predicted": "predicted", "ratio_predicted": "x", "checked": "checked",
                         "check_source": "checked by", "error": "prediction error"},
                formats={"ratio_predicted": fmt.times, "error": lambda v: f"{100 * v:+.2f} %"},
            )
        )  # fmt: skip
    parts.append(
        page.note(
            "Counts are exact at every size (meta device); latency is measured smallest first with "
            "1 warm-up and 3 timed forwards, and a size is skipped when its predicted time would pass "
            "the sweep's time budget."
        )
    )
    return "".join(parts)
