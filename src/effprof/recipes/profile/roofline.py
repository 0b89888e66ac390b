"""How close to the hardware: each layer against this device's measured ceilings (cached, or
measured now with ``--roofline``)."""

from __future__ import annotations

import pandas as pd

from effprof import schema as S
from effprof.measure.precision import PRECISION_DTYPES
from effprof.measure.roofline import Ceilings, device_ceilings, layer_roofline, model_floors
from effprof.recipes.profile.attribution import attribution
from effprof.recipes.profile.count import count
from effprof.recipes.profile.latency import latency
from effprof.recipes.profile.steps import Output, StepContext, step
from effprof.recipes.profile.threads import threads
from effprof.results import Missing


@step("roofline", label="roofline", needs=(count, threads), uses=(attribution, latency),
      runs_model=True, missing=(S.ROOFLINE_FLOOR_MS,))  # fmt: skip
def roofline(ctx: StepContext) -> Output[pd.DataFrame | Missing]:
    """Per-layer roofline time, the compute and memory floors, and the latency against them."""
    config = ctx.config
    ceilings = device_ceilings(ctx.target.device, config.precision,
                               ctx.get(threads).spec.threads, measure=config.roofline)  # fmt: skip
    if isinstance(ceilings, Missing):
        return Output(ceilings, {S.ROOFLINE_FLOOR_MS: ceilings})
    assert isinstance(ceilings, Ceilings)
    attributed = ctx.maybe(attribution)
    labels = attributed.labels.drop(columns="time_ms", errors="ignore") if attributed else None
    layers = layer_roofline(
        ctx.get(count).result.ops, ceilings,
        call_times=attributed.times if attributed else None, labels=labels,
        element_bytes=PRECISION_DTYPES[config.precision].itemsize,
    )  # fmt: skip
    measured = ctx.maybe(latency)
    median = getattr(measured, "median_ms", None)
    metrics = {**ceilings.summary(),
               **model_floors(ctx.get(count).result.flops, layers, ceilings, median)}  # fmt: skip
    return Output(layers, metrics, {"roofline_layers": layers})
