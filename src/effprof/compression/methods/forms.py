"""Methods that measure a form of the model they start from and leave it to the next step:
``significance`` (scores only), ``fp16`` / ``bf16``, ``int8`` (ONNX Runtime static QDQ) and
``vq`` (vector-quantised weights, for storage)."""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path
from typing import Literal

import torch
from pydantic import Field, model_validator
from torch import nn

from effprof import schema as S
from effprof.compression.methods.base import (
    ONNX_FILE,
    Form,
    MethodResult,
    Services,
    Stage,
    StepFiles,
    StepSettings,
    register_method,
)
from effprof.compression.methods.pruning import check_criterion
from effprof.compression.vq import VQSpec, vq_decode, vq_encode
from effprof.results import Missing

INT8_SEED = 11  # calibration inputs for INT8, distinct from the significance calibration's seed


class _Scored(StepSettings):
    """A step that ranks channels by a significance ``criterion``."""

    criterion: str = "taylor"

    @model_validator(mode="after")
    def _known(self) -> _Scored:
        check_criterion(self.criterion, allow_tp=False)
        return self


class SignificanceStep(_Scored):
    """Score every output channel (the table is stored; later int8 / vq steps may use it)."""

    step: Literal["significance"]


@register_method("significance", SignificanceStep)
def significance_method(services: Services, stage: Stage, step: SignificanceStep, files: StepFiles):
    """Score every output channel; the model is unchanged."""
    table = services.significance_of(stage, step.criterion)
    frame = table.to_frame()
    files.add_table("significance", frame)
    metrics = {
        S.SIGNIFICANCE_LAYERS: len(table.layers),
        S.SIGNIFICANCE_CHANNELS: len(frame),
        S.CALIBRATION_PIXELS: table.calibration_pixels,
    }
    how = "per MAC of the channel" if table.cost_normalised else "raw"
    return MethodResult(metrics, [f"criterion {step.criterion}: {how}"])


class Fp16Step(StepSettings):
    """Weights (and compute) in fp16."""

    step: Literal["fp16"]


class Bf16Step(StepSettings):
    """Weights (and compute) in bf16."""

    step: Literal["bf16"]


def _half(services: Services, stage: Stage, precision: str, files: StepFiles) -> MethodResult:
    from effprof.compression.quantize import (  # onnx: only when used
        OrtModel,
        cast_model,
        half_state_dict,
    )

    path = files.file_path(f"weights-{precision}.pt")
    torch.save(half_state_dict(stage.model, precision), path)
    slow_cpu = precision == "fp16" and services.device == "cpu"
    timed: tuple[nn.Module, str] | Missing = (stage.model, precision)
    if slow_cpu:
        timed = Missing(
            "not timed: PyTorch runs fp16 convolutions on the CPU through a slow reference path"
        )
    onnx: Path | Missing = Missing(
        f"{precision} is not measured in ONNX Runtime"
        if precision != "fp16"
        else "ONNX Runtime disabled in the config (ort: false)"
    )
    evaluated: nn.Module = cast_model(stage.model, precision)
    notes: list[str] = []
    if precision == "fp16" and services.ort:
        services.phase("exporting fp16 ONNX")
        half = copy.deepcopy(stage.model).half()
        onnx = services.export_onnx(half, files.file_path("model-fp16.onnx"))
        if slow_cpu:
            notes.append("quality of the fp16 model measured in ONNX Runtime (CPU)")
            evaluated = OrtModel.open(onnx, services.threads)
    form = Form(evaluated, path.stat().st_size, timed, onnx)
    return MethodResult({}, notes, form=form)


@register_method("fp16", Fp16Step)
def fp16_method(services: Services, stage: Stage, step: Fp16Step, files: StepFiles):
    """Weights in fp16: file size, latency (torch, ONNX Runtime) and quality."""
    return _half(services, stage, "fp16", files)


@register_method("bf16", Bf16Step)
def bf16_method(services: Services, stage: Stage, step: Bf16Step, files: StepFiles):
    """Weights in bf16: file size, torch latency and quality."""
    return _half(services, stage, "bf16", files)


class Int8Step(StepSettings):
    """ONNX Runtime static QDQ INT8, calibrated on ``calibration_count`` inputs; the ``keep_float``
    most sensitive convolutions (by measured INT8 ``sensitivity`` or by ``significance``) stay in
    float."""

    step: Literal["int8"]
    keep_float: int = Field(default=0, ge=0, le=1000)
    keep_by: Literal["sensitivity", "significance"] = "sensitivity"
    calibration_count: int = Field(default=8, ge=1, le=1000)
    calibrate_method: Literal["minmax", "entropy", "percentile"] = "minmax"
    per_channel: bool = True


def _keep_float(
    services: Services, stage: Stage, step: Int8Step, files: StepFiles
) -> tuple[tuple[str, ...], str]:
    """The ``keep_float`` convolutions to leave in float, and how they were chosen."""
    from effprof.compression.quantize import int8_sensitivity  # onnx: only when used

    if step.keep_float == 0:
        return (), "every convolution quantised"
    if step.keep_by == "sensitivity":
        services.phase("measuring per-layer INT8 sensitivity")
        inputs = [b[:1] for b, _ in services.calibration.batches]
        frame = int8_sensitivity(stage.model, inputs)
        files.add_table("int8_sensitivity", frame)
        chosen = tuple(frame["layer"].head(step.keep_float))
        how = "largest output error when fake-quantised alone (calibration crops)"
    else:
        table = services.significance_of(stage, "taylor")
        totals = sorted(((float(e.raw.sum()), e.layer) for e in table.layers), reverse=True)
        chosen = tuple(layer for _, layer in totals[: step.keep_float])
        how = "largest total Taylor significance"
    return chosen, f"kept in float ({how}): {', '.join(chosen)}"


@register_method("int8", Int8Step)
def int8_method(services: Services, stage: Stage, step: Int8Step, files: StepFiles):
    """ONNX Runtime static QDQ INT8 of the stage's model."""
    from effprof.compression.quantize import (  # onnx: only when used
        Int8Spec,
        OrtModel,
        quantize_int8,
    )

    keep, keep_note = _keep_float(services, stage, step, files)
    inputs = services.inputs(step.calibration_count, INT8_SEED)
    spec = Int8Spec(
        per_channel=step.per_channel, calibrate_method=step.calibrate_method, keep_float=keep
    )
    target = files.file_path("model-int8.onnx")
    # the fp32 export is made beside the run (never in TMPDIR: a full or foreign TMPDIR must not
    # decide the run), and removed with its folder whatever happens
    with tempfile.TemporaryDirectory(prefix=".effprof-onnx-", dir=target.parent) as tmp:
        fp32 = stage.run_dir / ONNX_FILE if stage.run_dir is not None else None
        if fp32 is None or not (fp32.exists() or fp32.is_symlink()):
            services.phase("exporting fp32 ONNX")
            fp32 = services.export_onnx(stage.model, Path(tmp) / ONNX_FILE)
        services.phase(f"quantising to INT8 (calibrating on {len(inputs)} inputs)")
        arrays = [x.numpy() for x in inputs]
        result = quantize_int8(fp32, target, arrays, stage.model, spec)
    metrics = {S.INT8_CONVS: result.quantized_convs, S.FLOAT_CONVS: len(result.float_convs)}
    parity = services.onnx_parity(stage.model, result.path, inputs[0])
    metrics.update({f"int8_{k.removeprefix('onnx_')}": v for k, v in parity.items()})
    form = Form(
        OrtModel.open(result.path, services.threads),
        result.file_bytes,
        Missing("the INT8 model runs in ONNX Runtime only"),
        result.path,
    )
    notes = [
        keep_note,
        f"QDQ, {'per-channel' if step.per_channel else 'per-tensor'} int8 weights, uint8 "
        f"activations, {step.calibrate_method} calibration on {len(inputs)} inputs of "
        f"{'x'.join(map(str, services.shape))} (seed {INT8_SEED}); PReLU run as LeakyRelu",
        "macs: the same multiply-accumulates, done in int8",
        "int8_*_error: INT8 ONNX Runtime output against the fp32 torch model on one calibration input",
    ]
    return MethodResult(metrics, notes, form=form)


class VQStep(_Scored):
    """Significance-aware k-means vector quantisation of the weights (storage only)."""

    step: Literal["vq"]
    codebook_size: int = Field(default=4096, ge=2, le=65536)
    vector_dim: int = Field(default=9, ge=1, le=1024)
    fp16_fraction: float = Field(default=0.05, ge=0, le=1)
    kmeans_iterations: int = Field(default=50, ge=1, le=10_000)
    seed: int = Field(default=0, ge=0)


@register_method("vq", VQStep)
def vq_method(services: Services, stage: Stage, step: VQStep, files: StepFiles):
    """Significance-aware vector quantisation of the weights; quality of the decoded model."""
    table = services.significance_of(stage, step.criterion)
    spec = VQSpec(
        step.codebook_size, step.vector_dim, step.fp16_fraction, step.kmeans_iterations, step.seed
    )
    services.phase(f"vector-quantising ({step.codebook_size} codes of {step.vector_dim})")
    result = vq_encode(stage.model.state_dict(), table, files.file_path("weights-vq.npz"), spec)
    decoded = copy.deepcopy(stage.model)
    decoded.load_state_dict(vq_decode(result.path))
    storage = Missing("storage only: the decoded float32 weights run at the starting model's speed")
    metrics = {
        S.VQ_BITS: result.bits_per_conv_weight,
        S.VQ_FP16_WEIGHTS: result.fp16_weights,
        S.VQ_WEIGHTS: result.vq_weights,
        S.VQ_VECTOR_RMSE: result.vector_rmse,
        S.VQ_WEIGHT_RELATIVE_ERROR: result.weight_relative_error,
    }
    notes = [
        f"{step.fp16_fraction:.0%} of the conv weights (the most significant channels, "
        f"{step.criterion}) kept in fp16; the rest as {spec.index_bits}-bit indices into one "
        f"codebook of {step.codebook_size} fp16 vectors of {step.vector_dim}, one fp16 scale per channel"
    ]
    return MethodResult(metrics, notes, form=Form(decoded, result.file_bytes, storage, storage))
