"""Recovery (LightGaussian, step 3): fine-tune a pruned network by distilling from the dense one.

LightGaussian recovers the quality pruning removed by distilling the pruned scene from the dense
one on pseudo-views: new camera poses, rendered by the frozen teacher, that the training set never
held. Here a pseudo-view is a freshly drawn synthetic batch: every step cuts new crops (new
positions, flips, rotations) from the training images and blurs them with new random camera-shake
kernels, so the student never sees the same batch twice. The student is pulled towards the frozen
dense teacher on all of its outputs (MSSNet's six: res1_1 at half resolution, then five at full)
and, at the same time, towards the sharp target with the paper's reconstruction loss:

    loss = w_rec * sum_k [L1(s_k, sharp_k) + 0.1 FFT-L1]  +  w_dist * sum_k [L1(s_k, t_k) + 0.1 FFT-L1]

with s_k / t_k the student's / teacher's k-th output. The loop is ``effprof.training.train``.

With ``feature_weight`` > 0 the student is also pulled towards the teacher's intermediate features
(FitNets, Romero et al. 2015; as KD for pruned restoration networks does): at every feature point
(by default each composite block inside an ``nn.Sequential`` / ``nn.ModuleList`` that returns an
N x C x H x W map, e.g. the 75 of MSSNet-small's 87 residual blocks that sit in one) a 1x1 adapter maps the pruned student's
C_s channels to the teacher's C_t, initialised by least squares on the first batch and trained
with the student; the term is the mean over points of L1(adapter(s), t) / mean|t|. Adapters are
dropped after recovery: the saved model is the student alone.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from effprof.compression.features import FeatureAdapters, WithAdapters, captured, feature_points
from effprof.data import SyntheticBlur, SyntheticSpec
from effprof.results import EffprofError
from effprof.training import (
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
from effprof.training.loop import Evaluator

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
    feature_weight: float = 0.0
    feature_layers: tuple[str, ...] | None = None  # None: every composite block (see above)
    log_every: int = 10
    forward_kwargs: Mapping[str, Any] = field(default_factory=dict)  # every output (the entry's)

    def check(self) -> None:
        """Refuse settings that cannot train, before any work."""
        if self.steps < 1 or self.batch < 1 or self.crop_px < 16:
            raise EffprofError("recovery needs steps >= 1, batch >= 1 and crop_px >= 16")
        if self.lr <= 0 or self.min_lr < 0 or self.min_lr > self.lr:
            raise EffprofError(f"recovery needs 0 <= min_lr <= lr and lr > 0, got {self.lr}")
        if self.distill_weight < 0 or self.reconstruction_weight < 0 or self.feature_weight < 0:
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


@contextlib.contextmanager
def frozen_statistics(model: nn.Module) -> Iterator[int]:
    """Batch normalisation in ``model`` normalises with its running statistics, and keeps them,
    while the model trains (yields how many layers): the pruned student inherits the dense
    model's statistics, which the teacher uses too, and recovery batches (one random input, a
    few crops) are neither the data those came from nor large enough to estimate new ones. A
    batch-norm CNN distilled in train mode once ended further from the dense output than the
    pruned model it started from."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]

    def use_running_statistics(module: nn.Module, _args: Any) -> None:
        module.training = False

    hooks = [m.register_forward_pre_hook(use_running_statistics) for m in norms]
    try:
        yield len(norms)
    finally:
        for hook in hooks:
            hook.remove()


def frozen(model: nn.Module) -> nn.Module:
    """``model`` in eval mode with gradients off (the teacher), in place."""
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


class Regularizer(Protocol):
    """A term sparsity training adds to the loss: ``penalty(student)`` (None: no term) after
    ``before_step(student)``, which may change weights in place (decoupled decay)."""

    def before_step(self, student: nn.Module) -> None: ...

    def penalty(self, student: nn.Module) -> Tensor | None: ...


class DistillationLoss:
    """``loss_fn(student, blurry, sharp)`` for the training loop: reconstruction plus distillation
    towards ``teacher``'s outputs on the same blurry batch (the teacher runs without gradients),
    plus its intermediate features through ``adapters`` and a ``regularizer``'s penalty if given."""

    def __init__(
        self,
        teacher: nn.Module,
        spec: RecoverSpec,
        adapters: FeatureAdapters | None = None,
        regularizer: Regularizer | None = None,
    ) -> None:
        self.teacher = teacher
        self.spec = spec
        self.adapters = adapters
        self.regularizer = regularizer

    def parts(self, student: nn.Module, blurry: Tensor, sharp: Tensor) -> dict[str, Tensor]:
        """The unweighted terms: ``reconstruction`` (when weighted), ``distillation``, and
        ``features`` / ``penalty`` when adapters / a regularizer are given."""
        inner = student.model if isinstance(student, WithAdapters) else student
        names = self.adapters.names if self.adapters is not None else []
        mine: dict[str, Tensor] = {}
        theirs: dict[str, Tensor] = {}
        with captured(inner, names, mine):
            outputs = model_outputs(student, blurry, self.spec.forward_kwargs)
        with torch.no_grad(), captured(self.teacher, names, theirs):
            targets = model_outputs(self.teacher, blurry, self.spec.forward_kwargs)
        parts = {"distillation": output_distance(outputs, targets, self.spec.fft_weight)}
        if self.spec.reconstruction_weight:
            parts["reconstruction"] = deblur_loss(outputs, sharp, self.spec.fft_weight)
        if self.adapters is not None:
            parts["features"] = self.adapters.loss(mine, theirs)
        if self.regularizer is not None:
            penalty = self.regularizer.penalty(inner)
            if penalty is not None:
                parts["penalty"] = penalty
        return parts

    def __call__(self, student: nn.Module, blurry: Tensor, sharp: Tensor) -> Tensor:
        if self.regularizer is not None:
            inner = student.model if isinstance(student, WithAdapters) else student
            self.regularizer.before_step(inner)
        parts = self.parts(student, blurry, sharp)
        weights = {
            "reconstruction": self.spec.reconstruction_weight,
            "distillation": self.spec.distill_weight,
            "features": self.spec.feature_weight,
            "penalty": 1.0,
        }
        return sum((weights[k] * v for k, v in parts.items()), start=torch.zeros(()))


def fit_adapters(
    student: nn.Module, teacher: nn.Module, blurry: Tensor, layers: Sequence[str] | None,
    forward_kwargs: Mapping[str, Any] | None = None,
) -> FeatureAdapters:  # fmt: skip
    """Adapters at the feature points of ``student`` (see :mod:`effprof.compression.features`),
    least-squares fitted on ``blurry``."""
    names = feature_points(teacher, layers)
    mine: dict[str, Tensor] = {}
    theirs: dict[str, Tensor] = {}
    with torch.no_grad(), captured(student, names, mine), captured(teacher, names, theirs):
        model_outputs(student, blurry, forward_kwargs)
        model_outputs(teacher, blurry, forward_kwargs)
    if not theirs:
        raise EffprofError("feature distillation found no N x C x H x W feature point to distil")
    adapters = FeatureAdapters(mine, theirs).to(blurry.device)
    adapters.fit(mine, theirs)
    return adapters


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
    regularizer: Regularizer | None = None,
) -> TrainResult:
    """Fine-tune ``student`` in place towards the frozen ``teacher`` and the sharp targets.

    ``batches(step)`` defaults to :func:`pseudo_views` on the student's device; ``regularizer``
    adds sparsity training's term. Returns the training loop's result (loss curve, evaluations);
    the student is left in eval mode.
    """
    spec.check()
    device = next(student.parameters()).device
    teacher = frozen(teacher.to(device))
    source = batches if batches is not None else pseudo_views(spec, device)
    adapters = None
    model = student
    if spec.feature_weight:
        blurry = source(0)[0].to(device)
        adapters = fit_adapters(student, teacher, blurry, spec.feature_layers, spec.forward_kwargs)
        model = WithAdapters(student, adapters)
    with frozen_statistics(student):
        result = train(
            model,
            source,
            spec.train_spec(),
            loss_fn=DistillationLoss(teacher, spec, adapters, regularizer),
            evaluate=evaluate,
            progress=progress,
        )
    student.eval()
    if adapters is not None:
        result.extra["feature_points"] = len(adapters.names)
    return result
