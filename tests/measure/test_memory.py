"""Measured peak memory: a child process on cpu, allocator statistics on cuda."""

from __future__ import annotations

import threading

import pytest
import torch
from torch import nn

from effprof.measure.latency import LatencySpec
from effprof.measure.memory import measure_peak_memory
from effprof.results import Missing

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
WIDTH = 32


def conv_net() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, WIDTH, 3, padding=1), nn.ReLU(), nn.Conv2d(WIDTH, 3, 3, padding=1)
    ).eval()


class OutOfMemoryOnForward(nn.Module):
    """Raises the CPU allocator's out-of-memory error (module level, so the child can unpickle it)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("DefaultCPUAllocator: not enough memory: you tried to allocate 1 TB")


class Unpicklable(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1)
        self.lock = threading.Lock()  # no pickler writes a lock, cloudpickle neither

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


def test_cpu_activation_peak_is_positive_and_grows_with_input_size():
    spec = LatencySpec(threads=1)
    small = measure_peak_memory(conv_net(), (1, 3, 64, 64), spec)
    large = measure_peak_memory(conv_net(), (1, 3, 256, 256), spec)
    assert not isinstance(small, Missing) and not isinstance(large, Missing)
    assert small.activation_peak_bytes > 0
    assert large.activation_peak_bytes > 2 * small.activation_peak_bytes
    # the 32-channel fp32 feature map alone is 8 MiB at 256x256: the peak must hold it
    assert large.activation_peak_bytes >= WIDTH * 256 * 256 * 4
    assert large.peak_bytes == large.baseline_bytes + large.activation_peak_bytes
    assert "child process" in large.method
    assert isinstance(large.reserved_peak_bytes, Missing)
    assert set(large.to_frame()["quantity"]) >= {"weights", "peak", "activation_peak"}


def test_mssnet_is_measured_in_a_child_and_left_unchanged():
    from effprof.models import load_model

    model = load_model("mssnet", "small")
    result = measure_peak_memory(model, (1, 3, 64, 64), LatencySpec(threads=1, precision="bf16"))
    assert not isinstance(result, Missing), result
    assert result.weights_bytes == 6_756_161 * 2
    assert result.activation_peak_bytes > 1024**2
    assert next(model.parameters()).dtype == torch.float32


def test_out_of_memory_in_the_child_is_missing():
    result = measure_peak_memory(OutOfMemoryOnForward(), (1, 3, 16, 16), LatencySpec())
    assert isinstance(result, Missing)
    assert result.reason.startswith("out of memory")


def test_unpicklable_model_is_missing_with_a_reason():
    result = measure_peak_memory(Unpicklable().eval(), (1, 3, 16, 16), LatencySpec())
    assert isinstance(result, Missing)
    assert "pickled" in result.reason


def test_a_model_that_does_not_pickle_is_built_in_the_child_from_its_builder():
    result = measure_peak_memory(
        Unpicklable().eval(), (1, 3, 64, 64), LatencySpec(threads=1), rebuild=unpicklable_net
    )
    assert not isinstance(result, Missing), result
    assert result.activation_peak_bytes > 0
    assert any("built the model again" in note for note in result.notes)


def unpicklable_net() -> nn.Module:
    """Module level, so the child can unpickle a reference to it."""
    return Unpicklable()


def test_a_forward_that_fails_only_in_the_child_is_missing_with_its_reason():
    result = measure_peak_memory(
        Unpicklable().eval(), (1, 3, 16, 16), LatencySpec(threads=1), rebuild=failing_net
    )
    assert isinstance(result, Missing)
    assert "measuring child process" in result.reason and "no such layer" in result.reason


class _Failing(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise ValueError("no such layer")


def failing_net() -> nn.Module:
    return _Failing()


@pytest.mark.gpu
@needs_cuda
def test_cuda_peak_allocated_holds_the_activations():
    spec = LatencySpec(device="cuda", precision="fp16")
    result = measure_peak_memory(conv_net(), (1, 3, 512, 512), spec)
    assert not isinstance(result, Missing), result
    assert result.peak_bytes > 0 and result.reserved_peak_bytes >= result.peak_bytes
    assert result.activation_peak_bytes >= WIDTH * 512 * 512 * 2
    assert result.baseline_bytes >= result.weights_bytes
    bigger = measure_peak_memory(conv_net(), (1, 3, 1024, 1024), spec)
    assert bigger.activation_peak_bytes > 3 * result.activation_peak_bytes
