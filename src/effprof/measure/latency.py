"""Latency per the design's protocol: warm-up, repeated timed forwards, robust statistics.

CUDA runs are timed with CUDA events (one start/end pair per forward, synchronised after each);
CPU runs with ``time.perf_counter_ns`` around each forward. Inputs are seeded uniform [0, 1)
images, forwards run under ``torch.inference_mode`` with ``cudnn.benchmark`` on, and every flag,
thread count and the caller's model are left as they were found.

>>> spec = LatencySpec(device="cpu", warmup=2, repeat=5, threads=1)  # doctest: +SKIP
>>> result = measure_latency(model, (1, 3, 256, 256), spec)  # doctest: +SKIP
>>> result.median_ms, result.throughput_mpix_s  # doctest: +SKIP
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from effprof.measure.environment import device_name
from effprof.measure.precision import (
    DEVICES,
    PRECISION_DTYPES,
    backend_flags,
    is_out_of_memory,
    num_threads,
    oom_missing,
    prepare_model,
    random_input,
    release_memory,
    synchronize,
    unsupported,
)
from effprof.results import EffprofError, Missing

TIMER_CUDA = "cuda events"
TIMER_CPU = "perf_counter"
TIMER_ORT = "perf_counter (ORT)"


@dataclass(frozen=True)
class LatencySpec:
    """How to time a model: device, precision and execution options, warm-up and repeat counts.

    ``threads`` is torch's intra-op thread count during the measurement (None: leave as is).
    """

    device: str = "cpu"
    precision: str = "fp32"
    channels_last: bool = False
    cuda_graphs: bool = False
    compile: bool = False
    warmup: int = 3
    repeat: int = 10
    threads: int | None = None

    def __post_init__(self) -> None:
        if self.device not in DEVICES:
            raise EffprofError(f"unknown device {self.device!r}; known: {', '.join(DEVICES)}")
        if self.precision not in PRECISION_DTYPES:
            known = ", ".join(PRECISION_DTYPES)
            raise EffprofError(f"unknown precision {self.precision!r}; known: {known}")
        if self.warmup < 0 or self.repeat < 1:
            raise EffprofError(
                f"need warmup >= 0 and repeat >= 1, got {self.warmup}, {self.repeat}"
            )
        if self.threads is not None and self.threads < 1:
            raise EffprofError(f"threads must be >= 1, got {self.threads}")


@dataclass(frozen=True)
class LatencyResult:
    """Every timed forward (``samples_ms``) and what was measured; statistics are derived.

    ``output_pixels`` is N x H x W of the largest image the model returned (None if it returned
    no 4-D tensor); throughput is output megapixels per second at the median latency.
    ``compile_s`` is the first (compiling) call of ``torch.compile``, None when not compiled.
    """

    samples_ms: tuple[float, ...]
    input_shape: tuple[int, ...]
    output_pixels: int | None
    device: str
    device_name: str
    precision: str
    timer: str
    threads: int | None
    warmup: int
    channels_last: bool = False
    cuda_graphs: bool = False
    compiled: bool = False
    compile_s: float | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def repeat(self) -> int:
        return len(self.samples_ms)

    @property
    def median_ms(self) -> float:
        return float(np.median(self.samples_ms))

    @property
    def p10_ms(self) -> float:
        return float(np.percentile(self.samples_ms, 10))

    @property
    def p90_ms(self) -> float:
        return float(np.percentile(self.samples_ms, 90))

    @property
    def mean_ms(self) -> float:
        return float(np.mean(self.samples_ms))

    @property
    def std_ms(self) -> float:
        """Sample standard deviation (ddof=1); 0 for a single sample."""
        return float(np.std(self.samples_ms, ddof=1)) if self.repeat > 1 else 0.0

    @property
    def cv(self) -> float:
        """Coefficient of variation: std_ms / mean_ms (0.05 = runs vary by about 5%)."""
        return self.std_ms / self.mean_ms if self.mean_ms > 0 else 0.0

    @property
    def throughput_mpix_s(self) -> float | Missing:
        """Output megapixels per second at the median latency."""
        if self.output_pixels is None:
            return Missing("the model returned no N x C x H x W image")
        return self.output_pixels / (self.median_ms / 1e3) / 1e6

    def summary(self) -> dict[str, Any]:
        """Flat metrics with units in the names (``Missing`` where not measurable)."""
        return {
            "latency_median_ms": self.median_ms,
            "latency_p10_ms": self.p10_ms,
            "latency_p90_ms": self.p90_ms,
            "latency_mean_ms": self.mean_ms,
            "latency_cv": self.cv,
            "latency_repeat": self.repeat,
            "latency_warmup": self.warmup,
            "throughput_mpix_s": self.throughput_mpix_s,
            "latency_threads": self.threads,
            "compile_s": self.compile_s if self.compiled else Missing("torch.compile not used"),
        }

    def to_frame(self) -> pd.DataFrame:
        """One row per timed forward: ``sample`` (0-based), ``latency_ms``, plus the configuration."""
        return pd.DataFrame(
            {
                "sample": range(self.repeat),
                "latency_ms": list(self.samples_ms),
                "device": self.device,
                "precision": self.precision,
                "timer": self.timer,
                "threads": self.threads,
            }
        )


def output_pixels(output: object) -> int | None:
    """N x H x W of the largest 4-D array in a model output (tensor / ndarray, list, tuple, dict)."""
    if isinstance(output, Mapping):
        items = list(output.values())
    elif isinstance(output, (list, tuple)):
        items = list(output)
    else:
        items = [output]
    shapes = [tuple(item.shape) for item in items if hasattr(item, "shape")]
    pixels = [s[0] * s[-2] * s[-1] for s in shapes if len(s) == 4]
    return max(pixels) if pixels else None


def time_calls(fn: Callable[[], object], repeat: int, device: str) -> tuple[list[float], object]:
    """Time ``repeat`` calls of ``fn`` in milliseconds (CUDA events on cuda); return the last output."""
    samples: list[float] = []
    output: object = None
    if device == "cuda":
        for _ in range(repeat):
            start = torch.cuda.Event(enable_timing=True)
            end = torch.cuda.Event(enable_timing=True)
            start.record()
            output = fn()
            end.record()
            end.synchronize()
            samples.append(float(start.elapsed_time(end)))
        return samples, output
    for _ in range(repeat):
        begin = time.perf_counter_ns()
        output = fn()
        synchronize(device)
        samples.append((time.perf_counter_ns() - begin) / 1e6)
    return samples, output


def capture_cuda_graph(
    forward: Callable[[], object], warmup: int
) -> tuple[Callable[[], object], object, list[str]]:
    """Warm up on a side stream, capture one forward in a CUDA graph.

    Returns (replay, static output, notes); ``replay()`` reruns the graph and returns the static
    output, which is overwritten in place on every replay.
    """
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(max(warmup, 1)):
            forward()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        static_output = forward()
    note = (
        f"CUDA graph: {max(warmup, 1)} eager warm-up forwards on a side stream, one forward "
        "captured; timed runs replay it on a static input"
    )

    def replay() -> object:
        graph.replay()
        return static_output

    return replay, static_output, [note]


def _compile(
    model: nn.Module, forward: Callable[[nn.Module], object], device: str
) -> tuple[Callable[[], object], float]:
    """torch.compile (default mode); the first call compiles and is timed separately (seconds).

    Dynamo's caches are reset first: every measured copy of a model shares its forward's code
    object, and past ``cache_size_limit`` recompilations dynamo silently falls back to eager.
    """
    torch._dynamo.reset()
    compiled = torch.compile(model)
    begin = time.perf_counter()
    forward(compiled)
    synchronize(device)
    return (lambda: forward(compiled)), time.perf_counter() - begin


def _run(
    model: nn.Module, input_shape: tuple[int, ...], spec: LatencySpec, kwargs: dict
) -> LatencyResult:
    prepared, notes = prepare_model(model, spec.device, spec.precision, spec.channels_last)
    if model.training:
        notes.append("the model was in train mode (not switched to eval)")
    x = random_input(input_shape, spec.device, spec.precision, spec.channels_last)
    notes.append(f"input: seeded uniform [0, 1) {tuple(input_shape)} {x.dtype}")

    def forward_with(module: nn.Module) -> object:
        return module(x, **kwargs)

    fn: Callable[[], object] = lambda: forward_with(prepared)  # noqa: E731
    compile_s = None
    if spec.compile:
        fn, compile_s = _compile(prepared, forward_with, spec.device)
        notes.append("torch.compile (default mode); the compiling first call is compile_s")
    if spec.cuda_graphs:
        fn, _, graph_notes = capture_cuda_graph(fn, spec.warmup)
        notes.extend(graph_notes)
    for _ in range(spec.warmup):
        fn()
    synchronize(spec.device)
    samples, output = time_calls(fn, spec.repeat, spec.device)
    return LatencyResult(
        samples_ms=tuple(samples),
        input_shape=tuple(input_shape),
        output_pixels=output_pixels(output),
        device=spec.device,
        device_name=device_name(spec.device),
        precision=spec.precision,
        timer=TIMER_CUDA if spec.device == "cuda" else TIMER_CPU,
        threads=None,  # filled in by measure_latency, which owns the thread context
        warmup=spec.warmup,
        channels_last=spec.channels_last,
        cuda_graphs=spec.cuda_graphs,
        compiled=spec.compile,
        compile_s=compile_s,
        notes=tuple(notes),
    )


def measure_latency(
    model: nn.Module,
    input_shape: tuple[int, ...],
    spec: LatencySpec,
    *,
    forward_kwargs: Mapping[str, Any] | None = None,
) -> LatencyResult | Missing:
    """Time ``model`` on a random input of ``input_shape`` per ``spec``; Missing if impossible.

    Out-of-memory gives ``Missing("out of memory: ...")``; a configuration the device cannot run
    (cuda options on cpu, tf32 on cpu, half precision the cpu kernels refuse, a failing
    torch.compile) gives ``Missing`` with the reason. The caller's model is not modified.
    """
    reason = unsupported(spec.device, spec.precision, spec.cuda_graphs, spec.compile)
    if reason is not None:
        return reason
    kwargs = dict(forward_kwargs or {})
    try:
        with (
            num_threads(spec.threads) as threads,
            backend_flags(spec.precision, spec.device) as flag_notes,
            torch.inference_mode(),
        ):
            result = _run(model, input_shape, spec, kwargs)
    except Exception as error:
        if is_out_of_memory(error):
            return oom_missing(error)
        refused = _refusal(error, spec)
        if refused is not None:
            return refused
        raise
    finally:
        if spec.device == "cuda":
            release_memory()
    notes = (*flag_notes, f"torch intra-op threads: {threads}", *result.notes)
    return replace(result, threads=threads, notes=notes)


def _refusal(error: Exception, spec: LatencySpec) -> Missing | None:
    """A Missing for errors that mean "this device cannot run this configuration"."""
    first = (str(error).strip().splitlines() or [type(error).__name__])[0][:300]
    if spec.compile and type(error).__module__.startswith(("torch._dynamo", "torch._inductor")):
        return Missing(f"torch.compile failed: {first}")
    if (
        spec.device == "cpu"
        and spec.precision in ("fp16", "bf16")
        and isinstance(error, RuntimeError)
    ):
        return Missing(f"{spec.precision} inference is not supported on this cpu: {first}")
    return None
