"""Time per aten op from torch.profiler, and its shares by op category."""

from __future__ import annotations

from dataclasses import replace

from effprof import schema as S
from effprof.measure.latency import LatencyResult
from effprof.measure.optime import OpTime, op_time
from effprof.recipes.profile.latency import latency
from effprof.recipes.profile.steps import Output, StepContext, step
from effprof.recipes.profile.threads import threads
from effprof.results import Missing


def _off(config) -> str | None:
    return None if config.optime else "op time turned off (optime: false)"


@step("optime", label="time per op", needs=(threads,), uses=(latency,), runs_model=True,
      skip=_off)  # fmt: skip
def optime(ctx: StepContext) -> Output[OpTime | Missing]:
    """torch.profiler's self time of every op over a few forwards, per op and per category;
    right after the latency measurement the model is warm: one warm-up forward, not the
    protocol's several."""
    spec = ctx.get(threads).spec
    if isinstance(ctx.maybe(latency), LatencyResult):
        spec = replace(spec, warmup=min(spec.warmup, 1))
    timing = op_time(ctx.target.runnable(ctx.model), ctx.target.inputs, spec)
    if isinstance(timing, Missing):
        return Output(timing, {S.OPTIME_TOTAL_MS: timing})
    tables = {"optime_ops": timing.ops, "optime_categories": timing.categories}
    return Output(timing, dict(timing.summary()), tables)
