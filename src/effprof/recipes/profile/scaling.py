"""Cost against resolution: counts at several sizes on meta (always: free), latency at the
``--resolutions`` sizes where it fits a time budget, the fitted laws, where attention overtakes
the rest, and what an input 3x larger costs."""

from __future__ import annotations

import time
from typing import Any

import pandas as pd

from effprof import schema as S
from effprof.config import ProfileConfig
from effprof.measure.counting import count_model
from effprof.measure.latency import LatencySpec, measure_latency
from effprof.measure.scaling import (
    COUNT_QUANTITIES,
    MEASURED_QUANTITIES,
    CountLaw,
    PowerLaw,
    count_sweep,
    crossover,
    default_sizes,
    fit_table,
    law_of,
    padded,
    resolution_label,
    three_x_table,
)
from effprof.recipes.profile.count import Counted, count
from effprof.recipes.profile.latency import latency
from effprof.recipes.profile.steps import Output, StepContext, step
from effprof.recipes.profile.target import ProfileTarget
from effprof.recipes.profile.threads import threads
from effprof.results import EffprofError, Missing
from effprof.units import parse_resolutions

SWEEP_TIME_BUDGET_S = 120.0  # the resolution sweep's latency: sizes predicted past it are skipped
SWEEP_WARMUP, SWEEP_REPEAT = 1, 3


def _sweep_latency(
    ctx: StepContext, spec: LatencySpec, sweep: pd.DataFrame, notes: list[str]
) -> list[Any]:
    """Median latency at each size, smallest first, while the predicted cost fits the budget."""
    target = ctx.target
    runnable = target.runnable_at_any_size(ctx.model)
    values: list[Any] = []
    spent = 0.0
    per_pixel_s = None
    measured = ctx.maybe(latency)
    median = getattr(measured, "median_ms", None)
    if isinstance(median, float):
        per_pixel_s = median / 1e3 / (target.padded_shape[-2] * target.padded_shape[-1])
    forwards = SWEEP_WARMUP + SWEEP_REPEAT
    for row in sweep.itertuples():
        shape = (target.input_shape[0], target.input_shape[1], row.height, row.width)
        predicted = per_pixel_s * row.padded_pixels * forwards if per_pixel_s else 0.0
        if spent + predicted > SWEEP_TIME_BUDGET_S:
            values.append(Missing(
                f"skipped: predicted {predicted:.0f} s for {forwards} forwards at "
                f"{row.resolution} would pass the sweep's {SWEEP_TIME_BUDGET_S:.0f} s budget"
            ))  # fmt: skip
            continue
        ctx.progress(f"resolution sweep: latency at {row.resolution}")
        begin = time.perf_counter()
        result = measure_latency(runnable, shape, spec)
        spent += time.perf_counter() - begin
        if isinstance(result, Missing):
            values.append(result)
            continue
        if not result.reliable:
            notes.append(
                f"resolution sweep: latency at {row.resolution} unreliable: "
                f"{result.unreliable_reason}"
            )
        values.append(result.median_ms)
        per_pixel_s = result.median_ms / 1e3 / row.padded_pixels
    return values


def _requested_sizes(config: ProfileConfig, target: ProfileTarget) -> list[tuple[int, ...]]:
    """``--resolutions`` (images: 256, 720p, HxW; other inputs: counts such as 10000) with the
    profiled size; empty without ``--resolutions``."""
    size = target.inputs.size
    if config.resolutions is None:
        return []
    if len(size) == 2:
        return [size, *parse_resolutions(config.resolutions)]
    try:
        given = [tuple(int(v) for v in part.split("x")) for part in config.resolutions.split(",")]
    except ValueError:
        raise EffprofError(
            f"--resolutions {config.resolutions[:60]!r}: the inputs grow along {len(size)} "
            "dimension(s); give sizes such as 10000,50000"
        ) from None
    if any(len(g) != len(size) or min(g) < 1 for g in given):
        raise EffprofError(f"--resolutions: every size needs {len(size)} positive number(s)")
    return [size, *given]


@step("scaling", label="counting at other sizes on meta", needs=(count,),
      uses=(threads, latency), missing=(S.SCALING_MACS_EXPONENT,))  # fmt: skip
def scaling(ctx: StepContext) -> Output[pd.DataFrame | Missing]:
    """Counts at several sizes (always), latency at ``--resolutions`` where it fits the budget
    and the thread count was chosen; the laws, the crossover and the 3x answer."""
    target, config, counted = ctx.target, ctx.config, ctx.get(count)
    inputs = target.inputs
    if ctx.entry.fixed_size or not inputs.resizable:
        why = (
            "the model takes a fixed input size"
            if ctx.entry.fixed_size
            else "the inputs have no size"
        )
        fixed = Missing(f"no scaling: {why} (registry entry)")
        return Output(fixed, {S.SCALING_MACS_EXPONENT: fixed})
    requested = _requested_sizes(config, target)
    sizes = [*default_sizes(inputs.size), *requested]  # counting is free: always enough for a law
    known = {tuple(target.padded_inputs.size): counted.result}
    sweep = count_sweep(ctx.model, inputs, sizes, multiple=target.multiple, known=known)
    usable = sweep[sweep["count_missing"].isna()] if "count_missing" in sweep else sweep
    if len(usable) < 2:
        reasons = sorted({r.rstrip(". ") for r in sweep["count_missing"].dropna()})
        why = reasons[0] if reasons else "no other size was counted"
        more = f" (and {len(reasons) - 1} other reason(s))" if len(reasons) > 1 else ""
        one = Missing(f"the model counts at one size only: {why}{more}")
        return Output(one, {S.SCALING_MACS_EXPONENT: one}, {"scaling": _stored(sweep)})
    notes: list[str] = []
    timing = ctx.maybe(threads)
    if requested and inputs.is_image and timing is not None:
        sweep_spec = LatencySpec(
            **{**timing.spec.__dict__, "warmup": SWEEP_WARMUP, "repeat": SWEEP_REPEAT}
        )
        timed = usable[usable["resolution"].isin({resolution_label(s) for s in requested})]
        latencies = _sweep_latency(ctx, sweep_spec, timed, notes)
        values = dict(zip(timed["resolution"], latencies, strict=True))
        sweep[S.LATENCY.median_ms] = [
            v if isinstance(v := values.get(r), float) else None for r in sweep["resolution"]
        ]
        sweep["latency_missing"] = [
            v.reason if isinstance(v := values.get(r), Missing) else None
            for r in sweep["resolution"]
        ]
        sweep[S.LATENCY.median_ms] = sweep[S.LATENCY.median_ms].astype(float)
    fits = fit_table(sweep)
    _add_law_columns(sweep, fits)
    three_x = three_x_table(
        sweep, inputs.size, multiple=target.multiple, batch=inputs.batch, image=inputs.is_image,
        exact=lambda size: _exact(ctx, counted, size),
    )  # fmt: skip
    tables = {"scaling": _stored(sweep), "scaling_fits": fits, "scaling_3x": three_x}
    return Output(sweep, _scaling_metrics(fits, inputs), tables, notes)


def _stored(sweep: pd.DataFrame) -> pd.DataFrame:
    """The sweep as stored: counts as integers, null at a size that could not be counted (a
    float column with NaN would not read back as the counts it holds)."""
    counts = [c for c in COUNT_QUANTITIES if c in sweep]
    return sweep.astype({c: "Int64" for c in counts})


def _exact(ctx: StepContext, counted: Counted, size: tuple[int, ...]) -> dict[str, float]:
    """The exact count at ``size`` (the 3x answer checks its law against it)."""
    inputs, multiple = ctx.target.inputs, ctx.target.multiple
    grown = tuple(padded(d, multiple) for d in size) if inputs.is_image else size
    try:
        result = count_model(ctx.model, inputs.with_size(grown))
    except EffprofError:
        return {}
    return {"macs": result.macs, "flops": result.flops,
            "activation_peak_bytes": result.activation_peak_bytes}  # fmt: skip


def _add_law_columns(sweep: pd.DataFrame, fits: pd.DataFrame) -> None:
    """Each measured quantity's law value and residual (measured / law - 1) at every size."""
    for quantity in MEASURED_QUANTITIES:
        law = law_of(fits, quantity)
        if not isinstance(law, PowerLaw) or quantity not in sweep:
            continue
        fitted = law.k * sweep["positions"].astype(float) ** law.alpha
        sweep[f"{quantity}_law"] = fitted
        sweep[f"{quantity}_residual"] = sweep[quantity] / fitted - 1


def _no_crossover(attention: CountLaw, other: CountLaw) -> str:
    """Why attention's MACs have no crossover with the rest's, as the laws say."""
    if attention.predict(attention.p_min) > other.predict(attention.p_min):
        return "attention does more MACs than everything else already at the smallest size: no crossover"
    if not other.passed:
        return "the MACs outside attention follow no law: no crossover can be computed"
    return "by the fitted laws, attention's MACs stay below the rest's at every size"


def _scaling_metrics(fits: pd.DataFrame, inputs: Any) -> dict[str, Any]:
    """Flat metrics of the laws: MACs' growth exponent, where attention overtakes the rest."""
    metrics: dict[str, Any] = {}
    macs = law_of(fits, "macs")
    if isinstance(macs, CountLaw) and macs.passed:
        metrics[S.SCALING_MACS_EXPONENT] = macs.exponent(macs.p_max)
        metrics[S.SCALING_MACS_QUADRATIC] = macs.quadratic
    attention, other = law_of(fits, "macs_attention"), law_of(fits, "macs_other")
    counted = isinstance(attention, CountLaw) and isinstance(other, CountLaw)
    if counted and attention.passed and attention.predict(attention.p_max) > 0:
        metrics[S.SCALING_ATTENTION_QUADRATIC] = attention.quadratic
        at = crossover(attention, other) if other.passed else None
        metrics[S.SCALING_ATTENTION_CROSSOVER] = (
            at if at is not None else Missing(_no_crossover(attention, other))
        )
    latency = law_of(fits, S.LATENCY.median_ms)
    if isinstance(latency, PowerLaw):
        metrics[S.SCALING_LATENCY_EXPONENT] = latency.alpha
        metrics[S.SCALING_LATENCY_LAW_PASSED] = latency.passed
    return metrics
