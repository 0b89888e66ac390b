"""The compression section, and the answer's sentence on how much cheaper the model can be made.

The table is ``effprof.runs.compression.compression_frame`` (the one the CLI prints): size, MAC
and latency ratios to each pipeline's dense model, quality against dense and against the dense
control given as many training steps. Two Pareto plots follow (quality against latency in one
runtime, and against stored size). A profile report shows the section for the compress runs it
is given, else for the compress runs of the same model, variant and weights in its own store
(the Pareto-front rows only).
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import plotly.graph_objects as go

from effprof import schema as S
from effprof.report import numbers as fmt
from effprof.report import page
from effprof.report.facts import measured
from effprof.report.runview import RunView
from effprof.report.sections import Finding, RenderContext, section
from effprof.runs.compression import CONTROL_METHODS, compression_frame, latency_setting

QUALITY_BUDGET_DB = 0.3  # "without losing quality" in the answer: within 0.3 dB of dense
RUNTIMES = (("ort_latency_ms", "ONNX Runtime"), ("torch_latency_ms", "torch"))


def pareto_mask(cost: pd.Series, quality: pd.Series) -> pd.Series:
    """True where no other point has lower-or-equal cost and higher-or-equal quality (one
    strictly); of points equal in both (the same model stored twice), only the first."""
    mask = []
    seen: set[tuple[float, float]] = set()
    for c, q in zip(cost, quality, strict=True):
        dominated = ((cost <= c) & (quality >= q) & ((cost < c) | (quality > q))).any()
        mask.append(not dominated and (c, q) not in seen)
        seen.add((c, q))
    return pd.Series(mask, index=cost.index)


def latency_column(frame: pd.DataFrame) -> tuple[str, str] | None:
    """The runtime whose latencies the plots use: the one most steps were timed in."""
    counts = [(int(frame[c].notna().sum()), c, name) for c, name in RUNTIMES]
    best = max(counts, key=lambda c: c[0])  # the first of equals: ONNX Runtime
    return (best[1], best[2]) if best[0] else None


def front(frame: pd.DataFrame, cost: str) -> pd.DataFrame:
    """The rows on the quality-vs-``cost`` Pareto front, cheapest first."""
    points = frame[frame[cost].notna() & frame["test_psnr_db"].notna()]
    return points[pareto_mask(points[cost], points["test_psnr_db"])].sort_values(cost)


def _pareto_chart(frame: pd.DataFrame, cost: str, axis: str, scale: float, caption: str) -> str:
    points = frame[frame[cost].notna() & frame["test_psnr_db"].notna()]
    if points.empty:
        return page.note(f"No step has both quality and {axis.split(' (')[0]}: no Pareto plot.")
    best = front(frame, cost)
    fig = go.Figure()
    on_front = points.index.isin(best.index)
    # no text labels: step names collide when steps cost the same (a dense control, say);
    # hover names the step, and the table under the chart lists every point
    fig.add_scatter(x=points[cost] / scale, y=points["test_psnr_db"], mode="markers",
                    hovertext=[page.chart_text(s) for s in points["step"]], hoverinfo="text+x+y",
                    marker={"size": 10, "symbol": ["diamond" if f else "circle" for f in on_front]},
                    name="steps")  # fmt: skip
    fig.add_scatter(x=best[cost] / scale, y=best["test_psnr_db"], mode="lines",
                    name="Pareto front", line={"dash": "dot"})  # fmt: skip
    fig.update_layout(xaxis_title=axis, yaxis_title="quality: PSNR (dB)", showlegend=False)
    return page.figure(
        fig, caption=caption, numbers=points,
        columns={"step": "step", cost: axis, "test_psnr_db": "PSNR (dB)"},
        formats={cost: (fmt.ms if cost.endswith("_ms") else fmt.nbytes),
                 "test_psnr_db": lambda v: f"{v:.2f}"},
        height=320,
    )  # fmt: skip


def setting_sentence(frame: pd.DataFrame, runs: Sequence[RunView]) -> str:
    """Which runtimes, device, threads, input size and crops the table's numbers used."""
    s = latency_setting(frame)
    devices = sorted({str(r.record.env.get("device_name")) for r in runs if r.record.env})
    sizes = ", ".join(s["inputs"]) or "an unrecorded size"
    threads = ", ".join(map(str, s["threads"])) or "unrecorded"
    crops = ", ".join(map(str, s["test_count"])) or "?"
    runtimes = " and ".join(s["runtimes"]) or "no runtime"
    return (
        f"Latencies: {runtimes} on {', '.join(devices) or 'an unrecorded device'}, "
        f"{threads} intra-op thread(s), batch 1 at {sizes}, each step timed once where it ran. "
        f"Quality: PSNR against sharp on {crops} held-out synthetic crops of "
        f"{', '.join(map(str, s['test_size'])) or '?'} px; fidelity: PSNR against the dense "
        "model's output."
    )


def _table(frame: pd.DataFrame) -> str:
    return page.wide(
        page.table(
            frame,
            columns={"step": "step", "method": "method", "source": "from",
                     "file_bytes": "size", "size_x": "x smaller", "macs_ratio": "MACs x",
                     "torch_latency_ms": "torch", "torch_speedup": "x faster (torch)",
                     "ort_latency_ms": "ONNX Runtime", "ort_speedup": "x faster (ORT)",
                     "test_psnr_db": "PSNR (dB)", "psnr_delta_db": "Δ dense (dB)",
                     "quality_delta_db": "Δ same training (dB)",
                     "fidelity_psnr_db": "fidelity (dB)", "trained_steps": "training steps"},
            formats={"file_bytes": fmt.nbytes, "size_x": fmt.times, "macs_ratio": fmt.times,
                     "torch_latency_ms": fmt.ms, "torch_speedup": fmt.times,
                     "ort_latency_ms": fmt.ms, "ort_speedup": fmt.times,
                     "test_psnr_db": lambda v: f"{v:.2f}", "psnr_delta_db": lambda v: f"{v:+.2f}",
                     "quality_delta_db": lambda v: f"{v:+.2f}",
                     "fidelity_psnr_db": lambda v: f"{v:.2f}", "trained_steps": fmt.integer},
        )
    )  # fmt: skip


def render(runs: Sequence[RunView], front_only: bool = False) -> str:
    """The compression section body for compress runs (only Pareto-front rows if ``front_only``)."""
    frame = compression_frame([r.record for r in runs])
    if frame.empty:
        return page.note("No compression runs were given.")
    runtime = latency_column(frame)
    shown = frame
    if front_only:
        keep = set(front(frame, "file_bytes").index)
        if runtime is not None:
            keep |= set(front(frame, runtime[0]).index)
        shown = frame.loc[sorted(keep)]
    intro = (
        "Compress runs of this model, variant and weights from the same run store: the steps on "
        "a Pareto front (not beaten on both quality and latency, or quality and size)."
        if front_only
        else "Every compression step is a run; ratios are to its pipeline's dense model."
    )
    body = page.paragraph(intro) + page.note(setting_sentence(frame, runs)) + _table(shown)
    if runtime is not None:
        body += _pareto_chart(frame, runtime[0], f"{runtime[1]} latency (ms)", 1.0,
                              "Quality against latency: steps on the dotted front (diamonds) "
                              "are not beaten on both; hover a point for its step.")  # fmt: skip
    return body + _pareto_chart(frame, "file_bytes", "file size (bytes)", 1.0,
                                "Quality against stored size: steps on the dotted front (diamonds) "
                                "are not beaten on both; hover a point for its step.")  # fmt: skip


def _unquoted_fidelity(view: RunView) -> str:
    flagged = [view.record.unreliable.get(k) for k in (S.INT8_FIDELITY_PSNR, S.INT8_SNR)]
    reason = next((r for r in flagged if r), None)
    return (
        f"with its fidelity not quoted ({reason})" if reason else "with its fidelity not measured"
    )


def _int8_clause(view: RunView) -> str | None:
    m = view.metrics
    speedup, size_x = view.number(S.INT8_SPEEDUP), view.number(S.INT8_SIZE_X)
    if speedup is None:
        return None
    fidelity = measured(view, S.INT8_FIDELITY_PSNR)  # a flagged fidelity is never quoted
    snr = measured(view, S.INT8_SNR)
    kept = (
        f"at {fidelity:.1f} dB PSNR to the fp32 output"
        if fidelity is not None
        else f"at {snr:.1f} dB SNR to the fp32 output"
        if snr is not None
        else _unquoted_fidelity(view)
    )
    top1 = measured(view, S.INT8_TOP1)
    if top1 is not None:
        kept += f" ({top1:.0%} top-1 agreement)"
    size = f" and its file {size_x:.1f}x smaller" if size_x is not None else ""
    threads = m.get(S.INT8_THREADS)
    where = f" ({threads} thread{'s' if threads != 1 else ''})" if threads else ""
    speed = f"{speedup:.1f}x faster" if speedup >= 1 else f"{1 / speedup:.1f}x slower"
    caveat = ""
    if m.get(S.INT8_SPEEDUP_RELIABLE) is False:  # its within-round ratios disagree
        reason = m.get(S.INT8_SPEEDUP_UNRELIABLE) or "its timing was contended"
        caveat = f" (the speed-up is marked unreliable: {reason})"
    return (
        f"ONNX Runtime INT8 of the dense model, without training, is {speed} than "
        f"ONNX Runtime fp32 on this device{where}{size}, {kept}{caveat}"
    )


def _compressed_clause(views: Sequence[RunView]) -> str | None:
    frame = compression_frame([v.record for v in views])
    control = frame["method"].isin(CONTROL_METHODS) & ~frame["pruned"].astype(bool)
    frame = frame[~control]  # the dense model and its equally trained controls
    runtime = latency_column(frame) if not frame.empty else None
    if runtime is None:
        return None
    column, name = runtime
    speed = "ort_speedup" if column == "ort_latency_ms" else "torch_speedup"
    timed = frame[frame[speed].notna() & frame["psnr_delta_db"].notna()]
    if timed.empty:
        return None
    good = timed[timed["psnr_delta_db"] >= -QUALITY_BUDGET_DB]
    if good.empty:
        best = timed.loc[timed["psnr_delta_db"].idxmax()]
        return (
            f"none of the {len(timed)} compressed models stored for it stays within "
            f"{QUALITY_BUDGET_DB:g} dB of the dense model (closest: {best['step']}, "
            f"{best[speed]:.1f}x faster in {name} at {best['psnr_delta_db']:+.2f} dB)"
        )
    best = good.loc[good[speed].idxmax()]
    return (
        f"the fastest stored compressed model within {QUALITY_BUDGET_DB:g} dB of it, "
        f"{best['step']}, is {best[speed]:.1f}x faster in {name} and {best['size_x']:.1f}x "
        f"smaller at {best['psnr_delta_db']:+.2f} dB"
    )


def answer_sentence(ctx: RenderContext) -> Finding | None:
    """(bold lead, sentence) on how much cheaper the model can be made, from the run's numbers:
    the dense model's INT8 and the best compress run shown (:attr:`RenderContext.related_compress`)
    within QUALITY_BUDGET_DB; None when the run measured neither."""
    clauses = [
        c for c in (_int8_clause(ctx.subject), _compressed_clause(ctx.related_compress)) if c
    ]
    if not clauses:
        return None
    text = "; ".join(clauses)
    return "How much cheaper:", text[0].upper() + text[1:] + "."


def _int8_rows(view: RunView) -> list[dict[str, str]]:
    """The profile's INT8 numbers as rows (a reason where a number is missing)."""
    m = view.metrics

    def value(key: str, fmt_fn) -> str:
        if m.get(key) is None:
            return f"not measured: {view.reason(key)}" if view.reason(key) else "—"
        return fmt_fn(m[key])

    rows = [
        ("ONNX Runtime fp32 latency", S.INT8_ORT_FP32_LATENCY, fmt.ms),
        ("ONNX Runtime INT8 latency", S.INT8_ORT_LATENCY, fmt.ms),
        ("INT8 speed-up over ONNX Runtime fp32", S.INT8_SPEEDUP, fmt.times),
        ("fp32 .onnx file", S.INT8_FP32_FILE_BYTES, fmt.nbytes),
        ("INT8 .onnx file", S.INT8_FILE_BYTES, fmt.nbytes),
        ("fidelity to the fp32 output (PSNR)", S.INT8_FIDELITY_PSNR, lambda v: f"{v:.1f} dB"),
        ("fidelity to the fp32 output (SNR)", S.INT8_SNR, lambda v: f"{v:.1f} dB"),
        ("relative L2 error of the output", S.INT8_REL_L2, lambda v: f"{v:.2%}"),
        ("top-1 agreement", S.INT8_TOP1, fmt.pct),
    ]
    return [
        {"measure": label, "value": value(key, fn)}
        for label, key, fn in rows
        if key in m or view.reason(key)
    ]


@section("compression", label="Compression", title="How much cheaper it can be made",
         findings=lambda ctx: [answer_sentence(ctx)],
         intro="The dense model's INT8 (no training), and each compression step as a run.")  # fmt: skip
def section_body(ctx: RenderContext) -> str:
    """The "how much cheaper" section of a profile report: the dense model's INT8 (measured by
    the profile), then the compress runs given, else those of the same model, variant and
    weights in the subject's store (Pareto-front rows only); empty when there is neither."""
    subject = ctx.subject
    parts = []
    rows = _int8_rows(subject)
    if rows:
        clause = _int8_clause(subject)
        lead = (clause[0].upper() + clause[1:] + ".") if clause else "INT8 was not measured."
        parts.append(page.paragraph(lead) + page.table(pd.DataFrame(rows)))
        notes = [n for n in subject.record.notes if n.startswith("int8:")]
        parts += [page.note(n) for n in notes]
    if ctx.related_compress:
        parts.append(render(ctx.related_compress, front_only=not ctx.given_compress))
    return "".join(parts)
