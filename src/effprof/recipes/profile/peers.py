"""The published peers of the model's entry, stored with the run (the report never imports
models): cited numbers, never measured here."""

from __future__ import annotations

import json

import pandas as pd

from effprof.models import PeerTable
from effprof.recipes.profile.steps import Output, StepContext, step


@step("peers", label="published peers")
def peers(ctx: StepContext) -> Output[PeerTable | None]:
    """The ``peers`` and ``peers_meta`` tables of the entry's peer table (none without one)."""
    table = ctx.entry.peers
    if table is None:
        return Output(None)
    meta = pd.DataFrame([{
        "title": table.title, "about": table.about, "columns": json.dumps(dict(table.columns)),
        "quality": table.quality, "params": table.params, "runtime": table.runtime,
        "comparable": table.comparable, "notes": json.dumps(list(table.notes)),
    }])  # fmt: skip
    return Output(table, tables={"peers": pd.DataFrame(table.records()), "peers_meta": meta})
