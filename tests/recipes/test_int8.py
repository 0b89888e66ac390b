"""How much cheaper without training: every profile measures the dense model's ONNX Runtime
INT8 against fp32 (speed, size, fidelity), or says why it did not."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from effprof import schema as names
from effprof.api.profile import profile
from effprof.models import generic_entry, get_entry, load_model
from effprof.models.inputs import image_inputs
from effprof.recipes.profile.int8 import INT8_MAX_MACS, measure_int8
from effprof.runs import read_record

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_classifier() -> nn.Module:
    """conv -> pool -> linear: logits, for the top-1 agreement."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(16, 10),
    )  # fmt: skip


SMALL = image_inputs((1, 3, 16, 16))
CLASSIFIER = generic_entry("tests.recipes.test_int8:tiny_classifier")


@pytest.mark.slow  # 30 s (the export); the report's shared MSSNet profile checks the same numbers
def test_mssnet_int8_is_faster_smaller_and_close_to_fp32():
    torch.manual_seed(0)
    model = load_model("mssnet", "small")
    inputs = image_inputs((1, 3, 32, 32))
    result = measure_int8(model, inputs, 1, get_entry("mssnet"), output_kind="image", threads=1)
    m = result.metrics
    assert m[names.INT8_FILE_BYTES] < m[names.INT8_FP32_FILE_BYTES] / 3  # int8 weights
    assert m[names.INT8_SIZE_X] > 3
    speedup = getattr(m[names.INT8_SPEEDUP], "value", m[names.INT8_SPEEDUP])  # maybe Unreliable
    assert speedup == m[names.INT8_ORT_FP32_LATENCY] / m[names.INT8_ORT_LATENCY]
    assert 10 < m[names.INT8_FIDELITY_PSNR] < 100 and m[names.INT8_REL_L2] < 0.5
    assert "blurry crops of the calibration images" in result.notes[0]
    assert set(result.tables["int8_latency"]["model"]) == {"fp32", "int8"}


class Centred(nn.Module):
    """Logits of the centred pixels: random inputs fall in different classes."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.linear = nn.Linear(3 * 16 * 16, 10)

    def forward(self, x):
        return self.linear((x - 0.5).flatten(1))


def test_a_generic_classifier_gets_snr_and_top1_on_random_inputs():
    result = measure_int8(Centred(), SMALL, 1, CLASSIFIER, output_kind="vector", threads=1)
    m = result.metrics
    assert names.INT8_FIDELITY_PSNR not in m  # logits are not an image
    assert m[names.INT8_SNR] > 10 and 0.5 <= m[names.INT8_TOP1] <= 1
    assert names.INT8_REFERENCE not in m  # classes vary over the 8 inputs scored
    assert "seeded random inputs" in result.notes[0]


def test_skipped_measurements_are_missing_with_the_reason():
    reason = "300 GMAC per forward at 1x3x16x16 is above the 150"
    result = measure_int8(tiny_classifier(), SMALL, int(2 * INT8_MAX_MACS), CLASSIFIER,
                          output_kind="vector", threads=1)  # fmt: skip
    assert reason in result.metrics[names.INT8_SPEEDUP].reason
    assert all(reason in value.reason for value in result.metrics.values())


def test_profile_stores_the_int8_line_and_no_int8_turns_it_off(tmp_path):
    fast = {"input": "1x3x32x32", "repeat": 2, "warmup": 0, "crosscheck": False,
            "optime": False, "threads": 1}  # fmt: skip
    run = profile(model="tests.runs.tiny_models:conv", out=str(tmp_path / "on"), **fast)
    record = read_record(run)
    assert record.metrics[names.INT8_SPEEDUP] > 0 and record.metrics[names.INT8_SNR] > 0
    assert any(note.startswith("int8:") for note in record.notes)
    off = read_record(profile(model="tests.runs.tiny_models:conv", out=str(tmp_path / "off"),
                              int8=False, **fast))  # fmt: skip
    assert "--no-int8" in off.missing[names.INT8_SPEEDUP]


def test_with_onnx_the_model_is_exported_once(tmp_path, monkeypatch):
    import sys

    int8_step = sys.modules["effprof.recipes.profile.int8"]
    onnx_step = sys.modules["effprof.recipes.profile.onnx"]

    calls = []
    real = onnx_step.export_onnx

    def counted(*args, **kwargs):
        calls.append(args[2])
        return real(*args, **kwargs)

    monkeypatch.setattr(onnx_step, "export_onnx", counted)
    monkeypatch.setattr(int8_step, "export_onnx", counted)
    run = profile(model="tests.runs.tiny_models:conv", out=str(tmp_path), input="1x3x32x32",
                  repeat=2, warmup=0, crosscheck=False, optime=False, threads=1, onnx=True)  # fmt: skip
    record = read_record(run)
    assert len(calls) == 1  # INT8 quantised the --onnx export instead of exporting again
    assert record.metrics[names.INT8_SPEEDUP] > 0 and record.metrics["ort_latency_median_ms"] > 0


def test_int8_calibrates_on_blur_only_where_the_task_rule_says_deblurring():
    # sr3x once calibrated on blurry deblurring crops; its task is super-resolution
    from effprof.recipes.profile.int8 import _inputs

    small = image_inputs((1, 3, 16, 16))
    assert get_entry("sr3x").quality_data(small) == "fidelity"
    assert "seeded random inputs" in _inputs(get_entry("sr3x"), small, 1, 0)[1]
    assert "blurry crops" in _inputs(get_entry("mssnet"), small, 1, 0)[1]


def test_top1_against_a_constant_class_is_missing_with_the_reason():
    model = tiny_classifier()
    with torch.no_grad():
        model[-1].bias.copy_(torch.tensor([50.0] + [0.0] * 9))  # every input in class 0
    result = measure_int8(model, SMALL, 1, CLASSIFIER, output_kind="vector", threads=1)
    m = result.metrics
    assert m[names.INT8_TOP1].reason.startswith("the reference puts all 8 rows scored in class 0")
    assert m[names.INT8_REFERENCE] == m[names.INT8_TOP1].reason
    assert "8 other inputs of that kind" in result.notes[0]
