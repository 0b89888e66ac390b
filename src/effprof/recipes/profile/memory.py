"""Measured peak memory of one forward (CUDA allocator statistics, or peak RSS in a child)."""

from __future__ import annotations

from functools import partial

from torch import nn

from effprof import schema as S
from effprof.measure.memory import MemoryResult, measure_peak_memory
from effprof.models import PadToMultiple, is_import_spec, load_subject
from effprof.recipes.profile.steps import Output, StepContext, step
from effprof.recipes.profile.threads import threads
from effprof.results import Missing


def build_runnable(
    name: str, variant: str | None, weights: str | None, multiple: int | None
) -> nn.Module:
    """The profiled model built again on the CPU, padded to ``multiple`` when the profile pads
    (the peak-memory child builds a named model this way: transformers' hooks do not survive
    pickling)."""
    model = load_subject(name, variant, weights, device="cpu").model
    return PadToMultiple(model, multiple) if multiple else model


@step("memory", label="peak memory", needs=(threads,), runs_model=True,
      missing=(S.MEMORY_ACTIVATION_PEAK_BYTES,))  # fmt: skip
def memory(ctx: StepContext) -> Output[MemoryResult | Missing]:
    """Peak memory of one forward at the profile's inputs, precision and threads."""
    target, config = ctx.target, ctx.config
    rebuild = None
    if ctx.entry.registered or is_import_spec(config.model):  # a name: build it again there
        multiple = target.multiple if target.pads else None
        rebuild = partial(build_runnable, config.model, config.variant, config.weights, multiple)
    runnable = target.runnable(ctx.model)
    result = measure_peak_memory(runnable, target.inputs, ctx.get(threads).spec, rebuild=rebuild)
    if isinstance(result, Missing):
        return Output(result, {S.MEMORY_PEAK_BYTES: result, S.MEMORY_ACTIVATION_PEAK_BYTES: result})
    metrics = {**result.summary(), S.MEMORY_METHOD: result.method}
    notes = [f"memory: {n}" for n in result.notes]
    return Output(result, metrics, {"memory": result.to_frame()}, notes)
