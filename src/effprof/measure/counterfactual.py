"""Counterfactual networks counted beside the real one, on the meta device (nothing runs).

Each counterfactual changes one design decision and keeps everything else, so its cost relative
to the real network is what that decision saves: MSSNet without pixel-unshuffle, MSSNet as a
single-scale network (same six stages at full resolution), and the other width variants. Rows
carry MACs, FLOPs, parameters and peak activation memory (meta trace) with ratios to the real
network, and a per-stage (or per-part) MAC table shows where a change costs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
from torch import nn

from effprof.measure.attribution import Components, label_ops
from effprof.measure.counting import CountResult, count_model
from effprof.measure.module_map import module_map
from effprof.measure.params import count_params

REAL = "real network"
COLUMNS = [
    *("name", "kind", "isolates", "macs", "flops", "params", "activation_peak_bytes"),
    *("macs_ratio", "flops_ratio", "params_ratio", "activation_ratio"),
]


@dataclass(frozen=True)
class Counterfactual:
    """A network to count beside the real one: its name, what it isolates, the model (any device)."""

    name: str
    kind: str  # "design" (a switched-off idea) or "variant" (another width)
    isolates: str
    model: nn.Module


@dataclass(frozen=True)
class CounterfactualTable:
    """``table``: one row per network (the real one first); ``groups``: MACs per stage or part."""

    table: pd.DataFrame
    groups: pd.DataFrame

    def to_frame(self) -> pd.DataFrame:
        """The one-row-per-network table."""
        return self.table

    def ratio(self, name: str, column: str = "macs") -> float:
        """``column`` of counterfactual ``name`` divided by the real network's."""
        row = self.table[self.table["name"] == name]
        return float(row[f"{column}_ratio"].iloc[0])


def _row(name: str, kind: str, isolates: str, count: CountResult, params: int) -> dict[str, Any]:
    return {"name": name, "kind": kind, "isolates": isolates, "macs": count.macs,
            "flops": count.flops, "params": params,
            "activation_peak_bytes": count.activation_peak_bytes}  # fmt: skip


def _group_macs(
    name: str, model: nn.Module, count: CountResult, components: Components | None
) -> pd.DataFrame:
    labels = label_ops(count.ops, components or module_map(model, count.ops))
    dim = "stage" if "stage" in labels.columns else "part"
    macs = count.ops["macs"].groupby(labels[dim].to_numpy(), sort=False).sum()
    return pd.DataFrame({"name": name, "dimension": dim, "group": macs.index, "macs": macs.values})


def count_counterfactuals(
    real_model: nn.Module,
    real: CountResult,
    counterfactuals: Sequence[Counterfactual],
    *,
    components: Components | None = None,
    forward_kwargs: Mapping[str, Any] | None = None,
) -> CounterfactualTable:
    """Count every counterfactual at the real count's input shape; ratios are to the real network.

    >>> table = count_counterfactuals(model, count_model(model, shape), [cf])  # doctest: +SKIP
    >>> table.ratio("no pixel-unshuffle")  # doctest: +SKIP
    """
    shape = real.inputs
    real_params = count_params(real_model).total
    rows = [_row(REAL, "real", "the network as profiled", real, real_params)]
    groups = [_group_macs(REAL, real_model, real, components)]
    for item in counterfactuals:
        count = count_model(item.model, shape, forward_kwargs=forward_kwargs)
        rows.append(
            _row(item.name, item.kind, item.isolates, count, count_params(item.model).total)
        )
        groups.append(_group_macs(item.name, item.model, count, components))
    table = pd.DataFrame(rows)
    for column, ratio in (("macs", "macs_ratio"), ("flops", "flops_ratio"),
                          ("params", "params_ratio"), ("activation_peak_bytes", "activation_ratio")):  # fmt: skip
        table[ratio] = table[column] / table[column].iloc[0]
    group_table = pd.concat(groups, ignore_index=True)
    real_groups = group_table[group_table["name"] == REAL].set_index("group")["macs"]
    group_table["ratio_to_real"] = group_table["macs"] / group_table["group"].map(real_groups)
    return CounterfactualTable(table=table[COLUMNS], groups=group_table)
