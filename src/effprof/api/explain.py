"""The "why is it so cheap" measurements of a profile: attribution, counterfactuals, roofline and
the resolution sweep. Each adds metrics and tables to the profile's ``Collected`` (in memory; the
profile job writes the run at the end).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pandas as pd
import torch
from torch import nn

from effprof.measure.attribution import attribute
from effprof.measure.calltime import call_times
from effprof.measure.counterfactual import Counterfactual, count_counterfactuals
from effprof.measure.counting import CountResult, count_model
from effprof.measure.latency import LatencySpec, measure_latency
from effprof.measure.module_map import module_map
from effprof.measure.precision import PRECISION_DTYPES
from effprof.measure.roofline import Ceilings, device_ceilings, layer_roofline, model_floors
from effprof.measure.scaling import (
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
from effprof.models import PadToMultiple, build_model
from effprof.models.registry import ModelEntry
from effprof.results import EffprofError, Missing
from effprof.units import parse_resolutions

if TYPE_CHECKING:
    from effprof.api.profile import Collected, ProfileTarget

Progress = Callable[[str], None]
SWEEP_TIME_BUDGET_S = (
    120.0  # latency of the resolution sweep: sizes predicted to overrun it are skipped
)
SWEEP_WARMUP, SWEEP_REPEAT = 1, 3
CALLTIME_BUDGET_MS = 3000.0


def measure_attribution(
    model: nn.Module,
    entry: ModelEntry,
    target: ProfileTarget,
    spec: LatencySpec,
    count: CountResult,
    params: pd.DataFrame,
    out: Collected,
    *,
    timed: bool = True,
) -> None:
    """Time every aten call (unless not ``timed``), then roll MACs/params/bytes/time up by the
    model's components."""
    latency = out.metrics.get("latency_median_ms")
    # Fastest of 2 to 5 passes, as many as fit in about CALLTIME_BUDGET_MS; the latency
    # measurement just ran this model, so no warm-up pass is needed.
    warm = isinstance(latency, float)
    runs = max(2, min(5, int(CALLTIME_BUDGET_MS / latency))) if warm else 2
    times = (
        call_times(
            model, target.padded_inputs, spec, counted=count.ops, runs=runs,
            warmup=0 if warm else 1,
        )
        if timed
        else Missing("count-only run: nothing was timed")
    )  # fmt: skip
    if isinstance(times, Missing):
        if timed:
            out.metrics["calltime_total_ms"] = times
            out.notes.append(f"attribution: time per component not measured: {times.reason}")
    else:
        out.add("", times.summary())
        out.notes.extend(f"attribution: {n}" for n in times.notes)
    components = entry.components or module_map(model, count.ops)
    result = attribute(
        count.ops, params, components=components,
        call_times=None if isinstance(times, Missing) else times.table,
    )  # fmt: skip
    out.add("", result.summary())
    out.tables["attribution"] = result.to_frame()
    notes = dict(getattr(components, "notes", {}) or {})
    out.tables["component_notes"] = pd.DataFrame(
        {"dimension": list(notes), "note": list(notes.values())}
    )
    labels = result.labels
    if not isinstance(times, Missing):
        labels = labels.assign(time_ms=times.table["time_ms"].to_numpy())
        out.metrics["calltime_timer"] = times.timer
    out.tables["op_labels"] = labels
    out.metrics["component_map"] = (
        "the model's registered component map" if entry.components else "module tree"
    )


def _counterfactual_models(entry: ModelEntry, variant: str | None) -> list[Counterfactual]:
    items = []
    with torch.device("meta"):
        for name, (isolates, build) in entry.counterfactuals.items():
            items.append(Counterfactual(name, "design", isolates, build(variant)))
        for other in entry.variants:
            if other != variant:
                text = f"width: the {other} variant, same architecture"
                items.append(Counterfactual(other, "variant", text, build_model(entry.name, other)))
    return items


def measure_counterfactuals(
    model: nn.Module, entry: ModelEntry, target: ProfileTarget, count: CountResult,
    out: Collected,
) -> None:  # fmt: skip
    """Count the model's registered counterfactuals and its other variants on the meta device."""
    if not (entry.counterfactuals or len(entry.variants) > 1):
        out.metrics["counterfactuals"] = Missing(
            "the model declares no counterfactuals or variants (registry entry)"
        )
        return
    table = count_counterfactuals(
        model, count, _counterfactual_models(entry, target.variant), components=entry.components
    )
    out.tables["counterfactuals"] = table.to_frame()
    out.tables["counterfactual_groups"] = table.groups
    for row in table.table.itertuples():
        if row.kind != "real":
            out.metrics[f"counterfactual_macs_ratio_{row.name.replace(' ', '_')}"] = row.macs_ratio


def measure_roofline(
    config: Any, target: ProfileTarget, count: CountResult, out: Collected
) -> None:
    """Per-layer roofline against the device's (cached or, with ``roofline``, measured) ceilings."""
    ceilings = device_ceilings(
        target.device, config.precision, config.threads, measure=config.roofline
    )
    if isinstance(ceilings, Missing):
        out.metrics["roofline_floor_ms"] = ceilings
        return
    assert isinstance(ceilings, Ceilings)
    out.add("", ceilings.summary())
    labels = out.tables.get("op_labels")
    times = labels[["seq", "time_ms"]] if labels is not None and "time_ms" in labels else None
    layers = layer_roofline(
        count.ops, ceilings, call_times=times,
        labels=labels.drop(columns="time_ms", errors="ignore") if labels is not None else None,
        element_bytes=PRECISION_DTYPES[config.precision].itemsize,
    )  # fmt: skip
    out.tables["roofline_layers"] = layers
    latency = out.metrics.get("latency_median_ms")
    out.add("", model_floors(count.flops, layers, ceilings, latency))


def _sweep_latency(
    model: nn.Module, target: ProfileTarget, spec: LatencySpec, sweep: pd.DataFrame,
    out: Collected, step: Progress,
) -> list[Any]:  # fmt: skip
    """Median latency at each size, smallest first, while the predicted cost fits the budget."""
    runnable = PadToMultiple(model, target.multiple) if target.multiple > 1 else model
    values: list[Any] = []
    spent = 0.0
    per_pixel_s = None
    latency = out.metrics.get("latency_median_ms")
    if isinstance(latency, float):
        per_pixel_s = latency / 1e3 / (target.padded_shape[-2] * target.padded_shape[-1])
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
        step(f"resolution sweep: latency at {row.resolution}")
        begin = time.perf_counter()
        result = measure_latency(runnable, shape, spec)
        spent += time.perf_counter() - begin
        if isinstance(result, Missing):
            values.append(result)
            continue
        if not result.reliable:
            out.notes.append(
                f"resolution sweep: latency at {row.resolution} unreliable: "
                f"{result.unreliable_reason}"
            )
        values.append(result.median_ms)
        per_pixel_s = result.median_ms / 1e3 / row.padded_pixels
    return values


def _requested_sizes(config: Any, target: ProfileTarget) -> list[tuple[int, ...]]:
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


def measure_scaling(
    model: nn.Module, config: Any, target: ProfileTarget, spec: LatencySpec, out: Collected,
    step: Progress, entry: ModelEntry, count: CountResult | None = None,
) -> None:  # fmt: skip
    """Counts at several sizes (always: free on meta), latency with ``--resolutions`` where it
    fits the budget; the laws, where attention overtakes the rest, and the 3x answer."""
    inputs = target.inputs
    if entry.fixed_size or not inputs.resizable:
        why = (
            "the model takes a fixed input size" if entry.fixed_size else "the inputs have no size"
        )
        out.metrics["scaling_macs_exponent"] = Missing(f"no scaling: {why} (registry entry)")
        return
    step("counting at other sizes on meta")
    requested = _requested_sizes(config, target)
    sizes = [*default_sizes(inputs.size), *requested]  # counting is free: always enough for a law
    known = {tuple(target.padded_inputs.size): count} if count is not None else {}
    sweep = count_sweep(model, inputs, sizes, multiple=target.multiple, known=known)
    counted = sweep[sweep["count_missing"].isna()] if "count_missing" in sweep else sweep
    if len(counted) < 2:
        reasons = sorted({r.rstrip(". ") for r in sweep["count_missing"].dropna()})
        why = reasons[0][:240] if reasons else "no other size was counted"
        more = f" (and {len(reasons) - 1} other reason(s))" if len(reasons) > 1 else ""
        out.metrics["scaling_macs_exponent"] = Missing(
            f"the model counts at one size only: {why}{more}"
        )
        out.tables["scaling"] = sweep
        return
    if requested and inputs.is_image and not config.count_only:
        sweep_spec = LatencySpec(
            **{**spec.__dict__, "warmup": SWEEP_WARMUP, "repeat": SWEEP_REPEAT}
        )
        timed = counted[counted["resolution"].isin({resolution_label(s) for s in requested})]
        latencies = _sweep_latency(model, target, sweep_spec, timed, out, step)
        values = dict(zip(timed["resolution"], latencies, strict=True))
        sweep["latency_median_ms"] = [
            v if isinstance(v := values.get(r), float) else None for r in sweep["resolution"]
        ]
        sweep["latency_missing"] = [
            v.reason if isinstance(v := values.get(r), Missing) else None
            for r in sweep["resolution"]
        ]
        sweep["latency_median_ms"] = sweep["latency_median_ms"].astype(float)
    fits = fit_table(sweep)
    _add_law_columns(sweep, fits)

    def exact(size: tuple[int, ...]) -> dict[str, float]:
        grown = tuple(padded(d, target.multiple) for d in size) if inputs.is_image else size
        try:
            counted = count_model(model, inputs.with_size(grown))
        except EffprofError:
            return {}
        return {"macs": counted.macs, "flops": counted.flops,
                "activation_peak_bytes": counted.activation_peak_bytes}  # fmt: skip

    three_x = three_x_table(
        sweep, inputs.size, multiple=target.multiple, batch=inputs.batch, image=inputs.is_image,
        exact=exact,
    )  # fmt: skip
    out.tables["scaling"] = sweep
    out.tables["scaling_fits"] = fits
    out.tables["scaling_3x"] = three_x
    out.add("", _scaling_metrics(fits, inputs))


def _add_law_columns(sweep: pd.DataFrame, fits: pd.DataFrame) -> None:
    """Each measured quantity's law value and residual (measured / law - 1) at every size."""
    for quantity in MEASURED_QUANTITIES:
        law = law_of(fits, quantity)
        if not isinstance(law, PowerLaw) or quantity not in sweep:
            continue
        fitted = law.k * sweep["positions"].astype(float) ** law.alpha
        sweep[f"{quantity}_law"] = fitted
        sweep[f"{quantity}_residual"] = sweep[quantity] / fitted - 1


def _scaling_metrics(fits: pd.DataFrame, inputs: Any) -> dict[str, Any]:
    """Flat metrics of the laws: MACs' growth exponent, where attention overtakes the rest."""
    metrics: dict[str, Any] = {}
    macs = law_of(fits, "macs")
    if isinstance(macs, CountLaw) and macs.passed:
        metrics["scaling_macs_exponent"] = macs.exponent(macs.p_max)
        metrics["scaling_macs_quadratic"] = macs.quadratic
    attention, other = law_of(fits, "macs_attention"), law_of(fits, "macs_other")
    counted = isinstance(attention, CountLaw) and isinstance(other, CountLaw)
    if counted and attention.passed and attention.predict(attention.p_max) > 0:
        metrics["scaling_attention_quadratic"] = attention.quadratic
        at = crossover(attention, other) if attention.quadratic and other.passed else None
        metrics["scaling_attention_crossover_positions"] = (
            at
            if at is not None
            else Missing(
                "attention grows no faster than the rest (local or windowed attention): its "
                "share of the MACs stays about the same"
                if not attention.quadratic
                else "attention does not overtake the other MACs"
            )
        )
    latency = law_of(fits, "latency_median_ms")
    if isinstance(latency, PowerLaw):
        metrics["scaling_latency_exponent"] = latency.alpha
        metrics["scaling_latency_law_passed"] = latency.passed
    return metrics
