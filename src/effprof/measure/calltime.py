"""Measured time of every aten call, aligned row by row with the counting trace.

The real model runs under a ``TorchDispatchMode`` at the same level as the counter
(:mod:`effprof.measure.counting`), in eval mode under ``no_grad``, so it sees the same aten calls
in the same order: row ``seq`` of this table is row ``seq`` of the per-op count table, and time can
be rolled up by module, scale, stage or category exactly like MACs. Each call is timed on its
own, and each call keeps its fastest time over the passes (other processes only ever add time, so
the minimum is the most repeatable estimate on a shared host): on cpu with ``perf_counter`` around the call (cpu ops run synchronously); on cuda with a
pair of CUDA events around the call after a synchronisation, so a call's time is its kernels' time
(plus a few microseconds of launch latency), not the Python gaps between calls. The sum is
therefore the model's *compute* time; the latency protocol's median (which includes Python and
launch overhead) sits beside it in the report.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

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

TIMER_CPU = "perf_counter around each aten call"
TIMER_CUDA = "CUDA events around each aten call, synchronised before it"


class _TimingMode(TorchDispatchMode):
    """Runs each aten call and records (op name, elapsed); cuda times are resolved at the end."""

    def __init__(self, device: str) -> None:
        super().__init__()
        self.cuda = device == "cuda"
        self.names: list[str] = []
        self.times: list[Any] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        kwargs = kwargs or {}
        if self.cuda:
            torch.cuda.synchronize()
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            out = func(*args, **kwargs)
            end.record()
            self.times.append((start, end))
        else:
            begin = time.perf_counter_ns()
            out = func(*args, **kwargs)
            self.times.append((time.perf_counter_ns() - begin) / 1e6)
        self.names.append(str(func))
        return out

    def elapsed_ms(self) -> list[float]:
        if not self.cuda:
            return list(self.times)
        torch.cuda.synchronize()
        return [start.elapsed_time(end) for start, end in self.times]


@dataclass(frozen=True)
class CallTimes:
    """Fastest time per aten call over ``runs`` passes; ``table`` columns: seq, op, time_ms."""

    device: str
    timer: str
    runs: int
    table: pd.DataFrame

    @property
    def total_ms(self) -> float:
        """Summed time of all calls of one forward (compute time, without Python gaps)."""
        return float(self.table["time_ms"].sum())

    def to_frame(self) -> pd.DataFrame:
        """The per-call table."""
        return self.table


def _one_pass(
    model: nn.Module, x: torch.Tensor, device: str, kwargs: Mapping[str, Any]
) -> tuple[list[str], list[float]]:
    mode = _TimingMode(device)
    with mode:
        model(x, **kwargs)
    return mode.names, mode.elapsed_ms()


def call_times(
    model: nn.Module,
    input_shape: Sequence[int],
    spec: LatencySpec,
    *,
    expected_ops: Sequence[str] | None = None,
    runs: int = 2,
    warmup: int = 1,
    forward_kwargs: Mapping[str, Any] | None = None,
) -> CallTimes | Missing:
    """Time every aten call of ``model(x)`` (``warmup`` passes, then ``runs``, fastest per call).

    ``expected_ops`` is the counting trace's ``op`` column: when the timed trace differs (another
    op order on this device), the result is ``Missing`` rather than times attached to wrong rows.
    """
    reason = unsupported(spec.device, spec.precision, cuda_graphs=False, compile=False)
    if reason is not None:
        return reason
    kwargs = dict(forward_kwargs or {})
    try:
        with (
            num_threads(spec.threads),
            backend_flags(spec.precision, spec.device),
            torch.no_grad(),
        ):
            prepared, _ = prepare_model(model, spec.device, spec.precision, spec.channels_last)
            prepared.eval()
            x = random_input(tuple(input_shape), spec.device, spec.precision, spec.channels_last)
            for _ in range(warmup):
                prepared(x, **kwargs)
            synchronize(spec.device)
            names, samples = None, []
            for _ in range(max(runs, 1)):
                names, elapsed = _one_pass(prepared, x, spec.device, kwargs)
                samples.append(elapsed)
    except Exception as error:
        if is_out_of_memory(error):
            return oom_missing(error)
        raise
    finally:
        if spec.device == "cuda":
            release_memory()
    assert names is not None
    if expected_ops is not None and list(expected_ops) != names:
        first = next(
            (i for i, (a, b) in enumerate(zip(expected_ops, names, strict=False)) if a != b),
            min(len(expected_ops), len(names)),
        )
        return Missing(
            f"the timed trace ({len(names)} calls) differs from the counted one "
            f"({len(expected_ops)} calls) from call {first} on: times cannot be attributed"
        )
    table = pd.DataFrame(
        {
            "seq": np.arange(len(names)),
            "op": names,
            "time_ms": np.min(np.asarray(samples, dtype=float), axis=0),
        }
    )
    timer = TIMER_CUDA if spec.device == "cuda" else TIMER_CPU
    return CallTimes(device=spec.device, timer=timer, runs=max(runs, 1), table=table)
