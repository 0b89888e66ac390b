"""Measured time of every aten call, aligned with the counting trace.

The real model runs under a ``TorchDispatchMode`` at the same level as the counter
(:mod:`effprof.measure.counting`), in eval mode under ``no_grad``, with the counter's call-time
module stack and its fused regions (:mod:`effprof.measure.regions`: one
``F.scaled_dot_product_attention`` call is one row, timed as a whole), so it sees the same calls
in the same order. Each call is timed on its own, and keeps its fastest time over the passes
(other processes only ever add time, so the minimum is the most repeatable estimate on a shared
host): on cpu with ``perf_counter`` around the call (cpu ops run synchronously); on cuda with a
pair of CUDA events around the call after a synchronisation, so a call's time is its kernels'
time (plus a few microseconds of launch latency), not the Python gaps between calls. The sum is
therefore the model's *compute* time; the latency protocol's median (which includes Python and
launch overhead) sits beside it in the report.

Alignment with the counted trace (``CallTimes.alignment``):

* ``per call``: the timed trace is the counted one, op for op and module path for module path:
  row ``seq`` of the time table is row ``seq`` of the count table;
* ``per (module, category)``: the traces differ (another decomposition on this device); the time
  of each (call-time module path, op category) pair is spread over the counted calls of that pair
  in proportion to their FLOPs (else bytes, else evenly), so time by component and by category
  still holds, while a single call's time is an estimate. Time of pairs the counter never saw is
  ``unmatched_ms``.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from effprof import schema as S
from effprof.measure.categories import op_category
from effprof.measure.hostload import HostLoad
from effprof.measure.provenance import Provenance
from effprof.measure.regions import ATTENTION, fused_regions
from effprof.measure.session import LatencySpec, Session, measured
from effprof.measure.trace import CallPaths, tensors_in
from effprof.models.inputs import InputSpec, as_inputs
from effprof.results import Missing

TIMER_CPU = "perf_counter around each aten call"
TIMER_CUDA = "CUDA events around each aten call, synchronised before it"
PER_CALL = "per call"
PER_GROUP = "per (module, category)"
UNALIGNED = "none (no counted trace given)"
TIMED_COLUMNS = ["seq", "op", "module", "category", "time_ms"]


class _TimingMode(TorchDispatchMode):
    """Runs each aten call and records (op, module path, category, elapsed); a fused region is
    one call. Categories are decided as the counter decides them (op tags, attention by
    provenance). CUDA times are resolved at the end."""

    def __init__(self, device: str, paths: CallPaths, provenance: Provenance) -> None:
        super().__init__()
        self.cuda = device == "cuda"
        self.paths = paths
        self.provenance = provenance
        self.rows: list[tuple[str, str, str]] = []  # op, module, category
        self.times: list[Any] = []
        self._region: tuple[Any, str] | None = None

    def _start(self) -> Any:
        if self.cuda:
            torch.cuda.synchronize()
            start = torch.cuda.Event(enable_timing=True)
            start.record()
            return start
        return time.perf_counter_ns()

    def _stop(self, start: Any) -> Any:
        if self.cuda:
            end = torch.cuda.Event(enable_timing=True)
            end.record()
            return (start, end)
        return (time.perf_counter_ns() - start) / 1e6

    def _append(self, elapsed: Any, name: str, module: str, category: str) -> None:
        self.times.append(elapsed)
        self.rows.append((name, module, category))

    def enter_region(self, name: str, args: tuple, kwargs: dict) -> None:
        """A fused function starts: its inner aten calls are not timed one by one."""
        self._region = (self._start(), self.paths.current[0])

    def leave_region(self, name: str, out: Any) -> None:
        """The fused function returned: one row for the whole call."""
        if self._region is not None:
            start, module = self._region
            self._region = None
            self._append(self._stop(start), name, module, ATTENTION)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        kwargs = kwargs or {}
        if self._region is not None:
            return func(*args, **kwargs)
        name = str(func)
        start = self._start()
        out = func(*args, **kwargs)
        elapsed = self._stop(start)
        inputs = list(tensors_in((*args, *kwargs.values())))
        outputs = list(tensors_in(out if isinstance(out, (list, tuple)) else (out,)))
        category = op_category(name, func.tags)
        category = self.provenance.observe(len(self.rows), func, category, inputs, outputs)
        self._append(elapsed, name, self.paths.current[0], category)
        return out

    def elapsed_ms(self) -> list[float]:
        if not self.cuda:
            return list(self.times)
        torch.cuda.synchronize()
        return [start.elapsed_time(end) for start, end in self.times]


@dataclass(frozen=True)
class CallTimes:
    """Fastest time per aten call over ``runs`` passes.

    ``table`` (seq, op, time_ms) follows the counted trace when one was given (see the module
    docstring for ``alignment``), else the timed trace; ``timed`` is the timed trace itself
    (seq, op, module, category, time_ms); ``unmatched_ms`` the time of timed (module, category)
    pairs the counted trace does not have (0 when aligned per call).
    """

    device: str
    timer: str
    runs: int
    table: pd.DataFrame
    timed: pd.DataFrame
    alignment: str = UNALIGNED
    unmatched_ms: float = 0.0
    load: HostLoad | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def total_ms(self) -> float:
        """Summed time of all timed calls of one forward (compute time, without Python gaps)."""
        return float(self.timed["time_ms"].sum())

    def summary(self) -> dict[str, Any]:
        """Flat metrics: ``calltime_alignment``, ``calltime_unmatched_ms``, ``calltime_calls``."""
        return {
            S.CALLTIME_ALIGNMENT: self.alignment,
            S.CALLTIME_UNMATCHED_MS: self.unmatched_ms,
            S.CALLTIME_CALLS: len(self.timed),
        }

    def to_frame(self) -> pd.DataFrame:
        """The per-call table."""
        return self.table


def _one_pass(
    model: nn.Module, args: tuple, kwargs: Mapping[str, Any], device: str
) -> pd.DataFrame:
    paths = CallPaths(model)
    weights = {t.untyped_storage()._cdata for t in (*model.parameters(), *model.buffers())}
    provenance = Provenance(weights)
    mode = _TimingMode(device, paths, provenance)
    with paths, fused_regions(mode.enter_region, mode.leave_region), mode:
        model(*args, **kwargs)
    for row, category in provenance.relabel.items():  # QK^T products, known once softmax ran
        mode.rows[row] = (*mode.rows[row][:2], category)
    frame = pd.DataFrame(mode.rows, columns=["op", "module", "category"])
    frame.insert(0, "seq", np.arange(len(frame)))
    frame["time_ms"] = mode.elapsed_ms()
    return frame


@contextlib.contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    """Eval mode while timing (the counter counts in eval mode); each module's mode restored."""
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for module, training in modes:
            module.train(training)


def _fastest(passes: list[pd.DataFrame]) -> pd.DataFrame | None:
    """The first pass with each call's minimum over passes; None if the passes differ."""
    first = passes[0]
    if any(list(p["op"]) != list(first["op"]) for p in passes[1:]):
        return None
    times = np.min(np.stack([p["time_ms"].to_numpy(dtype=float) for p in passes]), axis=0)
    return first.assign(time_ms=times)


def _group_weights(counted: pd.DataFrame) -> pd.Series:
    """Per counted call, its weight within its (module, category) pair: FLOPs, else bytes, else 1."""
    moved = counted["bytes_read"] + counted["bytes_written"]
    weights = pd.Series(1.0, index=counted.index)
    keys = [counted["module"], counted["category"]]
    has_flops = counted.groupby(keys)["flops"].transform("sum") > 0
    has_bytes = moved.groupby(keys).transform("sum") > 0
    weights[has_bytes] = moved[has_bytes].astype(float)
    weights[has_flops] = counted.loc[has_flops, "flops"].astype(float)
    return weights


def align_by_group(counted: pd.DataFrame, timed: pd.DataFrame) -> tuple[pd.DataFrame, float]:
    """Spread each timed (module, category) pair's time over its counted calls; returns the
    per-seq table of the counted trace and the time of pairs the counter never saw (ms)."""
    keys = ["module", "category"]
    per_pair = timed.groupby(keys)["time_ms"].sum()
    weights = _group_weights(counted)
    totals = weights.groupby([counted["module"], counted["category"]]).transform("sum")
    pair_time = pd.Series(
        [
            per_pair.get((m, c), 0.0)
            for m, c in zip(counted["module"], counted["category"], strict=True)
        ],
        index=counted.index,
    )
    time_ms = (pair_time * weights / totals.where(totals > 0, 1.0)).astype(float)
    seen = set(zip(counted["module"], counted["category"], strict=True))
    unmatched = float(sum(v for key, v in per_pair.items() if key not in seen))
    table = pd.DataFrame({"seq": counted["seq"].to_numpy(), "op": counted["op"].to_numpy()})
    table["time_ms"] = time_ms.to_numpy()
    return table, unmatched


def _align(
    counted: pd.DataFrame | None, timed: pd.DataFrame
) -> tuple[pd.DataFrame, str, float] | Missing:
    if counted is None:
        return timed[["seq", "op", "time_ms"]], UNALIGNED, 0.0
    same_ops = list(counted["op"]) == list(timed["op"])
    if same_ops and list(counted["module"]) == list(timed["module"]):
        table = timed[["seq", "op", "time_ms"]].assign(seq=counted["seq"].to_numpy())
        return table, PER_CALL, 0.0
    table, unmatched = align_by_group(counted, timed)
    pairs = set(zip(counted["module"], counted["category"], strict=True))
    if pairs.isdisjoint(zip(timed["module"], timed["category"], strict=True)):
        return Missing(
            f"the timed trace ({len(timed)} calls) differs from the counted one "
            f"({len(counted)} calls) and no (module, category) pair is in both: times cannot "
            "be attributed"
        )
    return table, PER_GROUP, unmatched


def _timed_passes(
    session: Session, model: nn.Module, inputs: InputSpec, kwargs: dict, runs: int, warmup: int
) -> tuple[list[pd.DataFrame], HostLoad | None]:
    spec = session.spec
    prepared = session.prepare(model)
    args, given = session.inputs(inputs)
    given.update(kwargs)
    with _eval_mode(prepared):
        for _ in range(warmup):
            prepared(*args, **given)
        if spec.device == "cuda":
            torch.cuda.synchronize()
        with session.watch() as watch:
            passes = [_one_pass(prepared, args, given, spec.device) for _ in range(max(runs, 1))]
    return passes, watch.load


def call_times(
    model: nn.Module,
    inputs: InputSpec | Sequence[int],
    spec: LatencySpec,
    *,
    counted: pd.DataFrame | None = None,
    runs: int = 2,
    warmup: int = 1,
    forward_kwargs: Mapping[str, Any] | None = None,
) -> CallTimes | Missing:
    """Time every aten call of one forward (``warmup`` passes, then ``runs``, fastest per call).

    ``counted`` is the counting trace (``CountResult.ops``: seq, op, module, category, flops,
    bytes): the result's table follows it per call, or per (module, category) pair where the
    timed trace differs (``alignment`` says which); Missing when nothing can be aligned.
    """
    given = as_inputs(inputs)
    kwargs = dict(forward_kwargs or {})
    result = measured(
        spec,
        lambda session: (_timed_passes(session, model, given, kwargs, runs, warmup), session),
        grad="no_grad",
    )
    if isinstance(result, Missing):
        return result
    (passes, load), session = result
    timed = _fastest(passes)
    if timed is None:
        return Missing("the model ran different aten calls on each pass: times cannot be merged")
    aligned = _align(counted, timed)
    if isinstance(aligned, Missing):
        return aligned
    table, alignment, unmatched = aligned
    timer = TIMER_CUDA if spec.device == "cuda" else TIMER_CPU
    notes = list(session.notes)
    if alignment == PER_GROUP:
        notes.append(
            f"the timed trace ({len(timed)} calls) differs from the counted one "
            f"({len(counted)} calls): time attributed per (module, category) pair"
        )
    return CallTimes(
        device=spec.device, timer=timer, runs=max(runs, 1), table=table,
        timed=timed[TIMED_COLUMNS], alignment=alignment, unmatched_ms=unmatched, load=load,
        notes=tuple(notes),
    )  # fmt: skip
