"""Write a compression pipeline's per-step table (one run group) as CSV, and print it.

    python scripts/compress_summary.py reports/ --group GROUP --csv reports/benchmarks/compression.csv

Columns: the one compression table (``effprof.runs.compression.compression_frame``: ratios
against dense, PSNR change against dense and against the equally trained dense control) plus the
runs' extra metrics (SSIM, gain over blurry, fidelity SSIM, INT8 parity, VQ bits per weight,
recovery / sparsity training steps and time, latency targets and predictions, sensitivity).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from effprof.api.compress import summary_frame
from effprof.config import load_config
from effprof.config.compress import CompressConfig
from effprof.runs import load_runs

EXTRA = [
    "test_gain_db", "test_blurry_psnr_db", "fidelity_ssim", "onnx_bytes", "int8_convs",
    "float_convs", "int8_rel_l2_error", "vq_bits_per_conv_weight", "vq_weight_relative_error",
    "recover_steps", "recover_s", "distill_l1_before", "distill_l1_after",
    "achievable_min_ratio", "torch_latency_cv", "ort_latency_cv", "sparsify_steps",
    "sparsify_s", "sparsify_channels", "sparsify_groups", "feature_points", "iterative_rounds",
    "target_macs_ratio", "target_latency_ratio", "predicted_latency_ratio",
    "sensitivity_measurements", "prune_s",
]  # fmt: skip


def pipeline_runs(store: str, group: str | None, config: Path | None) -> pd.DataFrame:
    """Finished runs of one pipeline in step order: ``group``, else the latest pipeline of
    ``config``, else the latest pipeline in the store."""
    runs = load_runs(store, kind="compress", status="finished").sort_values(
        ["created", "params.index"]
    )
    if config is not None:
        wanted = load_config(CompressConfig, config).pipeline_hash()
        runs = runs[runs["params.pipeline_hash"] == wanted]
    if runs.empty:
        raise SystemExit(f"no finished compress runs in {store} for {config or 'any config'}")
    runs = runs[runs["group"] == (group or runs["group"].iloc[-1])]
    return runs.sort_values("params.index")  # "created" has one-second resolution


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("store")
    parser.add_argument("--group", help="run group (default: the latest compress pipeline)")
    parser.add_argument("--config", type=Path, help="the latest pipeline of this compress config")
    parser.add_argument("--csv", type=Path, required=True)
    args = parser.parse_args()
    runs = pipeline_runs(args.store, args.group, args.config)
    group = runs["group"].iloc[0]
    frame = summary_frame(list(runs["path"]))
    for name in EXTRA:
        column = f"metrics.{name}"
        frame[name] = list(runs[column]) if column in runs else None
    args.csv.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(args.csv, index=False)
    with pd.option_context("display.width", 250, "display.max_columns", 40):
        print(frame.drop(columns=["run_id", "group"]).to_string(float_format="%.3f"))
    print(f"group {group}: {len(frame)} steps -> {args.csv}")


if __name__ == "__main__":
    main()
