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

The step kinds are the registered compression methods (``effprof.compression.methods``): ``prune``,
``prune-sensitivity``, ``sparsify``, ``iterative`` and ``recover`` make a new model;
``significance``, ``fp16``, ``bf16``, ``int8`` and ``vq`` measure a form of the model they start
from and leave it to the next step unchanged. A pruning target is a fraction of the dense model's
MACs (``target_macs``) or of its latency on this device (``target_latency``). Step names label the
runs (default: the step kind, ``-2``, ``-3``... when repeated); ``dense`` is the uncompressed
baseline's run.
"""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Any, Literal, Union

from pydantic import Field, model_validator

from effprof.compression.methods import METHODS, kinds, model_kinds
from effprof.config.base import StrictModel

Device = Literal["auto", "cpu", "cuda"]
ProgressMode = Literal["auto", "bar", "lines", "none"]
DENSE = "dense"
HASH_CHARS = 16

# Derived from the method registry (effprof.compression.methods): a new method is one module there.
STEP_KINDS = kinds()
MODEL_STEPS = model_kinds()  # steps that make a new model
Step = Annotated[
    Union[tuple(method.settings for _, method in METHODS.items())],  # noqa: UP007
    Field(discriminator="step"),
]


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


def parse_target(text: str) -> tuple[str, float]:
    """``"latency=0.5"`` -> ("latency", 0.5): a pruning target as ``--target`` gives it."""
    unit, _, value = text.partition("=")
    units = ("macs", "latency")
    try:
        fraction = float(value)
    except ValueError:
        fraction = -1.0
    if unit not in units or not 0 < fraction < 1:
        raise ValueError(
            f"--target must be macs=F or latency=F with 0 < F < 1 (a fraction of the dense "
            f"model's), got {text!r}"
        )
    return unit, fraction


def default_steps(target: str, recover_steps: int) -> list[dict[str, Any]]:
    """The pipeline ``effprof compress --target`` runs without a config: prune to the target,
    recover by distillation alone, INT8 of the result, and INT8 of the dense model beside it."""
    unit, fraction = parse_target(target)
    return [
        {"step": "prune", f"target_{unit}": fraction, "steps": 4, "round_to": 8},
        {"step": "recover", "steps": recover_steps, "reconstruction_weight": 0},
        {"step": "int8"},
        {"step": "int8", "name": "int8-dense", "from": DENSE},
    ]
