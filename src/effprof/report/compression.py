"""The compression section, shown when the report is given runs of kind ``compress``.

The run format this section reads (agreed with the compression pipeline; every key optional, a
missing one shows as "—"):

* ``params["step"]`` (or ``metrics["step"]``): the step's name (``dense``, ``prune``, ``recover``,
  ``int8``, ``vq``...); the run id otherwise. Steps are ordered by ``created``.
* the baseline, against which ratios are taken: the step named ``dense`` / ``baseline``, else the
  first run.
* metrics, first key present wins: quality ``test_psnr_db`` | ``psnr_db``; fidelity to the dense
  output ``fidelity_psnr_db``; ``test_ssim`` | ``ssim``; latency ``latency_median_ms`` |
  ``ort_latency_median_ms``; size ``file_bytes`` | ``size_bytes`` | ``weights_bytes``;
  ``macs``; ``param_count``.

A LightGaussian-style table (size, MAC and latency ratios, quality delta per step) and two Pareto
plots (quality against latency and against size) follow.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from effprof.report import numbers as fmt
from effprof.report import page
from effprof.report.runview import RunView

KEYS = {
    "psnr_db": ("test_psnr_db", "psnr_db"),
    "fidelity_psnr_db": ("fidelity_psnr_db",),
    "ssim": ("test_ssim", "ssim"),
    "latency_ms": ("latency_median_ms", "ort_latency_median_ms"),
    "size_bytes": ("file_bytes", "size_bytes", "weights_bytes"),
    "macs": ("macs",),
    "params": ("param_count",),
}
BASELINE_NAMES = ("dense", "baseline")


def _first(metrics: dict[str, Any], keys: Sequence[str]) -> Any:
    for key in keys:
        if metrics.get(key) is not None:
            return metrics[key]
    return None


def steps_frame(runs: Sequence[RunView]) -> pd.DataFrame:
    """One row per compress run with the common columns and ratios to the baseline."""
    rows = []
    for run in sorted(runs, key=lambda r: r.record.created):
        m = run.metrics
        step = run.record.params.get("step") or m.get("step") or run.record.run_id
        row = {"step": str(step), "run_id": run.record.run_id}
        row.update({name: _first(m, keys) for name, keys in KEYS.items()})
        rows.append(row)
    frame = pd.DataFrame(rows, columns=["step", "run_id", *KEYS])
    if frame.empty:
        return frame
    for column in KEYS:
        frame[column] = pd.to_numeric(frame[column], errors="coerce")
    is_base = frame["step"].str.lower().isin(BASELINE_NAMES)
    base = frame[is_base].iloc[0] if is_base.any() else frame.iloc[0]
    for column in ("size_bytes", "macs", "latency_ms", "params"):
        frame[f"{column}_ratio"] = frame[column] / base[column]
    frame["psnr_delta_db"] = frame["psnr_db"] - base["psnr_db"]
    return frame


def pareto_mask(cost: pd.Series, quality: pd.Series) -> pd.Series:
    """True where no other point has lower-or-equal cost and higher-or-equal quality (one strictly)."""
    mask = []
    for c, q in zip(cost, quality, strict=True):
        dominated = ((cost <= c) & (quality >= q) & ((cost < c) | (quality > q))).any()
        mask.append(not dominated)
    return pd.Series(mask, index=cost.index)


def _pareto_chart(frame: pd.DataFrame, cost: str, axis: str, scale: float, caption: str) -> str:
    points = frame[frame[cost].notna() & frame["psnr_db"].notna()]
    if points.empty:
        return page.note(f"No step has both quality and {axis.split(' (')[0]}: no Pareto plot.")
    front = points[pareto_mask(points[cost], points["psnr_db"])].sort_values(cost)
    fig = go.Figure()
    fig.add_scatter(x=points[cost] / scale, y=points["psnr_db"], mode="markers+text",
                    text=[page.chart_text(s) for s in points["step"]], textposition="top center",
                    marker={"size": 10}, name="steps")  # fmt: skip
    fig.add_scatter(x=front[cost] / scale, y=front["psnr_db"], mode="lines", name="Pareto front",
                    line={"dash": "dot"})  # fmt: skip
    fig.update_layout(xaxis_title=axis, yaxis_title="quality: PSNR (dB)", showlegend=False)
    return page.figure(
        fig, caption=caption, numbers=points,
        columns={"step": "step", cost: axis, "psnr_db": "PSNR (dB)"},
        formats={cost: (fmt.ms if cost == "latency_ms" else fmt.nbytes), "psnr_db": lambda v: f"{v:.2f}"},
        height=320,
    )  # fmt: skip


def render(runs: Sequence[RunView]) -> str:
    """The compression section body for a list of compress runs."""
    frame = steps_frame(runs)
    if frame.empty:
        return page.note("No compression runs were given.")
    table = page.wide(
        page.table(
            frame,
            columns={"step": "step", "size_bytes": "size", "size_bytes_ratio": "size x",
                     "macs": "MACs", "macs_ratio": "MACs x", "latency_ms": "latency",
                     "latency_ms_ratio": "latency x", "psnr_db": "PSNR (dB)",
                     "psnr_delta_db": "Δ PSNR (dB)", "fidelity_psnr_db": "fidelity (dB)",
                     "ssim": "SSIM"},
            formats={"size_bytes": fmt.nbytes, "size_bytes_ratio": fmt.times,
                     "macs": lambda v: fmt.count(v, "MAC"), "macs_ratio": fmt.times,
                     "latency_ms": fmt.ms, "latency_ms_ratio": fmt.times,
                     "psnr_db": lambda v: f"{v:.2f}", "psnr_delta_db": lambda v: f"{v:+.2f}",
                     "fidelity_psnr_db": lambda v: f"{v:.2f}", "ssim": lambda v: f"{v:.4f}"},
        )
    )  # fmt: skip
    return (
        page.paragraph("Every compression step is a run; ratios are to the dense baseline.")
        + table
        + _pareto_chart(frame, "latency_ms", "latency (ms)", 1.0,
                        "Quality against latency: steps on the dotted front are not beaten on both.")
        + _pareto_chart(frame, "size_bytes", "file size (MiB)", 2**20,
                        "Quality against stored size: steps on the dotted front are not beaten on both.")
    )  # fmt: skip
