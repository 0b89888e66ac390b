"""Re-time a compression pipeline's models on this CPU, interleaved, with the machine's load noted.

A pipeline run times each model once, minutes apart; on a shared machine the load changes in
between. This script reloads every model a pipeline (one run group) stored — torch fp32 from
structure.json + weights.pt, ONNX Runtime fp32 / fp16 / INT8 from model.onnx /
model-fp16.onnx / model-int8.onnx — and times them round-robin for ``--rounds`` rounds, writing one row per
(model, runtime, round) with the 1-minute load average read just before.

    python scripts/compress_latency.py reports/ [--group GROUP] --rounds 3 \
        --csv reports/benchmarks/compression-cpu.csv

Speed-ups are best taken within a round (same load), as medians over rounds.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import pandas as pd
import torch
from compress_summary import pipeline_runs  # the script's folder is on sys.path

from effprof.compress.reload import STRUCTURE_FILE, load_pruned
from effprof.measure.latency import LatencySpec, measure_latency
from effprof.measure.onnx import ort_latency
from effprof.results import Missing


def _targets(store: str, group: str | None, config: Path | None) -> list[tuple[str, str, Path]]:
    """(step label, runtime, file) for every timeable artefact of the group (default: the latest
    pipeline), in step order."""
    runs = pipeline_runs(store, group, config)
    targets = []
    for _, row in runs.iterrows():
        path, step = Path(row["path"]), row["params.step"]
        if (path / STRUCTURE_FILE).is_file():
            targets.append((step, "torch fp32", path))
        if (path / "model.onnx").is_file():
            targets.append((step, "ort fp32", path / "model.onnx"))
        if (path / "model-fp16.onnx").is_file():
            targets.append((step, "ort fp16", path / "model-fp16.onnx"))
        if (path / "model-int8.onnx").is_file():
            targets.append((step, "ort int8", path / "model-int8.onnx"))
    return targets


def _time(runtime: str, path: Path, shape: tuple[int, ...], repeat: int, threads: int):
    if runtime == "torch fp32":
        spec = LatencySpec(device="cpu", warmup=2, repeat=repeat, threads=threads)
        return measure_latency(load_pruned(path), shape, spec)
    return ort_latency(path, shape, threads=threads, warmup=2, repeat=repeat)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("store", help="run store root, e.g. reports/")
    parser.add_argument("--group", help="the pipeline's run group (default: the latest)")
    parser.add_argument("--config", type=Path, help="the latest pipeline of this compress config")
    parser.add_argument("--size", type=int, default=256, help="input side in pixels")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--csv", type=Path, required=True)
    parser.add_argument("--steps", nargs="*", help="only these step labels")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    shape = (1, 3, args.size, args.size)
    targets = [
        t
        for t in _targets(args.store, args.group, args.config)
        if not args.steps or t[0] in args.steps
    ]
    rows = []
    for round_ in range(args.rounds):
        for step, runtime, path in targets:
            load1 = os.getloadavg()[0]
            began = time.time()
            result = _time(runtime, path, shape, args.repeat, args.threads)
            if isinstance(result, Missing):
                print(f"{step} {runtime}: missing ({result.reason})")
                continue
            rows.append({
                "round": round_, "step": step, "runtime": runtime, "size_px": args.size,
                "threads": args.threads, "median_ms": result.median_ms, "p10_ms": result.p10_ms,
                "p90_ms": result.p90_ms, "cv": result.cv, "repeat": result.repeat,
                "load1_before": load1, "load1_after": os.getloadavg()[0], "at": began,
            })  # fmt: skip
            print(f"round {round_} {step:18s} {runtime:10s} {result.median_ms:9.1f} ms "
                  f"(cv {result.cv:.1%}, load {load1:.2f})", flush=True)  # fmt: skip
    args.csv.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(args.csv, index=False)


if __name__ == "__main__":
    main()
