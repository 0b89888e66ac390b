"""A per-layer latency table: the time of one convolution at given widths, measured once on this
device and cached, for latency-aware pruning (``effprof.compression.latency_cost``).

An entry is a convolution's shape (kernel, stride, padding, dilation, groups, input and output
channels, input size, batch 1), timed alone with ``measure.latency`` (warm-up, then the median of
``repeat`` forwards) under this device, precision and thread count. Tables are cached as JSON
beside the roofline ceilings (``$EFFPROF_CACHE_DIR``, else ``$XDG_CACHE_HOME/effprof``, else
``~/.cache/effprof``), one table per (device, device name, precision, threads, torch version), so
a second pruning run on the same machine measures nothing it measured before.

>>> table = LayerLatencyTable("cpu", threads=1)                                  # doctest: +SKIP
>>> table.conv_ms(nn.Conv2d(20, 20, 3, padding=1), 16, 16, (64, 64))            # doctest: +SKIP
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

from pydantic import Field, RootModel
from torch import nn

from effprof.measure.cache import JsonCache, cache_key
from effprof.measure.latency import LatencySpec, measure_latency
from effprof.measure.precision import num_threads
from effprof.results import EffprofError, Missing

CACHE_FILE = "layer-latency.json"
MAX_ENTRIES = 100_000
# a convolution's time as a cache may hold it: positive, finite, under an hour
ConvMs = Annotated[float, Field(gt=0, le=3.6e6, allow_inf_nan=False)]
_CONV_KEY = re.compile(r"k\d+x\d+ s\d+x\d+ p\d+x\d+ d\d+x\d+ g\d+ \d+->\d+ \d+x\d+")


def conv_key(conv: nn.Conv2d, c_in: int, c_out: int, hw: tuple[int, int]) -> str:
    """``"k3x3 s1x1 p1x1 d1x1 g1 20->16 64x64"``: the entry for ``conv`` at those widths."""
    groups = _groups(conv, c_in, c_out)
    k, s, d = conv.kernel_size, conv.stride, conv.dilation
    p = conv.padding if isinstance(conv.padding, tuple) else (conv.padding,) * 2
    return (
        f"k{k[0]}x{k[1]} s{s[0]}x{s[1]} p{p[0]}x{p[1]} d{d[0]}x{d[1]} g{groups} "
        f"{c_in}->{c_out} {hw[0]}x{hw[1]}"
    )


def _groups(conv: nn.Conv2d, c_in: int, c_out: int) -> int:
    """A depthwise convolution stays depthwise at its new width; other groups are kept."""
    if conv.groups > 1 and conv.groups == conv.in_channels:
        return c_in
    return conv.groups


class CachedTimes(RootModel[dict[str, ConvMs]]):
    """A cache entry of the table: {conv_key: median ms}, strict types, at most MAX_ENTRIES."""

    model_config = {"strict": True, "frozen": True}


def _table_problem(key: str, entry: CachedTimes) -> str | None:
    if len(entry.root) > MAX_ENTRIES:
        return f"{len(entry.root):,} entries (at most {MAX_ENTRIES:,})"
    bad = next((k for k in entry.root if not _CONV_KEY.fullmatch(k)), None)
    return None if bad is None else f"{bad[:60]!r} is not a convolution's key"


class LayerLatencyTable:
    """Convolution times on one device, precision and thread count, cached on disk."""

    def __init__(
        self, device: str, precision: str = "fp32", threads: int | None = None,
        warmup: int = 1, repeat: int = 5, directory: Path | None = None,
    ) -> None:  # fmt: skip
        with num_threads(threads) as used:
            self.key = cache_key(device, precision, used)
        self.spec = LatencySpec(device=device, precision=precision, warmup=warmup, repeat=repeat,
                                threads=threads)  # fmt: skip
        self.cache = JsonCache(CACHE_FILE, CachedTimes, directory, _table_problem)
        self.path = self.cache.path
        cached = self.cache.read(self.key)
        self.entries: dict[str, float] = dict(cached.root) if cached is not None else {}
        self.measured = 0  # entries timed by this table (not read from the cache)
        self.lookups = 0  # calls of conv_ms, so a caller can tell whether a step used the table

    def conv_ms(self, conv: nn.Conv2d, c_in: int, c_out: int, hw: tuple[int, int]) -> float:
        """Median ms of a convolution like ``conv`` with ``c_in`` -> ``c_out`` channels on an
        ``hw`` input (measured now if the table lacks it)."""
        self.lookups += 1
        if c_in < 1 or c_out < 1:
            return 0.0
        key = conv_key(conv, c_in, c_out, hw)
        if key not in self.entries:
            layer = nn.Conv2d(
                c_in, c_out, conv.kernel_size, conv.stride, conv.padding, conv.dilation,
                _groups(conv, c_in, c_out), conv.bias is not None, conv.padding_mode,
            )  # fmt: skip
            result = measure_latency(layer.eval(), (1, c_in, *hw), self.spec)
            if isinstance(result, Missing):
                raise EffprofError(f"cannot time the convolution {key}: {result.reason}")
            self.entries[key] = result.median_ms
            self.measured += 1
        return self.entries[key]

    def save(self) -> None:
        """Merge this table's entries into the cache file (an unwritable cache is skipped)."""
        cached = self.cache.read(self.key, warn=False)  # what other runs added meanwhile
        self.cache.write(self.key, CachedTimes({**(cached.root if cached else {}), **self.entries}))

    def describe(self) -> str:
        """One line for a run's notes: what the table is and how it was measured."""
        return (
            f"per-layer latency table ({len(self.entries)} convolution shapes, {self.measured} "
            f"timed in this run, the rest cached in {self.path}): {self.spec.device} "
            f"{self.spec.precision}, {self.key.split('|')[3]}, median of {self.spec.repeat} "
            f"after {self.spec.warmup} warm-up per shape"
        )
