"""Half precision and ONNX Runtime static INT8: parity with fp32 torch, float layers kept float."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from effprof.compression.quantize import (
    Int8Spec,
    cast_model,
    conv_node_names,
    half_state_dict,
    int8_sensitivity,
    prelu_as_leaky_relu,
    quantize_int8,
)
from effprof.measure.onnx import export_onnx
from effprof.results import EffprofError

SHAPE = (1, 3, 32, 32)
# Random-weight MSSNet predicts a residual of std ~0.7; INT8 keeps it within 10% (relative L2).
INT8_RESIDUAL_TOLERANCE = 0.10


@pytest.fixture(scope="module")
def fp32_onnx(mssnet, tmp_path_factory):
    return export_onnx(mssnet, SHAPE, tmp_path_factory.mktemp("onnx") / "fp32.onnx")


def _run(path, x: torch.Tensor) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]


@pytest.mark.parametrize(("precision", "tolerance"), [("fp16", 2e-2), ("bf16", 1e-1)])
def test_half_precision_copy_stays_close_and_returns_float32(mssnet, precision, tolerance):
    x = torch.rand(SHAPE)
    half = cast_model(mssnet, precision)
    with torch.no_grad():
        out, ref = half(x), mssnet(x)
    assert out.dtype == torch.float32
    assert float((out - ref).abs().max()) < tolerance
    assert next(mssnet.parameters()).dtype == torch.float32  # the original is not cast
    sizes = {k: v.element_size() for k, v in half_state_dict(mssnet, precision).items()}
    assert set(sizes.values()) == {2}


def test_prelu_rewrite_is_exact_in_onnx_runtime(fp32_onnx, tmp_path):
    graph = onnx.load(str(fp32_onnx))
    assert prelu_as_leaky_relu(graph) == 87  # every ResBlock's (shared) PReLU
    assert not [n for n in graph.graph.node if n.op_type == "PRelu"]
    onnx.save(graph, str(tmp_path / "leaky.onnx"))
    x = torch.rand(SHAPE)
    np.testing.assert_array_equal(_run(tmp_path / "leaky.onnx", x), _run(fp32_onnx, x))


def test_int8_matches_fp32_torch_within_tolerance_and_keeps_float_layers(
    mssnet, fp32_onnx, tmp_path
):
    calibration = [torch.rand(SHAPE).numpy() for _ in range(2)]
    keep = ("tail3_3", "fusion23")
    result = quantize_int8(
        fp32_onnx, tmp_path / "int8.onnx", calibration, mssnet, Int8Spec(keep_float=keep)
    )
    assert result.quantized_convs == 236 - len(keep)
    assert result.float_convs == keep
    x = torch.rand(SHAPE)
    with torch.no_grad():
        ref = mssnet(x).numpy()
    out = _run(result.path, x)
    residual = ref - x.numpy()
    assert np.linalg.norm(out - ref) / np.linalg.norm(residual) < INT8_RESIDUAL_TOLERANCE
    graph = onnx.load(str(result.path))
    dequantized = {o for n in graph.graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    names = conv_node_names(onnx.load(str(fp32_onnx)), mssnet)
    by_name = {n.name: n for n in graph.graph.node}
    for layer in keep:  # their weights stay float initializers
        assert by_name[names[layer]].input[1] not in dequantized
    assert result.file_bytes < 0.35 * fp32_onnx.stat().st_size


def test_int8_refuses_unknown_float_layers_and_empty_calibration(mssnet, fp32_onnx, tmp_path):
    with pytest.raises(EffprofError, match="cannot keep 'nope' in float"):
        quantize_int8(
            fp32_onnx,
            tmp_path / "a.onnx",
            [torch.rand(SHAPE).numpy()],
            mssnet,
            Int8Spec(keep_float=("nope",)),
        )
    with pytest.raises(EffprofError, match="at least one blurry input"):
        quantize_int8(fp32_onnx, tmp_path / "b.onnx", [], mssnet)


def test_sensitivity_ranks_layers_by_output_error(mssnet):
    layers = ["tail3_3", "shallow_feat3.0", "E3_3.encoder_level3.0.body.0", "tail3_1"]
    frame = int8_sensitivity(mssnet, [torch.rand(SHAPE)], layers=layers)
    # tail3_1 only feeds an auxiliary output: not part of the deployed graph, so not ranked
    assert list(frame.columns) == ["layer", "output_mse", "fidelity_psnr_db"]
    assert set(frame.layer) == set(layers) - {"tail3_1"}
    assert frame.output_mse.is_monotonic_decreasing
    assert (frame.output_mse > 0).all() and (frame.fidelity_psnr_db > 20).all()
