"""Time MSSNet variants at given resolutions and precisions on this device; print a table.

    python scripts/bench_latency.py --variants small,base --resolutions 256 --precisions fp32 --threads 2
    python scripts/bench_latency.py --device cuda --resolutions 720p \
        --precisions fp32,tf32,fp16 --cuda-graphs --memory --out reports/benchmarks/latency.json

Random weights (latency does not depend on them), batch 1, the latency protocol of
effprof.measure.latency; each row says the host's load while it was timed (1-minute load average,
cores other processes kept busy) and whether the measurement passed the reliability thresholds. ``--cuda-graphs`` adds a CUDA-graph row beside each eager one; ``--onnx``
adds an ONNX Runtime fp32 row (cpu); ``--memory`` measures peak memory of one forward.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from effprof.measure.environment import collect_environment, resolve_device
from effprof.measure.latency import LatencySpec, measure_latency
from effprof.measure.memory import measure_peak_memory
from effprof.measure.onnx import export_onnx, ort_latency
from effprof.models import MODELS, PadToMultiple, load_model
from effprof.results import Missing
from effprof.units import format_shape, parse_resolutions

MIB = 1024**2


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--variants", default="small,base,large")
    parser.add_argument("--resolutions", default=None, help="default: 256 on cpu, 720p on cuda")
    parser.add_argument(
        "--precisions", default=None, help="default: fp32 on cpu, fp32,tf32,fp16 on cuda"
    )
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=None, help="default: 2 on cpu, 10 on cuda")
    parser.add_argument("--repeat", type=int, default=None, help="default: 5 on cpu, 30 on cuda")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument(
        "--cuda-graphs", action="store_true", help="also time each config as a CUDA graph"
    )
    parser.add_argument(
        "--compile", action="store_true", help="also time each config with torch.compile"
    )
    parser.add_argument("--memory", action="store_true", help="measure peak memory of one forward")
    parser.add_argument("--onnx", action="store_true", help="also time ONNX Runtime fp32 (cpu)")
    parser.add_argument("--out", type=Path, default=None, help="write rows + environment as JSON")
    return parser.parse_args(argv)


def fmt(value: Any, spec: str = ".1f") -> str:
    if isinstance(value, Missing):
        return "missing"
    return "-" if value is None else format(value, spec)


def latency_row(result: Any, **config: Any) -> dict[str, Any]:
    if isinstance(result, Missing):
        return {**config, "missing": result.reason}
    return {
        **config,
        **result.summary(),
        "samples_ms": list(result.samples_ms),
        "timer": result.timer,
        "device_name": result.device_name,
        "notes": list(result.notes),
    }


def bench(args: argparse.Namespace, device: str) -> list[dict[str, Any]]:
    """Measure every (variant, resolution, precision, mode) and print each row as it comes."""
    cuda = device == "cuda"
    resolutions = parse_resolutions(args.resolutions or ("720p" if cuda else "256"))
    precisions = (args.precisions or ("fp32,tf32,fp16" if cuda else "fp32")).split(",")
    warmup = args.warmup if args.warmup is not None else (10 if cuda else 2)
    repeat = args.repeat if args.repeat is not None else (30 if cuda else 5)
    multiple = MODELS.get("mssnet").input_multiple
    rows: list[dict[str, Any]] = []
    for variant in args.variants.split(","):
        net = load_model("mssnet", variant)
        for height, width in resolutions:
            shape = (args.batch, 3, height, width)
            model = (
                net
                if height % multiple == 0 and width % multiple == 0
                else PadToMultiple(net, multiple).eval()
            )
            modes = [("eager", False, False)]
            modes += [("cuda graph", True, False)] if args.cuda_graphs else []
            modes += [("compile", False, True)] if args.compile else []
            for precision in precisions:
                for mode, graphs, compiled in modes:
                    spec = LatencySpec(
                        device=device,
                        precision=precision,
                        channels_last=args.channels_last,
                        cuda_graphs=graphs,
                        compile=compiled,
                        warmup=warmup,
                        repeat=repeat,
                        threads=args.threads,
                    )
                    config = {
                        "variant": variant,
                        "input": format_shape(shape),
                        "precision": precision,
                        "mode": mode + (" channels_last" if args.channels_last else ""),
                        "runtime": "torch",
                        "padded": model is not net,
                    }
                    row = latency_row(measure_latency(model, shape, spec), **config)
                    if args.memory and mode == "eager":
                        memory = measure_peak_memory(model, shape, spec)
                        row["activation_peak_mib"] = (
                            memory
                            if isinstance(memory, Missing)
                            else memory.activation_peak_bytes / MIB
                        )
                    rows.append(row)
                    print_row(row)
            if args.onnx:
                with tempfile.TemporaryDirectory() as tmp:
                    path = export_onnx(model, shape, Path(tmp) / "model.onnx")
                    result = ort_latency(
                        path, shape, threads=args.threads, warmup=warmup, repeat=repeat
                    )
                config = {
                    "variant": variant,
                    "input": format_shape(shape),
                    "precision": "fp32",
                    "mode": "onnxruntime cpu",
                    "runtime": "onnxruntime",
                    "padded": model is not net,
                }
                rows.append(latency_row(result, **config))
                print_row(rows[-1])
    return rows


HEADER = f"{'variant':8} {'input':16} {'prec':5} {'mode':22} {'median ms':>10} {'p10':>9} {'p90':>9} {'CV %':>6} {'Mpix/s':>8} {'act MiB':>8} {'load':>5} {'others':>6} reliable"


def print_row(row: dict[str, Any]) -> None:
    if "missing" in row:
        print(
            f"{row['variant']:8} {row['input']:16} {row['precision']:5} {row['mode']:22} missing: {row['missing']}"
        )
        return
    print(
        f"{row['variant']:8} {row['input']:16} {row['precision']:5} {row['mode']:22} "
        f"{row['latency_median_ms']:10.1f} {row['latency_p10_ms']:9.1f} {row['latency_p90_ms']:9.1f} "
        f"{100 * row['latency_cv']:6.1f} {fmt(row['throughput_mpix_s'], '.3f'):>8} "
        f"{fmt(row.get('activation_peak_mib'), '.0f'):>8} "
        f"{fmt(row['latency_load_avg_1min'], '.1f'):>5} {fmt(row['latency_other_cpu_cores'], '.1f'):>6} "
        f"{'yes' if row['latency_reliable'] else 'no: ' + str(row['latency_unreliable_reason'])}",
        flush=True,
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    device = resolve_device(args.device)
    env = collect_environment(device)
    print(
        f"device {env['device_name']} | torch {env['torch_version']} | cuda {env['cuda_version']} "
        f"cudnn {env['cudnn_version']} | torch threads {args.threads or env['torch_threads']} "
        f"of {env['cpu_logical_cores']} logical cores | git {str(env['git_commit'])[:10]}"
        f"{' (dirty)' if env['git_dirty'] else ''}"
    )
    print(HEADER, flush=True)
    begin = time.perf_counter()
    rows = bench(args, device)
    print(f"total {time.perf_counter() - begin:.0f} s")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        serial = [
            {k: (str(v) if isinstance(v, Missing) else v) for k, v in r.items()} for r in rows
        ]
        args.out.write_text(json.dumps({"environment": env, "rows": serial}, indent=1))
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
