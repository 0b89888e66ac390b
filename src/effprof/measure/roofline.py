"""Roofline: the device's measured ceilings, each layer's arithmetic intensity and bound, and how
far the whole model sits from its compute and memory floors.

Ceilings are measured once per device, precision, thread count and torch version and cached as
JSON (``$EFFPROF_CACHE_DIR``, else ``$XDG_CACHE_HOME/effprof``, else ``~/.cache/effprof``):

* peak compute = the faster of two dense kernels, each the best of a few runs in the precision
  used: a square matmul (``torch.mm``, n = 2048 on cpu, 8192 on cuda, ``2 n^3`` FLOPs) and a 3x3
  convolution (256 -> 256 channels on 64x64, batch 1 on cpu / 8 on cuda). Both are kept: on some
  CPUs the BLAS matmul reaches far less than oneDNN's convolutions (MKL on AMD), and a roofline
  below what the model's own convolutions attain would be no ceiling;
* bandwidth = the best of a few large tensor copies (``dst.copy_(src)``, 128 MiB on cpu, 1 GiB on
  cuda), counting bytes read + bytes written.

Per layer (one module's ops of one category, e.g. a conv), from the counting trace::

    intensity = FLOPs / bytes moved,   bytes moved = bytes read + bytes written
    (inputs and weights read once, outputs written once: no reuse between ops, precision-scaled)
    roofline time = max(FLOPs / peak, bytes moved / bandwidth); bound = compute if
    intensity >= peak / bandwidth (the ridge point) else memory

Worked example: a 3x3 conv, 20->20 channels, bias-free, on 1x20x256x256 in fp32 does
2 x 235,929,600 = 471,859,200 FLOPs and moves 5,242,880 (input) + 14,400 (weights) + 5,242,880
(output) = 10,500,160 bytes: intensity 44.9 FLOP/byte. Model floors: compute floor = total FLOPs / peak; memory floor = total
bytes moved / bandwidth; roofline floor = sum of the layers' roofline times (at least the larger
of the two). Measured latency divided by a floor says how far the model is from it.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import pandas as pd
import torch
from pydantic import Field

from effprof import schema as S
from effprof.measure.cache import CacheEntry, JsonCache, cache_key
from effprof.measure.environment import device_name
from effprof.measure.precision import (
    PRECISION_DTYPES,
    backend_flags,
    is_out_of_memory,
    num_threads,
    oom_missing,
    release_memory,
    synchronize,
    unsupported,
)
from effprof.results import Missing

CACHE_FILE = "ceilings.json"
COUNTED_ELEMENT_BYTES = 4  # the counting trace is float32
MATMUL_SIDE = {"cpu": 2048, "cuda": 8192}
COPY_BYTES = {"cpu": 128 * 2**20, "cuda": 2**30}
CONV_SHAPE = {"cpu": (1, 256, 64, 64), "cuda": (8, 256, 64, 64)}  # N, C (in = out), H, W


@dataclass(frozen=True)
class Ceilings:
    """Measured compute (FLOP/s of a matmul and of a conv) and bandwidth (bytes/s) of one device
    and precision; the peak is the faster kernel."""

    device: str
    device_name: str
    precision: str
    threads: int
    torch_version: str
    matmul_flops_per_s: float
    conv_flops_per_s: float
    copy_bytes_per_s: float
    method: str
    measured_at: str

    @property
    def peak_flops_per_s(self) -> float:
        """The compute roof: the faster of the matmul and the convolution."""
        return max(self.matmul_flops_per_s, self.conv_flops_per_s)

    @property
    def ridge_flops_per_byte(self) -> float:
        """Arithmetic intensity where the compute roof meets the bandwidth roof."""
        return self.peak_flops_per_s / self.copy_bytes_per_s

    def summary(self) -> dict[str, Any]:
        """Flat metrics for run.json."""
        return {
            S.CEILING_PEAK: self.peak_flops_per_s,
            S.CEILING_MATMUL: self.matmul_flops_per_s,
            S.CEILING_CONV: self.conv_flops_per_s,
            S.CEILING_COPY: self.copy_bytes_per_s,
            S.CEILING_RIDGE: self.ridge_flops_per_byte,
            S.CEILING_METHOD: self.method,
            S.CEILING_MEASURED_AT: self.measured_at,
        }


# Plausible bounds for a cached ceiling: no single device computes an exaFLOP/s or copies
# 100 TB/s (an H200: about 1e15 FLOP/s in fp16 and 4.8e12 bytes/s).
FlopsPerS = Annotated[float, Field(gt=0, le=1e18, allow_inf_nan=False)]
BytesPerS = Annotated[float, Field(gt=0, le=1e14, allow_inf_nan=False)]
Text = Annotated[str, Field(max_length=1000)]


class CachedCeilings(CacheEntry):
    """A cache entry of :class:`Ceilings`: strict types, finite positive rates in range."""

    device: Text
    device_name: Text
    precision: Text
    threads: Annotated[int, Field(ge=1, le=1 << 16)]
    torch_version: Text
    matmul_flops_per_s: FlopsPerS
    conv_flops_per_s: FlopsPerS
    copy_bytes_per_s: BytesPerS
    method: Text
    measured_at: Text


def _entry_problem(key: str, entry: CachedCeilings) -> str | None:
    """An entry must describe the device, precision and threads its key names."""
    said = (
        f"{entry.device}|{entry.device_name}|{entry.precision}|threads={entry.threads}|"
        f"torch={entry.torch_version}"
    )
    return None if said == key else f"it describes {said!r}, not its key"


def _best_seconds(run: Any, device: str, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        synchronize(device)
        start = time.perf_counter()
        run()
        synchronize(device)
        best = min(best, time.perf_counter() - start)
    return best


def _matmul_seconds(side: int, dtype: torch.dtype, device: str, repeat: int) -> float:
    a = torch.rand(side, side, device=device).to(dtype)
    b = torch.rand(side, side, device=device).to(dtype)
    torch.mm(a, b)  # warm-up (and cuBLAS heuristics)
    return _best_seconds(lambda: torch.mm(a, b), device, repeat)


def _conv_seconds(
    shape: tuple[int, int, int, int], dtype: torch.dtype, device: str, repeat: int
) -> float:
    x = torch.rand(shape, device=device).to(dtype)
    w = torch.rand(shape[1], shape[1], 3, 3, device=device).to(dtype)
    torch.nn.functional.conv2d(x, w, padding=1)  # warm-up (and cuDNN's algorithm search)
    return _best_seconds(lambda: torch.nn.functional.conv2d(x, w, padding=1), device, repeat)


def _copy_seconds(elements: int, dtype: torch.dtype, device: str, repeat: int) -> float:
    src = torch.rand(elements, device=device).to(dtype)
    dst = torch.empty_like(src)
    dst.copy_(src)
    return _best_seconds(lambda: dst.copy_(src), device, repeat)


def measure_ceilings(
    device: str, precision: str = "fp32", threads: int | None = None, *, repeat: int = 8
) -> Ceilings | Missing:
    """Measure peak matmul throughput and copy bandwidth now (best of ``repeat`` after a warm-up)."""
    reason = unsupported(device, precision, cuda_graphs=False, compile=False)
    if reason is not None:
        return reason
    dtype = PRECISION_DTYPES[precision]
    side = MATMUL_SIDE[device]
    elements = COPY_BYTES[device] // torch.tensor([], dtype=dtype).element_size()
    try:
        with num_threads(threads) as used, backend_flags(precision, device), torch.no_grad():
            mm_s = _matmul_seconds(side, dtype, device, repeat)
            conv_s = _conv_seconds(CONV_SHAPE[device], dtype, device, repeat)
            copy_s = _copy_seconds(elements, dtype, device, repeat)
    except Exception as error:
        if is_out_of_memory(error):
            return oom_missing(error)
        raise
    finally:
        if device == "cuda":
            release_memory()
    copy_bytes = 2 * elements * PRECISION_DTYPES[precision].itemsize
    n, c, h, w = CONV_SHAPE[device]
    return Ceilings(
        device=device,
        device_name=device_name(device),
        precision=precision,
        threads=used,
        torch_version=torch.__version__,
        matmul_flops_per_s=2 * side**3 / mm_s,
        conv_flops_per_s=2 * n * c * c * 9 * h * w / conv_s,
        copy_bytes_per_s=copy_bytes / copy_s,
        method=(
            f"best of {repeat}: torch.mm {side}x{side} {precision} (2n^3 FLOPs), 3x3 conv "
            f"{c}->{c} on {n}x{c}x{h}x{w}; "
            f"tensor copy of {copy_bytes // 2 // 2**20} MiB (bytes read + written)"
        ),
        measured_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )


def device_ceilings(
    device: str,
    precision: str = "fp32",
    threads: int | None = None,
    *,
    measure: bool = False,
    directory: Path | None = None,
) -> Ceilings | Missing:
    """This device's ceilings: measured now (and cached) when ``measure``, else from the cache.

    Without a valid cache entry and without ``measure`` the result is ``Missing`` saying how to
    get one (an invalid entry is also one CacheWarning).
    """
    with num_threads(threads) as used:
        key = cache_key(device, precision, used)
    cache = JsonCache(CACHE_FILE, CachedCeilings, directory, _entry_problem)
    if not measure:
        cached = cache.read(key)
        if cached is not None:
            return Ceilings(**cached.model_dump())
        return Missing(
            "this device's ceilings are not measured yet (run effprof profile --roofline once; "
            "they are cached for later runs)"
        )
    result = measure_ceilings(device, precision, used)
    if isinstance(result, Ceilings):
        cache.write(key, CachedCeilings(**asdict(result)))
    return result


def layer_roofline(
    ops: pd.DataFrame,
    ceilings: Ceilings,
    *,
    call_times: pd.DataFrame | None = None,
    labels: pd.DataFrame | None = None,
    element_bytes: int = COUNTED_ELEMENT_BYTES,
) -> pd.DataFrame:
    """One row per layer (module x op category): FLOPs, bytes moved, intensity, roofline time,
    bound, measured time (when ``call_times`` is given) and attained FLOP/s.

    ``element_bytes`` rescales the float32 trace's bytes to the precision used (2 for fp16/bf16).
    ``labels`` (per-call scale/stage/part) adds the layer's labels.
    """
    trace = ops[["seq", "module", "category", "flops", "bytes_read", "bytes_written"]].copy()
    trace["bytes_moved"] = (trace["bytes_read"] + trace["bytes_written"]) * (
        element_bytes / COUNTED_ELEMENT_BYTES
    )
    trace["measured_ms"] = (
        trace["seq"].map(call_times.set_index("seq")["time_ms"])
        if call_times is not None
        else np.nan
    )
    keys = ["module", "category"]
    if labels is not None:
        label_columns = [c for c in ("scale", "stage", "part") if c in labels.columns]
        trace = trace.merge(labels[["seq", *label_columns]], on="seq", how="left")
        keys += label_columns
    layers = (
        trace.groupby(keys, sort=False, dropna=False)
        .agg(
            first_seq=("seq", "min"),
            calls=("seq", "size"),
            flops=("flops", "sum"),
            bytes_moved=("bytes_moved", "sum"),
            measured_ms=("measured_ms", lambda s: s.sum(min_count=1)),
        )
        .reset_index()
        .sort_values("first_seq", ignore_index=True)
    )
    layers = layers[layers["bytes_moved"] > 0].reset_index(drop=True)
    layers["intensity_flops_per_byte"] = layers["flops"] / layers["bytes_moved"]
    compute_ms = layers["flops"] / ceilings.peak_flops_per_s * 1e3
    memory_ms = layers["bytes_moved"] / ceilings.copy_bytes_per_s * 1e3
    layers["roofline_ms"] = np.maximum(compute_ms, memory_ms)
    ridge = ceilings.ridge_flops_per_byte
    layers["bound"] = np.where(layers["intensity_flops_per_byte"] >= ridge, "compute", "memory")
    layers["attained_flops_per_s"] = layers["flops"] / (layers["measured_ms"] / 1e3)
    layers["roofline_fraction"] = layers["roofline_ms"] / layers["measured_ms"]
    return layers.drop(columns="first_seq")


def model_floors(
    flops: float,
    layers: pd.DataFrame,
    ceilings: Ceilings,
    latency_ms: float | Missing | None,
) -> dict[str, Any]:
    """Compute, memory and roofline floors of one forward and the measured latency's ratio to them.

    Also the share of layer time (measured when available, else roofline time) in memory-bound
    layers.
    """
    bytes_moved = float(layers["bytes_moved"].sum())
    floors = {
        "roofline_compute_floor_ms": flops / ceilings.peak_flops_per_s * 1e3,
        "roofline_memory_floor_ms": bytes_moved / ceilings.copy_bytes_per_s * 1e3,
        "roofline_floor_ms": float(layers["roofline_ms"].sum()),
        "roofline_bytes_moved": bytes_moved,
        "roofline_intensity_flops_per_byte": flops / bytes_moved if bytes_moved else None,
    }
    memory = layers["bound"] == "memory"
    measured = layers["measured_ms"]
    if measured.notna().all() and measured.sum() > 0:
        floors["roofline_memory_bound_time_share"] = float(measured[memory].sum() / measured.sum())
        floors["roofline_memory_bound_time_basis"] = "measured per-call time"
    else:
        estimate = layers["roofline_ms"]
        floors["roofline_memory_bound_time_share"] = float(estimate[memory].sum() / estimate.sum())
        floors["roofline_memory_bound_time_basis"] = "roofline time (no measured time)"
    if isinstance(latency_ms, (int, float)) and latency_ms > 0:
        for over, floor in ((S.ROOFLINE_OVER_COMPUTE_FLOOR, S.ROOFLINE_COMPUTE_FLOOR_MS),
                            (S.ROOFLINE_OVER_MEMORY_FLOOR, S.ROOFLINE_MEMORY_FLOOR_MS)):  # fmt: skip
            floors[over] = latency_ms / floors[floor]
        floors["roofline_latency_over_floor"] = latency_ms / floors["roofline_floor_ms"]
        floors["roofline_fraction_of_peak"] = floors["roofline_compute_floor_ms"] / latency_ms
    return floors
