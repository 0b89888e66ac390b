"""Time against the counted work: how the time per aten call was measured and what its sum is
against the latency median, each op category's share of the time against its share of the FLOPs,
and the finding on whether time follows the FLOPs on this device. Each comparison names its rule
(a ratio and its threshold)."""

from __future__ import annotations

import pandas as pd

from effprof import schema as S
from effprof.report import numbers as fmt
from effprof.report.facts import dimension
from effprof.report.runview import RunView
from effprof.report.sections import Finding

MAC_CATEGORIES = ("convolution", "linear/matmul", "attention")
TIME_FOLLOWS = 1.25  # a time share within 1.25x of the FLOP share either way "follows" it
SAME_TIME = 0.1  # a per-call sum within 10 % of the latency median is "within" it
MEMORY_BOUND = (
    "elementwise", "activation", "resampling", "data movement", "normalization", "reduction",
    # names of runs made before the categories were renamed
    "resize", "layout copies",
)  # fmt: skip


def category_caption(rows: pd.DataFrame, time_column: str | None) -> str:
    """The op-category chart's caption: what it compares, and the memory-bound ops' shares."""
    text = "Each op category's share of the counted FLOPs beside its share of the measured time."
    if time_column is None:
        text = "Each op category's share of the counted FLOPs (time was not measured per call)."
    memory = rows[rows["group"].isin(MEMORY_BOUND)]
    memory = memory.sort_values("group", key=lambda g: g.map(MEMORY_BOUND.index))  # as the answer
    if memory.empty:
        return text
    text += (
        f" Memory-bound ops ({', '.join(memory['group'])}) do "
        f"{fmt.pct(memory['flops_share'].sum())} of the FLOPs"
    )
    if time_column is not None:
        text += f" and take {fmt.pct(memory[time_column].sum())} of the per-call time"
    return text + "."


def calltime_note(view: RunView) -> str:
    """How the time per group was measured, and how its sum compares with the latency median:
    the two are separate measurements, and the reasons given are those that push the sum the
    way it went (leaving out the time between calls and keeping each call's fastest pass make
    it smaller; timing every call on its own, through a dispatch mode, makes it larger)."""
    timer, total = view.metric(S.CALLTIME_TIMER), view.number(S.CALLTIME_TOTAL_MS)
    if not timer or total is None:
        missing = view.reason(S.CALLTIME_TOTAL_MS)
        return f"Time per group not measured: {missing or 'no per-call timing in this run'}."
    passes = view.metric(S.CALLTIME_PASSES)
    how = (
        f"in {passes} extra forward passes, each call keeping its fastest"
        if isinstance(passes, int) and passes > 1
        else "in an extra forward pass"
    )
    text = f"Time is measured per aten call ({timer}) {how}, and summed per group: {fmt.ms(total)} in all"
    median = view.number(S.LATENCY.median_ms)
    if median:
        ratio, against = total / median, f"the latency median ({fmt.ms(median)})"
        calls = view.metric(S.CALLTIME_CALLS)
        each = f"each of its {calls:,} calls" if isinstance(calls, int) else "each call"
        if abs(ratio - 1) < SAME_TIME:
            text += f", within {SAME_TIME:.0%} of {against}"
        elif ratio < 1:
            fastest = ", and each call keeps its fastest pass" if "fastest" in how else ""
            text += (
                f", {fmt.times(ratio)} {against}: the sum leaves out the Python and dispatch "
                f"time between calls{fastest}"
            )
        else:
            text += (
                f", {fmt.times(ratio)} {against}: a clock read and a Python dispatch mode around "
                f"{each} add more time than the sum leaves out between calls"
            )
    return (
        text + ". MACs and parameters are counted; 'activations written' is the bytes each "
        "group's ops write in one forward."
    )


def _category_time_shares(view: RunView) -> tuple[pd.DataFrame, str] | None:
    categories = dimension(view, "category")
    if categories is not None and categories["time_ms_share"].notna().any():
        return categories, "measured per-call time"
    optime = view.table("optime_categories")
    if optime is None:
        return None
    return optime.rename(
        columns={"category": "group", "share": "time_ms_share"}
    ), "torch.profiler time"


def time_finding(view: RunView) -> Finding | None:
    """Whether time follows the FLOPs on this device, by one rule: the op category with the most
    MAC FLOPs takes a share of the measured time within TIME_FOLLOWS times its share of the FLOPs
    either way ("Time follows the FLOPs."), or beyond it ("FLOPs are not time."); the memory-bound
    ops' time beside their FLOPs."""
    shares = _category_time_shares(view)
    flops = dimension(view, "category")
    if shares is None or flops is None:
        return None
    times, basis = shares
    mac_rows = flops[flops["group"].isin(MAC_CATEGORIES) & (flops["flops_share"] > 0)]
    if mac_rows.empty:
        return None
    main = mac_rows.sort_values("flops_share", ascending=False).iloc[0]
    main_time = float(times.loc[times["group"] == main["group"], "time_ms_share"].sum())
    ratio = main_time / float(main["flops_share"])
    follows = 1 / TIME_FOLLOWS <= ratio <= TIME_FOLLOWS
    device = view.record.env.get("device_name") or "this device"
    text = (
        f"On {device}, {main['group']} takes {fmt.pct(main_time)} of the {basis} for "
        f"{fmt.pct(main['flops_share'])} of the FLOPs ({fmt.times(ratio)} its FLOP share, "
        f"{'within' if follows else 'beyond'} {TIME_FOLLOWS:g}x either way)"
    )
    present = [c for c in MEMORY_BOUND if c in set(times["group"])]
    if present:
        memory = float(times.loc[times["group"].isin(present), "time_ms_share"].sum())
        memory_flops = float(flops.loc[flops["group"].isin(present), "flops_share"].sum())
        text += (
            f"; memory-bound ops ({', '.join(present)}) take {fmt.pct(memory)} of it for "
            f"{fmt.pct(memory_flops)} of the FLOPs"
        )
    if view.metric(S.LATENCY.reliable) is False:
        text += " (measured while the host was contended: see the latency card)"
    lead = "Time follows the FLOPs." if follows else "FLOPs are not time."
    return lead, text + "."
