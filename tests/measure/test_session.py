"""The one measurement context: threads, backend flags and grad mode restored; Missing paths."""

from __future__ import annotations

import pytest
import torch

from effprof.backends import backend_flags
from effprof.measure.precision import make_inputs
from effprof.measure.session import LatencySpec, measured
from effprof.models.inputs import InputSpec, TensorSpec
from effprof.results import Missing

TOKENS = InputSpec((
    TensorSpec((1, 3, 8, 8)),
    TensorSpec((1, 5), dtype="int64", low=0, high=100, role="tokens", name="ids"),
))  # fmt: skip


def test_the_context_sets_threads_flags_and_inference_mode_and_restores_them():
    before = (torch.get_num_threads(), torch.backends.cudnn.benchmark)
    seen = {}

    def work(session):
        seen["threads"] = torch.get_num_threads()
        seen["inference"] = torch.is_inference_mode_enabled()
        seen["benchmark"] = torch.backends.cudnn.benchmark
        return session.threads

    assert measured(LatencySpec(threads=1), work) == 1
    assert seen == {"threads": 1, "inference": True, "benchmark": True}
    assert (torch.get_num_threads(), torch.backends.cudnn.benchmark) == before
    measured(LatencySpec(threads=1), lambda s: seen.update(grad=torch.is_grad_enabled()),
             grad="no_grad")  # fmt: skip
    assert seen["grad"] is False and not torch.is_inference_mode_enabled()


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB"), "out of memory"),
        (RuntimeError("DefaultCPUAllocator: not enough memory: you tried to allocate"), "out of memory"),
    ],
)  # fmt: skip
def test_out_of_memory_is_missing_and_threads_are_restored(error, reason):
    before = torch.get_num_threads()

    def work(session):
        raise error

    result = measured(LatencySpec(threads=1), work)
    assert isinstance(result, Missing) and result.reason.startswith(reason)
    assert torch.get_num_threads() == before


def test_half_precision_the_cpu_refuses_is_missing_and_other_errors_propagate():
    def refuses(session):
        raise RuntimeError("\"slow_conv2d_cpu\" not implemented for 'Half'")

    result = measured(LatencySpec(precision="fp16"), refuses)
    assert isinstance(result, Missing) and "fp16 inference is not supported" in result.reason
    with pytest.raises(ValueError, match="bug"):
        measured(LatencySpec(), lambda s: (_ for _ in ()).throw(ValueError("bug")))
    assert isinstance(measured(LatencySpec(precision="tf32"), lambda s: 1), Missing)


def test_training_and_measuring_share_one_backend_flag_context():
    from effprof.training.loop import precision_context

    matmul = torch.backends.cuda.matmul
    before = matmul.fp32_precision
    with backend_flags("fp32", "cpu"):
        measuring = matmul.fp32_precision
    with precision_context("fp32", torch.device("cpu")):
        training = matmul.fp32_precision
    with precision_context("tf32", torch.device("cpu")):
        assert matmul.fp32_precision == "tf32"
    assert measuring == training == "ieee"
    assert matmul.fp32_precision == before


def test_inputs_keep_integer_dtypes_and_only_float_images_go_channels_last():
    args, kwargs = make_inputs(TOKENS, "cpu", "bf16", channels_last=True)
    assert args[0].dtype == torch.bfloat16
    assert args[0].is_contiguous(memory_format=torch.channels_last)
    assert kwargs["ids"].dtype == torch.int64 and int(kwargs["ids"].min()) >= 0
    again, _ = make_inputs(TOKENS, "cpu", "fp32", channels_last=False)
    assert torch.equal(again[0].to(torch.bfloat16), args[0])  # seeded: the same values
