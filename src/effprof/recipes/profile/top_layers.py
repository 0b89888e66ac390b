"""The top layers: the modules (leaf call-time paths) that do the most MACs, take the most time
and write the most activation bytes, each with its share of the whole forward."""

from __future__ import annotations

import pandas as pd

from effprof.recipes.profile.attribution import attribution
from effprof.recipes.profile.count import count
from effprof.recipes.profile.steps import Output, StepContext, step

TOP_N = 10  # modules kept per ranking (the table holds their union)
RANKED = (("macs", "rank_macs"), ("time_ms", "rank_time"), ("activation_bytes", "rank_bytes"))


def top_layers(ops: pd.DataFrame, times: pd.DataFrame | None, n: int = TOP_N) -> pd.DataFrame:
    """One row per module among the ``n`` largest by MACs, by time (when timed) or by activation
    bytes written: module, module_type, calls, macs, time_ms, activation_bytes, their shares of
    the forward's totals, and each ranking's position (1 = largest).

    >>> ops = pd.DataFrame({"seq": [0, 1, 2], "module": ["a", "b", "b"], "module_type": ["Conv2d",
    ...     "Linear", "Linear"], "macs": [30, 60, 10], "bytes_written": [8, 4, 4]})
    >>> top_layers(ops, None, n=1)[["module", "macs", "macs_share", "rank_macs"]].to_dict("records")
    [{'module': 'b', 'macs': 70, 'macs_share': 0.7, 'rank_macs': 1}, {'module': 'a', 'macs': 30, 'macs_share': 0.3, 'rank_macs': 2}]
    """
    frame = ops[["seq", "module", "module_type", "macs", "bytes_written"]].copy()
    if times is not None:
        frame = frame.merge(times, on="seq", how="left")
    grouped = frame.groupby("module", sort=False)
    table = pd.DataFrame({
        "module_type": grouped["module_type"].first(),
        "calls": grouped.size(),
        "macs": grouped["macs"].sum(),
        "time_ms": grouped["time_ms"].sum(min_count=1) if times is not None else float("nan"),
        "activation_bytes": grouped["bytes_written"].sum(),
    })  # fmt: skip
    keep: set[str] = set()
    for column, rank in RANKED:
        values = table[column].astype(float)
        total = values.sum()
        table[column.removesuffix("_ms") + "_share"] = values / total if total > 0 else float("nan")
        table[rank] = values.rank(ascending=False, method="first").astype("Int64")
        if values.notna().any() and total > 0:
            keep |= set(values.nlargest(n).index)
    table = table.loc[[m for m in table.index if m in keep]]
    table = table.sort_values(["macs", "activation_bytes"], ascending=False, kind="stable")
    return table.rename_axis("module").reset_index()


@step("top_layers", label="top layers", needs=(count,), uses=(attribution,))
def top_layers_step(ctx: StepContext) -> Output[pd.DataFrame]:
    """The ``top_layers`` table (time columns empty when nothing was timed)."""
    attributed = ctx.maybe(attribution)
    table = top_layers(ctx.get(count).result.ops, attributed.times if attributed else None)
    return Output(table, tables={"top_layers": table})
