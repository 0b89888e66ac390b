"""GPU latency of dense and pruned base-width MSSNet at 1280x720 (fp16, channels_last, CUDA graphs).

Two stages, because the GPU machine has no Torch-Pruning:

    # here (CPU): prune base-width MSSNet (random weights) and write the structures only
    python scripts/compress_gpu_latency.py prune --out reports/benchmarks/compression-gpu
    # on the GPU machine: rebuild each structure with random weights and time it
    PYTHONPATH=src python3 scripts/compress_gpu_latency.py time \
        --structures reports/benchmarks/compression-gpu --out $OUT

Latency does not depend on the weights' values, so random weights are enough for timing; the
pruned *structure* does depend on them (which channels a criterion keeps), so these are
structures a criterion picks on random weights, not the trained network's: no quality claim.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

STRUCTURES = {
    # name: (target MAC ratio, criterion, round_to, round_all)
    "base-p50-r16-taylor": (0.5, "taylor", 16, True),
    "base-p50-r16-taylor-partial": (0.5, "taylor", 16, False),
    "base-p50-r16-tpmag": (0.5, "tp-magnitude", 16, True),
    "base-p50-r8-taylor": (0.5, "taylor", 8, True),
    "base-p25-r16-taylor": (0.25, "taylor", 16, True),
}
CONFIGS = {
    # name: (channels_last, cuda_graphs)
    "fp16": (False, False),
    "fp16+cl": (True, False),
    "fp16+cl+graph": (True, True),
}


def prune_structures(out: Path) -> None:
    """Prune base-width MSSNet to each target on 64x64 random calibration data; write structures."""
    from effprof.compression.prune import PruneSpec, prune
    from effprof.compression.reload import structure_of
    from effprof.compression.significance import Calibration
    from effprof.models import load_model

    torch.set_num_threads(1)
    torch.manual_seed(0)
    dense = load_model("mssnet", "base")
    gen = torch.Generator().manual_seed(0)
    calibration = Calibration(
        [(torch.rand(2, 3, 64, 64, generator=gen), torch.rand(2, 3, 64, 64, generator=gen))]
    )
    out.mkdir(parents=True, exist_ok=True)
    for name, (ratio, criterion, round_to, round_all) in STRUCTURES.items():
        started = time.perf_counter()
        model, result = prune(
            dense,
            PruneSpec(ratio, criterion=criterion, steps=4, round_to=round_to, round_all=round_all),
            calibration,
        )
        info = {
            "target_macs_ratio": ratio,
            "criterion": criterion,
            "round_to": round_to,
            "round_all": round_all,
            "macs_ratio_64x64": result.ratio,
            "param_count": result.steps[-1].param_count,
        }
        (out / f"{name}.json").write_text(
            json.dumps({"variant": "base", "info": info, "modules": structure_of(model)}, indent=1)
        )
        print(f"{name}: {result.ratio:.3f} of MACs, {time.perf_counter() - started:.0f} s")


def time_structures(
    structures: Path, out: Path, shape: tuple[int, ...], repeat: int, device: str
) -> None:
    """Time dense base, dense small and every pruned structure in each configuration."""
    from effprof.compression.cost import layer_macs
    from effprof.compression.reload import apply_structure
    from effprof.compression.untie import untie_shared
    from effprof.measure.latency import LatencySpec, measure_latency
    from effprof.models import build_model

    torch.manual_seed(0)
    models = {
        "base-dense": build_model("mssnet", "base"),
        "small-dense": build_model("mssnet", "small"),
    }
    for path in sorted(structures.glob("*.json")):
        model = build_model("mssnet", json.loads(path.read_text())["variant"])
        untie_shared(model)
        models[path.stem] = apply_structure(model, json.loads(path.read_text())["modules"])
    rows = []
    for name, model in models.items():
        model = model.eval()
        with torch.no_grad():
            macs = layer_macs(model.to(device), torch.rand(shape, device=device))
        params = sum(p.numel() for p in model.parameters())
        for config, (channels_last, graphs) in CONFIGS.items():
            spec = LatencySpec(
                device=device,
                precision="fp16" if device == "cuda" else "bf16",
                channels_last=channels_last,
                cuda_graphs=graphs,
                warmup=10,
                repeat=repeat,
            )
            result = measure_latency(model, shape, spec)
            median = getattr(result, "median_ms", None)
            rows.append(
                {
                    "model": name,
                    "config": config,
                    "gmacs": macs / 1e9,
                    "params": params,
                    "latency_median_ms": median,
                    "latency_p10_ms": getattr(result, "p10_ms", None),
                    "latency_p90_ms": getattr(result, "p90_ms", None),
                    "latency_cv": getattr(result, "cv", None),
                    "missing": None if median is not None else str(result),
                    "device": getattr(result, "device_name", None),
                }
            )
            print(rows[-1], flush=True)
    import pandas as pd

    out.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(out / "compression-gpu.csv", index=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="stage", required=True)
    p = sub.add_parser("prune")
    p.add_argument("--out", type=Path, required=True)
    t = sub.add_parser("time")
    t.add_argument("--structures", type=Path, required=True)
    t.add_argument("--out", type=Path, required=True)
    t.add_argument("--shape", default="1x3x720x1280")
    t.add_argument("--repeat", type=int, default=30)
    t.add_argument(
        "--device", default="cuda", help="cpu: a dry run of the script (bf16, tiny shape)"
    )
    args = parser.parse_args()
    if args.stage == "prune":
        prune_structures(args.out)
    else:
        shape = tuple(int(v) for v in args.shape.split("x"))
        time_structures(args.structures, args.out, shape, args.repeat, args.device)


if __name__ == "__main__":
    main()
