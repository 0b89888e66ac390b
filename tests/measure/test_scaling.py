"""Scaling laws that refuse nonsense: MSSNet's MACs are linear in pixels, attention's quadratic,
latency needs three sizes and a power law that fits, and no prediction is ever negative."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from effprof.measure.counting import count_model
from effprof.measure.scaling import (
    CountLaw,
    count_sweep,
    crossover,
    fit_counts,
    fit_power,
    fit_table,
    padded,
    three_x_table,
)
from effprof.models import build_model, image_inputs
from effprof.results import Missing
from effprof.units import parse_resolutions


def test_count_law_by_hand():
    law = fit_counts("macs", [100, 200, 400], [10 + 3 * 100 + 0.5e-2 * 100**2,
                                              10 + 3 * 200 + 0.5e-2 * 200**2,
                                              10 + 3 * 400 + 0.5e-2 * 400**2])  # fmt: skip
    assert (law.a, law.b, law.c) == pytest.approx((10.0, 3.0, 0.005), rel=1e-6)
    assert law.passed and law.quadratic
    assert law.exponent(400) == pytest.approx((3 * 400 + 2 * 0.005 * 400**2) / (10 + 1200 + 800))


def test_two_sizes_give_no_law():
    assert isinstance(fit_counts("macs", [1, 2], [1, 2]), Missing)
    missing = fit_power("latency_median_ms", [64**2, 128**2], [5.0, 20.0])
    assert isinstance(missing, Missing) and "3 or more measured sizes" in missing.reason


def test_latency_that_does_not_grow_gives_no_prediction_and_never_a_negative_one():
    # The busy-machine case of the issue: larger images timed faster than smaller ones.
    law = fit_power("latency_median_ms", [4096, 16384, 65536], [3000.0, 2300.0, 2100.0])
    assert not law.passed and "exponent" in law.refusal
    assert isinstance(law.predict(9 * 65536), Missing)
    good = fit_power("latency_median_ms", [4096, 16384, 65536], [10.0, 41.0, 160.0])
    assert good.passed and good.alpha == pytest.approx(1.0, abs=0.02)
    predicted = good.predict(9 * 65536)
    assert isinstance(predicted, float) and predicted > 0
    assert isinstance(good.predict(1e9), Missing)  # far beyond the measured range: refused


def test_a_point_far_off_the_power_law_refuses_it():
    law = fit_power("latency_median_ms", [1e3, 4e3, 1.6e4, 6.4e4], [1.0, 4.0, 40.0, 64.0])
    assert not law.passed and "off the fitted power law" in law.refusal


def test_crossover_where_quadratic_attention_overtakes_linear_work():
    attention = CountLaw("macs_attention", 0, 4, 1 / 32, 4, 0, 1, 1e5)
    other = CountLaw("macs_other", 0, 352, 0, 4, 0, 1, 1e5)
    assert crossover(attention, other) == pytest.approx((352 - 4) * 32)
    assert crossover(other, CountLaw("x", 0, 1000, 0, 4, 0, 1, 1e5)) is None  # never


def test_padding_to_the_model_multiple():
    assert padded(1080, 16) == 1088 and padded(720, 16) == 720


@pytest.fixture(scope="module")
def mssnet_sweep():
    with torch.device("meta"):
        model = build_model("mssnet", "small")
    sizes = parse_resolutions("256,512,720p,1080p,4k")
    return model, count_sweep(model, image_inputs((1, 3, 256, 256)), sizes, multiple=16)


def test_mssnet_macs_are_linear_in_pixels(mssnet_sweep):
    _, sweep = mssnet_sweep
    assert list(sweep["resolution"]) == ["256x256", "512x512", "720x1280", "1080x1920", "2160x3840"]
    assert sweep.loc[3, "padded_height"] == 1088 and sweep.loc[3, "positions"] == 1088 * 1920
    fits = fit_table(sweep).set_index("quantity")
    assert bool(fits.loc["macs", "passed"]) and fits.loc["macs", "max_error"] < 1e-9
    assert fits.loc["macs", "b"] == pytest.approx(623_328.4375, rel=1e-6)  # MACs per pixel
    assert fits.loc["macs", "c"] * 2160 * 3840 < 1e-6 * fits.loc["macs", "b"]  # nothing quadratic
    assert fits.loc["macs_attention", "b"] == 0  # a CNN: no attention


def test_three_times_larger_image_costs_nine_times_and_is_checked(mssnet_sweep):
    model, sweep = mssnet_sweep

    def exact(size):
        return {"macs": count_model(model, (1, 3, padded(size[0], 16), padded(size[1], 16))).macs}

    table = three_x_table(sweep, (256, 256), multiple=16, exact=exact)
    row = table[table["quantity"] == "macs"].iloc[0]
    assert row["larger"] == "768x768" and row["ratio_predicted"] == pytest.approx(9.0)
    assert row["check_source"] == "counted on meta at that size" and abs(row["error"]) < 1e-9
    # 720p -> 4k is exactly 3x per side and in the sweep: checked there, law fitted without it.
    row = three_x_table(sweep, (720, 1280), multiple=16).query("quantity == 'macs'").iloc[0]
    assert row["larger"] == "2160x3840" and "fitted without it" in row["check_source"]
    assert abs(row["error"]) < 1e-6


class GlobalAttention(nn.Module):
    """Patch embedding, then one global self-attention over the patches (quadratic in them)."""

    def __init__(self, width: int = 8, patch: int = 4) -> None:
        super().__init__()
        self.embed = nn.Conv2d(3, width, patch, stride=patch)
        self.qkv = nn.Linear(width, 3 * width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.embed(x).flatten(2).transpose(1, 2)
        q, k, v = self.qkv(tokens).unsqueeze(1).chunk(3, dim=-1)
        return F.scaled_dot_product_attention(q, k, v)


def test_attention_is_fitted_as_the_quadratic_part():
    sweep = count_sweep(
        GlobalAttention(), image_inputs((1, 3, 16, 16)), [(16, 16), (32, 32), (64, 64), (128, 128)]
    )
    fits = fit_table(sweep).set_index("quantity")
    # tokens N = pixels / 16; QK^T and AV: 2 x N^2 x 8 MACs = pixels^2 / 16
    assert fits.loc["macs_attention", "c"] == pytest.approx(1 / 16, rel=1e-6)
    assert fits.loc["macs_other", "c"] == pytest.approx(0, abs=1e-9)
    other = CountLaw("o", *(fits.loc["macs_other", k] for k in ("a", "b", "c")), 4, 0, 1, 1)
    attention = CountLaw("a", *(fits.loc["macs_attention", k] for k in ("a", "b", "c")), 4, 0, 1, 1)
    at = crossover(attention, other)
    assert attention.predict(at) == pytest.approx(other.predict(at), rel=1e-6)
    assert math.isclose(at, other.b / attention.c, rel_tol=1e-6)


def test_a_size_the_model_rejects_is_a_missing_row():
    class FixedSize(nn.Module):
        def forward(self, x):
            if x.shape[-1] != 32:
                raise ValueError("Input image size doesn't match model (32*32)")
            return x * 2

    sweep = count_sweep(FixedSize(), image_inputs((1, 3, 32, 32)), [(32, 32), (64, 64)])
    assert sweep.set_index("resolution").loc["64x64", "count_missing"].startswith("cannot count")
    assert pd.isna(sweep.set_index("resolution").loc["64x64", "macs"])
