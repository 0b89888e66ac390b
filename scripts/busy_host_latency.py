"""Profile a model on the host as it is and beside busy-loop processes, interleaved; one CSV row each.

    python scripts/busy_host_latency.py --reps 3 --csv reports/benchmarks/busy-host.csv

Each repetition runs ``effprof.profile`` twice, as-is ("quiet") and beside ``--loops`` processes of
``python -c "while True: pass"`` ("busy"), swapping the order every other repetition; the loops are
started just before and killed (by their pid) just after their profile. The thread count is the
profile's own choice (no ``--threads``): on a busy host it tries 1 and N threads. Each row holds
the run's latency statistics, its thread choice, ``latency_reliable`` and the reason, and the
host's load during the samples (1-minute load average, other processes' cores).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd

from effprof.api.profile import profile
from effprof.runs import read_record

KEYS = [
    "latency_median_ms", "latency_p10_ms", "latency_p90_ms", "latency_cv", "latency_threads",
    "latency_reliable", "latency_unreliable_reason", "latency_load_avg_1min",
    "latency_other_cpu_cores", "latency_own_cpu_cores", "latency_cpu_ms", "latency_threads_choice",
    "threads_probe_other_cpu_cores", "threads_trial_ratio",
]  # fmt: skip


def _profile(args: argparse.Namespace, out: str) -> dict:
    run = profile(
        model=args.model, variant=args.variant, input=args.input, crosscheck=False,
        optime=False, repeat=args.repeat, warmup=args.warmup, device="cpu", out=out,
    )  # fmt: skip
    metrics = read_record(run).metrics
    return {key: metrics.get(key) for key in KEYS}


def _busy(count: int) -> list[subprocess.Popen]:
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]


def _stop(loops: list[subprocess.Popen]) -> None:
    for loop in loops:
        loop.kill()
        loop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mssnet")
    parser.add_argument("--variant", default="small")
    parser.add_argument("--input", default="1x3x256x256")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--loops", type=int, default=2, help="busy-loop processes beside it")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--csv", type=Path, required=True)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="effprof-busy-") as out:
        for rep in range(args.reps):
            modes = ["quiet", "busy"] if rep % 2 == 0 else ["busy", "quiet"]
            for mode in modes:
                loops = _busy(args.loops) if mode == "busy" else []
                try:
                    row = {"rep": rep, "mode": mode, "loops": len(loops), **_profile(args, out)}
                finally:
                    _stop(loops)
                rows.append(row)
                print(
                    f"rep {rep} {mode:5s} median {row['latency_median_ms']:9.1f} ms "
                    f"threads {row['latency_threads']} reliable {row['latency_reliable']} "
                    f"load {row['latency_load_avg_1min']:.2f} "
                    f"others {row['latency_other_cpu_cores']}",
                    flush=True,
                )
    frame = pd.DataFrame(rows)
    args.csv.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(args.csv, index=False)
    medians = frame.groupby("mode")[["latency_median_ms", "latency_cpu_ms"]].median()
    print(medians.to_string())
    ratio = medians.loc["busy"] / medians.loc["quiet"]
    print(
        f"busy / quiet: median {ratio['latency_median_ms']:.2f}, CPU time {ratio['latency_cpu_ms']:.2f}"
    )


if __name__ == "__main__":
    main()
