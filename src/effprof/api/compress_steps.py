"""The steps of a compression pipeline (used by ``api.compress``).

Every step gets the model it starts from (a :class:`Stage`) and a run writer, writes its files
into the run folder and returns metrics (``api.compress_measure``); ``prune`` and ``recover``
also return their new model.
"""

from __future__ import annotations

import copy
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from effprof.api.compress_measure import (
    ONNX_FILE,
    Context,
    Stage,
    StepOutput,
    count_macs,
    heldout_quality,
    model_metrics,
    onnx_latency,
    save_model,
    torch_latency,
)
from effprof.compress.prune import PruneSpec, prune
from effprof.compress.quantize import (
    Int8Spec,
    OrtModel,
    cast_model,
    half_state_dict,
    int8_sensitivity,
    quantize_int8,
)
from effprof.compress.recover import RecoverSpec, distillation_gap, recover
from effprof.compress.significance import SignificanceTable, compute_significance
from effprof.compress.vq import VQSpec, vq_decode, vq_encode
from effprof.config.compress import (
    HalfStep,
    Int8Step,
    PruneStep,
    RecoverStep,
    SignificanceStep,
    VQStep,
)
from effprof.data import synthetic_pairs
from effprof.measure.onnx import export_onnx, onnx_parity
from effprof.results import EffprofError, Missing
from effprof.runs import RunWriter, read_record

INT8_SEED = 11  # blurry calibration crops for INT8, distinct from significance's CALIBRATION_SEED


def dense_step(ctx: Context, stage: Stage, writer: RunWriter) -> StepOutput:
    """The uncompressed baseline, measured like every other step."""
    file_bytes = save_model(ctx, stage.model, writer, "dense")
    return StepOutput(model_metrics(ctx, stage.model, writer, file_bytes))


def significance_of(ctx: Context, stage: Stage, criterion: str) -> SignificanceTable:
    """The stage's significance table under ``criterion`` (computed once per model)."""
    table = stage.significance
    if table is None or table.criterion != criterion:
        ctx.phase(f"scoring channel significance ({criterion})")
        table = compute_significance(stage.model, criterion, ctx.calibration)
        stage.significance = table
    return table


def _inherited(stage: Stage) -> tuple[dict[str, Any], list[str]]:
    """The starting model's measured metrics (a step that does not change the model)."""
    if stage.run_dir is None:
        return {}, []
    metrics = dict(read_record(stage.run_dir).metrics)
    return metrics, [
        f"model unchanged: size, latency and quality are those measured in run {stage.run_id}"
    ]


def significance_step(
    ctx: Context, stage: Stage, step: SignificanceStep, writer: RunWriter
) -> StepOutput:
    """Score every output channel; the model is unchanged."""
    table = significance_of(ctx, stage, step.criterion)
    frame = table.to_frame()
    writer.add_table("significance", frame)
    metrics, notes = _inherited(stage)
    metrics.update(
        significance_layers=len(table.layers),
        significance_channels=len(frame),
        calibration_pixels=table.calibration_pixels,
    )
    notes.append(
        f"criterion {step.criterion}: {'per MAC of the channel' if table.cost_normalised else 'raw'}"
    )
    return StepOutput(metrics, notes)


def prune_target(ctx: Context, model: nn.Module, target_macs: float) -> float:
    """The MAC ratio to ask of ``model`` so that the result keeps ``target_macs`` of the dense MACs."""
    start = count_macs(ctx, model) / ctx.dense_macs
    if target_macs >= start:
        raise EffprofError(
            f"cannot prune to {target_macs:g} of the dense MACs: the model it starts from "
            f"already keeps {start:.3f}"
        )
    return target_macs / start


def prune_step(ctx: Context, stage: Stage, step: PruneStep, writer: RunWriter) -> StepOutput:
    """Structured pruning to a fraction of the dense MACs."""
    ratio = prune_target(ctx, stage.model, step.target_macs)
    spec = PruneSpec(ratio, step.criterion, step.steps, step.round_to, step.round_all)
    ctx.phase(f"pruning to {step.target_macs:g} of the dense MACs ({step.criterion})")
    pruned, result = prune(stage.model, spec, ctx.calibration, macs_of=lambda m: count_macs(ctx, m))
    writer.add_table("prune_steps", result.to_frame())
    writer.add_table("widths", result.widths_frame())
    file_bytes = save_model(ctx, pruned, writer, "prune")
    metrics = model_metrics(ctx, pruned, writer, file_bytes)
    start = result.dense_macs / ctx.dense_macs
    metrics.update(
        target_macs_ratio=step.target_macs,
        macs_ratio=metrics["macs"] / ctx.dense_macs,
        achievable_min_macs_ratio=result.achievable_min_ratio * start,
        achievable_max_macs_ratio=result.achievable_max_ratio * start,
        prune_s=sum(s.seconds for s in result.steps),
    )
    notes = [f"pruned from {stage.label}: {len(result.steps)} steps, criterion {step.criterion}"]
    return StepOutput(metrics, notes, pruned)


def recover_step(ctx: Context, stage: Stage, step: RecoverStep, writer: RunWriter) -> StepOutput:
    """Distil the dense teacher into the stage's model on fresh pseudo-views."""
    student = copy.deepcopy(stage.model).to(ctx.device)
    for p in student.parameters():
        p.requires_grad_(True)
    spec = RecoverSpec(
        steps=step.steps,
        lr=step.lr,
        min_lr=step.min_lr,
        warmup_steps=step.warmup_steps,
        grad_clip=step.grad_clip,
        distill_weight=step.distill_weight,
        reconstruction_weight=step.reconstruction_weight,
        crop_px=step.crop,
        batch=step.batch,
        seed=step.seed,
        zoom=step.zoom,
        forward_kwargs=ctx.calibration.forward_kwargs,
    )
    probe = ctx.calibration.batches[0][0].to(ctx.device)
    kwargs = ctx.calibration.forward_kwargs
    before = distillation_gap(student, ctx.teacher, probe, kwargs)
    ctx.phase(f"recovering: {step.steps} steps of distillation from the dense model")
    result = recover(student, ctx.teacher, spec, progress=ctx.train_progress)
    after = distillation_gap(student, ctx.teacher, probe, kwargs)
    student = student.cpu().eval()
    writer.add_table("loss", result.history)
    file_bytes = save_model(ctx, student, writer, "recover")
    metrics = model_metrics(ctx, student, writer, file_bytes)
    history = result.history
    metrics.update(
        recover_steps=result.steps_done,
        recover_s=result.seconds,
        recover_final_loss=float(history["loss"].iloc[-1]) if not history.empty else None,
        distill_l1_before=before,
        distill_l1_after=after,
    )
    low, high = step.zoom
    zoomed = f", rescaling by {low:g}-{high:g}x" if (low, high) != (1.0, 1.0) else ""
    notes = [
        f"recovered {stage.label}: {result.steps_done} steps, {step.batch} crops of {step.crop} px "
        f"per step (fresh crops, flips, rotations{zoomed} and blur kernels every step, seed {step.seed})",
        "distill_l1_*: mean L1 between this model's and the dense model's outputs (all outputs) "
        "on the first calibration batch, before and after",
    ]
    return StepOutput(metrics, notes, student)


def half_step(ctx: Context, stage: Stage, step: HalfStep, writer: RunWriter) -> StepOutput:
    """Weights in fp16 / bf16: file size, latency and quality of the half-precision model."""
    precision = step.step
    path = writer.file_path(f"weights-{precision}.pt")
    torch.save(half_state_dict(stage.model, precision), path)
    metrics: dict[str, Any] = {
        "param_count": sum(p.numel() for p in stage.model.parameters()),
        "macs": count_macs(ctx, stage.model),
        "file_bytes": path.stat().st_size,
    }
    notes: list[str] = []
    slow_cpu = precision == "fp16" and ctx.device == "cpu"
    if slow_cpu:
        metrics["torch_latency_median_ms"] = Missing(
            "not timed: PyTorch runs fp16 convolutions on the CPU through a slow reference path"
        )
    else:
        metrics.update(torch_latency(ctx, stage.model, writer, precision))
    onnx_model = None
    if ctx.config.ort and precision == "fp16":
        ctx.phase("exporting fp16 ONNX")
        half = copy.deepcopy(stage.model).half()
        onnx_path = export_onnx(half, ctx.shape, writer.file_path("model-fp16.onnx"))
        metrics.update(onnx_latency(ctx, onnx_path, writer))
        onnx_model = OrtModel.open(onnx_path, ctx.config.threads)
    else:
        metrics["ort_latency_median_ms"] = Missing(
            f"{precision} is not measured in ONNX Runtime"
            if precision != "fp16"
            else "ONNX Runtime disabled in the config (ort: false)"
        )
    if slow_cpu and onnx_model is not None:
        notes.append("quality of the fp16 model measured in ONNX Runtime (CPU)")
        evaluated: nn.Module = onnx_model
    else:
        evaluated = cast_model(stage.model, precision)
    metrics.update(heldout_quality(ctx, evaluated, writer))
    return StepOutput(metrics, notes)


def _keep_float(
    ctx: Context, stage: Stage, step: Int8Step, writer: RunWriter
) -> tuple[tuple[str, ...], str]:
    """The ``keep_float`` convolutions to leave in float, and how they were chosen."""
    if step.keep_float == 0:
        return (), "every convolution quantised"
    if step.keep_by == "sensitivity":
        ctx.phase("measuring per-layer INT8 sensitivity")
        inputs = [b[:1] for b, _ in ctx.calibration.batches]
        frame = int8_sensitivity(stage.model, inputs)
        writer.add_table("int8_sensitivity", frame)
        chosen = tuple(frame["layer"].head(step.keep_float))
        how = "largest output error when fake-quantised alone (calibration crops)"
    else:
        table = significance_of(ctx, stage, "taylor")
        totals = sorted(((float(e.raw.sum()), e.layer) for e in table.layers), reverse=True)
        chosen = tuple(layer for _, layer in totals[: step.keep_float])
        how = "largest total Taylor significance"
    return chosen, f"kept in float ({how}): {', '.join(chosen)}"


def int8_step(ctx: Context, stage: Stage, step: Int8Step, writer: RunWriter) -> StepOutput:
    """ONNX Runtime static QDQ INT8 of the stage's model."""
    keep, keep_note = _keep_float(ctx, stage, step, writer)
    c = ctx.config
    pairs = synthetic_pairs("calibration", step.calibration_count, c.test_size, INT8_SEED)
    inputs = [p.blurry[None].numpy() for p in pairs]
    spec = Int8Spec(
        per_channel=step.per_channel, calibrate_method=step.calibrate_method, keep_float=keep
    )
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = stage.run_dir / ONNX_FILE if stage.run_dir is not None else None
        if fp32 is None or not fp32.is_file():
            ctx.phase("exporting fp32 ONNX")
            fp32 = export_onnx(stage.model, ctx.shape, Path(tmp) / ONNX_FILE)
        ctx.phase(f"quantising to INT8 (calibrating on {len(inputs)} blurry crops)")
        result = quantize_int8(fp32, writer.file_path("model-int8.onnx"), inputs, stage.model, spec)
    metrics: dict[str, Any] = {
        "param_count": sum(p.numel() for p in stage.model.parameters()),
        "macs": count_macs(ctx, stage.model),
        "file_bytes": result.file_bytes,
        "int8_convs": result.quantized_convs,
        "float_convs": len(result.float_convs),
        "torch_latency_median_ms": Missing("the INT8 model runs in ONNX Runtime only"),
    }
    metrics.update(onnx_latency(ctx, result.path, writer))
    parity = onnx_parity(stage.model, result.path, pairs[0].blurry[None])
    metrics.update({f"int8_{k.removeprefix('onnx_')}": v for k, v in parity.summary().items()})
    metrics.update(heldout_quality(ctx, OrtModel.open(result.path, c.threads), writer))
    notes = [
        keep_note,
        f"QDQ, {'per-channel' if step.per_channel else 'per-tensor'} int8 weights, uint8 "
        f"activations, {step.calibrate_method} calibration on {len(inputs)} blurry "
        f"{c.test_size}px crops of the calibration split (seed {INT8_SEED}); PReLU run as LeakyRelu",
        "macs: the same multiply-accumulates, done in int8",
        "int8_*_error: INT8 ONNX Runtime output against the fp32 torch model on one calibration crop",
    ]
    return StepOutput(metrics, notes)


def vq_step(ctx: Context, stage: Stage, step: VQStep, writer: RunWriter) -> StepOutput:
    """Significance-aware vector quantisation of the weights; quality of the decoded model."""
    table = significance_of(ctx, stage, step.criterion)
    spec = VQSpec(
        step.codebook_size, step.vector_dim, step.fp16_fraction, step.kmeans_iterations, step.seed
    )
    ctx.phase(f"vector-quantising ({step.codebook_size} codes of {step.vector_dim})")
    result = vq_encode(stage.model.state_dict(), table, writer.file_path("weights-vq.npz"), spec)
    decoded = copy.deepcopy(stage.model)
    decoded.load_state_dict(vq_decode(result.path))
    metrics: dict[str, Any] = {
        "param_count": sum(p.numel() for p in decoded.parameters()),
        "macs": count_macs(ctx, decoded),
        "file_bytes": result.file_bytes,
        "vq_bits_per_conv_weight": result.bits_per_conv_weight,
        "vq_fp16_weights": result.fp16_weights,
        "vq_weights": result.vq_weights,
        "vq_vector_rmse": result.vector_rmse,
        "vq_weight_relative_error": result.weight_relative_error,
        "torch_latency_median_ms": Missing(
            "storage only: the decoded float32 weights run at the starting model's speed"
        ),
        "ort_latency_median_ms": Missing(
            "storage only: the decoded float32 weights run at the starting model's speed"
        ),
    }
    metrics.update(heldout_quality(ctx, decoded, writer))
    notes = [
        f"{step.fp16_fraction:.0%} of the conv weights (the most significant channels, "
        f"{step.criterion}) kept in fp16; the rest as {spec.index_bits}-bit indices into one "
        f"codebook of {step.codebook_size} fp16 vectors of {step.vector_dim}, one fp16 scale per channel"
    ]
    return StepOutput(metrics, notes)


STEPS: dict[str, Callable[..., StepOutput]] = {
    "significance": significance_step,
    "prune": prune_step,
    "recover": recover_step,
    "fp16": half_step,
    "bf16": half_step,
    "int8": int8_step,
    "vq": vq_step,
}
