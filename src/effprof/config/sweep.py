"""Sweep files: YAML whose keys are ``effprof profile`` options and whose values are lists.

The grid is the product of the lists, in file order (the last axis varies fastest)::

    # configs/sweep-variants.yaml: 3 variants x 2 inputs x 2 precisions = 12 configurations
    model: [mssnet]
    variant: [small, base, large]
    input: [1x3x256x256, 1x3x720x1280]
    precision: [fp32, fp16]

A scalar is a one-value axis (``repeat: 20`` = ``repeat: [20]``). ``out`` is not an axis: the store
is chosen with ``effprof sweep --out``. Each configuration is identified by :func:`config_hash`.
"""

from __future__ import annotations

import difflib
import hashlib
import itertools
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from effprof.config.base import read_yaml_mapping, validate
from effprof.config.profile import ProfileConfig
from effprof.results import EffprofError

NOT_AXES = {"out": "the run store is chosen with `effprof sweep --out`"}
HASH_CHARS = 16
MAX_GRID = 10_000  # configurations one sweep file may hold (each is a profile run: minutes)
SHOWN_CHARS = 60


@dataclass(frozen=True)
class SweepSpec:
    """A parsed sweep file: its name (the file stem), where it came from, and its axes in order."""

    name: str
    source: str
    axes: tuple[tuple[str, tuple[Any, ...]], ...]

    @property
    def grid_size(self) -> int:
        """Number of configurations in the grid (before duplicates are merged)."""
        size = 1
        for _, values in self.axes:
            size *= len(values)
        return size


@dataclass(frozen=True)
class Shard:
    """Slice ``index`` of ``count`` (1-based): configuration k of the grid (0-based, in grid order)
    belongs to shard ``k % count + 1``, so shards 1/N..N/N cover the grid exactly once."""

    index: int
    count: int

    @classmethod
    def parse(cls, text: str) -> Shard:
        """``"2/4"`` -> Shard(2, 4); anything else is a one-line error."""
        match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
        if not match:
            raise EffprofError(f"--shard {text!r} must look like i/N, e.g. 1/4")
        index, count = int(match[1]), int(match[2])
        if not 1 <= index <= count:
            raise EffprofError(f"--shard {text!r}: i must be between 1 and N")
        return cls(index, count)

    def select(self, items: list[Any]) -> list[Any]:
        """The items of this shard, in their order."""
        return [item for k, item in enumerate(items) if k % self.count == self.index - 1]

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def _unknown_axis(name: str, source: str) -> EffprofError:
    known = [f for f in ProfileConfig.model_fields if f not in NOT_AXES]
    close = difflib.get_close_matches(name, known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return EffprofError(
        f"{source}: unknown axis {name!r}{hint}; axes are `effprof profile` options: {', '.join(known)}"
    )


def sweep_from_mapping(data: dict[str, Any], source: str, name: str) -> SweepSpec:
    """Check the axes of a sweep mapping (names and non-empty lists); values are checked later."""
    if not data:
        raise EffprofError(f"{source}: the grid is empty (no axes)")
    axes = []
    for key, values in data.items():
        key = str(key)
        if key in NOT_AXES:
            raise EffprofError(f"{source}: {key!r} is not an axis: {NOT_AXES[key]}")
        if key not in ProfileConfig.model_fields:
            raise _unknown_axis(key, source)
        values = tuple(values) if isinstance(values, list) else (values,)
        if not values:
            raise EffprofError(f"{source}: axis {key!r} is an empty list, so the grid is empty")
        axes.append((key, values))
    spec = SweepSpec(name, source, tuple(axes))
    if spec.grid_size > MAX_GRID:
        sizes = " x ".join(f"{len(v):,} {k}" for k, v in spec.axes)
        raise EffprofError(
            f"{source}: the grid has {spec.grid_size:,} configurations ({sizes}), more than the "
            f"{MAX_GRID:,} one sweep may hold; split it into several sweep files"
        )
    return spec


def read_sweep(path: str | Path) -> SweepSpec:
    """Read a sweep file; its name is the file stem (``sweep-variants.yaml`` -> ``sweep-variants``)."""
    path = Path(path)
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", path.stem).strip("-.") or "sweep"
    return sweep_from_mapping(read_yaml_mapping(path), str(path), name)


def _short(value: Any) -> str:
    text = str(value)
    return text if len(text) <= SHOWN_CHARS else f"{text[: SHOWN_CHARS - 1]}…"


def expand_grid(spec: SweepSpec) -> list[ProfileConfig]:
    """Every configuration of the grid, validated, in grid order (the last axis varies fastest).

    A bad value is a one-line error naming the configuration, before anything runs.
    """
    names = [name for name, _ in spec.axes]
    configs = []
    for position, values in enumerate(itertools.product(*(v for _, v in spec.axes)), start=1):
        options = dict(zip(names, values, strict=True))
        shown = " ".join(f"{k}={_short(v)}" for k, v in options.items())
        configs.append(
            validate(ProfileConfig, options, f"{spec.source} configuration {position} ({shown})")
        )
    return configs


def normalised_config(config: ProfileConfig) -> dict[str, Any]:
    """The options that identify a configuration: those that differ from their defaults, minus
    ``out``, as JSON values. Spelling out a default (``precision: fp32``) changes nothing, and a
    new option added to effprof later (with a default) does not change existing hashes."""
    values = config.model_dump(mode="json")
    defaults = ProfileConfig().model_dump(mode="json")
    return {k: v for k, v in sorted(values.items()) if k not in NOT_AXES and v != defaults[k]}


def config_hash(config: ProfileConfig) -> str:
    """A stable 16-hex-digit hash of :func:`normalised_config` (SHA-256 of its sorted JSON).

    >>> config_hash(ProfileConfig(variant="small", input="1x3x64x64"))  # doctest: +SKIP
    '5d0c7c3f1b2a9e84'
    """
    text = json.dumps(normalised_config(config), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:HASH_CHARS]


def describe_config(config: ProfileConfig) -> str:
    """``model=mssnet variant=small input=1x3x64x64``: the non-default options, for progress lines."""
    options = {"model": config.model, **normalised_config(config)}
    return " ".join(f"{k}={v}" for k, v in options.items())
