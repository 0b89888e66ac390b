"""Cost rolled up by architecture component: scale, stage, part, block part and op category.

Every aten call of the counting trace gets labels from the model's component map
(``components(module_path) -> {"scale": ..., "stage": ..., "part": ...}``, see
:mod:`effprof.models.mssnet_map`); a model without a map gets the module-tree map of
:mod:`effprof.measure.module_map` (``part``, ``stage``, ``block part``; a ``part`` standing for
several identical blocks carries their number in the ``repeats`` column). A call whose module
does not say its scale or stage (the root
module's own ops: resizes, concatenations, residual adds written in ``forward``) takes them from
the next call that does (the module that consumes its output), or the previous one at the end of
the trace. Parameters are labelled by the module that owns them.

Additive quantities, so every dimension's groups sum to the model's totals: ``macs``, ``flops``,
``params``, ``written_bytes`` (bytes of activations the group's ops write, one forward) and
``time_ms`` (measured per-call time, :mod:`effprof.measure.calltime`). ``live_peak_bytes`` (the
largest live-activation total while the group's ops run) is a maximum, not additive.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from effprof import schema as S
from effprof.measure.categories import CATEGORIES
from effprof.results import Missing

DIMENSIONS = ("scale", "stage", "part", "block part", "category")
ADDITIVE = ("macs", "flops", "params", "written_bytes", "time_ms")
UNMAPPED = "(unmapped)"
OUTSIDE_BLOCKS = "(outside repeated blocks)"
ROOT = "(root)"
INHERITED = ("scale", "stage")  # a root op takes these from the module that consumes its output
Components = Callable[[str], Mapping[str, str]]


def _labeller(components: Components) -> Callable[[str], dict[str, str]]:
    cache: dict[str, dict[str, str]] = {}

    def label(path: str) -> dict[str, str]:
        if path not in cache:
            cache[path] = dict(components(path))
        return cache[path]

    return label


def _keys(components: Components, paths: pd.Series) -> list[str]:
    """The dimensions the map labels, in :data:`DIMENSIONS` order."""
    declared = set(getattr(components, "order", {}) or {})
    seen = {key for path in dict.fromkeys(paths) for key in components(path)}
    return [d for d in DIMENSIONS if d in declared | seen | {"part"}]


def label_ops(ops: pd.DataFrame, components: Components) -> pd.DataFrame:
    """Per call of the trace: ``seq`` and one column per dimension of the map (see the module
    docstring); ops outside every repeated block get :data:`OUTSIDE_BLOCKS` as ``block part``."""
    label = _labeller(components)
    keys = _keys(components, ops["module"])
    frame = pd.DataFrame([label(path) for path in ops["module"]], columns=keys)
    for key in keys:
        if key in INHERITED:
            # Root ops inherit scale/stage from their consumer (next), else the previous call.
            frame[key] = frame[key].bfill().ffill()
    frame = frame.fillna({"block part": OUTSIDE_BLOCKS} if "block part" in keys else {})
    frame = frame.fillna(UNMAPPED)
    frame.insert(0, "seq", ops["seq"].to_numpy())
    return frame


def label_params(params: pd.DataFrame, components: Components) -> pd.DataFrame:
    """Per parameter tensor: ``name``, ``numel`` and the labels of the module that owns it."""
    label = _labeller(components)
    keys = [k for k in _keys(components, params["module"]) if k != "category"]
    frame = pd.DataFrame([label(path) for path in params["module"]], columns=keys)
    frame = frame.fillna({"block part": OUTSIDE_BLOCKS} if "block part" in keys else {})
    frame = frame.fillna(UNMAPPED)
    frame.insert(0, "name", params["name"].to_numpy())
    frame["numel"] = params["numel"].to_numpy()
    return frame


@dataclass(frozen=True)
class Attribution:
    """Per-call labels and the rolled-up table (one row per dimension and group)."""

    labels: pd.DataFrame
    table: pd.DataFrame
    totals: dict[str, float]
    timed: bool

    def to_frame(self) -> pd.DataFrame:
        """Long table: dimension, group, rank, calls, macs, flops, params, written_bytes,
        time_ms, live_peak_bytes and the ``*_share`` of each additive column."""
        return self.table

    def dimension(self, name: str) -> pd.DataFrame:
        """The rows of one dimension (``scale``, ``stage``, ``part`` or ``category``)."""
        return self.table[self.table["dimension"] == name].reset_index(drop=True)

    def share(self, dimension: str, groups: Sequence[str], column: str = "macs") -> float:
        """Summed share (0..1) of ``column`` carried by ``groups`` of ``dimension``."""
        rows = self.dimension(dimension)
        return float(rows.loc[rows["group"].isin(list(groups)), f"{column}_share"].sum())

    def summary(self) -> dict[str, Any]:
        """Flat metrics for run.json: the share of MACs and time per scale (when mapped)."""
        metrics: dict[str, Any] = {}
        for row in self.dimension("scale").itertuples():
            metrics[S.MACS_SHARE_SCALE.of(row.group)] = float(row.macs_share)
            if self.timed:
                metrics[S.TIME_SHARE_SCALE.of(row.group)] = float(row.time_ms_share)
        if self.timed:
            metrics[S.CALLTIME_TOTAL_MS] = self.totals["time_ms"]
        return metrics


def _order(values: pd.Series, preferred: Sequence[str]) -> list[str]:
    """Groups in the map's preferred order, then the rest in order of first appearance."""
    seen = list(dict.fromkeys(values))
    return [g for g in preferred if g in seen] + [g for g in seen if g not in preferred]


def attribute(
    ops: pd.DataFrame,
    params: pd.DataFrame,
    *,
    components: Components,
    call_times: pd.DataFrame | Missing | None = None,
) -> Attribution:
    """Roll up MACs, FLOPs, params, written bytes and measured time by scale/stage/part/category.

    ``ops`` is the counting trace (:class:`effprof.measure.counting.CountResult.ops`), ``params``
    the parameter table (:func:`effprof.measure.params.count_params`), ``call_times`` the
    per-call times (``seq``, ``time_ms``) or ``Missing`` / None when time was not measured.
    """
    labels = label_ops(ops, components)
    timed = isinstance(call_times, pd.DataFrame)
    trace = ops[["seq", "category", "macs", "flops", "bytes_written", "live_bytes"]].rename(
        columns={"bytes_written": "written_bytes"}
    )
    trace = trace.merge(labels, on="seq", how="left")
    trace["time_ms"] = (
        trace["seq"].map(call_times.set_index("seq")["time_ms"]).astype(float) if timed else 0.0
    )
    param_labels = label_params(params, components)
    order: dict[str, Sequence[str]] = dict(getattr(components, "order", {}) or {})
    order.setdefault("category", CATEGORIES)
    dims = [d for d in DIMENSIONS if d in trace.columns]
    totals = {
        "macs": float(trace["macs"].sum()),
        "flops": float(trace["flops"].sum()),
        "params": float(param_labels["numel"].sum()),
        "written_bytes": float(trace["written_bytes"].sum()),
        "time_ms": float(trace["time_ms"].sum()) if timed else float("nan"),
    }
    frames = []
    for dim in dims:
        grouped = trace.groupby(dim, sort=False)
        rolled = grouped[["macs", "flops", "written_bytes", "time_ms"]].sum()
        rolled["calls"] = grouped.size()
        rolled["live_peak_bytes"] = grouped["live_bytes"].max()
        extra: list[str] = []
        if dim in param_labels.columns:
            owned = param_labels.groupby(dim)["numel"].sum()
            extra = sorted(set(owned.index) - set(rolled.index))  # never run by this forward
            for group in extra:
                rolled.loc[group] = 0
            rolled["params"] = owned.reindex(rolled.index).fillna(0)
        else:
            rolled["params"] = float("nan")  # parameters have no op category
        groups = _order(pd.Series([*trace[dim], *extra]), order.get(dim, ()))
        rolled = rolled.loc[groups].reset_index(names="group")
        rolled.insert(0, "dimension", dim)
        rolled.insert(2, "rank", range(len(rolled)))
        frames.append(rolled)
    table = pd.concat(frames, ignore_index=True)
    for column in ADDITIVE:
        total = totals[column]
        table[f"{column}_share"] = (
            table[column] / total if total and total == total else float("nan")
        )
    if not timed:
        table["time_ms"] = float("nan")
    repeats = dict(getattr(components, "repeats", {}) or {})
    table["repeats"] = [
        repeats.get(g, 1) if d == "part" else 1
        for d, g in zip(table["dimension"], table["group"], strict=True)
    ]
    columns = ["dimension", "group", "rank", "calls", "repeats", *ADDITIVE, "live_peak_bytes"]
    table = table[columns + [f"{c}_share" for c in ADDITIVE]]
    table["calls"] = table["calls"].astype(int)
    return Attribution(labels=labels, table=table, totals=totals, timed=timed)
