"""Options of ``effprof compress``: the model, the data the steps see, and the ordered steps.

A config names steps in order; each starts from the model the previous one left (or, with
``from``, from an earlier step's model or ``dense``), and each becomes one run::

    steps:
      - {step: significance, criterion: taylor}
      - {step: prune, target_macs: 0.5, criterion: taylor}
      - {step: recover, steps: 150}
      - {step: int8, keep_float: 4}
      - {step: vq}
      - {step: prune, name: prune-magnitude, from: dense, target_macs: 0.5, criterion: tp-magnitude}
      - {step: recover, name: recover-magnitude, steps: 150}
      - {step: recover, name: dense-extra, from: dense, steps: 150}   # the dense control

``prune`` and ``recover`` make a new model; ``significance``, ``fp16``, ``bf16``, ``int8`` and
``vq`` measure a form of the model they start from and leave it to the next step unchanged.
``target_macs`` is a fraction of the dense model's MACs. Step names label the runs (default: the
step kind, ``-2``, ``-3``... when repeated); ``dense`` is the uncompressed baseline's run.
"""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from effprof.compress.prune import TP_MAGNITUDE
from effprof.compress.significance import SIGNIFICANCE
from effprof.config.base import StrictModel, check_zoom

Device = Literal["auto", "cpu", "cuda"]
ProgressMode = Literal["auto", "bar", "lines", "none"]
DENSE = "dense"
MODEL_STEPS = ("prune", "recover")  # steps that make a new model
HASH_CHARS = 16


def _check_criterion(name: str, allow_tp: bool) -> str:
    known = [*SIGNIFICANCE.names(), *([TP_MAGNITUDE] if allow_tp else [])]
    if name not in known:
        raise ValueError(f"unknown criterion {name!r}; known: {', '.join(known)}")
    return name


class _Step(StrictModel):
    """Fields every step has: an optional name (its run's label) and the model it starts from."""

    name: str | None = Field(
        default=None, min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_.-]+$"
    )
    from_: str | None = Field(default=None, alias="from")


class SignificanceStep(_Step):
    """Score every output channel (the table is stored; later int8 / vq steps may use it)."""

    step: Literal["significance"]
    criterion: str = "taylor"

    @model_validator(mode="after")
    def _known(self) -> SignificanceStep:
        _check_criterion(self.criterion, allow_tp=False)
        return self


class PruneStep(_Step):
    """Structured pruning to ``target_macs`` of the dense MACs, in ``steps`` Torch-Pruning steps."""

    step: Literal["prune"]
    target_macs: float = Field(gt=0, lt=1)
    criterion: str = "taylor"
    steps: int = Field(default=4, ge=1, le=100)
    round_to: int = Field(default=8, ge=1, le=256)
    round_all: bool = True

    @model_validator(mode="after")
    def _known(self) -> PruneStep:
        _check_criterion(self.criterion, allow_tp=True)
        return self


class RecoverStep(_Step):
    """Fine-tune by distilling from the dense model on fresh pseudo-views (crops, flips, blurs)."""

    step: Literal["recover"]
    steps: int = Field(default=150, ge=1, le=10_000_000)
    lr: float = Field(default=2e-4, gt=0, le=1.0)
    min_lr: float = Field(default=1e-6, ge=0, le=1.0)
    warmup_steps: int = Field(default=0, ge=0)
    grad_clip: float | None = Field(default=5.0, gt=0)
    distill_weight: float = Field(default=1.0, ge=0)
    reconstruction_weight: float = Field(default=1.0, ge=0)
    crop: int = Field(default=64, ge=16, le=2048)
    batch: int = Field(default=4, ge=1, le=4096)
    seed: int = Field(default=5000, ge=0)
    zoom: tuple[float, float] = (1.0, 1.0)

    @model_validator(mode="after")
    def _consistent(self) -> RecoverStep:
        if self.min_lr > self.lr:
            raise ValueError(f"min_lr {self.min_lr} exceeds lr {self.lr}")
        check_zoom(self.zoom)
        if self.distill_weight == 0 and self.reconstruction_weight == 0:
            raise ValueError("distill_weight and reconstruction_weight cannot both be 0")
        return self


class HalfStep(_Step):
    """Weights (and compute) in fp16 or bf16."""

    step: Literal["fp16", "bf16"]


class Int8Step(_Step):
    """ONNX Runtime static QDQ INT8, calibrated on blurry crops of the calibration split; the
    ``keep_float`` most sensitive convolutions (by measured INT8 ``sensitivity`` or by
    ``significance``) stay in float."""

    step: Literal["int8"]
    keep_float: int = Field(default=0, ge=0, le=1000)
    keep_by: Literal["sensitivity", "significance"] = "sensitivity"
    calibration_count: int = Field(default=8, ge=1, le=1000)
    calibrate_method: Literal["minmax", "entropy", "percentile"] = "minmax"
    per_channel: bool = True


class VQStep(_Step):
    """Significance-aware k-means vector quantisation of the weights (storage only)."""

    step: Literal["vq"]
    codebook_size: int = Field(default=4096, ge=2, le=65536)
    vector_dim: int = Field(default=9, ge=1, le=1024)
    fp16_fraction: float = Field(default=0.05, ge=0, le=1)
    kmeans_iterations: int = Field(default=50, ge=1, le=10_000)
    criterion: str = "taylor"
    seed: int = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _known(self) -> VQStep:
        _check_criterion(self.criterion, allow_tp=False)
        return self


Step = Annotated[
    SignificanceStep | PruneStep | RecoverStep | HalfStep | Int8Step | VQStep,
    Field(discriminator="step"),
]
STEP_KINDS = ("significance", "prune", "recover", "fp16", "bf16", "int8", "vq")


class CompressConfig(StrictModel):
    """One compression pipeline: model and weights, evaluation and calibration data, ordered steps.

    Quality is measured on ``test_count`` held-out synthetic crops of ``test_size`` px; MACs,
    latency and the ONNX exports use one image of that size (1 x 3 x test_size x test_size).
    Significance and pruning see ``calibration_count`` crops of ``calibration_size`` px from the
    calibration split in batches of ``calibration_batch``.
    """

    model: str = "mssnet"
    variant: str | None = None
    weights: str | None = None
    device: Device = "auto"
    threads: int | None = Field(default=1, ge=1, le=1024)
    test_count: int = Field(default=24, ge=1, le=10_000)
    test_size: int = Field(default=256, ge=16, le=4096)
    calibration_count: int = Field(default=8, ge=1, le=10_000)
    calibration_size: int = Field(default=64, ge=16, le=4096)
    calibration_batch: int = Field(default=4, ge=1, le=1024)
    latency_warmup: int = Field(default=2, ge=0, le=10_000)
    latency_repeat: int = Field(default=10, ge=1, le=100_000)
    ort: bool = True
    steps: list[Step] = Field(min_length=1)
    out: str = "reports/"
    resume: bool = False
    progress: ProgressMode = "auto"

    @model_validator(mode="after")
    def _names_and_sources(self) -> CompressConfig:
        seen: dict[str, str] = {DENSE: DENSE}
        counts: dict[str, int] = {}
        for index, step in enumerate(self.steps):
            label = label_of(step, counts)
            if label in seen:
                raise ValueError(f"steps.{index}: name {label!r} is used twice")
            if step.from_ is not None:
                kind = seen.get(step.from_)
                if kind is None:
                    raise ValueError(
                        f"steps.{index}: from {step.from_!r} names no earlier step "
                        f"(known: {', '.join(seen)})"
                    )
                if kind not in (DENSE, *MODEL_STEPS):
                    raise ValueError(
                        f"steps.{index}: from {step.from_!r} is the {kind} step, which makes no new "
                        "model; start from dense, a prune or a recover step"
                    )
            seen[label] = step.step
        return self

    def labels(self) -> list[str]:
        """Each step's run label, in order."""
        counts: dict[str, int] = {}
        return [label_of(step, counts) for step in self.steps]

    def pipeline_hash(self) -> str:
        """Hash of everything but the steps and where / how results are shown (``out``, ``resume``,
        ``progress``): runs of two configs with the same hash measured the same model the same way."""
        data = self.model_dump(mode="json", exclude={"steps", "out", "resume", "progress"})
        return _hash(data)

    def sources(self) -> list[str]:
        """Per step, the label of the model it starts from: its ``from``, else the model the
        previous step left (the latest earlier prune / recover step's, or ``dense``)."""
        current, sources = DENSE, []
        for label, step in zip(self.labels(), self.steps, strict=True):
            source = step.from_ or current
            sources.append(source)
            current = label if step.step in MODEL_STEPS else source
        return sources

    def step_hashes(self) -> list[str]:
        """Per step, a hash of what its result depends on: its label and settings and the hash of
        the model it starts from, which in turn covers that model's own chain of prune / recover
        steps back to the pipeline (``dense``). ``--resume`` skips a step whose hash has a finished
        run, so editing or adding a step re-runs it and the steps built on its model, no others."""
        hashes = {DENSE: self.pipeline_hash()}
        for label, step, source in zip(self.labels(), self.steps, self.sources(), strict=True):
            settings = step.model_dump(mode="json", by_alias=True)
            hashes[label] = _hash({"source": hashes[source], "label": label, "step": settings})
        return [hashes[label] for label in self.labels()]


def label_of(step: Any, counts: dict[str, int]) -> str:
    """The run label of ``step``: its name, else its kind (numbered from the second unnamed one on)."""
    if step.name is not None:
        return step.name
    counts[step.step] = counts.get(step.step, 0) + 1
    n = counts[step.step]
    return step.step if n == 1 else f"{step.step}-{n}"


def _hash(data: Any) -> str:
    text = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:HASH_CHARS]
