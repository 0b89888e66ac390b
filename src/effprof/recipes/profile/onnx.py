"""The model exported to ONNX and timed in ONNX Runtime (``--onnx``), and its parity to torch."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

from effprof import schema as S
from effprof.measure.latency import LatencyResult
from effprof.measure.onnx import export_onnx, onnx_parity, ort_latency
from effprof.recipes.profile.latency import timed_metrics
from effprof.recipes.profile.steps import Output, StepContext, step
from effprof.recipes.profile.threads import threads
from effprof.results import Missing, library_reason

ONNX_FILE = "model.onnx"


@dataclass(frozen=True)
class OnnxExport:
    """The fp32 export (kept in the run as ``model.onnx``) and its ONNX Runtime latency."""

    path: Path
    padded: bool  # exported with the padding wrapper (not the bare model's graph)
    latency: LatencyResult | Missing


def _off(config) -> str | None:
    return None if config.onnx else "ONNX export not requested (--onnx)"


@step("onnx", label="ONNX Runtime", needs=(threads,), runs_model=True, skip=_off)  # fmt: skip
def onnx(ctx: StepContext) -> Output[OnnxExport | Missing]:
    """Export at the profiled inputs (fp32, CPU), time ONNX Runtime, compare its output."""
    spec, target = ctx.get(threads).spec, ctx.target
    model = copy.deepcopy(target.runnable(ctx.model)).cpu().float().eval()
    path = ctx.scratch / ONNX_FILE
    try:
        export_onnx(model, target.inputs, path)
    except Exception as error:  # the exporter fails in many ways; the run records why
        failed = Missing(f"ONNX export failed: {library_reason(error, 200)}")
        return Output(failed, {S.ORT.median_ms: failed})
    result = ort_latency(path, target.inputs, threads=spec.threads, warmup=spec.warmup,
                         repeat=spec.repeat)  # fmt: skip
    out = Output(OnnxExport(path, target.pads, result), {S.ONNX_FILE_BYTES: path.stat().st_size})
    out.files[ONNX_FILE] = path
    if isinstance(result, Missing):
        out.metrics[S.ORT.median_ms] = result
    else:
        out.metrics.update(timed_metrics(result, S.ORT, prefix="ort_"))
        out.tables["ort_latency"] = result.to_frame()
        if not result.reliable:
            out.notes.append(f"ONNX Runtime latency marked unreliable: {result.unreliable_reason}")
    out.metrics.update(onnx_parity(model, path, target.inputs).summary())
    return out
