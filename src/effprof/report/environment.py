"""The environment section: where and how the run was measured, its configuration, its gaps."""

from __future__ import annotations

import pandas as pd

from effprof import schema as S
from effprof.report import numbers as fmt
from effprof.report import page
from effprof.report.sections import RenderContext, section


def readable(value: object) -> str:
    """A configuration value as a reader wants it: lists and mappings spelled out, never a
    Python repr (``{'name': 'x', 'shape': '1x3'}`` -> ``name x, shape 1x3``)."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict):
        return ", ".join(f"{k} {readable(v)}" for k, v in value.items()) or "—"
    if isinstance(value, (list, tuple)):
        return "; ".join(readable(v) for v in value) or "—"
    return str(value)


def _pairs(values: dict, skip: tuple[str, ...] = ()) -> pd.DataFrame:
    rows = [(k, readable(v)) for k, v in values.items() if k not in skip]
    return pd.DataFrame(rows, columns=["key", "value"])


@section("environment", label="Environment", title="Environment",
         intro="Where, how and with which configuration this run was measured.")  # fmt: skip
def render(ctx: RenderContext) -> str:
    """The environment section body."""
    view = ctx.subject
    record = view.record
    parts = [
        page.paragraph(
            f"Run {record.run_id} ({record.kind}), created {record.created}, stored in {view.path}."
        ),
        '<div class="figure-row"><div>',
        page.table(_pairs(record.env), caption="Environment (read at run time)"),
        "</div><div>",
        page.table(_pairs(record.params, skip=("counting_policy",)), caption="Configuration"),
        "</div></div>",
    ]
    steps = view.table("steps")
    if steps is not None and len(steps):
        total = view.number(S.PROFILE_SECONDS)
        columns = {"step": "step", "status": "status", "seconds": "wall time",
                   "cpu_seconds": "CPU time (this process)", "reason": "why skipped"}  # fmt: skip
        parts.append(page.table(
            steps, columns={k: v for k, v in columns.items() if k in steps},
            formats={"seconds": lambda v: f"{v:,.2f} s", "cpu_seconds": lambda v: f"{v:,.2f} s"},
            caption="Where the profile's time went: each registered step, in order"
            + (f" (the whole job {total:,.1f} s)" if total is not None else "")
            + "; CPU time is this process's (the memory measurement's child is not in it)",
        ))  # fmt: skip
    statuses = [(name, "missing", why) for name, why in sorted(record.missing.items())]
    statuses += [(name, "unreliable", why) for name, why in sorted(record.unreliable.items())]
    statuses += [(name, "partial", why) for name, why in sorted(record.partial.items())]
    if statuses:
        parts.append(
            page.table(
                pd.DataFrame(statuses, columns=["metric", "status", "why"]),
                caption="Numbers this run could not measure, or measured only in part or "
                "unreliably",
            )
        )
    latency = view.table("latency")
    if latency is not None and len(latency):
        parts.append(
            page.note(
                f"Latency: {len(latency)} timed forwards ({view.metric(S.LATENCY_TIMER)}), median "
                f"{fmt.ms(view.metric(S.LATENCY.median_ms))}, coefficient of variation "
                f"{fmt.pct(view.metric(S.LATENCY.cv))}; samples in latency.parquet."
            )
        )
    for note in record.notes:
        parts.append(page.note(note))
    return "".join(parts)
