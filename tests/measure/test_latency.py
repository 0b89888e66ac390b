"""Latency protocol: statistics, restored flags and threads, random inputs, Missing paths, GPU."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from torch import nn

from effprof.measure.latency import (
    TIMER_CPU,
    TIMER_CUDA,
    LatencySpec,
    capture_cuda_graph,
    measure_latency,
    output_pixels,
)
from effprof.measure.precision import backend_flags, num_threads, prepare_model
from effprof.models.inputs import InputSpec, TensorSpec
from effprof.results import EffprofError, Missing

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
SHAPE = (1, 3, 32, 32)


def tiny_cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 3, 3, padding=1)
    ).eval()


class InputRecorder(nn.Module):
    """Keeps the inputs it was called with."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1)
        self.seen: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(x.clone())
        return self.conv(x)


class RaisesOnForward(nn.Module):
    def __init__(self, error: Exception) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1)
        self.error = error

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise self.error


class TwoScales(nn.Module):
    """Returns a half-size and a full-size image when asked for all outputs (like MSSNet)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1)

    def forward(self, x: torch.Tensor, all_outputs: bool = False):
        y = self.conv(x)
        return [y[..., ::2, ::2], y] if all_outputs else y


def test_statistics_are_consistent_and_all_samples_kept():
    result = measure_latency(tiny_cnn(), SHAPE, LatencySpec(warmup=1, repeat=7, threads=1))
    assert not isinstance(result, Missing)
    assert len(result.samples_ms) == result.repeat == 7
    assert all(s > 0 for s in result.samples_ms)
    assert result.p10_ms <= result.median_ms <= result.p90_ms
    assert min(result.samples_ms) <= result.mean_ms <= max(result.samples_ms)
    assert result.cv >= 0
    assert result.timer == TIMER_CPU
    assert result.output_pixels == 32 * 32
    assert result.throughput_mpix_s == pytest.approx(32 * 32 / (result.median_ms / 1e3) / 1e6)
    frame = result.to_frame()
    assert list(frame["latency_ms"]) == list(result.samples_ms)
    assert result.summary()["latency_median_ms"] == result.median_ms


def test_each_result_records_the_hosts_load_and_says_whether_it_is_reliable():
    result = measure_latency(tiny_cnn(), SHAPE, LatencySpec(warmup=1, repeat=5, threads=1))
    summary = result.summary()
    assert result.load is not None and result.load.own_cpu_cores >= 0
    assert summary["latency_reliable"] is result.reliable
    assert (summary["latency_unreliable_reason"] is None) == result.reliable
    assert "latency_load_avg_1min" in summary and "latency_other_cpu_cores" in summary
    assert 0 < summary["latency_cpu_ms"] <= 1.5 * result.mean_ms  # one thread: at most its wall
    spread = replace(result, samples_ms=(10.0, 10.0, 10.0, 30.0, 31.0), load=None)
    assert not spread.reliable and "samples spread" in spread.unreliable_reason


class TokensAndImage(nn.Module):
    """An image plus integer token ids given by keyword (a text-conditioned model in miniature)."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(100, 3)
        self.conv = nn.Conv2d(3, 3, 1)

    def forward(self, x: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        return self.conv(x) + self.embed(ids).mean(1)[:, :, None, None]


def test_several_inputs_with_integer_tensors_are_timed():
    inputs = InputSpec((
        TensorSpec(SHAPE),
        TensorSpec((1, 7), dtype="int64", low=0, high=100, role="tokens", name="ids"),
    ))  # fmt: skip
    result = measure_latency(TokensAndImage().eval(), inputs, LatencySpec(repeat=2, threads=1))
    assert not isinstance(result, Missing)
    assert result.input_shape == SHAPE and "ids 1x7 int64" in result.inputs
    half = measure_latency(TokensAndImage().eval(), inputs, LatencySpec("cpu", "bf16", repeat=1))
    assert isinstance(half, Missing) or half.precision == "bf16"  # token ids stay int64


def test_threads_are_set_during_the_run_and_restored_after():
    before = torch.get_num_threads()
    result = measure_latency(tiny_cnn(), SHAPE, LatencySpec(warmup=0, repeat=2, threads=1))
    assert result.threads == 1
    assert torch.get_num_threads() == before
    with num_threads(1) as used:
        assert used == torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def test_threads_restored_after_a_failing_forward():
    before = torch.get_num_threads()
    with pytest.raises(EffprofError, match="the model failed in its forward"):
        measure_latency(RaisesOnForward(ValueError("bug")), SHAPE, LatencySpec(threads=1))
    assert torch.get_num_threads() == before


def _tf32_state() -> tuple:
    backends = torch.backends
    return (
        backends.cudnn.benchmark,
        backends.cudnn.conv.fp32_precision,
        backends.cuda.matmul.fp32_precision,
    )


@pytest.mark.parametrize("precision", ["fp32", "tf32"])
def test_tf32_and_benchmark_flags_are_set_then_restored(precision):
    before = _tf32_state()
    with backend_flags(precision, "cuda") as notes:
        expected = "tf32" if precision == "tf32" else "ieee"
        assert torch.backends.cudnn.benchmark is True
        assert torch.backends.cudnn.conv.fp32_precision == expected
        assert torch.backends.cuda.matmul.fp32_precision == expected
        assert any("TF32" in note for note in notes)
    assert _tf32_state() == before
    measure_latency(tiny_cnn(), SHAPE, LatencySpec(warmup=0, repeat=1))
    assert _tf32_state() == before


def test_inputs_are_random_not_zeros():
    model = InputRecorder().eval()
    measure_latency(model, SHAPE, LatencySpec(warmup=1, repeat=2))
    x = model.seen[0]
    assert x.shape == SHAPE
    assert x.abs().sum() > 0 and x.std() > 0.1
    assert x.min() >= 0 and x.max() < 1


@pytest.mark.parametrize(
    "error",
    [
        torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB"),
        RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: not enough memory"),
    ],
)
def test_out_of_memory_is_missing_not_an_exception(error):
    result = measure_latency(RaisesOnForward(error), SHAPE, LatencySpec(warmup=1, repeat=2))
    assert isinstance(result, Missing)
    assert result.reason.startswith("out of memory")


def test_other_errors_of_the_forward_are_raised_as_one_line_naming_them():
    with pytest.raises(EffprofError) as error:
        measure_latency(RaisesOnForward(RuntimeError("shape mismatch")), SHAPE, LatencySpec())
    assert str(error.value).startswith(
        "the model failed in its forward (RuntimeError: shape mismatch)"
    )
    assert isinstance(error.value.__cause__, RuntimeError)  # EFFPROF_DEBUG=1 shows where


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the cpu-only answers")
@pytest.mark.parametrize(
    ("spec", "words"),
    [
        (LatencySpec(cuda_graphs=True), "CUDA graphs"),
        (LatencySpec(precision="tf32"), "tf32"),
        (LatencySpec(device="cuda"), "no CUDA device"),
        (LatencySpec(compile=True, cuda_graphs=True), "CUDA graphs"),
    ],
)
def test_cuda_only_options_on_cpu_are_missing_with_a_reason(spec, words):
    result = measure_latency(tiny_cnn(), SHAPE, spec)
    assert isinstance(result, Missing)
    assert words in result.reason


def test_bad_spec_values_are_user_errors():
    with pytest.raises(EffprofError, match="precision"):
        LatencySpec(precision="fp8")
    with pytest.raises(EffprofError, match="repeat"):
        LatencySpec(repeat=0)
    with pytest.raises(EffprofError, match="device"):
        LatencySpec(device="tpu")


def test_the_callers_model_is_not_modified():
    model = tiny_cnn()
    weight = model[0].weight.detach().clone()
    result = measure_latency(
        model, SHAPE, LatencySpec(precision="bf16", channels_last=True, repeat=2)
    )
    assert not isinstance(result, Missing)
    assert model[0].weight.dtype == torch.float32
    assert model[0].weight.is_contiguous()
    assert torch.equal(model[0].weight, weight)
    assert any("bfloat16" in note for note in result.notes)
    prepared, _ = prepare_model(model, "cpu", "fp16", channels_last=False)
    assert prepared is not model and prepared[0].weight.dtype == torch.float16


def test_forward_kwargs_reach_the_model_and_throughput_uses_the_largest_output():
    result = measure_latency(
        TwoScales().eval(), SHAPE, LatencySpec(repeat=2), forward_kwargs={"all_outputs": True}
    )
    assert result.output_pixels == 32 * 32
    assert output_pixels([torch.zeros(2, 3, 8, 8), torch.zeros(2, 3, 16, 16)]) == 2 * 16 * 16
    assert output_pixels(torch.zeros(5)) is None
    assert isinstance(
        measure_latency(nn.Flatten(), SHAPE, LatencySpec(repeat=1)).throughput_mpix_s, Missing
    )


@pytest.mark.slow
def test_torch_compile_reports_compile_time_separately():
    result = measure_latency(tiny_cnn(), SHAPE, LatencySpec(compile=True, warmup=1, repeat=3))
    if isinstance(result, Missing):
        pytest.skip(result.reason)
    assert result.compiled and result.compile_s > 0
    assert result.compile_s * 1e3 > result.median_ms


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("precision", ["fp32", "tf32", "fp16", "bf16"])
def test_gpu_latency_uses_cuda_events(precision):
    result = measure_latency(tiny_cnn(), (1, 3, 128, 128), LatencySpec("cuda", precision, repeat=5))
    assert not isinstance(result, Missing), result
    assert result.timer == TIMER_CUDA
    assert result.device_name == torch.cuda.get_device_name()
    assert 0 < result.p10_ms <= result.median_ms <= result.p90_ms


@pytest.mark.gpu
@needs_cuda
def test_cuda_graph_replay_equals_eager_output():
    from effprof.models import load_model

    model = load_model("mssnet", "small", device="cuda")
    x = torch.rand(1, 3, 64, 64, device="cuda")
    with torch.inference_mode():
        replay, static_out, _ = capture_cuda_graph(lambda: model(x), warmup=2)
        x.copy_(torch.rand_like(x))  # new values in the captured input's storage
        replayed = replay()
        assert replayed is static_out
        replayed = replayed.clone()
        expected = model(x)
    assert torch.allclose(replayed, expected, rtol=1e-4, atol=1e-4)
    result = measure_latency(model, (1, 3, 64, 64), LatencySpec("cuda", "fp16", cuda_graphs=True))
    assert not isinstance(result, Missing), result
    assert result.cuda_graphs and any("CUDA graph" in n for n in result.notes)


@pytest.mark.gpu
@needs_cuda
def test_fp16_output_is_close_to_fp32():
    from effprof.models import load_model

    model = load_model("mssnet", "small", device="cuda")
    x = torch.rand(1, 3, 64, 64, device="cuda")
    half, _ = prepare_model(model, "cuda", "fp16", channels_last=True)
    with torch.inference_mode():
        reference = model(x)
        approx = half(x.half().contiguous(memory_format=torch.channels_last)).float()
    rel_l2 = (approx - reference).norm() / reference.norm()
    assert rel_l2 < 1e-2
    assert next(model.parameters()).dtype == torch.float32
