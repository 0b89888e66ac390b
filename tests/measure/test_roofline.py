"""Roofline: cached device ceilings, per-layer intensity and bound, the model's floors."""

from __future__ import annotations

import json

import pytest
from torch import nn

from effprof.measure import roofline
from effprof.measure.cache import CacheWarning
from effprof.measure.counting import count_model
from effprof.measure.roofline import Ceilings, device_ceilings, layer_roofline, model_floors
from effprof.results import Missing

CEILINGS = Ceilings(
    device="cpu", device_name="test cpu", precision="fp32", threads=1, torch_version="x",
    matmul_flops_per_s=100e9, conv_flops_per_s=40e9, copy_bytes_per_s=10e9, method="made up", measured_at="now",
)  # fmt: skip


@pytest.fixture
def conv_relu():
    model = nn.Sequential(nn.Conv2d(20, 20, 3, padding=1, bias=False), nn.ReLU()).eval()
    return count_model(model, (1, 20, 256, 256))


def test_conv_intensity_and_bound_by_hand(conv_relu):
    """3x3 conv 20->20 on 1x20x256x256: 2 x 235,929,600 FLOPs; bytes 5,242,880 in + 14,400 weights
    + 5,242,880 out = 10,500,160: 44.94 FLOP/byte, above the ridge of 100e9 / 10e9 = 10."""
    layers = layer_roofline(conv_relu.ops, CEILINGS).set_index("module")
    conv = layers.loc["0"]
    assert conv["flops"] == 471_859_200 and conv["bytes_moved"] == 10_500_160
    assert conv["intensity_flops_per_byte"] == pytest.approx(44.938, abs=1e-3)
    assert conv["bound"] == "compute"
    assert conv["roofline_ms"] == pytest.approx(471_859_200 / 100e9 * 1e3)
    relu = layers.loc["1"]  # 1,310,720 elements read and written: far below the ridge
    assert relu["bound"] == "memory"
    assert relu["roofline_ms"] == pytest.approx(2 * 5_242_880 / 10e9 * 1e3)


def test_half_precision_halves_the_bytes(conv_relu):
    full = layer_roofline(conv_relu.ops, CEILINGS)
    half = layer_roofline(conv_relu.ops, CEILINGS, element_bytes=2)
    assert (half["bytes_moved"] * 2 == full["bytes_moved"]).all()


def test_floors_and_ratios_to_the_measured_latency(conv_relu):
    layers = layer_roofline(conv_relu.ops, CEILINGS)
    floors = model_floors(conv_relu.flops, layers, CEILINGS, latency_ms=20.0)
    compute = conv_relu.flops / 100e9 * 1e3
    assert floors["roofline_compute_floor_ms"] == pytest.approx(compute)
    assert floors["roofline_latency_over_compute_floor"] == pytest.approx(20.0 / compute)
    assert floors["roofline_fraction_of_peak"] == pytest.approx(compute / 20.0)
    assert floors["roofline_floor_ms"] >= max(compute, floors["roofline_memory_floor_ms"]) - 1e-12
    assert floors["roofline_memory_bound_time_basis"].startswith("roofline time")
    assert "roofline_latency_over_floor" not in model_floors(
        conv_relu.flops, layers, CEILINGS, Missing("x")
    )


def test_ceilings_are_measured_once_then_read_from_the_cache(tmp_path, monkeypatch):
    monkeypatch.setitem(roofline.MATMUL_SIDE, "cpu", 128)
    monkeypatch.setitem(roofline.COPY_BYTES, "cpu", 2**20)
    monkeypatch.setitem(roofline.CONV_SHAPE, "cpu", (1, 8, 16, 16))
    missing = device_ceilings("cpu", threads=1, directory=tmp_path)
    assert isinstance(missing, Missing) and "--roofline" in missing.reason
    measured = device_ceilings("cpu", threads=1, measure=True, directory=tmp_path)
    assert isinstance(measured, Ceilings)
    assert measured.matmul_flops_per_s > 1e6 and measured.copy_bytes_per_s > 1e6
    assert measured.peak_flops_per_s == max(measured.matmul_flops_per_s, measured.conv_flops_per_s)
    cached = device_ceilings("cpu", threads=1, directory=tmp_path)
    assert cached == measured
    assert list(json.loads((tmp_path / "ceilings.json").read_text())) == [
        roofline.cache_key("cpu", "fp32", 1)
    ]


def test_a_corrupt_cache_is_ignored(tmp_path):
    (tmp_path / "ceilings.json").write_text("{not json")
    with pytest.warns(CacheWarning, match="ceilings.json' is corrupt"):
        assert isinstance(device_ceilings("cpu", threads=1, directory=tmp_path), Missing)


def test_unsupported_precision_is_missing():
    assert isinstance(roofline.measure_ceilings("cpu", "tf32"), Missing)
