"""Options of ``effprof train`` and ``effprof evaluate`` (also readable from configs/train-*.yaml)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from effprof.config.base import StrictModel, check_zoom

Device = Literal["auto", "cpu", "cuda"]
TrainPrecision = Literal["fp32", "tf32", "bf16"]
ProgressMode = Literal["auto", "bar", "lines", "none"]


class TrainConfig(StrictModel):
    """One training job: model, synthetic data, schedule, evaluation and checkpointing.

    ``seed`` fixes the initial weights and the data stream (same seed, same thread count: same
    weights on a CPU). Blur lengths are trajectory path lengths in pixels of the crop; ``noise`` is the largest
    Gaussian noise standard deviation in [0, 1] units; ``zero_tail`` starts every output head
    (modules named ``tail*``) at zero weights so the untrained network returns its input (it
    learned more slowly than the default initialisation in our comparison, so it is off).
    ``precision``: tf32 (GPU only) or bf16 autocast, on a GPU or on a CPU with bf16 instructions
    (about 2x faster per step on an AVX-512-BF16 CPU with ``channels_last``). ``ema_decay`` keeps an
    exponential moving average of the weights, which is what is evaluated and saved (0 = off).
    ``zoom`` (low, high) rescales each sharp crop by a random factor in that range before it is
    blurred (see ``SyntheticSpec``); without it the shipped recipe sharpened smooth shading into
    edges with dark halos (the test set's rocket crops lost up to 8 dB).
    """

    model: str = "mssnet"
    variant: str | None = None
    weights: str | None = None
    resume: str | None = None
    steps: int = Field(default=1000, ge=1, le=100_000_000)
    batch: int = Field(default=4, ge=1, le=4096)
    crop: int = Field(default=96, ge=16, le=2048)
    lr: float = Field(default=5e-4, gt=0, le=1.0)
    min_lr: float = Field(default=1e-6, ge=0, le=1.0)
    warmup_steps: int = Field(default=20, ge=0)
    ema_decay: float = Field(default=0.0, ge=0, lt=1)
    grad_clip: float | None = Field(default=None, gt=0)
    zero_tail: bool = False
    min_blur_px: float = Field(default=4.0, gt=0, le=200)
    max_blur_px: float = Field(default=24.0, gt=0, le=200)
    linear_fraction: float = Field(default=0.25, ge=0, le=1)
    noise: float = Field(default=0.01, ge=0, le=0.5)
    jpeg: tuple[int, int] | None = None
    zoom: tuple[float, float] = (1.0, 1.0)
    curriculum_steps: int = Field(default=0, ge=0)
    seed: int = Field(default=0, ge=0)
    device: Device = "auto"
    precision: TrainPrecision = "fp32"
    channels_last: bool = False
    threads: int | None = Field(default=None, ge=1, le=1024)
    eval_every: int = Field(default=0, ge=0)
    eval_count: int = Field(default=8, ge=1, le=1000)
    eval_size: int = Field(default=128, ge=16, le=4096)
    test: bool = True
    test_count: int = Field(default=24, ge=1, le=10_000)
    test_size: int = Field(default=256, ge=16, le=4096)
    checkpoint_every: int = Field(default=0, ge=0)
    max_minutes: float | None = Field(default=None, gt=0)
    log_every: int = Field(default=10, ge=1)
    progress: ProgressMode = "auto"
    out: str = "reports/"

    @model_validator(mode="after")
    def _consistent(self) -> TrainConfig:
        if self.min_blur_px > self.max_blur_px:
            raise ValueError(
                f"min_blur_px {self.min_blur_px} exceeds max_blur_px {self.max_blur_px}"
            )
        if self.min_lr > self.lr:
            raise ValueError(f"min_lr {self.min_lr} exceeds lr {self.lr}")
        if self.jpeg is not None and not 1 <= self.jpeg[0] <= self.jpeg[1] <= 100:
            raise ValueError(
                f"jpeg qualities must satisfy 1 <= low <= high <= 100, got {self.jpeg}"
            )
        check_zoom(self.zoom)
        if self.weights is not None and self.resume is not None:
            raise ValueError("give weights (start from them) or resume (continue a run), not both")
        return self


class EvaluateConfig(StrictModel):
    """One evaluation job: a model's quality on synthetic test crops or a folder of pairs, plus latency.

    ``data="synthetic"`` is the held-out test set (``count`` crops of ``size`` px, 24 x 256 by
    default); any other value is a folder of blur/ and sharp/ pairs.
    """

    model: str = "mssnet"
    variant: str | None = None
    weights: str | None = None
    data: str = "synthetic"
    count: int = Field(default=24, ge=1, le=10_000)
    size: int = Field(default=256, ge=16, le=4096)
    device: Device = "auto"
    batch: int = Field(default=4, ge=1, le=1024)
    latency: bool = True
    warmup: int = Field(default=3, ge=0, le=10_000)
    repeat: int = Field(default=10, ge=1, le=100_000)
    threads: int | None = Field(default=None, ge=1, le=1024)
    out: str = "reports/"
