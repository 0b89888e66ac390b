"""How much cheaper, without any training: ONNX Runtime INT8 of the dense model, in every profile.

The profiled model (fp32, on the CPU) is exported to ONNX at the profiled input shape, quantised
with ONNX Runtime's static QDQ recipe (``effprof.compress.quantize``: per-channel int8 weights,
uint8 activations, MinMax ranges), and compared with the fp32 export:

* ``int8_ort_latency_median_ms`` / ``int8_ort_fp32_latency_median_ms`` and their ratio
  ``int8_speedup_vs_ort_fp32`` (ONNX Runtime, CPU provider, the profile's threads; the two are
  timed one after the other, ``INT8_REPEAT`` runs each after one warm-up);
* ``int8_file_bytes``, ``int8_fp32_file_bytes`` and ``int8_size_x_vs_fp32`` (files on disk);
* fidelity to the fp32 torch output on ``EVAL_INPUTS`` inputs the calibration never saw:
  ``int8_rel_l2_error`` and ``int8_fidelity_snr_db`` for any output, ``int8_fidelity_psnr_db``
  (outputs clipped to [0, 1], peak 1) for an image model, ``int8_top1_agreement`` for logits.

Calibration and evaluation inputs are blurry crops of the calibration images for a registered
image model with a square 3-channel input, else seeded uniform random inputs; the run says which.
A model is skipped (each metric ``Missing`` with the reason) when onnxruntime is absent, when one
forward is above ``INT8_MAX_MACS`` (the CPU comparison would take minutes), when export or
quantisation fails, or when ``int8: false``.
"""

from __future__ import annotations

import copy
import importlib.util
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from effprof.data import synthetic_pairs
from effprof.measure.onnx import export_onnx, ort_latency
from effprof.measure.precision import first_tensor
from effprof.models import ModelEntry
from effprof.results import Missing
from effprof.runs import compression as names

INT8_MAX_MACS = 150e9  # MSSNet-small at 256x256 is 40.9 GMAC: about 0.6 s per fp32 forward
INT8_REPEAT = 5
CALIBRATION_INPUTS = 2
EVAL_INPUTS = 2
CALIBRATION_SEED, EVAL_SEED = 11, 12
KEYS = (
    names.INT8_ORT_LATENCY, names.INT8_ORT_FP32_LATENCY, names.INT8_SPEEDUP,
    names.INT8_FILE_BYTES, names.INT8_FP32_FILE_BYTES, names.INT8_SIZE_X, names.INT8_REL_L2,
    names.INT8_SNR,
)  # fmt: skip


@dataclass
class Int8Measurement:
    """Metrics (``Missing`` where not measured), tables and notes for the profile's run."""

    metrics: dict[str, Any] = field(default_factory=dict)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _skipped(reason: str) -> Int8Measurement:
    return Int8Measurement({key: Missing(reason) for key in KEYS})


def _is_image_model(entry: ModelEntry | None, shape: tuple[int, ...]) -> bool:
    return (
        entry is not None
        and len(shape) == 4
        and shape[1] == entry.input_channels == 3
        and shape[-1] == shape[-2]
    )


def _inputs(image: bool, shape: tuple[int, ...], count: int, seed: int) -> list[Tensor]:
    if image:
        pairs = synthetic_pairs("calibration", count * shape[0], shape[-1], seed)
        blurry = torch.stack([p.blurry for p in pairs])
        return list(blurry.split(shape[0]))
    gen = torch.Generator().manual_seed(seed)
    return [torch.rand(shape, generator=gen) for _ in range(count)]


def _fidelity(reference: Tensor, output: Tensor, image: bool) -> dict[str, float]:
    """Relative L2 error and SNR (dB) for any tensor; PSNR for images; top-1 for logits."""
    ref, out = reference.double(), output.double()
    noise = float(torch.sum((out - ref) ** 2))
    signal = float(torch.sum(ref**2))
    scores = {
        "rel_l2": (noise / signal) ** 0.5 if signal > 0 else float("inf"),
        "snr_db": 10 * np.log10(signal / max(noise, 1e-30)),
    }
    if image and ref.dim() == 4:
        mse = float(torch.mean((out.clamp(0, 1) - ref.clamp(0, 1)) ** 2))
        scores["psnr_db"] = 10 * np.log10(1.0 / max(mse, 1e-20))
    if ref.dim() == 2 and ref.shape[-1] > 1:
        scores["top1"] = float((ref.argmax(-1) == out.argmax(-1)).double().mean())
    return scores


def _compare(
    model: nn.Module, int8_path: Path, inputs: list[Tensor], image: bool, threads: int
) -> dict[str, float]:
    from effprof.compress.quantize import OrtModel

    session = OrtModel.open(int8_path, threads)
    rows = []
    with torch.no_grad():
        for x in inputs:
            rows.append(_fidelity(first_tensor(model(x)), session(x), image))
    return {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}


def measure_int8(
    model: nn.Module,
    shape: tuple[int, ...],
    macs: int,
    entry: ModelEntry | None,
    *,
    enabled: bool,
    threads: int | None,
) -> Int8Measurement:
    """The dense model's ONNX Runtime INT8 against ONNX Runtime fp32 (see the module docstring)."""
    if not enabled:
        return _skipped("INT8 comparison turned off (--no-int8)")
    if importlib.util.find_spec("onnxruntime") is None:
        return _skipped("onnxruntime is not installed")
    if macs > INT8_MAX_MACS:
        return _skipped(
            f"{macs / 1e9:,.0f} GMAC per forward at {'x'.join(map(str, shape))} is above the "
            f"{INT8_MAX_MACS / 1e9:.0f} GMAC this CPU comparison allows (profile a smaller input)"
        )
    from effprof.compress.quantize import Int8Spec, quantize_int8

    cpu = copy.deepcopy(model).cpu().float().eval()
    threads = threads or torch.get_num_threads()
    image = _is_image_model(entry, shape)
    calibration = _inputs(image, shape, CALIBRATION_INPUTS, CALIBRATION_SEED)
    with tempfile.TemporaryDirectory(prefix="effprof-int8-") as tmp:
        fp32, int8 = Path(tmp) / "model.onnx", Path(tmp) / "model-int8.onnx"
        try:
            export_onnx(cpu, shape, fp32)
            quantize_int8(fp32, int8, [x.numpy() for x in calibration], cpu, Int8Spec())
        except Exception as error:  # export and quantisation fail in many ways; say which
            return _skipped(f"INT8 export failed: {str(error).splitlines()[0][:200]}")
        timed = {
            path: ort_latency(path, shape, threads=threads, warmup=1, repeat=INT8_REPEAT)
            for path in (fp32, int8)
        }
        scores = _compare(cpu, int8, _inputs(image, shape, EVAL_INPUTS, EVAL_SEED), image, threads)
        sizes = {path: path.stat().st_size for path in (fp32, int8)}
    return _measurement(timed[fp32], timed[int8], sizes[fp32], sizes[int8], scores, image, threads)


def _measurement(
    fp32: Any, int8: Any, fp32_bytes: int, int8_bytes: int, scores: dict[str, float],
    image: bool, threads: int,
) -> Int8Measurement:  # fmt: skip
    out = Int8Measurement()
    m = out.metrics
    m[names.INT8_ORT_FP32_LATENCY] = fp32 if isinstance(fp32, Missing) else fp32.median_ms
    m[names.INT8_ORT_LATENCY] = int8 if isinstance(int8, Missing) else int8.median_ms
    if isinstance(fp32, Missing) or isinstance(int8, Missing):
        m[names.INT8_SPEEDUP] = Missing("ONNX Runtime could not time both models")
    else:
        m[names.INT8_SPEEDUP] = fp32.median_ms / int8.median_ms
        out.tables["int8_latency"] = pd.concat(
            [fp32.to_frame().assign(model="fp32"), int8.to_frame().assign(model="int8")]
        )
    m[names.INT8_FILE_BYTES], m[names.INT8_FP32_FILE_BYTES] = int8_bytes, fp32_bytes
    m[names.INT8_SIZE_X] = fp32_bytes / int8_bytes
    m[names.INT8_REL_L2], m[names.INT8_SNR] = scores["rel_l2"], scores["snr_db"]
    if "psnr_db" in scores:
        m[names.INT8_FIDELITY_PSNR] = scores["psnr_db"]
    if "top1" in scores:
        m[names.INT8_TOP1] = scores["top1"]
    m[names.INT8_THREADS] = threads
    inputs = (
        "blurry crops of the calibration images"
        if image
        else "seeded uniform [0, 1) random inputs (no task data for this model)"
    )
    out.notes.append(
        f"int8: ONNX Runtime static QDQ INT8 of the dense model (per-channel int8 weights, uint8 "
        f"activations, MinMax on {CALIBRATION_INPUTS} inputs: {inputs}), no training; timed "
        f"against the fp32 export one after the other ({INT8_REPEAT} runs each after 1 warm-up, "
        f"{threads} intra-op thread{'s' if threads != 1 else ''}); fidelity to the fp32 torch output on {EVAL_INPUTS} other "
        "inputs of the same kind"
    )
    return out
