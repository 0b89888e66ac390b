"""The environment section: where and how the run was measured, its configuration, its gaps."""

from __future__ import annotations

import pandas as pd

from effprof.report import numbers as fmt
from effprof.report import page
from effprof.report.runview import RunView


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


def render(view: RunView) -> str:
    """The environment section body."""
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
    if record.missing:
        parts.append(
            page.table(
                pd.DataFrame(sorted(record.missing.items()), columns=["metric", "why missing"]),
                caption="Numbers this run could not measure",
            )
        )
    latency = view.table("latency")
    if latency is not None and len(latency):
        parts.append(
            page.note(
                f"Latency: {len(latency)} timed forwards ({view.metric('latency_timer')}), median "
                f"{fmt.ms(view.metric('latency_median_ms'))}, coefficient of variation "
                f"{fmt.pct(view.metric('latency_cv'))}; samples in latency.parquet."
            )
        )
    for note in record.notes:
        parts.append(page.note(note))
    return "".join(parts)
