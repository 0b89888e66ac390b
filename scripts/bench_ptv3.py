"""ptv3 (serialized patch attention) against its KNN-attention counterfactual: counted MACs,
measured peak memory and CPU latency at several point counts; writes JSON, prints a table.

    python scripts/bench_ptv3.py --points 10000,30000,100000 --rounds 3 \
        --out reports/benchmarks/ptv3-vs-knn.json

A thin caller of effprof: ``count_model`` on the meta device (MACs, FLOPs, the trace's activation
peak), ``measure_peak_memory`` (peak RSS of one forward in a fresh child process, minus the RSS
before it) and ``measure_latency`` (perf_counter, inference mode), both with 1 torch thread. The
two networks are timed interleaved, A B A B: every round times each once (``--repeat`` forwards),
after one warm-up forward each, and the KNN/patch latency ratio is taken within each round. The
1-minute load average is recorded before every timed call (the machine is shared).
``--knn-query`` also times the KNN network's brute-force kNN query alone at every level's point
count; ``--mmap-threshold`` sets glibc's mmap threshold for the memory children, so that freed
large blocks leave the process and peak RSS follows the live tensors (without it, glibc's heap
keeps some freed blocks, which the next peak then reuses or adds to).

The timers of effprof.measure take one input shape; until they take an InputSpec, the networks
are wrapped in :class:`PackedPoints`, which reads one (N, 3 + C) uniform [0, 1) tensor as the
coordinates (scaled to the entry's [0, 8) m box) and the features.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from effprof.measure.counting import count_model
from effprof.measure.environment import collect_environment
from effprof.measure.latency import LatencySpec, measure_latency
from effprof.measure.memory import measure_peak_memory
from effprof.models import MODELS
from effprof.models.ptv3 import EXTENT_M, VARIANTS
from effprof.models.ptv3_serialization import KNNQuery
from effprof.results import Missing

MIB = 1024**2
NETWORKS = ("ptv3", "KNN attention")


class PackedPoints(nn.Module):
    """``forward(x)`` with x (N, 3 + C) in [0, 1): coordinates x[:, :3] x 8 m, features x[:, 3:]."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x[:, :3] * EXTENT_M, x[:, 3:])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--points", default="10000,30000,100000")
    parser.add_argument("--variant", default="small")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=1, help="timed forwards per network a round")
    parser.add_argument("--no-memory", action="store_true", help="skip peak-memory measurement")
    parser.add_argument("--no-latency", action="store_true", help="skip the timed rounds")
    parser.add_argument(
        "--knn-query", action="store_true", help="also time the kNN query alone at every level"
    )
    parser.add_argument(
        "--mmap-threshold",
        type=int,
        default=None,
        help="glibc MALLOC_MMAP_THRESHOLD_ for the memory children (bytes): blocks above it are "
        "mmap'd and returned on free, so peak RSS follows live tensors",
    )
    parser.add_argument("--out", type=Path, default=None)
    return parser.parse_args(argv)


def build(variant: str, network: str, device: str = "cpu") -> nn.Module:
    """The real network or its counterfactual, built on ``device``, eval mode."""
    entry = MODELS.get("ptv3")
    maker = entry.build if network == "ptv3" else entry.counterfactuals[network][1]
    with torch.device(device):
        return maker(variant).eval()


def counted(variant: str, points: int) -> dict[str, dict[str, int]]:
    """MACs, FLOPs and the trace's activation peak of both networks at ``points`` (meta)."""
    spec = MODELS.get("ptv3").default_inputs(variant).with_size((points,))
    rows = {}
    for network in NETWORKS:
        count = count_model(build(variant, network, "meta"), spec)
        assert count.complete, count.uncounted
        rows[network] = {
            "macs": count.macs,
            "flops": count.flops,
            "counted_activation_peak_bytes": count.activation_peak_bytes,
        }
    return rows


def value(result: Any, field: str) -> Any:
    """``result.field``, or the reason when the measurement is Missing."""
    return {"missing": result.reason} if isinstance(result, Missing) else getattr(result, field)


def timed(models: dict[str, nn.Module], shape: tuple[int, int], args: argparse.Namespace) -> dict:
    """Warm each network once, then ``rounds`` interleaved rounds; samples and load per call."""
    spec = LatencySpec(device="cpu", warmup=0, repeat=args.repeat, threads=1)
    warm = LatencySpec(device="cpu", warmup=0, repeat=1, threads=1)
    for model in models.values():
        measure_latency(model, shape, warm)
    calls: list[dict[str, Any]] = []
    for round_index in range(args.rounds):
        for network, model in models.items():
            load = os.getloadavg()[0]
            result = measure_latency(model, shape, spec)
            calls.append({"round": round_index, "network": network, "load_1min": load,
                          "samples_ms": value(result, "samples_ms")})  # fmt: skip
            print(f"  round {round_index} {network}: {value(result, 'median_ms')} ms, load {load}")
    return {"calls": calls, **summarise(calls)}


def summarise(calls: list[dict[str, Any]]) -> dict[str, Any]:
    """Median latency per network over all samples, and the per-round KNN / patch ratios."""
    ok = [c for c in calls if not isinstance(c["samples_ms"], dict)]
    median = {
        n: statistics.median(s for c in ok if c["network"] == n for s in c["samples_ms"])
        for n in NETWORKS
        if any(c["network"] == n for c in ok)
    }
    ratios = []
    for index in sorted({c["round"] for c in ok}):
        pair = {c["network"]: statistics.median(c["samples_ms"]) for c in ok if c["round"] == index}
        if len(pair) == 2:
            ratios.append(pair[NETWORKS[1]] / pair[NETWORKS[0]])
    loads = [c["load_1min"] for c in calls]
    return {"median_ms": median, "round_ratios": ratios, "load_1min": [min(loads), max(loads)]}


def knn_query_ms(variant: str, points: int) -> dict[str, Any]:
    """One timed forward (after one warm-up) of the KNN network's kNN query at every level."""
    config = VARIANTS[variant]
    query = KNNQuery(config.neighbours).eval()
    spec = LatencySpec(device="cpu", warmup=1, repeat=1, threads=1)
    levels = [points]
    for _ in config.enc_channels[1:]:
        levels.append(math.ceil(levels[-1] / config.pool))
    times = {n: value(measure_latency(query, (n, 3), spec), "median_ms") for n in levels}
    ok = [t for t in times.values() if not isinstance(t, dict)]
    return {"per_level_ms": times, "total_ms": sum(ok) if len(ok) == len(times) else None}


def memory(models: dict[str, nn.Module], shape: tuple[int, int]) -> dict[str, Any]:
    """Peak RSS growth of one forward of each network, in a fresh child process (1 thread)."""
    spec = LatencySpec(device="cpu", threads=1)
    out = {}
    for network, model in models.items():
        result = measure_peak_memory(model, shape, spec)
        out[network] = {
            "activation_peak_bytes": value(result, "activation_peak_bytes"),
            "peak_bytes": value(result, "peak_bytes"),
        }
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    channels = MODELS.get("ptv3").default_inputs(args.variant).tensors[1].shape[1]
    sizes = [int(p) for p in args.points.split(",")]
    if args.mmap_threshold is not None:  # read by glibc when each memory child starts
        os.environ["MALLOC_MMAP_THRESHOLD_"] = str(args.mmap_threshold)
    report: dict[str, Any] = {"command": " ".join(sys.argv), "variant": args.variant,
                              "mmap_threshold": args.mmap_threshold,
                              "environment": collect_environment("cpu"), "sizes": {}}  # fmt: skip
    for points in sizes:
        print(f"{points} points", flush=True)
        started = time.perf_counter()
        shape = (points, 3 + channels)
        models = {n: PackedPoints(build(args.variant, n)).eval() for n in NETWORKS}
        row: dict[str, Any] = {"counted": counted(args.variant, points)}
        if not args.no_memory:
            row["memory"] = memory(models, shape)
        if args.knn_query:
            row["knn_query"] = knn_query_ms(args.variant, points)
        if not args.no_latency:
            row["latency"] = timed(models, shape, args)
        row["wall_s"] = time.perf_counter() - started
        report["sizes"][str(points)] = row
        print(json.dumps({k: v for k, v in row.items() if k != "latency"}, default=str))
        if "latency" in row:
            print(json.dumps({k: v for k, v in row["latency"].items() if k != "calls"}))
        if args.out is not None:  # after every size, so a later failure keeps what was measured
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(report, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
