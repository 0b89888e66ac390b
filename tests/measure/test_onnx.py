"""ONNX export of MSSNet, ONNX Runtime latency and parity with torch."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
import torch

from effprof.measure.latency import TIMER_ORT, LatencyResult
from effprof.measure.onnx import export_onnx, onnx_parity, ort_latency
from effprof.models.inputs import InputSpec, TensorSpec
from effprof.results import EffprofError

SHAPE = (1, 3, 64, 64)


@pytest.fixture(scope="module")
def mssnet_small():
    from effprof.models import load_model

    return load_model("mssnet", "small")


@pytest.fixture(scope="module")
def exported(mssnet_small, tmp_path_factory) -> Path:
    return export_onnx(mssnet_small, SHAPE, tmp_path_factory.mktemp("onnx") / "mssnet-small.onnx")


def test_export_is_one_self_contained_file_with_fixed_shape(exported):
    assert exported.is_file() and not Path(str(exported) + ".data").exists()
    graph = onnx.load(str(exported)).graph
    assert [i.name for i in graph.input] == ["input"]
    dims = [d.dim_value for d in graph.input[0].type.tensor_type.shape.dim]
    assert dims == list(SHAPE)
    # 6,756,161 fp32 parameters are stored inside the file
    assert exported.stat().st_size > 6_756_161 * 4


def test_onnx_runtime_matches_torch(mssnet_small, exported):
    x = torch.rand(SHAPE, generator=torch.Generator().manual_seed(1))
    parity = onnx_parity(mssnet_small, exported, x)
    assert parity.output_shape == SHAPE
    assert parity.max_abs_error < 1e-4
    assert parity.max_rel_error < 1e-4 and parity.rel_l2_error < 1e-5


def test_ort_latency_follows_the_protocol(exported):
    result = ort_latency(exported, SHAPE, threads=1, warmup=1, repeat=3)
    assert isinstance(result, LatencyResult)
    assert result.timer == TIMER_ORT
    assert len(result.samples_ms) == 3 and result.threads == 1
    assert result.p10_ms <= result.median_ms <= result.p90_ms
    assert result.output_pixels == 64 * 64
    assert result.precision == "fp32"
    assert any("CPUExecutionProvider" in note for note in result.notes)


def test_missing_onnx_file_is_a_user_error(tmp_path):
    with pytest.raises(EffprofError, match="does not exist"):
        ort_latency(tmp_path / "nope.onnx", SHAPE, threads=1, warmup=0, repeat=1)


class ImageAndTokens(torch.nn.Module):
    """An image and integer token ids (by keyword): two inputs, one of them int64."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = torch.nn.Embedding(50, 3)
        self.conv = torch.nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        return self.conv(x) * self.embed(ids).mean(1)[:, :, None, None]


def test_several_inputs_with_integer_dtypes_export_time_and_match(tmp_path):
    inputs = InputSpec((
        TensorSpec((1, 3, 16, 16)),
        TensorSpec((1, 4), dtype="int64", low=0, high=50, role="tokens", name="ids"),
    ))  # fmt: skip
    model = ImageAndTokens().eval()
    path = export_onnx(model, inputs, tmp_path / "two.onnx")
    graph = onnx.load(str(path)).graph
    assert [i.name for i in graph.input] == ["input", "ids"]
    assert graph.input[1].type.tensor_type.elem_type == onnx.TensorProto.INT64
    result = ort_latency(path, inputs, threads=1, warmup=1, repeat=2)
    assert isinstance(result, LatencyResult) and result.output_pixels == 16 * 16
    assert "ids int64" in result.notes[-1] and result.load is not None
    parity = onnx_parity(model, path, inputs)
    assert parity.output_shape == (1, 3, 16, 16) and parity.rel_l2_error < 1e-5
