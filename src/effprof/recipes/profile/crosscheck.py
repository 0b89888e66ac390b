"""The same model counted by FlopCounterMode, fvcore and thop beside effprof, each difference
explained (fvcore and thop run the real model, at a reduced size where the model allows)."""

from __future__ import annotations

import pandas as pd
from torch import nn

from effprof.measure.counting import count_model
from effprof.measure.crosscheck import cross_check
from effprof.measure.precision import num_threads
from effprof.models import InputSpec, padded_size
from effprof.recipes.profile.steps import Output, StepContext, step
from effprof.recipes.profile.target import ProfileTarget
from effprof.recipes.profile.threads import threads
from effprof.results import EffprofError

# fvcore and thop run the real model on CPU (thop: minutes for MSSNet-base at 256)
CROSSCHECK_MAX_SIDE = 64
CROSSCHECK_MAX_POSITIONS = 4096


def crosscheck_inputs(model: nn.Module, target: ProfileTarget, fixed: bool) -> InputSpec:
    """The inputs fvcore and thop run the real model at: the profiled ones, shrunk to at most
    64 px per side (images, keeping the multiple) or 4,096 along other sizes, where the model
    takes them (checked by counting on meta: free); a fixed-size model keeps its own."""
    spec = target.padded_inputs
    if fixed or not spec.resizable:
        return spec
    size = spec.size
    if spec.is_image:
        scale = min(1.0, CROSSCHECK_MAX_SIDE / max(size))
        h, w = (max(1, round(d * scale)) for d in size)
        small = padded_size(h, w, max(target.multiple, 1))
    else:
        small = tuple(min(d, CROSSCHECK_MAX_POSITIONS) for d in size)
    if tuple(small) == tuple(size):
        return spec
    candidate = spec.with_size(small)
    try:
        count_model(model, candidate)
    except EffprofError:  # the model rejects that size: run the tools at the profiled inputs
        return spec
    return candidate


def _off(config) -> str | None:
    return None if config.crosscheck else "cross-check turned off (crosscheck: false)"


@step("crosscheck", label="cross-checking counters", needs=(threads,), runs_model=True,
      skip=_off)  # fmt: skip
def crosscheck(ctx: StepContext) -> Output[pd.DataFrame]:
    """effprof / FlopCounterMode / fvcore / thop side by side (the ``crosscheck`` table)."""
    target = ctx.target
    with num_threads(ctx.get(threads).spec.threads):  # fvcore and thop run the model
        check = cross_check(
            ctx.model, target.padded_inputs,
            real_inputs=crosscheck_inputs(ctx.model, target, ctx.entry.fixed_size),
            references=ctx.entry.references(target.variant),
        )  # fmt: skip
    table = check.to_frame()
    return Output(table, tables={"crosscheck": table})
