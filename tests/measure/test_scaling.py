"""Scaling: MSSNet's MACs are a linear law of pixels, and a 3x larger image costs 9x."""

from __future__ import annotations

import pytest
import torch

from effprof.measure.counting import count_model
from effprof.measure.scaling import count_sweep, fit_linear, fit_table, padded, three_x_table
from effprof.models import build_model
from effprof.results import Missing
from effprof.units import parse_resolutions


def test_fit_by_hand():
    fit = fit_linear("y", [1, 2, 3, 4], [3, 5, 7, 9])  # y = 1 + 2 x exactly
    assert (fit.a, fit.b, fit.r2) == pytest.approx((1.0, 2.0, 1.0))
    noisy = fit_linear("y", [0, 1, 2], [0, 2, 1])  # b = 0.5, a = 0.5, R² = 0.25
    assert (noisy.a, noisy.b, noisy.r2) == pytest.approx((0.5, 0.5, 0.25))
    assert isinstance(fit_linear("y", [5], [1]), Missing)


def test_padding_to_the_model_multiple():
    assert padded(1080, 16) == 1088 and padded(720, 16) == 720


@pytest.fixture(scope="module")
def mssnet_sweep():
    with torch.device("meta"):
        model = build_model("mssnet", "small")
    sizes = parse_resolutions("256,512,720p,1080p,4k")
    return model, count_sweep(model, sizes, multiple=16)


def test_mssnet_macs_follow_pixels_with_r2_above_0999(mssnet_sweep):
    _, sweep = mssnet_sweep
    assert list(sweep["resolution"]) == ["256x256", "512x512", "720x1280", "1080x1920", "2160x3840"]
    assert sweep.loc[3, "padded_height"] == 1088
    fits = fit_table(sweep, ["macs", "activation_peak_bytes"]).set_index("quantity")
    assert fits.loc["macs", "r2"] > 0.999
    assert fits.loc["macs", "b"] == pytest.approx(623_328.4375, rel=1e-6)  # MACs per pixel
    assert abs(fits.loc["macs", "a"]) < 1e3  # no fixed cost in a convolutional network


def test_three_times_larger_image_costs_nine_times_and_is_checked(mssnet_sweep):
    model, sweep = mssnet_sweep

    def exact(h, w):
        return {"macs": count_model(model, (1, 3, padded(h, 16), padded(w, 16))).macs}

    table = three_x_table(sweep, ["macs"], (256, 256), multiple=16, exact=exact).iloc[0]
    assert table["larger"] == "768x768" and table["ratio_predicted"] == pytest.approx(9.0)
    assert table["check_source"] == "counted on meta at that size"
    assert abs(table["error"]) < 1e-9
    # 720p -> 4k is exactly 3x per side and in the sweep: checked there, law fitted without it.
    row = three_x_table(sweep, ["macs"], (720, 1280), multiple=16).iloc[0]
    assert row["larger"] == "2160x3840" and "fitted without it" in row["check_source"]
    assert abs(row["error"]) < 1e-6
