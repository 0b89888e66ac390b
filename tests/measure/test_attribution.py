"""Attribution: every dimension's groups sum to the model's totals, time included."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from effprof.measure.attribution import ADDITIVE, ROOT, attribute, label_ops
from effprof.measure.counting import count_model
from effprof.measure.module_map import module_map
from effprof.measure.params import count_params
from effprof.models import MODELS, build_model
from tests.measure.zoo import SharedActivation


@pytest.fixture(scope="module")
def mssnet_attribution():
    with torch.device("meta"):
        model = build_model("mssnet", "small")
    count = count_model(model, (1, 3, 64, 64))
    params = count_params(model)
    times = pd.DataFrame(
        {"seq": count.ops["seq"], "time_ms": np.linspace(0.01, 1.0, len(count.ops))}
    )
    result = attribute(count.ops, params.to_frame(), components=MODELS.get("mssnet").components,
                       call_times=times)  # fmt: skip
    return result, count, params, times


@pytest.mark.parametrize("dimension", ["scale", "stage", "part", "category"])
def test_each_dimension_sums_to_the_totals(mssnet_attribution, dimension):
    result, count, params, times = mssnet_attribution
    rows = result.dimension(dimension)
    assert rows["macs"].sum() == count.macs
    assert rows["flops"].sum() == count.flops
    assert rows["written_bytes"].sum() == count.ops["bytes_written"].sum()
    assert rows["time_ms"].sum() == pytest.approx(times["time_ms"].sum())
    assert rows["calls"].sum() == len(count.ops)
    if dimension != "category":  # parameters have no op category
        assert rows["params"].sum() == params.total == 6_756_161
    for column in ADDITIVE:
        if rows[column].notna().all():
            assert rows[f"{column}_share"].sum() == pytest.approx(1.0)


def test_groups_come_in_the_maps_order(mssnet_attribution):
    result = mssnet_attribution[0]
    assert list(result.dimension("scale")["group"]) == ["1/4", "1/2", "full"]
    assert list(result.dimension("stage")["group"]) == ["1", "2.1", "2.2", "3.1", "3.2", "3.3"]


def test_the_coarse_scales_carry_a_sixth_of_the_macs_with_half_the_parameters(mssnet_attribution):
    """The surprise the report leads with, as numbers: scale 1/4 runs on 1/16 of the pixels."""
    result = mssnet_attribution[0]
    assert result.share("scale", ["1/4", "1/2"], "params") == pytest.approx(0.499, abs=0.005)
    assert result.share("scale", ["1/4", "1/2"], "macs") == pytest.approx(0.160, abs=0.005)
    stages = result.dimension("stage").set_index("group")
    # Stages 1 and 3.3 have nearly the same convolutions; 3.3 sees 16x the pixels.
    assert stages.loc["3.3", "macs"] / stages.loc["1", "macs"] == pytest.approx(15.5, abs=0.5)


def test_tails_that_never_run_keep_their_parameters(mssnet_attribution):
    tails = mssnet_attribution[0].dimension("part").set_index("group").loc["tails"]
    assert tails["params"] == 3 * 20 * 12 * 9 + 3 * 20 * 3 * 9  # tail1_1, 2_1, 2_2 + tail3_x
    assert tails["calls"] == 1  # only tail3_3 runs in the evaluation graph


def test_root_ops_take_scale_and_stage_from_the_module_that_consumes_them(mssnet_attribution):
    result, count, _, _ = mssnet_attribution
    labels = result.labels.set_index("seq")
    first = count.ops.iloc[0]  # the half-size resize of the input, in MSSNet.forward
    assert first["module"] == "" and first["op"].startswith("aten.upsample_bilinear2d")
    assert tuple(labels.loc[first["seq"], ["scale", "stage", "part"]]) == (
        "1/4",
        "1",
        "inter-scale fusion",
    )


def test_a_model_without_a_map_is_attributed_by_its_module_tree():
    model = SharedActivation()
    count = count_model(model, (1, 4, 8, 8))
    tree = module_map(model, count.ops)
    result = attribute(count.ops, count_params(model).to_frame(), components=tree)
    parts = result.dimension("part")
    modules = {name for name, _ in model.named_modules(remove_duplicate=False)}
    # rows are modules of the tree, or the ops a module runs itself (a residual add)
    assert {g.removesuffix(" (own ops)") for g in parts["group"]} - {ROOT} <= modules
    assert parts["macs"].sum() == count.macs
    assert "scale" not in set(result.table["dimension"])
    assert result.timed is False and result.table["time_ms"].isna().all()
    assert list(label_ops(count.ops, tree).columns) == ["seq", "part"]
