"""ONNX export, ONNX Runtime latency and torch-vs-ONNX parity.

Export uses torch's ``torch.export``-based exporter (``dynamo=True``, the default since torch 2.9;
the TorchScript exporter is deprecated) with a fixed input shape, weights stored inside the one
.onnx file. Its nodes carry ``pkg.torch.onnx.name_scopes`` metadata naming the module each came
from. ``ort_latency`` and ``onnx_parity`` take any .onnx file with one float image input, e.g.
an INT8 model quantised from the exported one.
"""

from __future__ import annotations

import contextlib
import io
import logging
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from effprof.measure.environment import device_name
from effprof.measure.latency import TIMER_ORT, LatencyResult, output_pixels
from effprof.measure.precision import INPUT_SEED, first_tensor, is_out_of_memory, model_device_type
from effprof.results import EffprofError, Missing

DEFAULT_OPSET = 18  # the dynamo exporter implements opset 18; lower opsets go through a converter
_ORT_FLOAT_TYPES = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
}
_DTYPE_LABEL = {np.float32: "fp32", np.float16: "fp16", np.float64: "fp64"}


@dataclass(frozen=True)
class Parity:
    """How far ONNX Runtime's output is from torch's (the reference ``b``), on one input.

    ``max_rel_error`` = max|a - b| / max|b|; ``rel_l2_error`` = ||a - b||_2 / ||b||_2.
    """

    max_abs_error: float
    max_rel_error: float
    rel_l2_error: float
    output_shape: tuple[int, ...]

    def summary(self) -> dict[str, Any]:
        """Flat metrics for a run."""
        return {
            "onnx_max_abs_error": self.max_abs_error,
            "onnx_max_rel_error": self.max_rel_error,
            "onnx_rel_l2_error": self.rel_l2_error,
        }


def export_onnx(
    model: nn.Module, input_shape: tuple[int, ...], path: str | Path, *, opset: int = DEFAULT_OPSET
) -> Path:
    """Export ``model`` for a fixed ``input_shape`` to one self-contained .onnx file; return its path.

    The model runs on its own device and dtype; input and output are named ``input`` / ``output``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    reference = next(iter([*model.parameters(), *model.buffers()]), None)
    dtype = reference.dtype if reference is not None and reference.is_floating_point() else None
    x = torch.rand(input_shape, generator=torch.Generator().manual_seed(INPUT_SEED))
    x = x.to(device=model_device_type(model), dtype=dtype or torch.float32)
    # The exporter reports progress with print() and logs warnings about optional packages
    # (torchvision); measure functions never print.
    exporter_log = logging.getLogger("torch.onnx")
    saved_level = exporter_log.level
    exporter_log.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()), torch.no_grad(), warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=FutureWarning, module="copyreg")
            torch.onnx.export(
                model,
                (x,),
                str(path),
                opset_version=opset,
                dynamo=True,
                external_data=False,
                verbose=False,
                input_names=["input"],
                output_names=["output"],
            )
    finally:
        exporter_log.setLevel(saved_level)
    return path


def _session(onnx_path: str | Path, threads: int | None, providers: list[str] | None) -> Any:
    import onnxruntime as ort

    path = Path(onnx_path)
    if not path.is_file():
        raise EffprofError(f"ONNX file {str(path)!r} does not exist")
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads is not None:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only: ORT's warnings go to stderr otherwise
    return ort.InferenceSession(str(path), options, providers=providers or ["CPUExecutionProvider"])


def _ort_input(session: Any, input_shape: tuple[int, ...]) -> tuple[str, np.ndarray]:
    inputs = session.get_inputs()
    if len(inputs) != 1:
        raise EffprofError(f"expected an ONNX model with one input, it has {len(inputs)}")
    dtype = _ORT_FLOAT_TYPES.get(inputs[0].type)
    if dtype is None:
        raise EffprofError(f"ONNX input {inputs[0].name!r} is {inputs[0].type}, not a float tensor")
    rng = np.random.default_rng(INPUT_SEED)
    return inputs[0].name, rng.random(input_shape, dtype=np.float64).astype(dtype)


def ort_latency(
    onnx_path: str | Path,
    input_shape: tuple[int, ...],
    *,
    threads: int | None,
    warmup: int,
    repeat: int,
    providers: list[str] | None = None,
) -> LatencyResult | Missing:
    """Time ONNX Runtime inference of any one-input float .onnx file (same protocol as torch).

    ``threads`` sets ORT's intra-op threads (None: ORT's default, one per physical core);
    providers default to ``["CPUExecutionProvider"]``. Out-of-memory returns ``Missing``.
    """
    if warmup < 0 or repeat < 1:
        raise EffprofError(f"need warmup >= 0 and repeat >= 1, got {warmup}, {repeat}")
    import onnxruntime as ort

    try:
        session = _session(onnx_path, threads, providers)
        name, x = _ort_input(session, tuple(input_shape))
        for _ in range(warmup):
            session.run(None, {name: x})
        samples: list[float] = []
        outputs: list = []
        for _ in range(repeat):
            begin = time.perf_counter_ns()
            outputs = session.run(None, {name: x})
            samples.append((time.perf_counter_ns() - begin) / 1e6)
    except Exception as error:
        if is_out_of_memory(error):
            first = (str(error).strip().splitlines() or [type(error).__name__])[0][:300]
            return Missing(f"out of memory: {first}")
        raise
    used = session.get_providers()
    device = "cuda" if "CUDAExecutionProvider" in used[:1] else "cpu"
    threads_note = threads if threads is not None else "ORT default (one per physical core)"
    return LatencyResult(
        samples_ms=tuple(samples),
        input_shape=tuple(input_shape),
        output_pixels=output_pixels(outputs),
        device=device,
        device_name=device_name(device),
        precision=_DTYPE_LABEL[x.dtype.type],
        timer=TIMER_ORT,
        threads=threads,
        warmup=warmup,
        notes=(
            f"ONNX Runtime {ort.__version__}, providers {used}, graph optimisation ORT_ENABLE_ALL",
            f"ORT intra-op threads: {threads_note}, inter-op threads: 1",
            f"model file: {Path(onnx_path).name} ({Path(onnx_path).stat().st_size} bytes)",
            f"input: seeded uniform [0, 1) {tuple(input_shape)} {x.dtype}",
        ),
    )


def onnx_parity(
    model: nn.Module, onnx_path: str | Path, input: Tensor, *, providers: list[str] | None = None
) -> Parity:
    """Run ``model`` (torch, the reference) and the .onnx file on ``input``; compare first outputs."""
    session = _session(onnx_path, threads=None, providers=providers)
    name, template = _ort_input(session, tuple(input.shape))
    reference = next(iter([*model.parameters(), *model.buffers()]), None)
    dtype = reference.dtype if reference is not None and reference.is_floating_point() else None
    with torch.inference_mode():
        expected = first_tensor(model(input.to(device=model_device_type(model), dtype=dtype)))
    b = expected.detach().float().cpu().numpy().astype(np.float64)
    feed = input.detach().cpu().numpy().astype(template.dtype)
    a = np.asarray(session.run(None, {name: feed})[0], dtype=np.float64)
    if a.shape != b.shape:
        raise EffprofError(f"ONNX output shape {a.shape} differs from torch's {b.shape}")
    diff = np.abs(a - b)
    max_b = float(np.abs(b).max())
    norm_b = float(np.linalg.norm(b))
    return Parity(
        max_abs_error=float(diff.max()),
        max_rel_error=float(diff.max() / max_b) if max_b > 0 else float("inf"),
        rel_l2_error=float(np.linalg.norm(a - b) / norm_b) if norm_b > 0 else float("inf"),
        output_shape=tuple(b.shape),
    )
