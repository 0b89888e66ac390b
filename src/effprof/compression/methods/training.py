"""Methods that train: ``recover`` (distillation on pseudo-views), ``sparsify`` (sparsity training,
then pruning) and ``iterative`` (prune -> recover in rounds). They share the training settings.

Every one counts its training steps (``training_steps``), so the pipeline can compare it with the
dense model given as many steps (the control).
"""

from __future__ import annotations

import copy
import time
from typing import Any, Literal

import pandas as pd
from pydantic import Field, model_validator
from torch import nn

from effprof import schema as S
from effprof.compression.methods.base import (
    MethodResult,
    Services,
    Stage,
    StepFiles,
    StepSettings,
    first_input,
    register_method,
)
from effprof.compression.methods.pruning import (
    PruneFields,
    prune_metrics,
    relative_target,
    write_prune_tables,
)
from effprof.compression.prune import PruneSpec, prune, select_channels
from effprof.compression.recover import RecoverSpec, distillation_gap, recover
from effprof.compression.sparsity import GroupLasso, SelectiveDecay
from effprof.compression.untie import untie_shared


class TrainingFields(StepSettings):
    """Distillation training: ``steps`` Adam steps at ``lr`` (cosine to ``min_lr``) on fresh
    pseudo-views of ``batch`` crops of ``crop`` px; the loss weighs distillation of the outputs,
    of intermediate features (``feature_weight``; ``feature_layers`` globs, default every
    composite block) and reconstruction against the sharp image."""

    makes_model = True

    steps: int = Field(default=150, ge=1, le=10_000_000)
    lr: float = Field(default=2e-4, gt=0, le=1.0)
    min_lr: float = Field(default=1e-6, ge=0, le=1.0)
    warmup_steps: int = Field(default=0, ge=0)
    grad_clip: float | None = Field(default=5.0, gt=0)
    distill_weight: float = Field(default=1.0, ge=0)
    reconstruction_weight: float = Field(default=1.0, ge=0)
    feature_weight: float = Field(default=0.0, ge=0)
    feature_layers: tuple[str, ...] | None = None
    crop: int = Field(default=64, ge=16, le=2048)
    batch: int = Field(default=4, ge=1, le=4096)
    seed: int = Field(default=5000, ge=0)
    zoom: tuple[float, float] = (1.0, 1.0)

    @model_validator(mode="after")
    def _consistent(self) -> TrainingFields:
        if self.min_lr > self.lr:
            raise ValueError(f"min_lr {self.min_lr} exceeds lr {self.lr}")
        if not 0.25 <= self.zoom[0] <= self.zoom[1] <= 4.0:
            raise ValueError(f"zoom must satisfy 0.25 <= low <= high <= 4, got {self.zoom}")
        if self.distill_weight == 0 and self.reconstruction_weight == 0:
            raise ValueError("distill_weight and reconstruction_weight cannot both be 0")
        return self

    def training_steps(self) -> int:
        return self.steps

    def image_sizes(self) -> dict[str, int]:
        return {"crop": self.crop}

    def recover_spec(self, services: Services, steps: int | None = None) -> RecoverSpec:
        """The recovery settings for the pipeline's model (every output its entry names; no FFT
        term for outputs that are not images); ``steps`` overrides the count, e.g. per round."""
        return RecoverSpec(
            steps=steps or self.steps, lr=self.lr, min_lr=self.min_lr,
            warmup_steps=self.warmup_steps, grad_clip=self.grad_clip,
            distill_weight=self.distill_weight, reconstruction_weight=self.reconstruction_weight,
            crop_px=self.crop, batch=self.batch, seed=self.seed, zoom=self.zoom,
            feature_weight=self.feature_weight, feature_layers=self.feature_layers,
            forward_kwargs=dict(services.calibration.forward_kwargs),
            fft_weight=services.fft_weight,
        )  # fmt: skip

    def views_note(self) -> str:
        """How the pseudo-views were drawn, for the run's notes."""
        low, high = self.zoom
        zoomed = f", rescaling by {low:g}-{high:g}x" if (low, high) != (1.0, 1.0) else ""
        features = (
            f"; intermediate features distilled (weight {self.feature_weight:g})"
            if self.feature_weight
            else ""
        )
        return (
            f"{self.batch} crops of {self.crop} px per step (fresh crops, flips, rotations{zoomed} "
            f"and blur kernels every step, seed {self.seed}){features}"
        )


def trainable_copy(model: nn.Module, device: str) -> nn.Module:
    """A copy of ``model`` on ``device`` with every parameter trainable."""
    student = copy.deepcopy(model).to(device)
    for p in student.parameters():
        p.requires_grad_(True)
    return student


def _train(
    services: Services, student: nn.Module, spec: RecoverSpec, files: StepFiles,
    table: str = "loss", regularizer: Any = None,
) -> dict[str, Any]:  # fmt: skip
    """Train ``student`` in place; the loss table and what the training did, as metrics."""
    probe = services.calibration.batches[0][0].to(services.device)
    kwargs = services.calibration.forward_kwargs
    before = distillation_gap(student, services.teacher, probe, kwargs)
    cpu_started = time.process_time()
    result = recover(student, services.teacher, spec, batches=services.batches,
                     progress=services.train_progress, regularizer=regularizer)  # fmt: skip
    files.add_table(table, result.history)
    history = result.history
    return {
        "steps_done": result.steps_done,
        "seconds": result.seconds,
        "cpu_s": time.process_time() - cpu_started,
        "final_loss": float(history["loss"].iloc[-1]) if not history.empty else None,
        "gap_before": before,
        "gap_after": distillation_gap(student, services.teacher, probe, kwargs),
        "feature_points": result.extra.get("feature_points", 0),
    }


def _training_metrics(done: dict[str, Any], names: S.TrainingNames = S.RECOVER) -> dict[str, Any]:
    return {
        names.steps: done["steps_done"],
        names.s: done["seconds"],
        names.cpu_s: done["cpu_s"],
        names.final_loss: done["final_loss"],
        S.DISTILL_L1_BEFORE: done["gap_before"],
        S.DISTILL_L1_AFTER: done["gap_after"],
        S.FEATURE_POINTS: done[S.FEATURE_POINTS],
    }


GAP_NOTE = (
    "distill_l1_*: mean L1 between this model's and the dense model's outputs (all outputs) "
    "on the first calibration batch, before and after"
)


class RecoverStep(TrainingFields):
    """Fine-tune by distilling from the dense model on fresh pseudo-views (crops, flips, blurs)."""

    step: Literal["recover"]


@register_method("recover", RecoverStep)
def recover_method(services: Services, stage: Stage, step: RecoverStep, files: StepFiles):
    """Distil the dense teacher into the stage's model on fresh pseudo-views."""
    student = trainable_copy(stage.model, services.device)
    services.phase(f"recovering: {step.steps} steps of distillation from the dense model")
    done = _train(services, student, step.recover_spec(services), files)
    notes = [f"recovered {stage.label}: {done['steps_done']} steps, {step.views_note()}", GAP_NOTE]
    return MethodResult(_training_metrics(done), notes, model=student.cpu().eval())


class SparsifyStep(TrainingFields, PruneFields):
    """Sparsity training towards a pruning target, then pruning to it (see compress.sparsity)."""

    step: Literal["sparsify"]
    mode: Literal["selective", "group-lasso"] = "selective"
    residual: float = Field(default=1e-3, gt=0, lt=1)  # selective: weight left after training
    strength: float = Field(default=1e-5, gt=0)  # group-lasso: penalty weight
    prune_steps: int = Field(default=4, ge=1, le=100)


@register_method("sparsify", SparsifyStep)
def sparsify_method(services: Services, stage: Stage, step: SparsifyStep, files: StepFiles):
    """Sparsity training (selective growing decay, or group lasso), then pruning to the target."""
    student = trainable_copy(stage.model, services.device)
    untie_shared(student)
    ratio, cost = relative_target(services, student, step)
    spec = step.prune_spec(ratio, step.prune_steps)
    example = first_input(services.calibration).to(services.device)
    if step.mode == "selective":
        chosen = select_channels(student, spec, services.calibration, cost)
        regularizer: Any = SelectiveDecay(student, example, chosen, step.steps, step.residual,
                                          forward_kwargs=services.calibration.forward_kwargs)  # fmt: skip
        how = (
            f"the {sum(map(len, chosen.values()))} channels of {len(chosen)} groups that pruning "
            f"to the target would remove ({step.criterion}) decayed towards zero, the decay "
            f"growing linearly to {regularizer.rate_max:.3g} per step ({step.residual:g} left)"
        )
        extra = {
            "sparsify_channels": sum(map(len, chosen.values())),
            "sparsify_groups": len(chosen),
        }
    else:
        regularizer = GroupLasso(student, example, step.strength,
                                 forward_kwargs=services.calibration.forward_kwargs)  # fmt: skip
        how = f"group lasso (strength {step.strength:g}) on {len(regularizer.groups)} groups"
        extra = {"sparsify_groups": len(regularizer.groups)}
    services.phase(f"sparsity training ({step.mode}): {step.steps} steps")
    done = _train(
        services,
        student,
        step.recover_spec(services),
        files,
        "loss",
        regularizer,
    )
    unit, fraction = step.target()
    services.phase(f"pruning to {fraction:g} of the dense {unit} ({step.criterion})")
    pruned, result = prune(student.cpu().eval(), spec, services.calibration, cost)
    write_prune_tables(files, result)
    metrics = {**_training_metrics(done, S.SPARSIFY), **extra}
    metrics.update(prune_metrics(services, step, result, step.target()[1] / ratio))
    notes = [
        f"sparsity training of {stage.label}: {done['steps_done']} steps, {step.views_note()}; "
        f"{how}; then pruned in {step.prune_steps} steps",
        GAP_NOTE,
    ]
    return MethodResult(metrics, notes, model=pruned)


class IterativeStep(TrainingFields, PruneFields):
    """``rounds`` rounds of (prune one share of the way to the target, recover ``steps / rounds``)."""

    step: Literal["iterative"]
    rounds: int = Field(default=4, ge=2, le=100)

    @model_validator(mode="after")
    def _enough_steps(self) -> IterativeStep:
        if self.steps < self.rounds:
            raise ValueError(f"iterative needs steps >= rounds, got {self.steps} < {self.rounds}")
        return self


@register_method("iterative", IterativeStep)
def iterative_method(services: Services, stage: Stage, step: IterativeStep, files: StepFiles):
    """Prune -> recover in rounds towards the target (the same training steps in all)."""
    ratio, cost = relative_target(services, stage.model, step)
    start = step.target()[1] / ratio  # the starting model's share of the dense cost
    model, kept, rows, trained, seconds, cpu = stage.model, 1.0, [], 0, 0.0, 0.0
    per_round = [step.steps // step.rounds] * step.rounds
    per_round[-1] += step.steps - sum(per_round)
    done: dict[str, Any] = {}
    for index, steps in enumerate(per_round, start=1):
        goal = 1 - (1 - ratio) * index / step.rounds  # of the starting model's cost
        services.phase(f"round {index}/{step.rounds}: pruning to {goal:.3f} of the start")
        spec = PruneSpec(goal / kept, step.criterion, 1, step.round_to, step.round_all)
        round_start = kept
        pruned, result = prune(model, spec, services.calibration, cost)
        kept *= result.ratio
        student = trainable_copy(pruned, services.device)
        services.phase(f"round {index}/{step.rounds}: recovering {steps} steps")
        done = _train(
            services,
            student,
            step.recover_spec(services, steps),
            files,
            f"loss_round{index}",
        )
        trained, seconds = trained + done["steps_done"], seconds + done["seconds"]
        cpu += done["cpu_s"]
        rows.append({"round": index, "goal_ratio": goal, "ratio": kept, "recover_steps": steps})
        model = student.cpu().eval()
    write_prune_tables(files, result)
    files.add_table("rounds", pd.DataFrame(rows))
    metrics = _training_metrics({**done, "steps_done": trained, "seconds": seconds, "cpu_s": cpu})
    metrics.update(prune_metrics(services, step, result, start * round_start))
    metrics[S.ITERATIVE_ROUNDS] = step.rounds
    notes = [
        f"iterative from {stage.label}: {step.rounds} rounds of prune -> recover, "
        f"{trained} recovery steps in all, {step.views_note()}",
        GAP_NOTE,
    ]
    return MethodResult(metrics, notes, model=model)
