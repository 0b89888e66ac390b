"""Time per op and per op category, from torch.profiler.

On cpu the time of an op is its *self* CPU time (time inside the aten op minus its child ops);
on cuda it is the duration of each GPU kernel (and memcpy), attributed to a category by the
kernel's name first, so cuDNN's NCHW<->NHWC transposes count as "data movement" even though a
convolution launched them, and by the aten op that launched it otherwise. Each forward is
profiled on its own and each op keeps its fastest forward (a preemption by another process in one
forward would otherwise move that op's share on a shared host). Shares are of the summed time, so
they add up to 1; Python overhead between ops (cpu) and idle GPU gaps (cuda) are not in it, which
``wall_ms`` beside it shows.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from torch import nn
from torch.autograd import DeviceType
from torch.profiler import ProfilerActivity, profile

from effprof import schema as S
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
from effprof.measure.hostload import HostLoad
from effprof.measure.precision import synchronize
from effprof.measure.session import LatencySpec, Session, measured
from effprof.models.inputs import InputSpec, as_inputs
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
    """Per-op and per-category time of ``runs`` profiled forwards (times are per forward, each
    op's fastest forward: see :func:`tabulate`).

    ``ops`` columns: name, category, caller (the outermost aten op it ran under, e.g.
    ``aten::conv2d``), calls, time_ms, share. ``categories`` columns: category, time_ms, share
    (every category of effprof.measure.categories, shares summing to 1). ``load`` is the host's
    load during the profiled forwards.
    """

    device: str
    timer: str
    runs: int
    total_ms: float
    wall_ms: float
    ops: pd.DataFrame
    categories: pd.DataFrame
    notes: tuple[str, ...] = field(default_factory=tuple)
    load: HostLoad | None = None

    def share(self, category: str) -> float:
        """Share (0..1) of the profiled time spent in ``category``."""
        rows = self.categories[self.categories["category"] == category]
        return float(rows["share"].sum())

    def summary(self) -> dict[str, Any]:
        """Flat metrics: profiled and wall time per forward, and ``time_share_<category>``."""
        metrics: dict[str, Any] = {S.OPTIME_TOTAL_MS: self.total_ms, S.OPTIME_WALL_MS: self.wall_ms}
        for row in self.categories.itertuples():
            metrics[S.TIME_SHARE.of(row.category)] = float(row.share)
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


def tabulate(runs: Sequence[list[dict]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-op table and per-category table from the event rows of each profiled forward.

    An op (name, category, caller) keeps its fastest per-forward total over the forwards: other
    processes only ever add time, and a forward a preemption hit would otherwise move its op's
    share. Times are per forward in ms, shares of the summed fastest times.
    """
    per_run = []
    for index, rows in enumerate(runs):
        frame = pd.DataFrame(rows, columns=["name", "category", "caller", "time_us"])
        grouped = frame.groupby(["name", "category", "caller"], as_index=False).agg(
            calls=("time_us", "size"), time_us=("time_us", "sum")
        )
        per_run.append(grouped.assign(run=index))
    joined = pd.concat(per_run, ignore_index=True)
    ops = joined.groupby(["name", "category", "caller"], as_index=False).agg(
        calls=("calls", "median"), time_us=("time_us", "min"), seen=("run", "size")
    )
    ops.loc[ops["seen"] < len(runs), "time_us"] = 0.0  # absent from a forward: its fastest is 0
    total_us = float(ops["time_us"].sum())
    ops["time_ms"] = ops["time_us"] / 1e3
    ops["share"] = ops["time_us"] / total_us if total_us > 0 else 0.0
    ops = ops.drop(columns=["time_us", "seen"]).sort_values(
        "time_ms", ascending=False, ignore_index=True
    )
    by_category = ops.groupby("category")["time_ms"].sum()
    categories = pd.DataFrame({"category": list(CATEGORIES)})
    extra = sorted(set(by_category.index) - set(CATEGORIES))
    categories = pd.concat([categories, pd.DataFrame({"category": extra})], ignore_index=True)
    categories["time_ms"] = [float(by_category.get(c, 0.0)) for c in categories["category"]]
    total_ms = float(categories["time_ms"].sum())
    categories["share"] = categories["time_ms"] / total_ms if total_ms > 0 else 0.0
    categories = categories.sort_values("time_ms", ascending=False, ignore_index=True)
    return ops, categories


def _profiled(
    session: Session, model: nn.Module, inputs: InputSpec, kwargs: dict, runs: int
) -> tuple[list[list], float, HostLoad | None]:
    spec = session.spec
    activities = [ProfilerActivity.CPU]
    if spec.device == "cuda":
        activities.append(ProfilerActivity.CUDA)
    prepared = session.prepare(model)
    args, given = session.inputs(inputs)
    given.update(kwargs)
    for _ in range(max(spec.warmup, 1)):
        prepared(*args, **given)
    synchronize(spec.device)
    events, wall_s = [], 0.0
    with session.watch() as watch, _native_stderr_silenced():
        for _ in range(runs):  # one profile per forward: each op keeps its fastest forward
            with profile(activities=activities) as prof:
                begin = time.perf_counter()
                prepared(*args, **given)
                synchronize(spec.device)
                wall_s += time.perf_counter() - begin
            events.append(list(prof.events()))
    return events, wall_s, watch.load


def op_time(
    model: nn.Module,
    inputs: InputSpec | tuple[int, ...],
    spec: LatencySpec,
    *,
    runs: int = 3,
    forward_kwargs: Mapping[str, Any] | None = None,
) -> OpTime | Missing:
    """Profile ``runs`` eager forwards (after ``spec.warmup``, at least 1) and split the time by op.

    Uses ``spec.device``, ``precision``, ``channels_last`` and ``threads``; CUDA graphs and
    torch.compile are not applied (their kernels are not attributable to ops).
    """
    given = as_inputs(inputs)
    kwargs = dict(forward_kwargs or {})
    notes = [f"{runs} profiled forwards after {max(spec.warmup, 1)} warm-up forwards, eager"]
    if spec.cuda_graphs or spec.compile:
        notes.append("CUDA graphs / torch.compile not applied: kernels must map to ops")
    result = measured(
        spec, lambda session: (_profiled(session, model, given, kwargs, runs), session)
    )
    if isinstance(result, Missing):
        return result
    (events, wall_s, load), session = result
    to_rows = kernel_rows if spec.device == "cuda" else _cpu_rows
    rows = [to_rows(run) for run in events]
    if not any(rows):
        return Missing("torch.profiler recorded no op or kernel events")
    ops, categories = tabulate(rows)
    return OpTime(
        device=spec.device,
        timer=TIMER_CUDA if spec.device == "cuda" else TIMER_CPU,
        runs=runs,
        total_ms=float(categories["time_ms"].sum()),
        wall_ms=wall_s / runs * 1e3,
        ops=ops,
        categories=categories,
        notes=(*session.notes, f"torch intra-op threads: {session.threads}", *notes),
        load=load,
    )
