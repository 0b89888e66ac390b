"""The one thread count every timer of a profile uses: ``--threads``, or what the host allows."""

from __future__ import annotations

from dataclasses import dataclass, replace

from effprof import schema as S
from effprof.measure.interleave import ThreadChoice, choose_threads
from effprof.measure.session import LatencySpec
from effprof.recipes.profile.steps import Output, StepContext, step


@dataclass(frozen=True)
class Timing:
    """The timing protocol of the profile with its thread count chosen (the one source of
    truth: latency, memory, op time, ONNX Runtime, INT8, the cross-check and the environment
    record use ``spec.threads``)."""

    spec: LatencySpec
    choice: ThreadChoice | None  # None when --threads fixed the count


@step("threads", label="threads for this host", runs_model=True,
      missing=(S.LATENCY_THREADS_CHOICE,))  # fmt: skip
def threads(ctx: StepContext) -> Output[Timing]:
    """``--threads`` as given, else the count this host's load allows (a brief 1-vs-N trial when
    it is busy; the run says which and why)."""
    spec = ctx.target.latency_spec(ctx.config)
    if ctx.config.threads is not None:
        choice = {S.LATENCY_THREADS_CHOICE: f"{ctx.config.threads} (--threads)"}
        return Output(Timing(spec, None), choice)
    runnable = ctx.target.runnable(ctx.model)
    chosen = choose_threads(runnable, ctx.target.inputs, spec)
    out = Output(Timing(replace(spec, threads=chosen.threads), chosen), dict(chosen.summary()))
    if chosen.trial is not None:
        out.tables["threads_trial"] = chosen.trial.rounds
        out.notes.append(f"threads: {chosen.reason}")
    return out
