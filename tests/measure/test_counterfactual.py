"""Counterfactuals match hand-derived ratios: pixel-unshuffle and multi-scale, switched off."""

from __future__ import annotations

import pytest
import torch

from effprof.measure.counterfactual import REAL, Counterfactual, count_counterfactuals
from effprof.measure.counting import count_model
from effprof.models import MODELS, build_model
from effprof.models.mssnet import build_mssnet

SHAPE = (1, 3, 64, 64)


@pytest.fixture(scope="module")
def counted():
    entry = MODELS.get("mssnet")
    with torch.device("meta"):
        real = build_model("mssnet", "small")
        items = [Counterfactual(n, "design", text, build("small"))
                 for n, (text, build) in entry.counterfactuals.items()]  # fmt: skip
        items.append(Counterfactual("base", "variant", "width", build_model("mssnet", "base")))
    return count_counterfactuals(real, count_model(real, SHAPE), items, components=entry.components)


def _conv_macs(count, prefixes: tuple[str, ...]) -> int:
    ops = count.ops
    rows = ops[(ops["category"] == "convolution") & ops["module"].str.startswith(prefixes)]
    return int(rows["macs"].sum())


def test_without_pixel_unshuffle_scale_2_convolutions_cost_4x():
    """Stages 2.1 and 2.2 keep their widths but see the full image (H x W) instead of the
    unshuffled half-size one (H/2 x W/2): 4x the pixels, so exactly 4x the conv MACs. Their
    shallow conv is unchanged: 12 -> wf channels at H/2 x W/2 = 3 -> wf channels at H x W."""
    with torch.device("meta"):
        real = count_model(build_mssnet("small"), SHAPE)
        plain = count_model(build_mssnet("small", pixel_unshuffle=False), SHAPE)
    stages_2 = ("E2_", "D2_")
    assert _conv_macs(plain, stages_2) == 4 * _conv_macs(real, stages_2)
    assert _conv_macs(plain, ("E1_", "D1_")) == 4 * _conv_macs(real, ("E1_", "D1_"))
    assert _conv_macs(plain, ("E3_", "D3_")) == _conv_macs(real, ("E3_", "D3_"))
    assert _conv_macs(plain, ("shallow_feat2.0",)) == _conv_macs(real, ("shallow_feat2.0",))


def test_ratios_per_stage_and_in_total(counted):
    groups = counted.groups.pivot_table(index="group", columns="name", values="ratio_to_real")
    assert groups.loc["2.2", "no pixel-unshuffle"] == pytest.approx(4.0)
    assert groups.loc[["3.1", "3.2", "3.3"], "no pixel-unshuffle"].tolist() == [1.0, 1.0, 1.0]
    # Single scale: stage 1 leaves 1/4 resolution for full (16x the pixels; its shallow conv
    # sees 3 instead of 12 channels, hence a little under 16x).
    assert 15.5 < groups.loc["1", "single scale"] <= 16.0
    table = counted.table.set_index("name")
    assert table.loc[REAL, "macs_ratio"] == 1.0
    assert table.loc["no pixel-unshuffle", "macs_ratio"] == pytest.approx(1.477, abs=0.002)
    assert table.loc["single scale", "macs_ratio"] == pytest.approx(1.685, abs=0.002)
    assert table.loc["no pixel-unshuffle", "activation_ratio"] > 1.0
    assert table.loc["base", "params"] == 15_614_497


def test_what_each_row_isolates_is_said(counted):
    table = counted.table.set_index("name")
    assert "pixel-unshuffle" in table.loc["no pixel-unshuffle", "isolates"]
    assert "full resolution" in table.loc["single scale", "isolates"]
