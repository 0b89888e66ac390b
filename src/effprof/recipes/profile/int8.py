"""How much cheaper, without any training: ONNX Runtime INT8 of the dense model, in every profile.

The profiled model (fp32, on the CPU) is exported to ONNX at the profiled input shape, quantised
with ONNX Runtime's static QDQ recipe (``effprof.compression.quantize``: per-channel int8 weights,
uint8 activations, MinMax ranges), and compared with the fp32 export:

* ``int8_ort_latency_median_ms`` / ``int8_ort_fp32_latency_median_ms`` and their ratio
  ``int8_speedup_vs_ort_fp32`` (ONNX Runtime, CPU provider, the profile's threads; the two are
  timed interleaved, ``INT8_ROUNDS`` rounds of one warm-up and ``INT8_REPEAT`` runs each, the
  speed-up the median of the within-round ratios; ``int8_speedup_reliable`` and
  ``int8_speedup_unreliable_reason`` say whether those ratios agree);
* ``int8_file_bytes``, ``int8_fp32_file_bytes`` and ``int8_size_x_vs_fp32`` (files on disk);
* fidelity to the fp32 torch output on ``EVAL_INPUTS`` inputs the calibration never saw (on
  the factory's example input itself when there is one):
  ``int8_rel_l2_error`` and ``int8_fidelity_snr_db`` for any output, ``int8_fidelity_psnr_db``
  (outputs clipped to [0, 1], peak 1) for an image model, ``int8_top1_agreement`` for logits;
  a score against a degenerate fp32 output (all zeros, near-constant, one arg-max class for
  every input: :func:`effprof.data.fidelity.degenerate_reference`) is missing with the reason,
  which ``int8_fidelity_reference`` holds too.

Calibration and evaluation inputs are the example inputs the model's factory returned (the
user's), else blurry crops of the calibration images where the model's entry says effprof's blur
data fits it (:meth:`effprof.models.ModelEntry.quality_data`), else seeded random inputs from the
model's input spec; the run says which. A model is skipped (each metric ``Missing`` with the reason) when onnxruntime is
absent, when its forward takes more than one float tensor, when one forward is above
``INT8_MAX_MACS`` (the CPU comparison would take minutes), when export or quantisation fails, or
when ``int8: false``.
"""

from __future__ import annotations

import copy
import importlib.util
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import Tensor, nn

from effprof import schema as names
from effprof.data import synthetic_pairs
from effprof.data.fidelity import FidelityScores, score_fidelity
from effprof.measure.interleave import Candidate, Interleaved, time_interleaved
from effprof.measure.onnx import export_onnx
from effprof.measure.precision import num_threads
from effprof.measure.session import LatencySpec
from effprof.models import InputSpec, ModelEntry
from effprof.models.inputs import flat_tensors
from effprof.models.registry import DEBLURRING, IMAGE_OUT, UNKNOWN_OUT, VECTOR_OUT
from effprof.recipes.profile.count import count
from effprof.recipes.profile.onnx import OnnxExport, onnx
from effprof.recipes.profile.steps import Output, StepContext, step
from effprof.recipes.profile.threads import threads
from effprof.results import Missing, Unreliable, library_reason

INT8_MAX_MACS = 150e9  # MSSNet-small at 256x256 is 40.9 GMAC: about 0.6 s per fp32 forward
INT8_ROUNDS, INT8_REPEAT = 3, 1
CALIBRATION_INPUTS = 2
EVAL_INPUTS = 1
# Top-1 agreement over one row is not a result (one class): logits are scored on up to
# LOGITS_INPUTS inputs, as many as LOGITS_SCORE_MACS of forwards allow
LOGITS_INPUTS, LOGITS_SCORE_MACS = 8, 20e9
CALIBRATION_SEED, EVAL_SEED = 11, 12
KEYS = (
    names.INT8_ORT_LATENCY, names.INT8_ORT_FP32_LATENCY, names.INT8_SPEEDUP,
    names.INT8_FILE_BYTES, names.INT8_FP32_FILE_BYTES, names.INT8_SIZE_X, names.INT8_REL_L2,
    names.INT8_SNR,
)  # fmt: skip
SCORE_NAMES = {"rel_l2": names.INT8_REL_L2, "snr_db": names.INT8_SNR,
               "psnr_db": names.INT8_FIDELITY_PSNR, "top1": names.INT8_TOP1}  # fmt: skip


@dataclass
class Int8Measurement:
    """Metrics (``Missing`` where not measured), tables and notes for the profile's run."""

    metrics: dict[str, Any] = field(default_factory=dict)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def skipped_int8(reason: str) -> Int8Measurement:
    """Every INT8 metric missing, for ``reason``."""
    return Int8Measurement({key: Missing(reason) for key in KEYS})


def _inputs(
    entry: ModelEntry, inputs: InputSpec, count: int, seed: int
) -> tuple[list[Tensor], str]:
    """``count`` inputs to calibrate or score on, and what they are."""
    if inputs.example is not None:
        where = inputs.origin or "the example inputs of the factory"
        return [inputs.example[0][0].detach().cpu().float()], where
    shape = inputs.shape
    if entry.quality_data(inputs) == DEBLURRING:
        height, width = shape[-2:]
        pairs = synthetic_pairs("calibration", count * shape[0], max(height, width), seed)
        blurry = torch.stack([p.blurry[:, :height, :width] for p in pairs])
        return list(blurry.split(shape[0])), "blurry crops of the calibration images"
    values = [inputs.build("cpu", seed=seed + i)[0][0] for i in range(count)]
    return values, "seeded random inputs (no task data for this model)"


def _compare(
    model: nn.Module, int8_path: Path, inputs: list[Tensor], image: bool, logits: bool,
    threads: int,
) -> FidelityScores:  # fmt: skip
    from effprof.compression.quantize import OrtModel

    session = OrtModel.open(int8_path, threads)
    with torch.no_grad():
        references = [flat_tensors(model(x))[0] for x in inputs]
        outputs = [session(x) for x in inputs]
    return score_fidelity(references, outputs, image=image, logits=logits)


def measure_int8(
    model: nn.Module,
    inputs: InputSpec,
    macs: int,
    entry: ModelEntry,
    *,
    output_kind: str,
    threads: int | None,
    fp32_onnx: Path | None = None,
    scratch: Path | None = None,
) -> Int8Measurement:
    """The dense model's ONNX Runtime INT8 against ONNX Runtime fp32 (see the module docstring).

    ``fp32_onnx``: the model's fp32 export at these inputs when the profile already made one
    (``--onnx``); it is read, not exported again. ``scratch``: where its temporary files go (the
    profile's folder beside the run store; default TMPDIR)."""
    if importlib.util.find_spec("onnxruntime") is None:
        return skipped_int8("onnxruntime is not installed")
    if len(inputs.tensors) > 1 or inputs.constants or not inputs.primary.is_float:
        return skipped_int8(f"the INT8 comparison exports one float input; the model takes "
                        f"{inputs.describe()}")  # fmt: skip
    shape = inputs.shape
    if macs > INT8_MAX_MACS:
        return skipped_int8(
            f"{macs / 1e9:,.0f} GMAC per forward at {'x'.join(map(str, shape))} is above the "
            f"{INT8_MAX_MACS / 1e9:.0f} GMAC this CPU comparison allows (profile a smaller input)"
        )
    from effprof.compression.quantize import Int8Spec, quantize_int8

    cpu = copy.deepcopy(model).cpu().float().eval()
    threads = threads or torch.get_num_threads()
    image = output_kind == IMAGE_OUT
    logits = output_kind in (VECTOR_OUT, UNKNOWN_OUT)
    calibration, what = _inputs(entry, inputs, CALIBRATION_INPUTS, CALIBRATION_SEED)
    with tempfile.TemporaryDirectory(prefix="effprof-int8-", dir=scratch) as tmp:
        int8 = Path(tmp) / "model-int8.onnx"
        fp32 = fp32_onnx if fp32_onnx is not None else Path(tmp) / "model.onnx"
        try:
            if fp32_onnx is None:
                export_onnx(cpu, shape, fp32)
            quantize_int8(fp32, int8, [x.numpy() for x in calibration], cpu, Int8Spec())
        except Exception as error:  # export and quantisation fail in many ways; say which
            return skipped_int8(f"INT8 export failed: {library_reason(error, 200)}")
        spec = LatencySpec(threads=threads, warmup=1, repeat=INT8_REPEAT)
        timed = time_interleaved(
            [Candidate("fp32", shape, spec, onnx_path=fp32),
             Candidate("int8", shape, spec, onnx_path=int8)],
            rounds=INT8_ROUNDS,
        )  # fmt: skip
        count = EVAL_INPUTS
        if logits:
            count = max(EVAL_INPUTS, min(LOGITS_INPUTS, int(LOGITS_SCORE_MACS // max(macs, 1))))
        scored, _ = _inputs(entry, inputs, count, EVAL_SEED)
        scores = _compare(cpu, int8, scored, image, logits, threads)
        sizes = {path: path.stat().st_size for path in (fp32, int8)}
    out = _measurement(timed, sizes[fp32], sizes[int8], scores, threads)
    scored_on = (
        "the same input"
        if inputs.example is not None
        else f"{len(scored)} other input{'s' if len(scored) != 1 else ''} of that kind"
    )
    out.notes.append(
        "int8: ONNX Runtime static QDQ INT8 of the dense model (per-channel int8 weights, uint8 "
        f"activations, MinMax ranges from {what}), no training; timed against the fp32 export "
        f"interleaved ({INT8_ROUNDS} rounds of 1 warm-up and {INT8_REPEAT} timed run each, the "
        f"speed-up the median of the within-round ratios; {threads} intra-op "
        f"thread{'s' if threads != 1 else ''}); fidelity to the fp32 torch output on {scored_on}"
    )
    return out


def _measurement(
    timed: Interleaved, fp32_bytes: int, int8_bytes: int, scores: FidelityScores, threads: int
) -> Int8Measurement:
    out = Int8Measurement()
    m = out.metrics
    rows = timed.summary().set_index("candidate")
    for key, name in ((names.INT8_ORT_FP32_LATENCY, "fp32"), (names.INT8_ORT_LATENCY, "int8")):
        row = rows.loc[name]
        m[key] = Missing(str(row["missing"])) if not row["rounds"] else float(row["median_ms"])
    int8 = rows.loc["int8"]
    if isinstance(m[names.INT8_ORT_FP32_LATENCY], Missing) or not int8["rounds"]:
        m[names.INT8_SPEEDUP] = Missing("ONNX Runtime could not time both models")
    else:
        speedup = 1.0 / float(int8["ratio"])
        m[names.INT8_SPEEDUP_RELIABLE] = bool(int8["ratio_reliable"])
        reason = int8["ratio_unreliable_reason"]
        if isinstance(reason, str):
            m[names.INT8_SPEEDUP_UNRELIABLE] = reason
        m[names.INT8_SPEEDUP] = (
            speedup if int8["ratio_reliable"] else Unreliable(speedup, str(reason))
        )
        out.tables["int8_latency"] = timed.rounds
    m[names.INT8_FILE_BYTES], m[names.INT8_FP32_FILE_BYTES] = int8_bytes, fp32_bytes
    m[names.INT8_SIZE_X] = fp32_bytes / int8_bytes
    for key, value in scores.means.items():  # a score that is not a result: its reason
        m[SCORE_NAMES[key]] = value if value is not None else Missing(scores.reasons[key])
    if scores.reference is not None:
        m[names.INT8_REFERENCE] = scores.reference
    m[names.INT8_THREADS] = threads
    return out


def _off(config) -> str | None:
    return None if config.int8 else "INT8 comparison turned off (--no-int8)"


@step("int8", label="INT8 in ONNX Runtime (how much cheaper, without training)",
      needs=(count, threads), uses=(onnx,), runs_model=True, skip=_off, missing=KEYS)  # fmt: skip
def int8(ctx: StepContext) -> Output[Int8Measurement]:
    """The dense model's ONNX Runtime INT8 against its fp32 export, at the profile's threads."""
    spec = ctx.get(threads).spec
    export = ctx.maybe(onnx)
    reusable = isinstance(export, OnnxExport) and not export.padded
    with num_threads(spec.threads):
        counted = ctx.get(count)
        result = measure_int8(
            ctx.model, ctx.target.padded_inputs, counted.result.macs, ctx.entry,
            output_kind=counted.output_kind, threads=spec.threads,
            fp32_onnx=export.path if reusable else None, scratch=ctx.scratch,
        )  # fmt: skip
    return Output(result, result.metrics, result.tables, result.notes)
