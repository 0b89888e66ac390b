"""Quantisation (LightGaussian, step 4): half-precision casts and ONNX Runtime static INT8.

INT8 follows ONNX Runtime's static recipe: ``quant_pre_process`` (shape inference and graph
optimisation), then ``quantize_static`` in QDQ format with per-channel symmetric int8 weights and
asymmetric uint8 activations (the fast VNNI path on x86), calibrated by min/max over blurry
inputs the caller supplies. The most sensitive convolutions stay in float: sensitivity is
measured in torch by fake-quantising one convolution at a time (its weights per channel and its
input activation per tensor, with the calibration ranges) and measuring how far the model's
output moves from fp32 (:func:`int8_sensitivity`). The exported fp32 ``.onnx`` comes from the
caller (``effprof.measure.onnx`` in the pipeline): compression never exports or times models.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import pandas as pd
import torch
from onnx import helper, numpy_helper
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_static,
)
from onnxruntime.quantization.shape_inference import quant_pre_process
from torch import Tensor, nn

from effprof.files import check_onnx_file
from effprof.results import EffprofError, library_reason

HALF_DTYPES: dict[str, torch.dtype] = {"fp16": torch.float16, "bf16": torch.bfloat16}
_QTYPES = {"int8": QuantType.QInt8, "uint8": QuantType.QUInt8}
_CALIBRATORS = {
    "minmax": CalibrationMethod.MinMax,
    "entropy": CalibrationMethod.Entropy,
    "percentile": CalibrationMethod.Percentile,
}


class CastIO(nn.Module):
    """A model held in ``dtype`` that takes and returns float32 (cast on the way in and out)."""

    def __init__(self, model: nn.Module, dtype: torch.dtype) -> None:
        super().__init__()
        self.model = model
        self.dtype = dtype

    def forward(self, x: Tensor, *args, **kwargs):
        out = self.model(x.to(self.dtype), *args, **kwargs)
        if isinstance(out, (list, tuple)):
            return [o.float() for o in out]
        return out.float()


def cast_model(model: nn.Module, precision: str) -> CastIO:
    """A copy of ``model`` with weights in fp16 or bf16, float32 in and out."""
    if precision not in HALF_DTYPES:
        raise EffprofError(f"unknown half precision {precision!r}; known: {', '.join(HALF_DTYPES)}")
    dtype = HALF_DTYPES[precision]
    return CastIO(copy.deepcopy(model).to(dtype).eval(), dtype)


def half_state_dict(model: nn.Module, precision: str) -> dict[str, Tensor]:
    """The state dict with floating tensors cast to fp16 / bf16 (what a half-precision file holds)."""
    dtype = HALF_DTYPES[precision]
    return {
        k: v.detach().to(dtype) if v.is_floating_point() else v
        for k, v in model.state_dict().items()
    }


# ---- per-layer INT8 sensitivity, measured in torch ------------------------------------------------


def _fake_quant_input(x: Tensor, lo: float, hi: float) -> Tensor:
    """uint8 asymmetric fake quantisation with ORT's MinMax range (always containing 0)."""
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    scale = max((hi - lo) / 255.0, 1e-12)
    zero_point = round(-lo / scale)
    return torch.fake_quantize_per_tensor_affine(x, scale, zero_point, 0, 255)


def _fake_quant_weight(w: Tensor) -> Tensor:
    """Symmetric int8 per-output-channel fake quantisation (ORT's per-channel QDQ weights)."""
    scale = (w.detach().abs().flatten(1).amax(1) / 127.0).clamp_min(1e-12).float()
    zero = torch.zeros(w.shape[0], dtype=torch.int32)
    return torch.fake_quantize_per_channel_affine(w, scale, zero, 0, -127, 127)


def _input_ranges(
    model: nn.Module, convs: dict[str, nn.Conv2d], inputs: Sequence[Tensor]
) -> dict[str, tuple[float, float]]:
    ranges: dict[str, tuple[float, float]] = {}

    def hook(name: str):
        def record(_m, args):
            lo, hi = float(args[0].min()), float(args[0].max())
            old = ranges.get(name, (lo, hi))
            ranges[name] = (min(old[0], lo), max(old[1], hi))

        return record

    handles = [conv.register_forward_pre_hook(hook(name)) for name, conv in convs.items()]
    try:
        with torch.no_grad():
            for x in inputs:
                model(x)  # only the layers the deployed (single-output) graph runs
    finally:
        for h in handles:
            h.remove()
    return ranges


@contextmanager
def _quantised(conv: nn.Conv2d, lo: float, hi: float) -> Iterator[None]:
    original = conv.weight.data.clone()
    conv.weight.data = _fake_quant_weight(original)
    handle = conv.register_forward_pre_hook(
        lambda _m, args: (_fake_quant_input(args[0], lo, hi), *args[1:])
    )
    try:
        yield
    finally:
        handle.remove()
        conv.weight.data = original


def int8_sensitivity(
    model: nn.Module, inputs: Sequence[Tensor], layers: Sequence[str] | None = None
) -> pd.DataFrame:
    """Fidelity of the model's output to fp32 when only one convolution is fake-quantised to INT8.

    Columns: layer, output_mse, fidelity_psnr_db (PSNR of the quantised output against the fp32
    output, peak 1); sorted most sensitive first.
    """
    model = model.eval()
    convs = {n: m for n, m in model.named_modules() if isinstance(m, nn.Conv2d)}
    if layers is not None:
        convs = {n: convs[n] for n in layers}
    ranges = _input_ranges(model, convs, inputs)
    with torch.no_grad():
        reference = [model(x) for x in inputs]
        rows = []
        for name, conv in convs.items():
            if name not in ranges:
                continue
            with _quantised(conv, *ranges[name]):
                mse = float(
                    sum(
                        torch.mean((model(x) - ref) ** 2)
                        for x, ref in zip(inputs, reference, strict=True)
                    )
                )
            mse /= len(inputs)
            rows.append((name, mse, float(10 * np.log10(1.0 / max(mse, 1e-20)))))
    frame = pd.DataFrame(rows, columns=["layer", "output_mse", "fidelity_psnr_db"])
    return frame.sort_values("output_mse", ascending=False, ignore_index=True)


# ---- ONNX Runtime static INT8 --------------------------------------------------------------------


class BlurryInputs(CalibrationDataReader):
    """Feeds the caller's blurry images, one array per call, to ORT's calibrator."""

    def __init__(self, input_name: str, inputs: Sequence[Tensor | np.ndarray]) -> None:
        self.input_name = input_name
        self.inputs = [np.ascontiguousarray(np.asarray(x, dtype=np.float32)) for x in inputs]
        self._next = 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._next >= len(self.inputs):
            return None
        self._next += 1
        return {self.input_name: self.inputs[self._next - 1]}

    def rewind(self) -> None:
        self._next = 0


@dataclass(frozen=True)
class Int8Spec:
    """How to quantise: per-channel weights, types, calibration method, convs kept in float."""

    per_channel: bool = True
    weight_type: str = "int8"
    activation_type: str = "uint8"
    calibrate_method: str = "minmax"
    keep_float: tuple[str, ...] = ()  # torch names of convolutions left in float


@dataclass(frozen=True)
class Int8Result:
    """The INT8 model written, how many Conv nodes it quantised and which it left in float."""

    path: Path
    quantized_convs: int
    float_convs: tuple[str, ...]  # torch names
    file_bytes: int


def _digest(array: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(array, dtype=np.float32).tobytes()).hexdigest()


def conv_node_names(onnx_model: onnx.ModelProto, model: nn.Module) -> dict[str, str]:
    """{torch conv name: ONNX Conv node name}, matched by the weight values (robust to renaming)."""
    by_digest = {
        _digest(m.weight.detach().cpu().numpy()): name
        for name, m in model.named_modules()
        if isinstance(m, nn.Conv2d)
    }
    inits = {i.name: i for i in onnx_model.graph.initializer}
    found = {}
    for node in onnx_model.graph.node:
        if node.op_type == "Conv" and len(node.input) > 1 and node.input[1] in inits:
            weight = onnx.numpy_helper.to_array(inits[node.input[1]])
            name = by_digest.get(_digest(weight))
            if name is not None:
                found[name] = node.name
    return found


def _constant_lookup(graph: onnx.GraphProto):
    """``value(name)``: an initializer's or Constant's array, looking through Identity nodes."""
    inits = {i.name: i for i in graph.initializer}
    producer = {out: node for node in graph.node for out in node.output}

    def value(name: str) -> np.ndarray | None:
        while name in producer and producer[name].op_type == "Identity":
            name = producer[name].input[0]
        if name in inits:
            return numpy_helper.to_array(inits[name])
        if name in producer and producer[name].op_type == "Constant":
            return numpy_helper.to_array(producer[name].attribute[0].t)
        return None

    return value


def prelu_as_leaky_relu(model: onnx.ModelProto) -> int:
    """Rewrite every PRelu with one slope as LeakyRelu(alpha=slope), in place; returns the count.

    The two are the same function, but ONNX Runtime has an INT8 kernel for LeakyRelu and none for
    PRelu: left alone, each of MSSNet's 87 PReLUs would run in float between a DequantizeLinear and
    a QuantizeLinear.
    """
    value = _constant_lookup(model.graph)
    nodes, count = [], 0
    for node in model.graph.node:
        slope = value(node.input[1]) if node.op_type == "PRelu" else None
        if slope is not None and slope.size == 1:
            alpha = float(slope.reshape(-1)[0])
            node = helper.make_node(
                "LeakyRelu", [node.input[0]], list(node.output), name=node.name, alpha=alpha
            )
            count += 1
        nodes.append(node)
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    return count


@contextmanager
def _quiet_ort() -> Iterator[None]:
    """ONNX Runtime's global log level at errors only, back at its default (warnings) after: the
    sessions the quantisation tools open log a line per initializer they drop. The quantiser also
    warns through the root logger (``logging.warning``), which would install a stderr handler
    for good when none exists: a null handler stands in while it runs, warnings are dropped."""
    import onnxruntime as ort

    root = logging.getLogger()
    stand_in, level = logging.NullHandler(), root.level
    root.addHandler(stand_in)
    root.setLevel(logging.ERROR)
    ort.set_default_logger_severity(3)
    try:
        yield
    finally:
        ort.set_default_logger_severity(2)
        root.removeHandler(stand_in)
        root.setLevel(level)


@contextmanager
def _temporaries_in(folder: Path) -> Iterator[None]:
    """``tempfile``'s folder pointed at ``folder`` while ONNX Runtime's quantizer runs: it makes
    its own temporary directory for the augmented calibration model, and TMPDIR (full, or on
    another filesystem) must not decide the run."""
    saved = tempfile.tempdir
    tempfile.tempdir = str(folder)
    try:
        yield
    finally:
        tempfile.tempdir = saved


def quantize_int8(
    fp32_onnx: str | Path,
    out_path: str | Path,
    inputs: Sequence[Tensor | np.ndarray],
    model: nn.Module,
    spec: Int8Spec = Int8Spec(),
) -> Int8Result:
    """Static QDQ INT8 of an fp32 ONNX export of ``model``, calibrated on blurry ``inputs``."""
    fp32_onnx, out_path = Path(fp32_onnx), Path(out_path)
    if not inputs:
        raise EffprofError("INT8 calibration needs at least one blurry input")
    for key, table in (
        ("weight_type", _QTYPES),
        ("activation_type", _QTYPES),
        ("calibrate_method", _CALIBRATORS),
    ):
        if getattr(spec, key) not in table:
            raise EffprofError(f"unknown {key} {getattr(spec, key)!r}; known: {', '.join(table)}")
    check_onnx_file(fp32_onnx)  # a stored export (compress --resume) is read back checked
    out_path.parent.mkdir(parents=True, exist_ok=True)
    # temporaries beside the result, never in TMPDIR; removed whatever happens
    with (
        tempfile.TemporaryDirectory(prefix=".effprof-int8-", dir=out_path.parent) as tmp,
        _quiet_ort(),
        _temporaries_in(Path(tmp)),  # ORT's pre-processing and quantizer make their own there
    ):
        rewritten, prepared = Path(tmp) / "rewritten.onnx", Path(tmp) / "prepared.onnx"
        graph = onnx.load(str(fp32_onnx))
        prelu_as_leaky_relu(graph)
        onnx.save(graph, str(rewritten))
        quant_pre_process(str(rewritten), str(prepared), skip_symbolic_shape=True)
        graph = onnx.load(str(prepared))
        nodes = conv_node_names(graph, model)
        unknown = [n for n in spec.keep_float if n not in nodes]
        if unknown:
            raise EffprofError(
                f"cannot keep {unknown[0]!r} in float: no such convolution in the ONNX graph"
            )
        input_name = graph.graph.input[0].name
        quantize_static(
            str(prepared),
            str(out_path),
            BlurryInputs(input_name, inputs),
            quant_format=QuantFormat.QDQ,
            per_channel=spec.per_channel,
            weight_type=_QTYPES[spec.weight_type],
            activation_type=_QTYPES[spec.activation_type],
            calibrate_method=_CALIBRATORS[spec.calibrate_method],
            nodes_to_exclude=[nodes[n] for n in spec.keep_float],
        )
    return Int8Result(
        out_path,
        _int8_convs(onnx.load(str(out_path))),
        tuple(spec.keep_float),
        out_path.stat().st_size,
    )


class OrtModel(nn.Module):
    """An ONNX Runtime session used like a torch model: ``forward(x)`` runs ``x`` through the
    fixed-shape graph, whole when the graph takes its batch, else one item at a time (a batch-1
    graph given a batch), casting to the graph's input type and back to float32.

    Compression only runs the file it wrote (to score its quality); timing belongs to
    ``effprof.measure.onnx``.
    """

    def __init__(
        self, session, input_name: str, input_dtype: np.dtype, batch: int | None = 1
    ) -> None:
        super().__init__()
        self.session = session
        self.input_name = input_name
        self.input_dtype = input_dtype
        self.batch = batch  # the graph's first dimension (None when it is not a fixed number)

    @classmethod
    def open(cls, path: str | Path, threads: int | None = None) -> OrtModel:
        """A CPU session on the .onnx file at ``path`` (``threads`` intra-op threads)."""
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.log_severity_level = 3
        if threads is not None:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        check_onnx_file(path)
        try:
            session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as err:  # onnxruntime's own error types
            raise EffprofError(
                f"ONNX Runtime cannot load {str(path)!r} ({library_reason(err)})"
            ) from None
        first = session.get_inputs()[0]
        dtype = np.float16 if first.type == "tensor(float16)" else np.float32
        batch = first.shape[0] if first.shape and isinstance(first.shape[0], int) else None
        return cls(session, first.name, np.dtype(dtype), batch)

    def forward(self, x: Tensor) -> Tensor:
        images = x.detach().cpu().numpy().astype(self.input_dtype)
        if self.batch is None or images.ndim == 0 or images.shape[0] == self.batch:
            outputs = [self.session.run(None, {self.input_name: images})[0]]
        else:
            outputs = [
                self.session.run(None, {self.input_name: images[i : i + 1]})[0]
                for i in range(images.shape[0])
            ]
        return torch.from_numpy(np.concatenate(outputs).astype(np.float32)).to(x.device)


def _int8_convs(graph: onnx.ModelProto) -> int:
    """Conv nodes whose weight comes out of a DequantizeLinear (i.e. runs in INT8 under QDQ)."""
    dequantized = {
        out
        for node in graph.graph.node
        if node.op_type == "DequantizeLinear"
        for out in node.output
    }
    return sum(
        1 for node in graph.graph.node if node.op_type == "Conv" and node.input[1] in dequantized
    )
