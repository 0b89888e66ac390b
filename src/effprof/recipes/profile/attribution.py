"""Where the cost goes: every aten call timed, then MACs, parameters, activation bytes and time
rolled up by the model's components (its registered map, or the module tree)."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from effprof import schema as S
from effprof.measure.attribution import Attribution, attribute
from effprof.measure.calltime import CallTimes, call_times
from effprof.measure.module_map import module_map
from effprof.recipes.profile.count import count, params
from effprof.recipes.profile.latency import latency
from effprof.recipes.profile.steps import Output, StepContext, step
from effprof.recipes.profile.threads import threads
from effprof.results import Missing

CALLTIME_BUDGET_MS = 3000.0


@step("calltime", label="time per aten call", needs=(count, threads), uses=(latency,),
      runs_model=True, missing=(S.CALLTIME_TOTAL_MS,))  # fmt: skip
def calltime(ctx: StepContext) -> Output[CallTimes | Missing]:
    """The fastest of 2 to 5 passes per aten call, as many as fit in about CALLTIME_BUDGET_MS;
    right after the latency measurement the model is warm and needs no warm-up pass."""
    measured = ctx.maybe(latency)
    median = getattr(measured, "median_ms", None)
    warm = isinstance(median, float)
    runs = max(2, min(5, int(CALLTIME_BUDGET_MS / median))) if warm else 2
    times = call_times(
        ctx.model, ctx.target.padded_inputs, ctx.get(threads).spec,
        counted=ctx.get(count).result.ops, runs=runs, warmup=0 if warm else 1,
    )  # fmt: skip
    if isinstance(times, Missing):
        note = f"attribution: time per component not measured: {times.reason}"
        return Output(times, {S.CALLTIME_TOTAL_MS: times}, notes=[note])
    metrics = {**times.summary(), S.CALLTIME_TIMER: times.timer, S.CALLTIME_PASSES: runs}
    return Output(times, metrics, notes=[f"attribution: {n}" for n in times.notes])


@dataclass(frozen=True)
class Attributed:
    """The roll-up, and every counted op with its component labels (and time, when timed)."""

    result: Attribution
    labels: pd.DataFrame

    @property
    def times(self) -> pd.DataFrame | None:
        """seq, time_ms per counted op (None when nothing was timed)."""
        return self.labels[["seq", "time_ms"]] if "time_ms" in self.labels else None


@step("attribution", label="attribution", needs=(count, params), uses=(calltime,))
def attribution(ctx: StepContext) -> Output[Attributed]:
    """MACs, parameters, bytes and (when timed) time per scale, stage, part and op category."""
    ops = ctx.get(count).result.ops
    times = ctx.maybe(calltime)
    timed = times if isinstance(times, CallTimes) else None
    components = ctx.entry.components or module_map(ctx.model, ops)
    result = attribute(ops, ctx.get(params).to_frame(), components=components,
                       call_times=timed.table if timed else None)  # fmt: skip
    notes = dict(getattr(components, "notes", {}) or {})
    labels = result.labels
    if timed is not None:
        labels = labels.assign(time_ms=timed.table["time_ms"].to_numpy())
    tables = {
        "attribution": result.to_frame(),
        "component_notes": pd.DataFrame({"dimension": list(notes), "note": list(notes.values())}),
        "op_labels": labels,
    }
    metrics = dict(result.summary())
    metrics[S.COMPONENT_MAP] = (
        "the model's registered component map" if ctx.entry.components else "module tree"
    )
    return Output(Attributed(result, labels), metrics, tables)
