"""What every compression step measures, and the state the steps share (used by ``api.compress``).

The measurements are the same for every step, so steps compare:

* ``param_count``; ``macs`` by ``effprof.measure.counting`` at 1 x 3 x test_size x test_size;
* ``file_bytes``: the size on disk of what the step stores (state dict, .onnx, .npz);
* ``torch_latency_*`` (``measure.latency``, CPU, ``threads`` intra-op threads) and
  ``ort_latency_*`` (``measure.onnx.ort_latency``, CPU provider, same threads); ``cuda_latency_*``
  when the device is CUDA;
* ``test_*``: quality on the held-out synthetic test crops (PSNR/SSIM vs sharp, gain over
  blurry) and ``fidelity_*``: PSNR/SSIM of the step's output against the dense model's output.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import Tensor, nn

from effprof.compress.quantize import OrtModel
from effprof.compress.reload import save_pruned
from effprof.compress.significance import Calibration, SignificanceTable
from effprof.config.compress import CompressConfig
from effprof.data import ImagePair, fidelity, quality
from effprof.measure.counting import count_model
from effprof.measure.latency import LatencySpec, measure_latency
from effprof.measure.onnx import export_onnx, ort_latency
from effprof.results import Missing
from effprof.runs import RunWriter
from effprof.train import Progress, restore

ONNX_FILE = "model.onnx"
LATENCY_KEYS = ("latency_median_ms", "latency_p10_ms", "latency_p90_ms", "latency_cv")


@dataclass
class Stage:
    """A model a step can start from: the torch model, its label and the run that made it."""

    model: nn.Module
    label: str
    run_id: str | None = None
    run_dir: Path | None = None
    significance: SignificanceTable | None = None
    trained_steps: int = 0  # recovery steps in its lineage (the dense control needs as many)
    pruned: bool = False


@dataclass
class Context:
    """What every step shares: settings, the frozen dense teacher, test and calibration data."""

    config: CompressConfig
    variant: str | None
    device: str
    multiple: int
    teacher: nn.Module
    pairs: list[ImagePair]
    calibration: Calibration
    phase: Callable[[str], None]
    train_progress: Progress
    dense_outputs: list[Tensor] = field(default_factory=list)
    dense_macs: int = 0

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """The one-image shape MACs, latency and ONNX exports use."""
        return (1, 3, self.config.test_size, self.config.test_size)


@dataclass
class StepOutput:
    """What a step measured, what it noted, and the new model (prune / recover only)."""

    metrics: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    model: nn.Module | None = None


def count_macs(ctx: Context, model: nn.Module) -> int:
    """MACs of one forward at the pipeline's shape (effprof's counter, on the meta device)."""
    return count_model(model, ctx.shape).macs


def _latency_metrics(prefix: str, result: Any) -> dict[str, Any]:
    if isinstance(result, Missing):
        return {f"{prefix}_latency_median_ms": result}
    summary = result.summary()
    metrics = {f"{prefix}_{key}": summary[key] for key in LATENCY_KEYS}
    metrics[f"{prefix}_latency_threads"] = result.threads
    return metrics


def _latency_spec(ctx: Context, device: str, precision: str = "fp32") -> LatencySpec:
    c = ctx.config
    return LatencySpec(
        device=device,
        precision=precision,
        warmup=c.latency_warmup,
        repeat=c.latency_repeat,
        threads=c.threads,
    )


def torch_latency(
    ctx: Context, model: nn.Module, writer: RunWriter, precision: str = "fp32"
) -> dict[str, Any]:
    """Torch latency on the CPU (and on CUDA when the pipeline runs there)."""
    ctx.phase(f"timing torch {precision} on cpu")
    metrics: dict[str, Any] = {}
    devices = ["cpu", "cuda"] if ctx.device == "cuda" else ["cpu"]
    for device in devices:
        result = measure_latency(model, ctx.shape, _latency_spec(ctx, device, precision))
        prefix = "torch" if device == "cpu" else "cuda"
        metrics.update(_latency_metrics(prefix, result))
        if not isinstance(result, Missing):
            writer.add_table(f"{prefix}_latency", result.to_frame())
    return metrics


def onnx_latency(ctx: Context, onnx_path: Path, writer: RunWriter) -> dict[str, Any]:
    """ONNX Runtime CPU latency of ``onnx_path`` and its size."""
    ctx.phase(f"timing ONNX Runtime ({onnx_path.name})")
    c = ctx.config
    result = ort_latency(
        onnx_path,
        ctx.shape,
        threads=c.threads,
        warmup=c.latency_warmup,
        repeat=c.latency_repeat,
    )
    if not isinstance(result, Missing):
        writer.add_table("ort_latency", result.to_frame())
    return {**_latency_metrics("ort", result), "onnx_bytes": onnx_path.stat().st_size}


def dense_reference(ctx: Context) -> list[Tensor]:
    """The dense model's restored test images (computed once, then reused for fidelity)."""
    if not ctx.dense_outputs:
        ctx.phase("restoring the test crops with the dense model")
        ctx.dense_outputs = [
            restore(ctx.teacher, blurry.to(ctx.device), ctx.multiple).cpu()
            for blurry, _ in _batches(ctx.pairs)
        ]
    return ctx.dense_outputs


def _batches(pairs: list[ImagePair], size: int = 4) -> list[tuple[Tensor, Tensor]]:
    return [
        (
            torch.stack([p.blurry for p in pairs[i : i + size]]),
            torch.stack([p.sharp for p in pairs[i : i + size]]),  # type: ignore[misc]
        )
        for i in range(0, len(pairs), size)
    ]


def heldout_quality(ctx: Context, model: nn.Module, writer: RunWriter) -> dict[str, Any]:
    """Quality on the held-out test crops and fidelity to the dense output; per-image table.

    Torch models run on the pipeline's device (a copy is moved there), ONNX Runtime on the CPU.
    """
    references = dense_reference(ctx)
    ctx.phase(f"scoring {len(ctx.pairs)} held-out test crops")
    device = "cpu" if isinstance(model, OrtModel) else ctx.device
    runner = model if device == "cpu" else copy.deepcopy(model).to(device)
    rows = []
    was_training = runner.training
    runner.eval()
    try:
        for (blurry, sharp), reference in zip(_batches(ctx.pairs), references, strict=True):
            output = restore(runner, blurry.to(device), ctx.multiple).cpu()
            scores = {
                **{f"blurry_{k}": v for k, v in quality(blurry, sharp).items()},
                **quality(output, sharp),
                **fidelity(output, reference),
            }
            rows += [{k: float(v[i]) for k, v in scores.items()} for i in range(len(blurry))]
    finally:
        runner.train(was_training)
    frame = pd.DataFrame(rows)
    frame.insert(0, "name", [p.name for p in ctx.pairs])
    frame["gain_db"] = frame["psnr_db"] - frame["blurry_psnr_db"]
    writer.add_table("images", frame)
    means = frame.drop(columns="name").mean()
    metrics = {f"test_{k}": float(means[k]) for k in ("psnr_db", "ssim", "gain_db")}
    metrics["test_blurry_psnr_db"] = float(means["blurry_psnr_db"])
    metrics["test_blurry_ssim"] = float(means["blurry_ssim"])
    metrics["test_images"] = len(frame)
    metrics["fidelity_psnr_db"] = float(means["fidelity_psnr_db"])
    metrics["fidelity_ssim"] = float(means["fidelity_ssim"])
    return metrics


def model_metrics(
    ctx: Context, model: nn.Module, writer: RunWriter, file_bytes: int
) -> dict[str, Any]:
    """Everything measured for an fp32 torch model: size, MACs, torch / ORT latency, quality."""
    metrics: dict[str, Any] = {
        "param_count": sum(p.numel() for p in model.parameters()),
        "macs": count_macs(ctx, model),
        "file_bytes": file_bytes,
    }
    metrics.update(torch_latency(ctx, model, writer))
    if ctx.config.ort:
        ctx.phase("exporting ONNX")
        path = export_onnx(model, ctx.shape, writer.file_path(ONNX_FILE))
        metrics.update(onnx_latency(ctx, path, writer))
    else:
        metrics["ort_latency_median_ms"] = Missing(
            "ONNX Runtime disabled in the config (ort: false)"
        )
    metrics.update(heldout_quality(ctx, model, writer))
    return metrics


def save_model(ctx: Context, model: nn.Module, writer: RunWriter, label: str) -> int:
    """Write structure.json + weights.pt (fp32) into the run; returns the weights file's bytes."""
    files = save_pruned(
        model,
        writer.work_dir,
        model_name=ctx.config.model,
        variant=ctx.variant,
        info={"step": label},
    )
    writer.file_path(files.structure.name)
    writer.file_path(files.weights.name)
    return files.weights_bytes
