"""Training loop and losses, shared by ``effprof train`` and compression's recovery step.

>>> from effprof.training import ReconstructionLoss, TrainSpec, train
>>> result = train(model, batches, TrainSpec(steps=100, lr=5e-4))        # doctest: +SKIP
>>> distill = ReconstructionLoss(extra=lambda outputs, blurry: ...)     # doctest: +SKIP
"""

from effprof.training.evaluate import EvalResult, evaluate_pairs, restore, restore_pairs
from effprof.training.loop import (
    STEPS_PER_EPOCH,
    BatchSource,
    TrainResult,
    TrainSpec,
    load_checkpoint,
    lr_at,
    save_checkpoint,
    train,
)
from effprof.training.losses import (
    FFT_WEIGHT,
    ExtraLoss,
    LossFn,
    ReconstructionLoss,
    deblur_loss,
    fft_l1,
    model_outputs,
)
from effprof.training.progress import PlainLines, Progress, RichBar, Silent

__all__ = [
    "FFT_WEIGHT",
    "STEPS_PER_EPOCH",
    "BatchSource",
    "EvalResult",
    "ExtraLoss",
    "LossFn",
    "PlainLines",
    "Progress",
    "ReconstructionLoss",
    "RichBar",
    "Silent",
    "TrainResult",
    "TrainSpec",
    "deblur_loss",
    "evaluate_pairs",
    "fft_l1",
    "load_checkpoint",
    "lr_at",
    "model_outputs",
    "restore",
    "restore_pairs",
    "save_checkpoint",
    "train",
]
