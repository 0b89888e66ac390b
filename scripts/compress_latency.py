"""Re-time a compression pipeline's models on this CPU, interleaved, with the host's load noted.

A thin caller of ``effprof.recipes.retime.retime_runs`` (``effprof compress`` runs the same at its
end, one round): every model the pipeline (one run group) stored, torch fp32 from
structure.json + weights.pt and ONNX Runtime fp32 / fp16 / INT8 from model.onnx /
model-fp16.onnx / model-int8.onnx, timed once per round, the order reversed every other round;
each block's ratio is to the dense model of the same runtime within the round.

    python scripts/compress_latency.py reports/ [--group GROUP] --rounds 3 \\
        --csv reports/benchmarks/compression-cpu.csv

``--copies MODEL`` times two independent copies of a registered model instead (the same
architecture twice: their ratio should be 1), e.g. ``--copies mssnet:small``.
"""

from __future__ import annotations

import argparse
import copy
from pathlib import Path

import torch
from compress_summary import pipeline_runs  # the script's folder is on sys.path

from effprof.measure.interleave import Candidate, Interleaved, time_interleaved
from effprof.measure.session import LatencySpec
from effprof.models import load_model
from effprof.recipes.retime import retime_runs


def _copies(name: str, args: argparse.Namespace) -> Interleaved:
    model_name, _, variant = name.partition(":")
    model = load_model(model_name, variant or None)
    spec = LatencySpec(device="cpu", warmup=args.warmup, repeat=args.repeat, threads=args.threads)
    shape = (1, 3, args.size, args.size)
    candidates = [
        Candidate("copy A", shape, spec, model=model),
        Candidate("copy B", shape, spec, model=copy.deepcopy(model)),
    ]
    return time_interleaved(candidates, rounds=args.rounds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("store", nargs="?", help="run store root, e.g. reports/")
    parser.add_argument("--group", help="the pipeline's run group (default: the latest)")
    parser.add_argument("--config", type=Path, help="the latest pipeline of this compress config")
    parser.add_argument("--steps", nargs="*", help="only these step labels")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--copies", help="time two copies of MODEL[:VARIANT] instead")
    parser.add_argument("--size", type=int, default=256, help="--copies: input side in pixels")
    parser.add_argument("--warmup", type=int, default=2, help="--copies: warm-up forwards")
    parser.add_argument("--repeat", type=int, default=10, help="--copies: timed forwards")
    parser.add_argument("--threads", type=int, default=1, help="--copies: intra-op threads")
    parser.add_argument("--csv", type=Path, required=True)
    args = parser.parse_args()
    torch.manual_seed(0)
    if args.copies:
        timing = _copies(args.copies, args)
        rounds = timing.rounds
        print(timing.summary().to_string(index=False))
    else:
        runs = pipeline_runs(args.store, args.group, args.config)
        if args.steps:
            runs = runs[runs["params.step"].isin(args.steps)]
        retimed = retime_runs([Path(p) for p in runs["path"]], rounds=args.rounds)
        for reason in retimed.skipped:
            print(f"not re-timed: {reason}")
        if retimed.timing is None:
            raise SystemExit("no run of the pipeline stores a timeable model")
        rounds = retimed.timing.rounds
        print(retimed.summary().drop(columns=["run_dir"]).to_string(index=False))
    args.csv.parent.mkdir(parents=True, exist_ok=True)
    rounds.to_csv(args.csv, index=False)
    print(rounds.drop(columns=["unreliable_reason"]).to_string(index=False))


if __name__ == "__main__":
    main()
