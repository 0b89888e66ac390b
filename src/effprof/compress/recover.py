"""Recovery (LightGaussian, step 3): fine-tune a pruned network by distilling from the dense one.

LightGaussian recovers the quality pruning removed by distilling the pruned scene from the dense
one on pseudo-views: new camera poses, rendered by the frozen teacher, that the training set never
held. Here a pseudo-view is a freshly drawn synthetic batch: every step cuts new crops (new
positions, flips, rotations) from the training images and blurs them with new random camera-shake
kernels, so the student never sees the same batch twice. The student is pulled towards the frozen
dense teacher on all of its outputs (MSSNet's six: res1_1 at half resolution, then five at full)
and, at the same time, towards the sharp target with the paper's reconstruction loss:

    loss = w_rec * sum_k [L1(s_k, sharp_k) + 0.1 FFT-L1]  +  w_dist * sum_k [L1(s_k, t_k) + 0.1 FFT-L1]

with s_k / t_k the student's / teacher's k-th output. The loop is ``effprof.train.train``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from effprof.data import SyntheticBlur, SyntheticSpec
from effprof.results import EffprofError
from effprof.train import (
    FFT_WEIGHT,
    BatchSource,
    Progress,
    TrainResult,
    TrainSpec,
    deblur_loss,
    fft_l1,
    model_outputs,
    train,
)
from effprof.train.loop import Evaluator

PSEUDO_VIEW_SEED = 5000  # distinct from the seeds effprof train uses (0 by default)


@dataclass(frozen=True)
class RecoverSpec:
    """How to recover: ``steps`` Adam steps at peak ``lr`` (cosine to ``min_lr``) on pseudo-views of
    ``batch`` crops of ``crop_px``; the loss weighs reconstruction against the sharp image by
    ``reconstruction_weight`` and distillation towards the teacher by ``distill_weight``; ``zoom``
    rescales the sharp crops as in training (``SyntheticSpec.zoom``)."""

    steps: int = 150
    lr: float = 2e-4
    min_lr: float = 1e-6
    warmup_steps: int = 0
    grad_clip: float | None = 5.0
    distill_weight: float = 1.0
    reconstruction_weight: float = 1.0
    fft_weight: float = FFT_WEIGHT
    crop_px: int = 64
    batch: int = 4
    seed: int = PSEUDO_VIEW_SEED
    zoom: tuple[float, float] = (1.0, 1.0)
    log_every: int = 10
    forward_kwargs: Mapping[str, Any] = field(default_factory=dict)  # every output (the entry's)

    def check(self) -> None:
        """Refuse settings that cannot train, before any work."""
        if self.steps < 1 or self.batch < 1 or self.crop_px < 16:
            raise EffprofError("recovery needs steps >= 1, batch >= 1 and crop_px >= 16")
        if self.lr <= 0 or self.min_lr < 0 or self.min_lr > self.lr:
            raise EffprofError(f"recovery needs 0 <= min_lr <= lr and lr > 0, got {self.lr}")
        if self.distill_weight < 0 or self.reconstruction_weight < 0:
            raise EffprofError("recovery loss weights must be >= 0")
        if self.distill_weight == 0 and self.reconstruction_weight == 0:
            raise EffprofError("recovery needs a distillation or a reconstruction weight above 0")

    def train_spec(self) -> TrainSpec:
        """The training loop's settings for this recovery."""
        return TrainSpec(
            steps=self.steps,
            lr=self.lr,
            min_lr=self.min_lr,
            warmup_steps=self.warmup_steps,
            grad_clip=self.grad_clip,
            log_every=min(self.log_every, self.steps),
        )


def output_distance(
    outputs: Sequence[Tensor], targets: Sequence[Tensor], fft_weight: float = FFT_WEIGHT
) -> Tensor:
    """sum_k L1(outputs_k, targets_k) + fft_weight * FFT-L1: the distance between two output lists."""
    if len(outputs) != len(targets):
        raise EffprofError(
            f"student gives {len(outputs)} outputs, teacher {len(targets)}: cannot distil"
        )
    total = outputs[0].new_zeros((), dtype=torch.float32)
    for out, target in zip(outputs, targets, strict=True):
        total = total + F.l1_loss(out.float(), target.float())
        if fft_weight:
            total = total + fft_weight * fft_l1(out, target)
    return total


def frozen(model: nn.Module) -> nn.Module:
    """``model`` in eval mode with gradients off (the teacher), in place."""
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


class DistillationLoss:
    """``loss_fn(student, blurry, sharp)`` for the training loop: reconstruction plus distillation
    towards ``teacher``'s outputs on the same blurry batch (the teacher runs without gradients)."""

    def __init__(self, teacher: nn.Module, spec: RecoverSpec) -> None:
        self.teacher = teacher
        self.spec = spec

    def parts(self, student: nn.Module, blurry: Tensor, sharp: Tensor) -> dict[str, Tensor]:
        """The two unweighted terms: ``reconstruction`` and ``distillation``."""
        kwargs = self.spec.forward_kwargs
        outputs = model_outputs(student, blurry, kwargs)
        with torch.no_grad():
            targets = model_outputs(self.teacher, blurry, kwargs)
        return {
            "reconstruction": deblur_loss(outputs, sharp, self.spec.fft_weight),
            "distillation": output_distance(outputs, targets, self.spec.fft_weight),
        }

    def __call__(self, student: nn.Module, blurry: Tensor, sharp: Tensor) -> Tensor:
        parts = self.parts(student, blurry, sharp)
        return (
            self.spec.reconstruction_weight * parts["reconstruction"]
            + self.spec.distill_weight * parts["distillation"]
        )


def pseudo_views(
    spec: RecoverSpec, device: str | torch.device = "cpu", split: str = "train"
) -> SyntheticBlur:
    """The pseudo-view source: ``source(step)`` is a fresh (blurry, sharp) batch for every step."""
    return SyntheticBlur.load(
        SyntheticSpec(
            split=split,
            crop_px=spec.crop_px,
            batch=spec.batch,
            seed=spec.seed,
            augment=True,
            zoom=spec.zoom,
        ),
        device=device,
    )


def distillation_gap(
    student: nn.Module,
    teacher: nn.Module,
    blurry: Tensor,
    forward_kwargs: Mapping[str, Any] | None = None,
) -> float:
    """Mean L1 distance between the student's and the teacher's outputs on ``blurry`` (every
    output ``forward_kwargs`` asks for)."""
    with torch.no_grad():
        ours = model_outputs(student, blurry, forward_kwargs)
        theirs = model_outputs(teacher, blurry, forward_kwargs)
        return float(output_distance(ours, theirs, 0.0))


def recover(
    student: nn.Module,
    teacher: nn.Module,
    spec: RecoverSpec,
    *,
    batches: BatchSource | None = None,
    evaluate: Evaluator | None = None,
    progress: Progress | None = None,
) -> TrainResult:
    """Fine-tune ``student`` in place towards the frozen ``teacher`` and the sharp targets.

    ``batches(step)`` defaults to :func:`pseudo_views` on the student's device. Returns the training
    loop's result (loss curve, evaluations); the student is left in eval mode.
    """
    spec.check()
    device = next(student.parameters()).device
    teacher = frozen(teacher.to(device))
    source = batches if batches is not None else pseudo_views(spec, device)
    return train(
        student,
        source,
        spec.train_spec(),
        loss_fn=DistillationLoss(teacher, spec),
        evaluate=evaluate,
        progress=progress,
    )
