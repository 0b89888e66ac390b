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

import json
from pathlib import Path

from torch import nn

from effprof.measure.latency import LatencySpec, measure_latency
from effprof.measure.precision import num_threads
from effprof.measure.roofline import cache_dir, cache_key
from effprof.results import EffprofError, Missing

CACHE_FILE = "layer-latency.json"


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
        self.path = (directory or cache_dir()) / CACHE_FILE
        self.entries: dict[str, float] = dict(self._read().get(self.key, {}))
        self.measured = 0  # entries timed by this table (not read from the cache)
        self.lookups = 0  # calls of conv_ms, so a caller can tell whether a step used the table

    def _read(self) -> dict[str, dict[str, float]]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError, UnicodeDecodeError):
            return {}
        return data if isinstance(data, dict) else {}

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
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            data = self._read()
            data[self.key] = {**data.get(self.key, {}), **self.entries}
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(data, indent=0, sort_keys=True), encoding="utf-8")
            tmp.replace(self.path)
        except OSError:
            pass

    def describe(self) -> str:
        """One line for a run's notes: what the table is and how it was measured."""
        return (
            f"per-layer latency table ({len(self.entries)} convolution shapes, {self.measured} "
            f"timed in this run, the rest cached in {self.path}): {self.spec.device} "
            f"{self.spec.precision}, {self.key.split('|')[3]}, median of {self.spec.repeat} "
            f"after {self.spec.warmup} warm-up per shape"
        )
