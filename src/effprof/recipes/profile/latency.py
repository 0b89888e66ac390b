"""Latency of one forward under the documented protocol, at the profile's thread count."""

from __future__ import annotations

from effprof import schema as S
from effprof.measure.latency import LatencyResult, measure_latency
from effprof.recipes.profile.steps import Output, StepContext, step
from effprof.recipes.profile.threads import threads
from effprof.results import Missing, Unreliable


def timed_metrics(result: LatencyResult, names: S.LatencyNames, prefix: str = "") -> dict:
    """A latency's metrics; its timed numbers marked unreliable (with the reason) when the
    measurement failed its reliability test."""
    metrics = {k: v for k, v in result.summary().items() if k.startswith(("latency", "throughput"))}
    metrics = {f"{prefix}{k}": v for k, v in metrics.items()}
    if not result.reliable:
        why = result.unreliable_reason or "failed the reliability test"
        for name in names.timed:
            if name in metrics and not isinstance(metrics[name], Missing):
                metrics[name] = Unreliable(metrics[name], why)
    return metrics


@step("latency", label="latency", needs=(threads,), runs_model=True,
      missing=(S.LATENCY.median_ms, S.LATENCY.throughput_mpix_s))  # fmt: skip
def latency(ctx: StepContext) -> Output[LatencyResult | Missing]:
    """Warm-up, then repeated timed forwards (median, p10/p90, CV, every sample, the host load)."""
    spec = ctx.get(threads).spec
    result = measure_latency(ctx.target.runnable(ctx.model), ctx.target.inputs, spec)
    if isinstance(result, Missing):
        return Output(result, {S.LATENCY.median_ms: result, S.LATENCY.throughput_mpix_s: result})
    metrics = {**result.summary(), **timed_metrics(result, S.LATENCY)}
    metrics[S.LATENCY_TIMER] = result.timer
    notes = [f"latency: {n}" for n in result.notes]
    if not result.reliable:
        notes.append(f"latency marked unreliable: {result.unreliable_reason}")
    return Output(result, metrics, {"latency": result.to_frame()}, notes)
