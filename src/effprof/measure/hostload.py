"""The host's load around a block of samples, and when a measurement is too noisy to trust.

Two readings, taken just before and just after a block of timed forwards:

* the 1-minute load average (``os.getloadavg``), a damped average that lags by tens of seconds
  and counts this process's own threads too;
* the CPU time the usable cores spent busy (``/proc/stat``: user, nice, system, irq, softirq and
  the hypervisor's steal) minus this process's own CPU time (``getrusage``): the CPU time *other*
  processes took during the block. Divided by the block's wall time it is ``other_cpu_cores``,
  the average number of cores other work kept busy (2 busy loops on an idle host: about 2).

Contention is judged from the second, where it exists: with ``threads`` intra-op threads on
``cores`` usable cores, other work has ``cores - threads`` cores to itself; whatever it took
beyond that came out of the measured threads' time (``stolen_share``). A measurement is
*unreliable* when that share, or the spread of its samples, passes a threshold
(:func:`unreliable_reason`); the run keeps the number and says why it should not be trusted.

>>> with LoadWatch() as watch:  # doctest: +SKIP
...     samples = [time_one() for _ in range(10)]
>>> watch.load.other_cpu_cores, unreliable_reason(samples, watch.load, threads=2)  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import os
import resource
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from effprof import schema as S
from effprof.results import Missing

PROC_STAT = Path("/proc/stat")
# Reliability thresholds (documented in reports/benchmarks/profiling.md).
MAX_CV = 0.20  # coefficient of variation of the samples
MAX_P90_OVER_P10 = 1.5  # spread between the slow and fast tails
MIN_SPREAD_SAMPLES = 3  # fewer samples say nothing about spread
MAX_STOLEN_SHARE = 0.15  # share of the measured threads' core time that other work took
MAX_LOAD_PER_CORE = 1.5  # fallback without /proc/stat: 1-minute load average per usable core
MIN_WINDOW_S = 0.2  # /proc/stat counts in 10 ms ticks: shorter blocks cannot be read


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity), else the machine's count."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _usable_cpu_ids() -> set[str] | None:
    if not hasattr(os, "sched_getaffinity"):
        return None
    return {f"cpu{i}" for i in os.sched_getaffinity(0)}


def host_busy_s() -> float | None:
    """Seconds the usable cores have spent busy since boot (``/proc/stat``; None elsewhere)."""
    try:
        lines = PROC_STAT.read_text().splitlines()
        ticks = os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, AttributeError):
        return None
    wanted = _usable_cpu_ids()
    busy = 0
    found = False
    for line in lines:
        name, *fields = line.split()
        if not name.startswith("cpu") or name == "cpu" or (wanted and name not in wanted):
            continue
        values = [int(v) for v in fields[:8]] + [0] * (8 - len(fields[:8]))
        user, nice, system, _idle, _iowait, irq, softirq, steal = values
        busy += user + nice + system + irq + softirq + steal
        found = True
    return busy / ticks if found else None


def own_cpu_s() -> float:
    """CPU seconds of this process's threads and of its finished child processes."""
    usage = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    return sum(u.ru_utime + u.ru_stime for u in usage)


def load_average() -> float | None:
    """The host's 1-minute load average (None where the OS reports none)."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


@dataclass(frozen=True)
class CpuSnapshot:
    """Clocks read at one moment: wall time, busy time of the usable cores, own CPU time."""

    wall_s: float
    busy_s: float | None
    own_s: float
    load_avg_1min: float | None

    @classmethod
    def now(cls) -> CpuSnapshot:
        return cls(time.perf_counter(), host_busy_s(), own_cpu_s(), load_average())


@dataclass(frozen=True)
class HostLoad:
    """The host's load during one block: ``other_cpu_cores`` is the average number of cores
    other processes kept busy (None where /proc/stat is unreadable or the block too short),
    ``own_cpu_cores`` this process's, ``load_avg_1min`` the larger reading of before / after."""

    wall_s: float
    cores: int
    load_avg_1min: float | None
    own_cpu_cores: float
    other_cpu_cores: float | None

    @classmethod
    def between(cls, before: CpuSnapshot, after: CpuSnapshot) -> HostLoad:
        wall = max(after.wall_s - before.wall_s, 1e-9)
        own = max(after.own_s - before.own_s, 0.0)
        other = None
        if before.busy_s is not None and after.busy_s is not None and wall >= MIN_WINDOW_S:
            other = max(after.busy_s - before.busy_s - own, 0.0) / wall
        loads = [v for v in (before.load_avg_1min, after.load_avg_1min) if v is not None]
        return cls(wall, usable_cores(), max(loads) if loads else None, own / wall, other)

    def stolen_share(self, threads: int) -> float | None:
        """Share of ``threads`` cores' time that other processes took (0 when they fitted in the
        cores the measurement left free); None without a /proc/stat reading."""
        if self.other_cpu_cores is None:
            return None
        free = max(self.cores - threads, 0)
        return max(self.other_cpu_cores - free, 0.0) / max(threads, 1)

    def contention(self, threads: int) -> str | None:
        """Why other work competed with ``threads`` measuring threads, or None if it did not."""
        share = self.stolen_share(threads)
        if share is not None:
            if share <= MAX_STOLEN_SHARE:
                return None
            return self._stolen_sentence(threads, share)
        load = self.load_avg_1min
        if load is not None and load > MAX_LOAD_PER_CORE * self.cores:
            return (
                f"1-minute load average {load:.1f} on {self.cores} usable cores "
                f"(threshold {MAX_LOAD_PER_CORE:g} per core; other processes' CPU time was not "
                "read: no /proc/stat, or a block too short for its 10 ms ticks)"
            )
        return None

    def _stolen_sentence(self, threads: int, share: float) -> str:
        """What other work took from the measurement, in words a first read parses.

        >>> HostLoad(1.0, 2, None, 1.0, 1.19).contention(1)
        'other processes kept 1.2 of the 2 usable cores busy: beyond the 1 core left free for them, they took about 19% of the time of the 1 timing thread, above the 15% threshold'
        >>> HostLoad(1.0, 2, None, 1.0, 0.9).contention(2)
        'other processes kept 0.9 of the 2 usable cores busy, cores the 2 timing threads all needed: they took about 45% of their time, above the 15% threshold'
        """
        free = max(self.cores - threads, 0)
        busy = f"other processes kept {self.other_cpu_cores:.1f} of the {_count(self.cores, 'usable core')} busy"
        timing = _count(threads, "timing thread")
        if free:
            return (
                f"{busy}: beyond the {_count(free, 'core')} left free for them, they took about "
                f"{share:.0%} of the time of the {timing}, above the {MAX_STOLEN_SHARE:.0%} threshold"
            )
        needed = (
            "the core the timing thread needed"
            if threads == 1
            else f"cores the {timing} all needed"
        )
        whose = "its" if threads == 1 else "their"
        return (
            f"{busy}, {needed}: they took about {share:.0%} of {whose} time, above the "
            f"{MAX_STOLEN_SHARE:.0%} threshold"
        )

    def summary(self, names: S.LoadNames) -> dict[str, Any]:
        """The load under ``names`` (a measurement's load average, other and own cores)."""
        why_other = (
            "no /proc/stat on this OS"
            if host_busy_s() is None
            else f"block shorter than {MIN_WINDOW_S} s"
        )
        return {
            names.load_avg_1min: self.load_avg_1min
            if self.load_avg_1min is not None
            else Missing("the OS reports no load average"),
            names.other_cpu_cores: self.other_cpu_cores
            if self.other_cpu_cores is not None
            else Missing(f"other processes' CPU time not readable: {why_other}"),
            names.own_cpu_cores: self.own_cpu_cores,
        }


class LoadWatch(contextlib.AbstractContextManager):
    """Reads the clocks on entry and exit; ``load`` is the :class:`HostLoad` of the block."""

    def __init__(self) -> None:
        self.load: HostLoad | None = None

    def __enter__(self) -> LoadWatch:
        self._before = CpuSnapshot.now()
        return self

    def __exit__(self, *exc: object) -> None:
        self.load = HostLoad.between(self._before, CpuSnapshot.now())


def _count(number: int, noun: str) -> str:
    """``1 core``, ``2 cores``."""
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def probe_host(seconds: float = 0.5) -> HostLoad:
    """The host's load while this process sleeps for ``seconds`` (what others take right now)."""
    with LoadWatch() as watch:
        time.sleep(seconds)
    assert watch.load is not None
    return watch.load


def spread_reason(samples_ms: Sequence[float]) -> str | None:
    """Why the samples vary too much to trust their median, or None."""
    if len(samples_ms) < MIN_SPREAD_SAMPLES:
        return None
    values = np.asarray(samples_ms, dtype=float)
    mean = float(values.mean())
    cv = float(values.std(ddof=1)) / mean if mean > 0 else 0.0
    p10, p90 = (float(v) for v in np.percentile(values, [10, 90]))
    reasons = []
    if cv > MAX_CV:
        reasons.append(f"CV {cv:.0%} (threshold {MAX_CV:.0%})")
    if p10 > 0 and p90 / p10 > MAX_P90_OVER_P10:
        reasons.append(f"p90/p10 {p90 / p10:.2f} (threshold {MAX_P90_OVER_P10:g})")
    return "samples spread: " + ", ".join(reasons) if reasons else None


def unreliable_reason(
    samples_ms: Sequence[float], load: HostLoad | None, threads: int | None, device: str = "cpu"
) -> str | None:
    """Why a block of timed samples should not be trusted (spread or, on cpu, contention).

    None means it passed every threshold. On cuda the GPU's time does not share the CPU, so only
    the spread is judged.
    """
    reasons = [spread_reason(samples_ms)]
    if load is not None and device == "cpu":
        busy = load.contention(threads or 1)
        reasons.append(f"busy host: {busy}" if busy else None)
    kept = [r for r in reasons if r]
    return "; ".join(kept) if kept else None
