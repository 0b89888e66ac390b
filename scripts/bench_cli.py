"""Wall time of cold CLI commands, repeated: `effprof --help` and `effprof count` (issue 14).

Each repetition is a fresh process (interpreter start, imports, the command), timed from outside,
with the host's load read before and after (the CPU time other processes took: probe_host).

    python scripts/bench_cli.py --repeat 10 --csv reports/benchmarks/cli-start.csv
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import pandas as pd

from effprof.measure.hostload import load_average, probe_host

COMMANDS = {
    "effprof --help": ["--help"],
    "effprof count mssnet base 4K": [
        "count", "--model", "mssnet", "--variant", "base", "--input", "1x3x2160x3840",
        "--no-report",
    ],
}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--csv", default=None)
    args = parser.parse_args()
    exe = shutil.which("effprof") or sys.exit("effprof is not on PATH (pip install -e .)")
    rows = []
    with tempfile.TemporaryDirectory(prefix="effprof-bench-cli-") as out:
        for index in range(args.repeat):
            for name, argv in COMMANDS.items():  # interleaved: a load change hits both
                extra = ["--out", out] if argv[0] == "count" else []
                before = probe_host(0.3)
                started = time.perf_counter()
                done = subprocess.run([exe, *argv, *extra], capture_output=True, text=True)
                wall = time.perf_counter() - started
                if done.returncode != 0:
                    sys.exit(f"{name} failed: {done.stderr.strip()[-300:]}")
                rows.append({
                    "command": name, "repeat": index, "wall_s": wall,
                    "load_avg_1min": load_average(),
                    "other_cpu_cores_before": before.other_cpu_cores,
                })  # fmt: skip
    frame = pd.DataFrame(rows)
    for name, group in frame.groupby("command", sort=False):
        walls = group["wall_s"].tolist()
        print(
            f"{name}: median {statistics.median(walls):.2f} s, min {min(walls):.2f} s, max "
            f"{max(walls):.2f} s over {len(walls)} cold runs; load average "
            f"{group['load_avg_1min'].min():.2f}-{group['load_avg_1min'].max():.2f}, other work "
            f"on {group['other_cpu_cores_before'].median():.2f} cores (median); "
            f"{os.cpu_count()} CPUs"
        )
    if args.csv:
        frame.to_csv(args.csv, index=False)


if __name__ == "__main__":
    main()
