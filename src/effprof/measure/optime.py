"""Time per op and per op category, from torch.profiler.

On cpu the time of an op is its *self* CPU time (time inside the aten op minus its child ops);
on cuda it is the duration of each GPU kernel (and memcpy), attributed to a category by the
kernel's name first, so cuDNN's NCHW<->NHWC transposes count as "data movement" even though a
convolution launched them, and by the aten op that launched it otherwise. Shares are of the summed
profiled time, so they add up to 1; Python overhead between ops (cpu) and idle GPU gaps (cuda) are
not in it, which ``wall_ms`` beside it shows.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import torch
from torch import nn
from torch.autograd import DeviceType
from torch.profiler import ProfilerActivity, profile

from effprof.measure.categories import (
    ACTIVATION,
    CATEGORIES,
    CONVOLUTION,
    ELEMENTWISE,
    LAYOUT,
    MATMUL,
    NORMALIZATION,
    OTHER,
    REDUCTION,
    RESIZE,
    op_category,
)
from effprof.measure.latency import LatencySpec
from effprof.measure.precision import (
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
from effprof.results import Missing

TIMER_CPU = "torch.profiler self CPU time of aten ops"
TIMER_CUDA = "torch.profiler GPU kernel time"

# GPU kernel names decided by the name alone (first match wins): these kernels say what they do
# whoever launched them, e.g. cudnn::ops::nchwToNhwcKernel launched by a convolution.
_KERNEL_BY_NAME = [
    (
        LAYOUT,
        r"nchwtonhwc|nhwctonchw|nchw2nhwc|nhwc2nchw|foldednhwc|nhwctofolded|addpadding|transpose"
        r"|permute|memcpy|copy_kernel|catarray|cat_batched|pixel_(un)?shuffle|reflection_pad"
        r"|replication_pad|constant_pad",
    ),
    (ACTIVATION, r"prelu|relu|gelu|silu|sigmoid|tanh|softmax|hardswish|\belu"),
    (RESIZE, r"upsample|interpolate|grid_sampler|avg_pool|max_pool|adaptive_avg|adaptive_max"),
    (
        NORMALIZATION,
        r"batch_norm|batchnorm|layer_norm|layernorm|group_norm|groupnorm|welford|bn_fw",
    ),
]
# Used when neither the name above nor the launching op decides.
_KERNEL_FALLBACK = [
    (CONVOLUTION, r"conv|fprop|implicit_gemm|winograd|cudnn"),
    (MATMUL, r"gemm|gemv|cublas|cutlass"),
    (ELEMENTWISE, r"elementwise|functor|pointwise"),
    (REDUCTION, r"reduce"),
]


def kernel_category(name: str, launcher: str | None = None) -> str:
    """Category of a GPU kernel from its name, else from the aten op that launched it.

    >>> kernel_category("void cudnn::ops::nchwToNhwcKernel<__half>(...)", "aten::cudnn_convolution")
    'data movement'
    >>> kernel_category("sm90_xmma_fprop_implicit_gemm_f16f16_f16f32", "aten::cudnn_convolution")
    'convolution'
    """
    lowered = name.lower()
    for category, pattern in _KERNEL_BY_NAME:
        if re.search(pattern, lowered):
            return category
    if launcher is not None:
        category = op_category(launcher)
        if category != OTHER:
            return category
    for category, pattern in _KERNEL_FALLBACK:
        if re.search(pattern, lowered):
            return category
    return OTHER


@dataclass(frozen=True)
class OpTime:
    """Per-op and per-category time of ``runs`` profiled forwards (times are per forward).

    ``ops`` columns: name, category, caller (the outermost aten op it ran under, e.g.
    ``aten::conv2d``), calls, time_ms, share. ``categories`` columns: category, time_ms, share
    (every category of effprof.measure.categories, shares summing to 1).
    """

    device: str
    timer: str
    runs: int
    total_ms: float
    wall_ms: float
    ops: pd.DataFrame
    categories: pd.DataFrame
    notes: tuple[str, ...] = field(default_factory=tuple)

    def share(self, category: str) -> float:
        """Share (0..1) of the profiled time spent in ``category``."""
        rows = self.categories[self.categories["category"] == category]
        return float(rows["share"].sum())

    def summary(self) -> dict[str, Any]:
        """Flat metrics: profiled and wall time per forward, and ``time_share_<category>``."""
        metrics: dict[str, Any] = {"optime_total_ms": self.total_ms, "optime_wall_ms": self.wall_ms}
        for row in self.categories.itertuples():
            metrics[f"time_share_{row.category.replace(' ', '_')}"] = float(row.share)
        return metrics

    def to_frame(self) -> pd.DataFrame:
        """The per-op table."""
        return self.ops


@contextlib.contextmanager
def _native_stderr_silenced() -> Iterator[None]:
    """Point file descriptor 2 at /dev/null: kineto prints "USDT: profiler_start" lines from C++."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as sink:
            os.dup2(sink.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _outermost(event: Any) -> Any:
    while event.cpu_parent is not None:
        event = event.cpu_parent
    return event


def _cpu_rows(events: list) -> list[dict]:
    rows = []
    for event in events:
        if event.device_type != DeviceType.CPU or event.is_async or event.is_user_annotation:
            continue
        rows.append(
            {
                "name": event.name,
                "category": op_category(event.name),
                "caller": _outermost(event).name,
                "time_us": float(event.self_cpu_time_total),
            }
        )
    return rows


def kernel_rows(events: list) -> list[dict]:
    """One row per GPU kernel (or memcpy), with the op that launched it.

    The link is torch's own: while parsing the trace, torch appends each kernel (name, duration)
    to the ``kernels`` of the CPU op whose correlation id the kernel carries. (A kernel event's own
    ``linked_correlation_id`` reached ``FunctionEvent`` only in 2026, pytorch PR 177662: reading it
    left every kernel without an op on the H200's torch 2.11.) Kernels no op claims, e.g. launched
    outside any aten op, are matched to the device events by (name, duration) and keep an empty
    caller, so the total is always that of all device events."""
    unclaimed = Counter(
        (event.name, _elapsed_us(event)) for event in events if event.device_type == DeviceType.CUDA
    )
    rows = []
    for op in events:
        if op.device_type != DeviceType.CPU or op.is_async or not op.kernels:
            continue
        caller = _outermost(op).name
        for kernel in op.kernels:
            key = (kernel.name, float(kernel.duration))
            if unclaimed[key] <= 0:  # not a device event (torch's legacy per-op CUDA time)
                continue
            unclaimed[key] -= 1
            category = kernel_category(kernel.name, op.name)
            rows.append(
                {"name": kernel.name, "category": category, "caller": caller, "time_us": key[1]}
            )
    for (name, elapsed_us), count in unclaimed.items():
        category = kernel_category(name, None)
        rows += [{"name": name, "category": category, "caller": "", "time_us": elapsed_us}] * count
    return rows


def _elapsed_us(event: Any) -> float:
    return float(event.time_range.end - event.time_range.start)


def tabulate(rows: list[dict], runs: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-op table and per-category table (times per forward in ms, shares of the total)."""
    frame = pd.DataFrame(rows, columns=["name", "category", "caller", "time_us"])
    ops = (
        frame.groupby(["name", "category", "caller"], as_index=False)
        .agg(calls=("time_us", "size"), time_us=("time_us", "sum"))
        .sort_values("time_us", ascending=False, ignore_index=True)
    )
    total_us = float(ops["time_us"].sum())
    ops["calls"] = ops["calls"] / runs
    ops["time_ms"] = ops["time_us"] / runs / 1e3
    ops["share"] = ops["time_us"] / total_us if total_us > 0 else 0.0
    ops = ops.drop(columns="time_us")
    by_category = ops.groupby("category")["time_ms"].sum()
    categories = pd.DataFrame({"category": list(CATEGORIES)})
    extra = sorted(set(by_category.index) - set(CATEGORIES))
    categories = pd.concat([categories, pd.DataFrame({"category": extra})], ignore_index=True)
    categories["time_ms"] = [float(by_category.get(c, 0.0)) for c in categories["category"]]
    total_ms = float(categories["time_ms"].sum())
    categories["share"] = categories["time_ms"] / total_ms if total_ms > 0 else 0.0
    categories = categories.sort_values("time_ms", ascending=False, ignore_index=True)
    return ops, categories


def op_time(
    model: nn.Module,
    input_shape: tuple[int, ...],
    spec: LatencySpec,
    *,
    runs: int = 3,
    forward_kwargs: Mapping[str, Any] | None = None,
) -> OpTime | Missing:
    """Profile ``runs`` eager forwards (after ``spec.warmup``, at least 1) and split the time by op.

    Uses ``spec.device``, ``precision``, ``channels_last`` and ``threads``; CUDA graphs and
    torch.compile are not applied (their kernels are not attributable to ops).
    """
    reason = unsupported(spec.device, spec.precision, cuda_graphs=False, compile=False)
    if reason is not None:
        return reason
    kwargs = dict(forward_kwargs or {})
    activities = [ProfilerActivity.CPU]
    if spec.device == "cuda":
        activities.append(ProfilerActivity.CUDA)
    notes = [f"{runs} profiled forwards after {max(spec.warmup, 1)} warm-up forwards, eager"]
    if spec.cuda_graphs or spec.compile:
        notes.append("CUDA graphs / torch.compile not applied: kernels must map to ops")
    try:
        with (
            num_threads(spec.threads) as threads,
            backend_flags(spec.precision, spec.device) as flag_notes,
            torch.inference_mode(),
        ):
            prepared, prep_notes = prepare_model(
                model, spec.device, spec.precision, spec.channels_last
            )
            x = random_input(input_shape, spec.device, spec.precision, spec.channels_last)
            for _ in range(max(spec.warmup, 1)):
                prepared(x, **kwargs)
            synchronize(spec.device)
            with _native_stderr_silenced(), profile(activities=activities) as prof:
                begin = time.perf_counter()
                for _ in range(runs):
                    prepared(x, **kwargs)
                synchronize(spec.device)
                wall_s = time.perf_counter() - begin
            events = list(prof.events())
    except Exception as error:
        if is_out_of_memory(error):
            return oom_missing(error)
        raise
    finally:
        if spec.device == "cuda":
            release_memory()
    rows = kernel_rows(events) if spec.device == "cuda" else _cpu_rows(events)
    if not rows:
        return Missing("torch.profiler recorded no op or kernel events")
    ops, categories = tabulate(rows, runs)
    return OpTime(
        device=spec.device,
        timer=TIMER_CUDA if spec.device == "cuda" else TIMER_CPU,
        runs=runs,
        total_ms=float(categories["time_ms"].sum()),
        wall_ms=wall_s / runs * 1e3,
        ops=ops,
        categories=categories,
        notes=(*flag_notes, *prep_notes, f"torch intra-op threads: {threads}", *notes),
    )
