"""Benchmark effprof's counter: MSSNet-base at 4K on meta, and effprof vs fvcore at 720p.

    python scripts/bench_counting.py              # both parts (fvcore takes about 90 s here)
    python scripts/bench_counting.py --skip-fvcore

(a) seconds to count MSSNet-base at 1x3x2160x3840 on the meta device: the first count in this
    process (includes PyTorch's one-off meta-kernel warm-up) and the median of the next ones,
    beside FlopCounterMode on the same meta model;
(b) seconds for effprof (meta) and fvcore (JIT trace + real CPU forward) to count base at
    1x3x720x1280, their MAC counts, and the ratio of the times. A benchmark, run once; not a test.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import torch
from torch.utils.flop_counter import FlopCounterMode

from effprof.measure.counting import count_model
from effprof.models import build_model


def seconds(fn) -> float:  # type: ignore[no-untyped-def]
    """Wall time of one call, in seconds."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def flop_counter_meta(model: torch.nn.Module, shape: tuple[int, ...]) -> int:
    """FlopCounterMode's total FLOPs on the meta device."""
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.empty(shape, device="meta"))
    return int(counter.get_total_flops())


def bench_4k(repeats: int) -> None:
    """Part (a): count MSSNet-base at 3840x2160 on meta."""
    shape = (1, 3, 2160, 3840)
    with torch.device("meta"):
        model = build_model("mssnet", "base")
    first = seconds(lambda: count_model(model, shape))
    warm = [seconds(lambda: count_model(model, shape)) for _ in range(repeats)]
    result = count_model(model, shape)
    fcm = [seconds(lambda: flop_counter_meta(model, shape)) for _ in range(repeats)]
    print(
        f"(a) MSSNet-base 1x3x2160x3840 on meta: {result.macs:,} MACs, {len(result.ops)} aten calls"
    )
    print(f"    effprof count_model: first {first:.3f} s, then median {statistics.median(warm):.3f} s "
          f"(min {min(warm):.3f}, max {max(warm):.3f}, {repeats} runs)")  # fmt: skip
    print(f"    FlopCounterMode on the same meta model: median {statistics.median(fcm):.3f} s")


def bench_720p(skip_fvcore: bool) -> None:
    """Part (b): effprof (meta) vs fvcore (real CPU run) on MSSNet-base at 1280x720."""
    shape = (1, 3, 720, 1280)
    model = build_model("mssnet", "base").eval()
    count_model(model, (1, 3, 64, 64))  # warm the meta kernels, as a long-lived process would be
    ours = [seconds(lambda: count_model(model, shape)) for _ in range(3)]
    macs = count_model(model, shape).macs
    effprof_s = statistics.median(ours)
    print(f"(b) MSSNet-base 1x3x720x1280: effprof {effprof_s:.3f} s (median of 3), {macs:,} MACs")
    if skip_fvcore:
        return
    from fvcore.nn import FlopCountAnalysis

    x = torch.randn(shape)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        start = time.perf_counter()
        analysis = FlopCountAnalysis(model, (x,))
        analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
        analysis.tracer_warnings("none")
        conv = int(analysis.by_operator()["conv"])
        fvcore_s = time.perf_counter() - start
    print(f"    fvcore {fvcore_s:.1f} s, conv 'flops' (= MACs) {conv:,} "
          f"({'equal to' if conv == macs else 'different from'} effprof's MACs)")  # fmt: skip
    print(f"    effprof is {fvcore_s / effprof_s:,.0f}x faster than fvcore")


def main() -> None:
    """Parse options and run both parts."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=5, help="warm counts to time in (a)")
    parser.add_argument("--skip-fvcore", action="store_true", help="time effprof only in (b)")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    bench_4k(args.repeats)
    bench_720p(args.skip_fvcore)


if __name__ == "__main__":
    main()
