"""How fast effprof's counter is beside FlopCounterMode on the same meta model: both timed in
one process, interleaved (A B, then B A, ...), each round's ratio taken within the round, the
host's load average recorded per round. Used by ``scripts/bench_count.py``."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from effprof.measure.counting import count_model
from effprof.measure.hostload import load_average
from effprof.models.inputs import InputSpec

Counter = Callable[[nn.Module, InputSpec], int]  # a counter under test: the MACs it counts


def _seconds(call: Callable[[], object]) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def flop_counter_on_meta(model: nn.Module, inputs: InputSpec) -> int:
    """FlopCounterMode's total FLOPs for one forward of a meta model on meta inputs."""
    args, kwargs = inputs.build("meta")
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(*args, **kwargs)
    return int(counter.get_total_flops())


@dataclass(frozen=True)
class CounterTiming:
    """Rounds of effprof vs FlopCounterMode on one model: seconds, within-round ratios, load."""

    name: str
    macs: int
    flop_counter_macs: int
    rounds: pd.DataFrame  # round, order, effprof_s, flop_counter_s, ratio, load_avg_1min

    def summary(self) -> dict[str, object]:
        """Medians over rounds; ``ratio`` is the median of the within-round ratios."""
        return {
            "model": self.name,
            "effprof_s": statistics.median(self.rounds["effprof_s"]),
            "flop_counter_s": statistics.median(self.rounds["flop_counter_s"]),
            "ratio": statistics.median(self.rounds["ratio"]),
            "ratio_min": float(self.rounds["ratio"].min()),
            "ratio_max": float(self.rounds["ratio"].max()),
            "load_avg_1min": statistics.median(
                v for v in self.rounds["load_avg_1min"] if v is not None
            ) if self.rounds["load_avg_1min"].notna().any() else None,
            "macs_equal": self.macs == self.flop_counter_macs,
        }  # fmt: skip


def time_counters(
    name: str, model: nn.Module, inputs: InputSpec, rounds: int = 5,
    counter: Counter = lambda model, inputs: count_model(model, inputs).macs,
) -> CounterTiming:  # fmt: skip
    """Time ``counter`` (default: the measure layer's ``count_model``; the benchmark script
    passes the public ``effprof.count``) and FlopCounterMode on ``model`` (on meta),
    interleaved, after one warm-up call of each (PyTorch's meta kernels and effprof's formula
    caches warm up once per process)."""
    macs = counter(model, inputs)
    total = flop_counter_on_meta(model, inputs)
    calls = {
        "effprof": lambda: counter(model, inputs),
        "flop_counter": lambda: flop_counter_on_meta(model, inputs),
    }
    rows = []
    for index in range(rounds):
        order = ["effprof", "flop_counter"] if index % 2 == 0 else ["flop_counter", "effprof"]
        load = load_average()
        seconds = {key: _seconds(calls[key]) for key in order}
        rows.append({
            "round": index, "order": " ".join(order), "effprof_s": seconds["effprof"],
            "flop_counter_s": seconds["flop_counter"],
            "ratio": seconds["effprof"] / seconds["flop_counter"], "load_avg_1min": load,
        })  # fmt: skip
    return CounterTiming(name, macs, total // 2, pd.DataFrame(rows))
