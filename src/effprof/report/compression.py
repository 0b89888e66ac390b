"""The compression section, and the answer's sentence on how much cheaper the model can be made.

The table is ``effprof.runs.compression.compression_frame`` (the one the CLI prints): size, MAC
and latency ratios to each pipeline's dense model, and quality: PSNR against sharp (and against
the dense control given as many training steps) where the pipeline had task data, else fidelity
to the dense output (SNR, relative L2 error, top-1 agreement), as the pipeline measured it.
Speed-ups come from the pipeline's interleaved re-timing when the store holds it; latencies each
step measured on its own are marked not comparable. Two Pareto plots follow (quality against
latency in one runtime, and against stored size). A profile report shows the section for the
compress runs it is given, else for the compress runs of the same model, variant and weights in
its own store (the Pareto-front rows only).
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
from effprof.report.sections import RUNS_DIR, Finding, RenderContext, section
from effprof.runs.compression import (
    CONTROL_METHODS,
    DENSE,
    Quality,
    caveats,
    compression_frame,
    latency_setting,
    quality_of,
    shown_latency,
    speedup_mark,
    speedup_note,
    with_retimes,
)

QUALITY_BUDGET_DB = 0.3  # "without losing quality" in the answer: within 0.3 dB of dense
RUNTIMES = (("ort_latency_ms", "ONNX Runtime"), ("torch_latency_ms", "torch"))
RETIMED = {"ort_latency_ms": "ort_retimed_ms", "torch_latency_ms": "torch_retimed_ms"}


def pareto_mask(cost: pd.Series, quality: pd.Series) -> pd.Series:
    """True where no other point has lower-or-equal cost and higher-or-equal quality (one
    strictly); of points equal in both (the same model stored twice), only the first. A boolean
    Series on ``cost``'s index, empty ones included."""
    mask = []
    seen: set[tuple[float, float]] = set()
    for c, q in zip(cost, quality, strict=True):
        dominated = ((cost <= c) & (quality >= q) & ((cost < c) | (quality > q))).any()
        mask.append(not dominated and (c, q) not in seen)
        seen.add((c, q))
    return pd.Series(mask, index=cost.index, dtype=bool)


def latency_column(frame: pd.DataFrame) -> tuple[str, str] | None:
    """The runtime whose latencies the plots use: the one most steps were timed in."""
    counts = [(int(frame[c].notna().sum()), c, name) for c, name in RUNTIMES]
    best = max(counts, key=lambda c: c[0])  # the first of equals: ONNX Runtime
    return (best[1], best[2]) if best[0] else None


def cost_column(frame: pd.DataFrame, latency: str) -> str:
    """The latencies to plot: the interleaved re-timing's where it timed every step that has a
    latency in this runtime, else the steps' own."""
    retimed = RETIMED[latency]
    timed = frame[latency].notna()
    return retimed if timed.any() and frame.loc[timed, retimed].notna().all() else latency


def _points(frame: pd.DataFrame, cost: str, quality: str | None) -> pd.DataFrame:
    if quality is None:
        return frame.iloc[0:0]
    return frame.loc[frame[cost].notna() & frame[quality].notna()]


def front(frame: pd.DataFrame, cost: str, quality: str | None = None) -> pd.DataFrame:
    """The rows on the quality-vs-``cost`` Pareto front, cheapest first (``quality``: the
    table's quality column, :func:`effprof.runs.compression.quality_of` by default)."""
    quality = quality or quality_of(frame).column
    points = _points(frame, cost, quality)
    if quality is None or points.empty:
        return points
    return points.loc[pareto_mask(points[cost], points[quality])].sort_values(cost)


def _pareto_chart(frame: pd.DataFrame, cost: str, axis: str, quality: Quality) -> str:
    points = _points(frame, cost, quality.column)
    if points.empty or quality.column is None:
        return page.note(f"No step has both quality and {axis.split(' (')[0]}: no Pareto plot.")
    q = quality.column
    best = front(frame, cost, q)
    fig = go.Figure()
    on_front = points.index.isin(best.index)
    # no text labels: step names collide when steps cost the same (a dense control, say);
    # hover names the step, and the table under the chart lists every point
    fig.add_scatter(x=points[cost], y=points[q], mode="markers",
                    hovertext=[page.chart_text(s) for s in points["step"]], hoverinfo="text+x+y",
                    marker={"size": 10, "symbol": ["diamond" if f else "circle" for f in on_front]},
                    name="steps")  # fmt: skip
    fig.add_scatter(x=best[cost], y=best[q], mode="lines", name="Pareto front",
                    line={"dash": "dot"})  # fmt: skip
    fig.update_layout(xaxis_title=axis, yaxis_title=f"quality: {quality.label}", showlegend=False)
    caption = (
        f"Quality ({quality.label}) against {axis.split(' (')[0]}: steps on the dotted front "
        "(diamonds) are not beaten on both; hover a point for its step."
    )
    return page.figure(
        fig, caption=caption, numbers=points,
        columns={"step": "step", cost: axis, q: quality.label},
        formats={cost: (fmt.ms if cost.endswith("_ms") else fmt.nbytes), q: _quality_format(q)},
        height=320,
    )  # fmt: skip


def _quality_format(column: str):
    return fmt.pct if column.endswith("agreement") else (lambda v: f"{v:.2f}")


def setting_sentence(frame: pd.DataFrame, runs: Sequence[RunView]) -> str:
    """Which runtimes, device, threads and inputs the table's numbers used, how its speed-ups
    were measured, and what its quality is for these pipelines."""
    s = latency_setting(frame)
    devices = sorted({str(r.record.env.get("device_name")) for r in runs if r.record.env})
    sizes = ", ".join(map(str, s["inputs"])) or "an unrecorded size"
    threads = ", ".join(map(str, s["threads"])) or "unrecorded"
    runtimes = " and ".join(s["runtimes"]) or "no runtime"
    thread_word = "thread" if s["threads"] == [1] else "threads"
    weights = sorted({str(r.record.params.get("weights_note")) for r in runs
                      if r.record.params.get("weights_note")})  # fmt: skip
    said = f" Weights: {'; '.join(weights)}." if weights else ""
    return (
        f"Latencies: {runtimes} on {', '.join(devices) or 'an unrecorded device'}, "
        f"{threads} intra-op {thread_word}, one forward of {sizes}. {speedup_note(frame)} "
        f"{quality_of(frame).sentence}{said}"
    )


def _speedup_text(value: float, basis: str, reliable: bool) -> str:
    return "—" if pd.isna(value) else fmt.times(value) + speedup_mark(basis, reliable)


def _table(frame: pd.DataFrame) -> str:
    quality = quality_of(frame)
    shown = frame.copy()
    for runtime in ("torch", "ort"):
        shown[f"{runtime}_latency_ms"] = shown_latency(frame, runtime)
        shown[f"{runtime}_speedup"] = [
            _speedup_text(v, b, bool(r))
            for v, b, r in zip(shown[f"{runtime}_speedup"], shown["speedup_basis"],
                               shown["speedup_reliable"], strict=True)
        ]  # fmt: skip
    columns = {"step": "step", "method": "method", "source": "from", "file_bytes": "size",
               "size_x": "x smaller", "macs_ratio": "MACs x",
               "torch_latency_ms": "torch", "torch_speedup": "x faster (torch)",
               "ort_latency_ms": "ONNX Runtime", "ort_speedup": "x faster (ORT)"}  # fmt: skip
    if quality.column == "test_psnr_db":
        columns |= {"test_psnr_db": "PSNR (dB)", "psnr_delta_db": "Δ dense (dB)",
                    "quality_delta_db": "Δ same training (dB)",
                    "fidelity_psnr_db": "fidelity (dB)"}  # fmt: skip
    else:
        columns |= {"fidelity_snr_db": "SNR to dense (dB)", "fidelity_rel_l2_error": "rel. L2 error",
                    "fidelity_psnr_db": "PSNR to dense (dB)",
                    "fidelity_top1_agreement": "top-1 agreement"}  # fmt: skip
        keep = ("fidelity_snr_db", "fidelity_rel_l2_error")  # the columns every output has
        columns = {c: h for c, h in columns.items()
                   if c in keep or not c.startswith("fidelity") or frame[c].notna().any()}  # fmt: skip
    columns["trained_steps"] = "training steps"
    two = lambda v: f"{v:.2f}"  # noqa: E731
    formats = {"file_bytes": fmt.nbytes, "size_x": fmt.times, "macs_ratio": fmt.times,
               "torch_latency_ms": fmt.ms, "ort_latency_ms": fmt.ms, "test_psnr_db": two,
               "psnr_delta_db": lambda v: f"{v:+.2f}", "quality_delta_db": lambda v: f"{v:+.2f}",
               "fidelity_psnr_db": two, "fidelity_snr_db": two,
               "fidelity_rel_l2_error": lambda v: f"{v:.2%}",
               "fidelity_top1_agreement": fmt.pct, "trained_steps": fmt.integer}  # fmt: skip
    if quality.column != "test_psnr_db":  # the dense model is the reference of its fidelity
        reference = _is_reference(frame)
        for column in [c for c in columns if c.startswith("fidelity")]:
            write = formats.pop(column)
            shown[column] = [
                "reference" if ref else "—" if pd.isna(v) else write(v)
                for v, ref in zip(frame[column], reference, strict=True)
            ]
    body = page.wide(page.table(shown, columns=columns, formats=formats))
    notes = caveats(frame)
    return body + (page.bullets(notes, "note") if notes else "")


def _is_reference(frame: pd.DataFrame) -> pd.Series:
    """The dense runs: the reference fidelity is scored against (identical to themselves)."""
    return frame["method"].eq(DENSE) | frame["step"].eq(DENSE)


def _store_of(runs: Sequence[RunView]):
    parent = runs[0].path.parent if runs else None
    return parent.parent if parent is not None and parent.name == RUNS_DIR else None


def render(runs: Sequence[RunView], front_only: bool = False) -> str:
    """The compression section body for compress runs (only Pareto-front rows if
    ``front_only``), speed-ups from their pipelines' re-timing runs in the same store."""
    records = with_retimes([r.record for r in runs], _store_of(runs))
    frame = compression_frame(records)
    if frame.empty:
        return page.note("No compression runs were given.")
    quality = quality_of(frame)
    runtime = latency_column(frame)
    cost = cost_column(frame, runtime[0]) if runtime is not None else None
    # fidelity is scored against the dense model: its own score (identical) is no point to plot
    fidelity = quality.column != "test_psnr_db"
    scored = frame[~_is_reference(frame)] if fidelity else frame
    shown = frame
    if front_only:
        keep = set(front(scored, "file_bytes", quality.column).index)
        if cost is not None:
            keep |= set(front(scored, cost, quality.column).index)
        keep |= set(frame.index[_is_reference(frame)]) if fidelity else set()
        shown = frame.loc[sorted(keep)] if keep else frame
    intro = (
        "Compress runs of this model, variant and weights from the same run store: the steps on "
        "a Pareto front (not beaten on both quality and latency, or quality and size)."
        if front_only and len(shown) < len(frame)
        else "Every compression step is a run; ratios are to its pipeline's dense model."
    )
    body = page.paragraph(intro) + page.note(setting_sentence(frame, runs)) + _table(shown)
    if runtime is not None and cost is not None:
        when = "re-timed interleaved" if cost != runtime[0] else "each step's own, not comparable"
        body += _pareto_chart(scored, cost, f"{runtime[1]} latency, {when} (ms)", quality)
    return body + _pareto_chart(scored, "file_bytes", "file size (bytes)", quality)


def _unquoted_fidelity(view: RunView) -> str:
    """Why the INT8 clause quotes no fidelity: a degenerate reference (a constant class, a
    near-constant output), a flagged measurement, or none made."""
    degenerate = view.metric(S.INT8_REFERENCE)
    if isinstance(degenerate, str):
        return f"with no fidelity to quote ({degenerate})"
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
        caveat = f"; its speed-up is marked unreliable: {reason}"
    return (
        f"ONNX Runtime INT8 of the dense model, without training, is {speed} than "
        f"ONNX Runtime fp32 on this device{where}{size}, {kept}{caveat}"
    )


def _speed_words(row: pd.Series, speed: str, name: str) -> str:
    value = row[speed]
    words = f"{value:.1f}x faster" if value >= 1 else f"{1 / value:.1f}x slower"
    if row["speedup_basis"] != "retimed":
        return f"{words} in {name} (timed in separate steps: not comparable)"
    if not row["speedup_reliable"]:
        return f"{words} in {name} (re-timed together, but not reliably: busy host or rounds that disagree)"
    return f"{words} in {name}"


def _compressed_clause(views: Sequence[RunView]) -> str | None:
    frame = compression_frame(with_retimes([v.record for v in views], _store_of(views)))
    quality = quality_of(frame)
    control = frame["method"].isin(CONTROL_METHODS) & ~frame["pruned"].astype(bool)
    frame = frame[~control]  # the dense model and its equally trained controls
    runtime = latency_column(frame) if not frame.empty else None
    if runtime is None:
        return None
    column, name = runtime
    speed = "ort_speedup" if column == "ort_latency_ms" else "torch_speedup"
    if quality.column != "test_psnr_db":
        return _fidelity_clause(frame[frame[speed].notna()], speed, name, quality)
    timed = frame[frame[speed].notna() & frame["psnr_delta_db"].notna()]
    if timed.empty:
        return None
    good = timed[timed["psnr_delta_db"] >= -QUALITY_BUDGET_DB]
    if good.empty:
        best = timed.loc[timed["psnr_delta_db"].idxmax()]
        return (
            f"none of the {len(timed)} compressed models stored for it stays within "
            f"{QUALITY_BUDGET_DB:g} dB of the dense model (closest: {best['step']}, "
            f"{_speed_words(best, speed, name)} at {best['psnr_delta_db']:+.2f} dB)"
        )
    best = good.loc[good[speed].idxmax()]
    return (
        f"the fastest stored compressed model within {QUALITY_BUDGET_DB:g} dB of it, "
        f"{best['step']}, is {_speed_words(best, speed, name)} and {best['size_x']:.1f}x "
        f"smaller at {best['psnr_delta_db']:+.2f} dB"
    )


def _fidelity_clause(timed: pd.DataFrame, speed: str, name: str, quality: Quality) -> str | None:
    """The fastest stored model and its fidelity to the dense output (no task metric: no
    quality budget to judge it by, so the numbers are given as they are)."""
    if timed.empty:
        return None
    best = timed.loc[timed[speed].idxmax()]
    value = best[quality.column] if quality.column is not None else None
    if value is None or pd.isna(value):
        kept = "with no fidelity score to quote"
    elif quality.column == "fidelity_top1_agreement":
        kept = f"at {value:.0%} top-1 agreement with the dense model"
    else:
        what = quality.label.removesuffix(" (dB)")
        kept = f"at {value:.1f} dB {what}"
        top1 = best["fidelity_top1_agreement"]
        kept += f" ({top1:.0%} top-1 agreement)" if not pd.isna(top1) else ""
    return (
        f"the fastest stored compressed model, {best['step']}, is "
        f"{_speed_words(best, speed, name)} and {best['size_x']:.1f}x smaller, {kept}"
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
            return f"left out: {view.reason(key)}" if view.reason(key) else "—"
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
