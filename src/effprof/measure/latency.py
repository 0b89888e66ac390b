"""Latency per the design's protocol: warm-up, repeated timed forwards, robust statistics.

CUDA runs are timed with CUDA events (one start/end pair per forward, synchronised after each);
CPU runs with ``time.perf_counter_ns`` around each forward. Inputs are those of an
:class:`~effprof.models.inputs.InputSpec` (seeded; an image shape is one uniform [0, 1) image),
forwards run in the measurement context of :mod:`effprof.measure.session` (threads, backend
flags, inference mode, OOM -> Missing), and every flag, thread count and the caller's model are
left as they were found. The host's load is recorded around the timed samples, and a result whose
spread or load passes the thresholds of :mod:`effprof.measure.hostload` says so
(``reliable`` / ``unreliable_reason``, in the run as ``latency_reliable`` and
``latency_unreliable_reason``).

>>> spec = LatencySpec(device="cpu", warmup=2, repeat=5, threads=1)  # doctest: +SKIP
>>> result = measure_latency(model, (1, 3, 256, 256), spec)  # doctest: +SKIP
>>> result.median_ms, result.throughput_mpix_s, result.reliable  # doctest: +SKIP
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.utils._pytree as pytree
from torch import nn

from effprof import schema as S
from effprof.measure.environment import device_name
from effprof.measure.hostload import HostLoad, unreliable_reason
from effprof.measure.precision import synchronize
from effprof.measure.session import LatencySpec, Session, measured
from effprof.models.inputs import InputSpec, as_inputs
from effprof.results import Missing

__all__ = [
    "TIMER_CPU", "TIMER_CUDA", "TIMER_ORT", "LatencyResult", "LatencySpec", "capture_cuda_graph",
    "measure_latency", "output_pixels", "time_calls",
]  # fmt: skip

TIMER_CUDA = "cuda events"
TIMER_CPU = "perf_counter"
TIMER_ORT = "perf_counter (ORT)"


@dataclass(frozen=True)
class LatencyResult:
    """Every timed forward (``samples_ms``) and what was measured; statistics are derived.

    ``output_pixels`` is N x H x W of the largest image the model returned (None if it returned
    no 4-D tensor); throughput is output megapixels per second at the median latency.
    ``compile_s`` is the first (compiling) call of ``torch.compile``, None when not compiled.
    ``load`` is the host's load while the samples ran (None where not recorded); ``inputs``
    describes every input tensor (``input_shape`` is the first one's shape).
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
    load: HostLoad | None = None
    inputs: str = ""

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

    @property
    def unreliable_reason(self) -> str | None:
        """Why this median should not be trusted (spread of the samples, or other processes
        taking the measured threads' cores), or None when it passed every threshold."""
        threads = self.threads
        if threads is None and self.load is not None:
            threads = self.load.cores  # ORT's default: a thread per core
        return unreliable_reason(self.samples_ms, self.load, threads, self.device)

    @property
    def cpu_ms(self) -> float | Missing:
        """CPU time this process spent per timed forward (all its threads), in ms.

        Where wall time grows with the host's load (the measured threads wait for a core), CPU
        time counts only the time they ran; with N busy threads it is about N x the wall time.
        """
        if self.load is None:
            return Missing("the host's load was not recorded")
        return self.load.own_cpu_cores * self.load.wall_s * 1e3 / self.repeat

    @property
    def reliable(self) -> bool:
        """True when the spread and the host's load passed the thresholds of measure.hostload."""
        return self.unreliable_reason is None

    def summary(self) -> dict[str, Any]:
        """Flat metrics with units in the names (``Missing`` where not measurable).

        Besides the statistics: ``latency_reliable`` (bool) and ``latency_unreliable_reason``
        (the reason, None when reliable); the host's load while timing as
        ``latency_load_avg_1min``, ``latency_other_cpu_cores`` (average cores other processes
        kept busy) and ``latency_own_cpu_cores``; ``latency_cpu_ms`` is :attr:`cpu_ms`.
        """
        load = (
            self.load.summary(S.LATENCY.load)
            if self.load is not None
            else {S.LATENCY.load_avg_1min: Missing("the host's load was not recorded")}
        )
        return {
            S.LATENCY.median_ms: self.median_ms,
            S.LATENCY.p10_ms: self.p10_ms,
            S.LATENCY.p90_ms: self.p90_ms,
            S.LATENCY.mean_ms: self.mean_ms,
            S.LATENCY.cv: self.cv,
            S.LATENCY.repeat: self.repeat,
            S.LATENCY.warmup: self.warmup,
            S.LATENCY.throughput_mpix_s: self.throughput_mpix_s,
            S.LATENCY.threads: self.threads,
            S.COMPILE_S: self.compile_s if self.compiled else Missing("torch.compile not used"),
            S.LATENCY.reliable: self.reliable,
            S.LATENCY.unreliable_reason: self.unreliable_reason,
            S.LATENCY.cpu_ms: self.cpu_ms,
            **load,
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
    """N x H x W of the largest 4-D array in a model output (tensors or ndarrays, in any nesting
    of lists, tuples, dicts or a transformers ``ModelOutput``); None when there is none."""
    leaves = pytree.tree_leaves(output)
    shapes = [tuple(leaf.shape) for leaf in leaves if hasattr(leaf, "shape")]
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
    session: Session, model: nn.Module, inputs: InputSpec, kwargs: dict[str, Any]
) -> LatencyResult:
    spec = session.spec
    prepared = session.prepare(model)
    notes = [f"torch intra-op threads: {session.threads}"]
    if model.training:
        notes.append("the model was in train mode (not switched to eval)")
    args, given = session.inputs(inputs)
    given.update(kwargs)
    notes.append(f"inputs: seeded {inputs.describe()} ({spec.precision})")

    def forward_with(module: nn.Module) -> object:
        return module(*args, **given)

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
    with session.watch() as watch:
        samples, output = time_calls(fn, spec.repeat, spec.device)
    return LatencyResult(
        samples_ms=tuple(samples),
        input_shape=inputs.shape,
        output_pixels=output_pixels(output),
        device=spec.device,
        device_name=device_name(spec.device),
        precision=spec.precision,
        timer=TIMER_CUDA if spec.device == "cuda" else TIMER_CPU,
        threads=session.threads,
        warmup=spec.warmup,
        channels_last=spec.channels_last,
        cuda_graphs=spec.cuda_graphs,
        compiled=spec.compile,
        compile_s=compile_s,
        notes=(*session.notes, *notes),
        load=watch.load,
        inputs=inputs.describe(),
    )


def measure_latency(
    model: nn.Module,
    inputs: InputSpec | Sequence[int],
    spec: LatencySpec,
    *,
    forward_kwargs: Mapping[str, Any] | None = None,
) -> LatencyResult | Missing:
    """Time ``model`` on seeded ``inputs`` (an InputSpec, or one image's shape) per ``spec``.

    Out-of-memory gives ``Missing("out of memory: ...")``; a configuration the device cannot run
    (cuda options on cpu, tf32 on cpu, half precision the cpu kernels refuse, a failing
    torch.compile) gives ``Missing`` with the reason. The caller's model is not modified.
    """
    given = as_inputs(inputs)
    kwargs = dict(forward_kwargs or {})
    return measured(
        spec, lambda session: _run(session, model, given, kwargs), graphs_and_compile=True
    )
