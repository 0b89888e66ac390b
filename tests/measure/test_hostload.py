"""Host load around a block of samples, contention, and when a measurement is unreliable."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from effprof.measure.hostload import (
    MAX_STOLEN_SHARE,
    CpuSnapshot,
    HostLoad,
    probe_host,
    spread_reason,
    unreliable_reason,
)


def load(other: float | None, cores: int = 2, load_avg: float | None = 1.0) -> HostLoad:
    return HostLoad(wall_s=2.0, cores=cores, load_avg_1min=load_avg, own_cpu_cores=1.0,
                    other_cpu_cores=other)  # fmt: skip


def test_other_processes_cpu_time_is_busy_time_minus_our_own():
    before = CpuSnapshot(wall_s=10.0, busy_s=100.0, own_s=5.0, load_avg_1min=1.0)
    after = CpuSnapshot(wall_s=12.0, busy_s=104.0, own_s=6.0, load_avg_1min=2.5)
    result = HostLoad.between(before, after)
    # 4 s busy over 2 s, 1 s of it ours: others kept 1.5 cores busy on average
    assert result.other_cpu_cores == pytest.approx(1.5)
    assert result.own_cpu_cores == pytest.approx(0.5)
    assert result.load_avg_1min == 2.5 and result.wall_s == pytest.approx(2.0)


def test_a_block_too_short_for_proc_stat_ticks_reads_no_other_time():
    before = CpuSnapshot(wall_s=10.0, busy_s=100.0, own_s=5.0, load_avg_1min=1.0)
    after = CpuSnapshot(wall_s=10.05, busy_s=100.02, own_s=5.01, load_avg_1min=1.0)
    assert HostLoad.between(before, after).other_cpu_cores is None


def test_contention_counts_only_what_others_took_from_the_measured_threads():
    # 1 thread on 2 cores: others may use the free core without slowing it
    assert load(other=1.0).stolen_share(threads=1) == 0.0
    assert load(other=1.0).contention(threads=1) is None
    # two busy loops beside one thread: half its core's time went to them
    assert load(other=1.5).stolen_share(threads=1) == pytest.approx(0.5)
    assert "1.5 of the 2 usable cores" in load(other=1.5).contention(threads=1)
    # 2 threads on 2 cores: any other work above the threshold competes
    assert load(other=0.2).contention(threads=2) is None
    assert load(other=2 * MAX_STOLEN_SHARE + 0.1).contention(threads=2) is not None


def test_without_proc_stat_the_load_average_decides():
    assert load(other=None, load_avg=2.0).contention(threads=1) is None
    assert "load average 4.0" in load(other=None, load_avg=4.0).contention(threads=1)


def test_spread_thresholds_need_three_samples():
    assert spread_reason([10.0, 10.2, 9.9, 10.1]) is None
    assert spread_reason([10.0, 30.0]) is None
    reason = spread_reason([10.0, 10.0, 10.0, 10.0, 25.0, 26.0])
    assert reason is not None and "CV" in reason and "p90/p10" in reason


def test_a_block_is_unreliable_for_its_spread_or_its_load_and_cuda_ignores_cpu_load():
    steady = [10.0, 10.1, 9.9, 10.0]
    assert unreliable_reason(steady, load(other=0.0), threads=2) is None
    assert "busy host" in unreliable_reason(steady, load(other=2.0), threads=2)
    assert unreliable_reason(steady, load(other=2.0), threads=2, device="cuda") is None
    both = unreliable_reason([10, 10, 10, 30, 30], load(other=2.0), threads=2)
    assert "samples spread" in both and "busy host" in both


@pytest.mark.skipif(not Path("/proc/stat").is_file(), reason="needs Linux /proc/stat")
def test_two_busy_loops_beside_us_are_seen_as_other_processes_cpu_time():
    loops = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    try:
        seen = probe_host(1.0)
    finally:
        for loop in loops:
            loop.kill()
            loop.wait()
    # the two loops alone keep up to 2 cores busy; other work on a shared host only adds
    assert seen.other_cpu_cores is not None and seen.other_cpu_cores > 1.0
    assert seen.own_cpu_cores < 0.2
    assert seen.contention(threads=seen.cores) is not None


@pytest.mark.parametrize(
    ("cores", "threads", "other", "expected"),
    [
        (2, 1, 1.19, "other processes kept 1.2 of the 2 usable cores busy: beyond the 1 core left "
         "free for them, they took about 19% of the time of the 1 timing thread, above the 15% "
         "threshold"),
        (16, 4, 15.0, "other processes kept 15.0 of the 16 usable cores busy: beyond the 12 cores "
         "left free for them, they took about 75% of the time of the 4 timing threads, "
         "above the 15% threshold"),
        (2, 2, 0.9, "other processes kept 0.9 of the 2 usable cores busy, cores the 2 timing "
         "threads all needed: they took about 45% of their time, above the 15% threshold"),
        (1, 1, 0.3, "other processes kept 0.3 of the 1 usable core busy, the core the timing "
         "thread needed: they took about 30% of its time, above the 15% threshold"),
    ],
)  # fmt: skip
def test_the_busy_host_sentence_reads_on_a_first_read(cores, threads, other, expected):
    # it once read "about 19% of the core time 1 thread(s) need"
    text = HostLoad(1.0, cores, None, 1.0, other).contention(threads)
    assert text == expected and "(s)" not in text
