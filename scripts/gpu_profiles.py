"""Profile MSSNet small/base/large at 1280x720 on the GPU in the anchors' configurations.

Run on the lent GPU machine by scripts/gpu_check.sh; writes one effprof run per configuration
and a summary CSV set against ../shared/reference/gpu-anchors.md (H200, official code,
median of 30 CUDA-event timings after 10 warm-ups).
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

from effprof.api.profile import profile
from effprof.results import EffprofError
from effprof.runs import read_record

# gpu-anchors.md, ms at 1280x720 on an H200: fp32, tf32, fp16 (.half()), fp16 + CUDA graph.
ANCHORS_MS = {
    ("small", "fp32"): 55.4, ("small", "tf32"): 32.0, ("small", "fp16"): 24.7,
    ("base", "fp32"): 148.5, ("base", "tf32"): 64.8, ("base", "fp16"): 44.7,
    ("base", "fp16+graphs"): 42.1,
    ("large", "fp32"): 320.0, ("large", "tf32"): 96.1, ("large", "fp16"): 66.9,
}  # fmt: skip
CONFIGS = {"fp32": ("fp32", False), "tf32": ("tf32", False), "fp16": ("fp16", False),
           "fp16+graphs": ("fp16", True)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="reports/")
    parser.add_argument("--input", default="1x3x720x1280")
    parser.add_argument("--variants", default="small,base,large")
    parser.add_argument("--configs", default=",".join(CONFIGS))
    parser.add_argument("--summary", default="gpu-profiles.csv")
    parser.add_argument("--device", default="cuda", help="cpu for a dry run of this script")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()
    rows = []
    for variant in args.variants.split(","):
        for name in args.configs.split(","):
            precision, graphs = CONFIGS[name]
            started = time.perf_counter()
            try:
                run = profile(
                    model="mssnet", variant=variant, input=args.input, device=args.device,
                    precision=precision, cuda_graphs=graphs, warmup=args.warmup, repeat=args.repeat,
                    crosscheck=False, out=args.out,
                )  # fmt: skip
            except EffprofError as err:
                print(f"{variant} {name}: error: {err}", flush=True)
                continue
            record = read_record(run)
            m = record.metrics
            anchor = ANCHORS_MS.get((variant, name))
            median = m.get("latency_median_ms")
            row = {
                "variant": variant, "config": name, "input": args.input,
                "device": record.env.get("device_name"),
                "latency_median_ms": median, "latency_p10_ms": m.get("latency_p10_ms"),
                "latency_p90_ms": m.get("latency_p90_ms"), "latency_cv": m.get("latency_cv"),
                "throughput_mpix_s": m.get("throughput_mpix_s"),
                "memory_activation_peak_bytes": m.get("memory_activation_peak_bytes"),
                "memory_reserved_peak_bytes": m.get("memory_reserved_peak_bytes"),
                "anchor_h200_ms": anchor,
                "ratio_to_anchor": (median / anchor) if (median and anchor) else None,
                "missing": "; ".join(f"{k}: {v}" for k, v in record.missing.items()),
                "run": run.name, "seconds": round(time.perf_counter() - started, 1),
            }  # fmt: skip
            rows.append(row)
            print(
                f"{variant:6s} {name:12s} median {median} ms  anchor {anchor}  "
                f"ratio {row['ratio_to_anchor']}  ({row['seconds']} s)",
                flush=True,
            )
    path = Path(args.summary)
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]) if rows else ["variant"])
        writer.writeheader()
        writer.writerows(rows)
    print(f"summary: {path}")


if __name__ == "__main__":
    main()
