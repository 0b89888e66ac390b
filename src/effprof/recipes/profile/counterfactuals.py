"""What each design decision saves: the model's registered counterfactuals and its other
variants, counted on the meta device beside the real network."""

from __future__ import annotations

import pandas as pd
import torch

from effprof import schema as S
from effprof.measure.counterfactual import Counterfactual, count_counterfactuals
from effprof.models import ModelEntry, build_model
from effprof.recipes.profile.count import count
from effprof.recipes.profile.steps import Output, StepContext, step
from effprof.results import Missing


def _alternatives(entry: ModelEntry, variant: str | None) -> list[Counterfactual]:
    items = []
    with torch.device("meta"):
        for name, (isolates, build) in entry.counterfactuals.items():
            items.append(Counterfactual(name, "design", isolates, build(variant)))
        for other in entry.variants:
            if other != variant:
                text = f"width: the {other} variant, same architecture"
                items.append(Counterfactual(other, "variant", text, build_model(entry.name, other)))
    return items


@step("counterfactuals", label="counterfactuals on the meta device", needs=(count,))
def counterfactuals(ctx: StepContext) -> Output[pd.DataFrame | Missing]:
    """Each counterfactual's MACs, activation memory and parameters as ratios to the network."""
    entry = ctx.entry
    if not (entry.counterfactuals or len(entry.variants) > 1):
        none = Missing("the model declares no counterfactuals or variants (registry entry)")
        return Output(none, {S.COUNTERFACTUALS: none})
    table = count_counterfactuals(
        ctx.model, ctx.get(count).result, _alternatives(entry, ctx.target.variant),
        components=entry.components,
    )  # fmt: skip
    frame = table.to_frame()
    metrics = {
        S.COUNTERFACTUAL_MACS_RATIO.of(row.name): row.macs_ratio
        for row in table.table.itertuples()
        if row.kind != "real"
    }
    return Output(frame, metrics, {"counterfactuals": frame, "counterfactual_groups": table.groups})
