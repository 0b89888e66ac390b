"""What every compression step measures, and running one planned step into its own run
(:func:`run_step`: nothing of a step that fails remains).

The measurements are the same for every step, so steps compare:

* ``param_count``; ``macs`` by ``effprof.measure.counting`` at 1 x 3 x test_size x test_size and
  ``macs_ratio`` to the dense model's;
* ``file_bytes``: the size on disk of what the step stores (state dict, .onnx, .npz);
* ``torch_latency_*`` (``measure.latency``, CPU, ``threads`` intra-op threads) and
  ``ort_latency_*`` (``measure.onnx.ort_latency``, CPU provider, same threads); ``cuda_latency_*``
  when the device is CUDA;
* for a deblurring model, ``test_*``: quality on the held-out synthetic test crops (PSNR/SSIM
  vs sharp, gain over blurry) and ``fidelity_*``: PSNR/SSIM of the step's output against the
  dense model's output; for any other model only ``fidelity_*`` (relative L2 error, SNR, PSNR for
  image outputs, top-1 agreement for logits) on its inputs (``recipes.compress_data``).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from effprof import schema as S
from effprof.compression.methods import ONNX_FILE, Form, Services, Stage, method_of
from effprof.compression.reload import save_pruned
from effprof.config.compress import DENSE, CompressConfig
from effprof.data import ImagePair
from effprof.data.fidelity import score_fidelity
from effprof.measure.counting import count_model
from effprof.measure.latency import LatencySpec, measure_latency
from effprof.measure.onnx import export_onnx, ort_latency
from effprof.models import ModelEntry
from effprof.models.registry import DEBLURRING, IMAGE_OUT, UNKNOWN_OUT, VECTOR_OUT
from effprof.recipes.compress_data import TaskData, first_output
from effprof.recipes.compress_plan import PlannedRun
from effprof.results import Missing
from effprof.runs import RunWriter, read_record
from effprof.runs.store import new_run_id
from effprof.training import evaluate_pairs, restore_pairs


@dataclass
class Context:
    """What the api keeps across steps: settings, the services given to methods, test data."""

    config: CompressConfig
    variant: str | None
    services: Services
    data: TaskData
    entry: ModelEntry
    dense_outputs: list[Tensor] = field(default_factory=list)
    builders: Mapping[str, Callable[[], nn.Module]] = field(default_factory=dict)  # given objects

    @property
    def pairs(self) -> list[ImagePair]:
        """The held-out test crops (deblurring models)."""
        return self.data.pairs

    @property
    def shape(self) -> tuple[int, ...]:
        """The one-image shape MACs, latency and ONNX exports use."""
        return self.services.shape

    def phase(self, text: str) -> None:
        """Report a phase of the current step."""
        self.services.phase(text)


def count_macs(inputs: Any, model: nn.Module) -> int:
    """MACs of one forward of ``inputs`` (an InputSpec or a shape; effprof's counter, on meta)."""
    return count_model(model, inputs).macs


RUNTIMES = {"torch": S.TORCH, "ort": S.ORT, "cuda": S.CUDA}


def _latency_metrics(prefix: str, result: Any) -> dict[str, Any]:
    names = RUNTIMES[prefix]
    if isinstance(result, Missing):
        return {names.median_ms: result}
    return {names.median_ms: result.median_ms, names.p10_ms: result.p10_ms,
            names.p90_ms: result.p90_ms, names.cv: result.cv, names.threads: result.threads}  # fmt: skip


def latency_spec(config: CompressConfig, device: str, precision: str = "fp32") -> LatencySpec:
    """The pipeline's latency protocol on ``device``."""
    return LatencySpec(device=device, precision=precision, warmup=config.latency_warmup,
                       repeat=config.latency_repeat, threads=config.threads)  # fmt: skip


def torch_latency(
    ctx: Context, model: nn.Module, writer: RunWriter, precision: str = "fp32"
) -> dict[str, Any]:
    """Torch latency on the CPU (and on CUDA when the pipeline runs there)."""
    ctx.phase(f"timing torch {precision} on cpu")
    metrics: dict[str, Any] = {}
    devices = ["cpu", "cuda"] if ctx.services.device == "cuda" else ["cpu"]
    for device in devices:
        result = measure_latency(model, ctx.shape, latency_spec(ctx.config, device, precision))
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
        onnx_path, ctx.shape, threads=c.threads, warmup=c.latency_warmup, repeat=c.latency_repeat
    )
    if not isinstance(result, Missing):
        writer.add_table("ort_latency", result.to_frame())
    return {**_latency_metrics("ort", result), "onnx_bytes": onnx_path.stat().st_size}


def _runs_on_cpu(model: nn.Module) -> bool:
    """An ONNX Runtime model (scored on the CPU whatever the pipeline's device)."""
    from effprof.compression.quantize import OrtModel  # onnx is imported only when needed

    return isinstance(model, OrtModel)


def dense_reference(ctx: Context) -> list[Tensor]:
    """The dense model's outputs on the test data (computed once, then reused for fidelity)."""
    if not ctx.dense_outputs:
        ctx.phase("running the dense model on the test data")
        s = ctx.services
        with torch.no_grad():
            ctx.dense_outputs = (
                restore_pairs(s.teacher, ctx.pairs, s.device, s.multiple)
                if ctx.data.task == DEBLURRING
                else [first_output(s.teacher, x.to(s.device)).cpu() for x in ctx.data.test_inputs]
            )
    return ctx.dense_outputs


def fidelity_quality(ctx: Context, model: nn.Module, writer: RunWriter) -> dict[str, Any]:
    """Fidelity to the dense model's output on the test inputs (a model without task data)."""
    references = dense_reference(ctx)
    ctx.phase(f"scoring fidelity on {len(references)} test inputs")
    device = "cpu" if _runs_on_cpu(model) else ctx.services.device
    runner = model if device == "cpu" else copy.deepcopy(model).to(device)
    kind = ctx.entry.outputs.kind
    image, logits = kind == IMAGE_OUT, kind in (VECTOR_OUT, UNKNOWN_OUT)
    with torch.no_grad():
        outputs = [first_output(runner, x.to(device)).cpu() for x in ctx.data.test_inputs]
    scores = score_fidelity(references, outputs, image=image, logits=logits)
    frame = scores.per_input
    writer.add_table("inputs", frame)
    names = {"rel_l2": S.FIDELITY_REL_L2, "snr_db": S.FIDELITY_SNR, "psnr_db": S.FIDELITY_PSNR,
             "top1": S.FIDELITY_TOP1}  # fmt: skip
    metrics: dict[str, Any] = {  # a score against a degenerate reference: missing, with why
        names[k]: v if v is not None else Missing(scores.reasons[k])
        for k, v in scores.means.items()
    }
    if scores.reference is not None:
        metrics[S.FIDELITY_REFERENCE] = scores.reference
    metrics[S.TEST_INPUTS] = len(frame)
    return metrics


def heldout_quality(ctx: Context, model: nn.Module, writer: RunWriter) -> dict[str, Any]:
    """Quality on the held-out test crops (:func:`effprof.training.evaluate_pairs`, the one
    held-out evaluation) and fidelity to the dense output; per-image table (fidelity alone for
    a model without task data). Torch models run on the pipeline's device (a copy is moved
    there), ONNX Runtime on the CPU."""
    if ctx.data.task != DEBLURRING:
        return fidelity_quality(ctx, model, writer)
    references = dense_reference(ctx)
    ctx.phase(f"scoring {len(ctx.pairs)} held-out test crops")
    device = "cpu" if _runs_on_cpu(model) else ctx.services.device
    runner = model if device == "cpu" else copy.deepcopy(model).to(device)
    result = evaluate_pairs(runner, ctx.pairs, device, ctx.services.multiple,
                            references=references)  # fmt: skip
    writer.add_table("images", result.per_image)
    means = result.summary()
    metrics = {S.HELD_OUT[name]: value for name, value in means.items()}
    frame = result.per_image
    metrics[S.FIDELITY_PSNR] = float(frame["fidelity_psnr_db"].mean())
    metrics[S.FIDELITY_SSIM] = float(frame["fidelity_ssim"].mean())
    return metrics


def _size_metrics(ctx: Context, model: nn.Module, file_bytes: int) -> dict[str, Any]:
    macs = count_macs(ctx.data.inputs, model)
    return {
        S.PARAM_COUNT: sum(p.numel() for p in model.parameters()),
        S.MACS: macs,
        S.MACS_RATIO: macs / ctx.services.dense_macs if ctx.services.dense_macs else 1.0,
        S.FILE_BYTES: file_bytes,
    }


def model_metrics(
    ctx: Context, model: nn.Module, writer: RunWriter, file_bytes: int
) -> dict[str, Any]:
    """Everything measured for an fp32 torch model: size, MACs, torch / ORT latency, quality."""
    metrics = _size_metrics(ctx, model, file_bytes)
    metrics.update(torch_latency(ctx, model, writer))
    if ctx.config.ort:
        ctx.phase("exporting ONNX")
        path = export_onnx(model, ctx.shape, writer.file_path(ONNX_FILE))
        metrics.update(onnx_latency(ctx, path, writer))
    else:
        metrics[S.ORT.median_ms] = Missing("ONNX Runtime disabled in the config (ort: false)")
    metrics.update(heldout_quality(ctx, model, writer))
    return metrics


def form_metrics(ctx: Context, stage: Stage, form: Form, writer: RunWriter) -> dict[str, Any]:
    """What is measured for a form of the stage's model (fp16, INT8, VQ...)."""
    metrics = _size_metrics(ctx, stage.model, form.file_bytes)
    if isinstance(form.torch, Missing):
        metrics[S.TORCH.median_ms] = form.torch
    else:
        metrics.update(torch_latency(ctx, *form.torch, writer))
    if isinstance(form.onnx, Missing):
        metrics[S.ORT.median_ms] = form.onnx
    else:
        metrics.update(onnx_latency(ctx, form.onnx, writer))
    metrics.update(heldout_quality(ctx, form.evaluated, writer))
    return metrics


def inherited(stage: Stage) -> tuple[dict[str, Any], list[str]]:
    """The starting model's measured metrics (a step that does not change the model)."""
    if stage.run_dir is None:
        return {}, []
    metrics = dict(read_record(stage.run_dir).metrics)
    return metrics, [
        f"model unchanged: size, latency and quality are those measured in run {stage.run_id}"
    ]


def save_model(ctx: Context, model: nn.Module, writer: RunWriter, label: str) -> int:
    """Write structure.json + weights.pt (fp32) into the run; returns the weights file's bytes."""
    files = save_pruned(
        model, writer.work_dir, model_name=ctx.config.model, variant=ctx.variant,
        info={"step": label}, builders=ctx.builders,
    )  # fmt: skip
    writer.file_path(files.structure.name)
    writer.file_path(files.weights.name)
    return files.weights_bytes


def measure_step(ctx: Context, plan: PlannedRun, source: Stage, writer: RunWriter):
    """Run the plan's method (or the dense baseline) and measure what it made."""
    if plan.step is None:
        file_bytes = save_model(ctx, source.model, writer, DENSE)
        return model_metrics(ctx, source.model, writer, file_bytes), [], source.model
    tables = ctx.services.cache["latency_tables"]
    lookups = tables["table"].lookups if "table" in tables else 0
    result = method_of(plan.step).run(ctx.services, source, plan.step, writer)
    if result.model is not None:
        file_bytes = save_model(ctx, result.model, writer, plan.label)
        metrics = model_metrics(ctx, result.model, writer, file_bytes)
    elif result.form is not None:
        metrics = form_metrics(ctx, source, result.form, writer)
    else:
        metrics, notes = inherited(source)
        result.notes[:0] = notes
    metrics.update(result.metrics)
    if "table" in tables and tables["table"].lookups > lookups:  # this step used the table
        tables["table"].save()
        result.notes.append(tables["table"].describe())
    return metrics, result.notes, result.model


def run_step(
    ctx: Context,
    plan: PlannedRun,
    source: Stage,
    params: dict[str, Any],
    group: str,
    notes: list[str],
    env: dict[str, Any],
) -> tuple[Path, Any]:
    """Run one step into its own run folder; nothing of it remains if it fails."""
    config = ctx.config
    writer = RunWriter(
        config.out,
        "compress",
        config.model,
        ctx.variant,
        params=params,
        run_id=new_run_id(f"compress-{plan.label}", config.model, ctx.variant),
        group=group,
        parent=source.run_id if plan.step is not None else None,
    ).start()
    try:
        metrics, step_notes, model = measure_step(ctx, plan, source, writer)
        path = writer.finish(metrics, env, [*notes, *step_notes])
    except BaseException:
        writer.abandon()
        raise
    return path, model
