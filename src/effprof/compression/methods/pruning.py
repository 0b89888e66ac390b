"""Pruning methods: ``prune`` (global ranking to a MAC or latency target) and ``prune-sensitivity``
(per-group budgets from measured sensitivity); the settings every pruning method shares.

A target is a fraction of the *dense* model's cost: ``target_macs: 0.5`` keeps half its MACs,
``target_latency: 0.5`` half its latency as predicted from the per-layer latency table of this
device (``effprof.compression.latency_cost``), so that the result runs about 2x faster rather than
only doing half the multiply-accumulates.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from pydantic import Field, model_validator
from torch import nn

from effprof import schema as S
from effprof.compression.cost import CostModel, MacCost
from effprof.compression.latency_cost import LatencyCost
from effprof.compression.methods.base import (
    MethodResult,
    Services,
    Stage,
    StepFiles,
    StepSettings,
    first_input,
    register_method,
)
from effprof.compression.prunable import check_prunable
from effprof.compression.prune import (
    TP_MAGNITUDE,
    PruneResult,
    PruneSpec,
    check_target,
    prune,
)
from effprof.compression.sensitivity import measure_sensitivity
from effprof.compression.significance import SIGNIFICANCE, Calibration
from effprof.results import EffprofError


def check_criterion(name: str, allow_tp: bool) -> str:
    """``name`` if it is a known significance criterion (or ``tp-magnitude`` where allowed)."""
    known = [*SIGNIFICANCE.names(), *([TP_MAGNITUDE] if allow_tp else [])]
    if name not in known:
        raise ValueError(f"unknown criterion {name!r}; known: {', '.join(known)}")
    return name


class PruneFields(StepSettings):
    """A pruning target (exactly one of ``target_macs`` / ``target_latency``, fractions of the
    dense model's), the channel criterion and the channel rounding."""

    makes_model = True
    prunes = True

    target_macs: float | None = Field(default=None, gt=0, lt=1)
    target_latency: float | None = Field(default=None, gt=0, lt=1)
    criterion: str = "taylor"
    round_to: int = Field(default=8, ge=1, le=256)
    round_all: bool = True

    @model_validator(mode="after")
    def _one_target(self) -> PruneFields:
        if (self.target_macs is None) == (self.target_latency is None):
            raise ValueError("give exactly one of target_macs and target_latency")
        check_criterion(self.criterion, allow_tp=True)
        return self

    def target(self) -> tuple[str, float]:
        if self.target_macs is not None:
            return "macs", self.target_macs
        return "latency", float(self.target_latency)  # type: ignore[arg-type]

    def prune_spec(self, ratio: float, steps: int) -> PruneSpec:
        """The pruning spec at ``ratio`` of the model it is applied to."""
        return PruneSpec(ratio, self.criterion, steps, self.round_to, self.round_all)

    def check_start(self, model: nn.Module, calibration: Calibration) -> None:
        unit, fraction = self.target()
        spec = self.prune_spec(fraction, 1)
        check_prunable(model, spec, calibration)
        if unit == "macs":  # latency ranges need the latency table: checked when the step runs
            check_target(model, spec, calibration)


def cost_model(services: Services, unit: str) -> CostModel:
    """MACs (effprof's counter) or the latency predicted from this device's per-layer table."""
    if unit == "macs":
        kwargs = services.calibration.forward_kwargs
        return MacCost(first_input(services.calibration), services.macs_of, kwargs)
    if "latency_cost" not in services.cache:
        services.phase("timing the dense model and its layers (per-layer latency table)")
        dense_ms = services.latency_ms_of(services.teacher)
        example = torch.rand(services.shape, generator=torch.Generator().manual_seed(0))
        services.cache["latency_cost"] = LatencyCost(
            services.conv_ms,
            example.to(services.device),
            services.teacher,
            dense_ms,
            services.calibration.forward_kwargs,
        )
    return services.cache["latency_cost"]


def relative_target(services: Services, model: nn.Module, step: PruneFields) -> tuple[float, Any]:
    """(ratio to ask of ``model``, cost model) so the result keeps the step's fraction of dense."""
    unit, fraction = step.target()
    cost = cost_model(services, unit)
    if unit == "macs":
        start = services.macs_of(model) / services.dense_macs
    else:
        start = cost.estimate(model) / cost.estimate(services.teacher)
    if fraction >= start:
        raise EffprofError(
            f"cannot prune to {fraction:g} of the dense {unit}: the model it starts from "
            f"already keeps {start:.3f}"
        )
    return fraction / start, cost


def prune_metrics(
    services: Services, step: PruneFields, result: PruneResult, start: float
) -> dict[str, Any]:
    """What every pruning method records about its target and what pruning reached (``result``
    of pruning a model that kept ``start`` of the dense cost)."""
    unit, fraction = step.target()
    metrics: dict[str, Any] = {
        S.TARGET_RATIO.of(unit): fraction,
        S.ACHIEVABLE_MIN_RATIO: result.achievable_min_ratio * start,
        S.ACHIEVABLE_MAX_RATIO: result.achievable_max_ratio * start,
        S.PRUNE_S: sum(s.seconds for s in result.steps),
    }
    if unit == "latency":
        cost = services.cache["latency_cost"]
        metrics[S.PREDICTED_LATENCY_RATIO] = result.ratio * start
        metrics[S.PREDICTED_LATENCY_MS] = result.cost
        metrics[S.LATENCY_TABLE_DENSE_MS] = cost.dense_ms
        metrics[S.LATENCY_TABLE_CONVS_MS] = cost.dense_conv_ms
    return metrics


def write_prune_tables(files: StepFiles, result: PruneResult) -> None:
    """The pruning steps and the layer widths, as tables of the run."""
    files.add_table("prune_steps", result.to_frame())
    files.add_table("widths", result.widths_frame())


class PruneStep(PruneFields):
    """Structured pruning to a fraction of the dense MACs or latency, in ``steps`` steps."""

    step: Literal["prune"]
    steps: int = Field(default=4, ge=1, le=100)


@register_method("prune", PruneStep)
def prune_method(services: Services, stage: Stage, step: PruneStep, files: StepFiles):
    """Structured pruning with a global ranking across groups (Torch-Pruning)."""
    ratio, cost = relative_target(services, stage.model, step)
    unit, fraction = step.target()
    services.phase(f"pruning to {fraction:g} of the dense {unit} ({step.criterion})")
    pruned, result = prune(stage.model, step.prune_spec(ratio, step.steps), services.calibration,
                           cost)  # fmt: skip
    write_prune_tables(files, result)
    notes = [f"pruned from {stage.label}: {len(result.steps)} steps, criterion {step.criterion}"]
    metrics = prune_metrics(services, step, result, step.target()[1] / ratio)
    return MethodResult(metrics, notes, model=pruned)


class SensitivityPruneStep(PruneFields):
    """Pruning with per-group budgets from each group's measured sensitivity."""

    step: Literal["prune-sensitivity"]
    steps: int = Field(default=4, ge=1, le=100)
    fractions: tuple[float, ...] = Field(default=(0.25, 0.5, 0.75), min_length=1, max_length=20)

    @model_validator(mode="after")
    def _fractions(self) -> SensitivityPruneStep:
        if not all(0 < f < 1 for f in self.fractions):
            raise ValueError("sensitivity fractions must be in (0, 1)")
        return self


@register_method("prune-sensitivity", SensitivityPruneStep)
def prune_sensitivity(
    services: Services, stage: Stage, step: SensitivityPruneStep, files: StepFiles
):
    """Measure each group's loss when pruned alone, then prune by measured loss per unit cost."""
    ratio, cost = relative_target(services, stage.model, step)
    spec = step.prune_spec(ratio, step.steps)
    services.phase("measuring each group's sensitivity (pruned alone)")
    table = measure_sensitivity(stage.model, services.calibration, spec, step.fractions,
                                services.phase)  # fmt: skip
    files.add_table("sensitivity", table.to_frame())
    spec = PruneSpec(spec.target_ratio, spec.criterion, spec.steps, spec.round_to, spec.round_all,
                     group_loss=table.loss)  # fmt: skip
    unit, fraction = step.target()
    services.phase(f"pruning to {fraction:g} of the dense {unit} by measured sensitivity")
    pruned, result = prune(stage.model, spec, services.calibration, cost)
    write_prune_tables(files, result)
    metrics = prune_metrics(services, step, result, step.target()[1] / ratio)
    metrics[S.SENSITIVITY_GROUPS] = int(table.frame["group"].nunique())
    metrics[S.SENSITIVITY_MEASUREMENTS] = len(table.frame)
    notes = [
        f"pruned from {stage.label}: {len(result.steps)} steps; each group's chunks priced by the "
        f"output MSE measured when that group alone lost {', '.join(f'{f:g}' for f in step.fractions)}"
        f" of its channels ({step.criterion} order within the group), per unit of {unit} saved",
    ]
    return MethodResult(metrics, notes, model=pruned)
