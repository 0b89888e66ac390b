"""The plan of a compress job, decided before any model is loaded or run is written: one
planned run per step (the dense baseline first), each with its label, its step, the hash that
names it in the store and the run it starts from; the pruning targets checked against what the
steps they start from keep; the finished runs ``--resume`` reuses; and what every run records
(its params and the pipeline's notes)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from torch import nn

from effprof.compression.significance import Calibration
from effprof.config.compress import DENSE, MODEL_STEPS, CompressConfig
from effprof.data import TEST_SEED
from effprof.models.registry import DEBLURRING
from effprof.recipes.compress_data import CALIBRATION_SEED
from effprof.recipes.compress_data import notes as data_notes
from effprof.results import EffprofError
from effprof.runs import RunStoreWarning, scan_runs

if TYPE_CHECKING:  # compress_measure runs the planned steps: it imports this module
    from effprof.recipes.compress_measure import Context


@dataclass(frozen=True)
class PlannedRun:
    """One run of the pipeline: its label, its step (None for the dense baseline), the step's
    hash and the label of the run whose model it starts from (None for the dense baseline)."""

    label: str
    step: Any
    step_hash: str
    source: str | None


def plan_runs(config: CompressConfig) -> list[PlannedRun]:
    """The dense baseline, then every step of ``config`` in order."""
    plans = [PlannedRun(DENSE, None, config.pipeline_hash(), None)]
    for label, step, step_hash, source in zip(
        config.labels(), config.steps, config.step_hashes(), config.sources(), strict=True
    ):
        plans.append(PlannedRun(label, step, step_hash, source))
    return plans


def check_targets(dense: nn.Module, calibration: Calibration, plans: list[PlannedRun]) -> None:
    """Refuse pruning targets that cannot be reached, before any run is written: exactly for
    steps starting from the dense model (MAC targets), by order (a lower target than the model
    they start from, in the same unit) else."""
    kept: dict[str, dict[str, float]] = {DENSE: {}}
    for index, plan in enumerate(plans[1:]):
        step = plan.step
        target = step.target()
        start = kept[plan.source]
        if target is not None:
            unit, fraction = target
            where = f"steps.{index} ({plan.label})"
            if fraction >= start.get(unit, 1.0):
                raise EffprofError(
                    f"{where}: target_{unit} {fraction:g} is not below the "
                    f"{start.get(unit, 1.0):g} of the dense {unit} that {plan.source} keeps"
                )
            if plan.source == DENSE:
                try:
                    step.check_start(dense, calibration)
                except EffprofError as err:
                    raise EffprofError(f"{where}: {err}") from None
        if step.step in MODEL_STEPS:
            kept[plan.label] = {**start, **dict([target])} if target is not None else dict(start)


def finished_runs(
    config: CompressConfig, variant: str | None
) -> tuple[str | None, dict[str, tuple[Path, Any]]]:
    """The latest pipeline group of this config in the store and its finished runs by step hash."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RunStoreWarning)
        runs = [
            (path, record)
            for path, record in scan_runs(config.out)
            if record.kind == "compress"
            and record.status == "finished"
            and record.params.get("pipeline_hash") == config.pipeline_hash()
        ]
    if not runs:
        return None, {}
    for path, record in runs:  # a record that claims this pipeline must be of its model
        if (record.model, record.variant) != (config.model, variant):
            shown = " ".join(p for p in (record.model, record.variant) if p)
            raise EffprofError(
                f"--resume: run {path.name} in {str(config.out)!r} claims this pipeline but is "
                f"of {shown!r}, not {config.model!r}; its records do not match the config"
            )
    group = max(runs, key=lambda run: run[1].created)[1].group
    return group, {r.params["step_hash"]: (p, r) for p, r in runs if r.group == group}


def run_notes(config: CompressConfig, ctx: Context, weights_note: str) -> list[str]:
    """The notes every run of the pipeline carries: weights, data, quality and how it was timed."""
    c, inputs = config, ctx.data.inputs.describe()
    notes = [weights_note, *data_notes(ctx.data, config)]
    if ctx.data.task == DEBLURRING:
        notes += [
            f"quality: {len(ctx.pairs)} held-out synthetic crops of {c.test_size} px from the "
            f"test images (seed {TEST_SEED}); PSNR/SSIM on RGB in [0, 1], outputs clipped; "
            "fidelity_*: PSNR/SSIM against the dense model's output",
            f"calibration: {c.calibration_count} crops of {c.calibration_size} px from the "
            f"calibration images (seed {CALIBRATION_SEED}), batches of {c.calibration_batch}",
        ]
    return [
        *notes,
        f"macs: effprof's counter for {inputs}; latency: batch as given ({inputs}), "
        f"{c.latency_warmup} warm-ups, median of {c.latency_repeat}, torch and ONNX Runtime "
        f"(CPU provider) with {c.threads or 'default'} intra-op threads",
        "file_bytes: size on disk of the file this step stores",
    ]


def run_params(
    config: CompressConfig, plan: PlannedRun, index: int, trained: int, pruned: bool
) -> dict[str, Any]:
    """A step's run params: the step, its settings and hash, the pipeline and what it started from."""
    pipeline = config.model_dump(mode="json", exclude={"steps", "out", "resume", "progress"})
    return {
        "step": plan.label,
        "method": plan.step.step if plan.step else DENSE,
        "index": index,
        "source": plan.source,
        "settings": plan.step.model_dump(mode="json", by_alias=True) if plan.step else {},
        "pipeline": pipeline,
        "pipeline_hash": config.pipeline_hash(),
        "step_hash": plan.step_hash,
        "trained_steps": trained,
        "pruned": pruned,
    }
