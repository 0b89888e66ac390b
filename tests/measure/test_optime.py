"""Time per op and per category from torch.profiler."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torch import nn
from torch.autograd import DeviceType
from torch.autograd.profiler_util import Interval, Kernel

from effprof.measure.categories import (
    ACTIVATION,
    CATEGORIES,
    CONVOLUTION,
    ELEMENTWISE,
    LAYOUT,
    MATMUL,
    OTHER,
    RESIZE,
)
from effprof.measure.latency import LatencySpec
from effprof.measure.optime import kernel_category, kernel_rows, op_time, tabulate
from effprof.results import Missing

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def conv_heavy(width: int = 32) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, width, 3, padding=1),
        nn.PReLU(),
        nn.Conv2d(width, width, 3, padding=1),
        nn.Upsample(scale_factor=2, mode="bilinear"),
        nn.Conv2d(width, 3, 3, padding=1),
    ).eval()


def test_shares_sum_to_one_and_convolution_dominates_a_conv_heavy_model():
    # 128 channels: the convolutions do ~15x the resize's work, so a share above one half holds
    # even when another process takes the core away for milliseconds during the resize
    result = op_time(conv_heavy(128), (1, 3, 64, 64), LatencySpec(threads=1, warmup=1), runs=3)
    assert not isinstance(result, Missing)
    assert result.categories["share"].sum() == pytest.approx(1.0)
    assert result.ops["share"].sum() == pytest.approx(1.0)
    assert set(CATEGORIES) <= set(result.categories["category"])
    assert result.share(CONVOLUTION) > 0.5
    assert result.share(RESIZE) > 0 and result.share(ACTIVATION) > 0
    assert result.total_ms == pytest.approx(result.ops["time_ms"].sum())
    assert 0 < result.total_ms <= result.wall_ms * 1.05
    conv_calls = result.ops[result.ops["name"] == "aten::conv2d"]["calls"].sum()
    assert conv_calls == 3  # per forward, not summed over the three profiled runs
    summary = result.summary()
    assert summary["time_share_convolution"] == pytest.approx(result.share(CONVOLUTION))


def test_tabulate_keeps_each_ops_fastest_forward_and_every_category():
    def row(name, category, caller, time_us):
        return {"name": name, "category": category, "caller": caller, "time_us": time_us}

    conv = ("aten::mkldnn_convolution", CONVOLUTION, "aten::conv2d")
    add = ("aten::add", ELEMENTWISE, "aten::add")
    first = [row(*conv, 600.0), row(*add, 300.0), row(*add, 100.0)]  # add called twice
    second = [row(*conv, 900.0), row(*add, 50.0), row(*add, 50.0)]  # conv preempted here
    ops, categories = tabulate([first, second])
    by_op = ops.set_index("name")
    # conv keeps 600 us (first forward), add keeps 100 us (second): 0.7 ms per forward
    assert by_op.loc["aten::add", "calls"] == 2 and by_op.loc["aten::add", "time_ms"] == 0.1
    assert by_op.loc["aten::mkldnn_convolution", "share"] == pytest.approx(6 / 7)
    by_name = dict(zip(categories["category"], categories["share"], strict=True))
    assert by_name[CONVOLUTION] == pytest.approx(6 / 7) and by_name[LAYOUT] == 0.0
    assert set(CATEGORIES) <= set(by_name)


@pytest.mark.parametrize(
    ("kernel", "launcher", "category"),
    [
        (
            "void cudnn::ops::nchwToNhwcKernel<__half, __half, float, false, true>(...)",
            "aten::cudnn_convolution",
            LAYOUT,
        ),
        (
            "void cudnn::ops::nhwcToNchwKernel<float, float, float, true, false>(...)",
            "aten::cudnn_convolution",
            LAYOUT,
        ),
        (
            "sm90_xmma_fprop_implicit_gemm_f16f16_f16f32_f32_nhwckrsc_nhwc_tilesize128x128x64",
            "aten::cudnn_convolution",
            CONVOLUTION,
        ),
        (
            "cutlass_80_tensorop_s1688gemm_128x128_32x3_nn_align4",
            "aten::cudnn_convolution",
            CONVOLUTION,
        ),
        ("cutlass_80_tensorop_s1688gemm_128x128_32x3_nn_align4", "aten::mm", MATMUL),
        (
            "void cask_cudnn::computeOffsetsKernel<false, false>(cask_cudnn::ComputeOffsetsParams)",
            None,
            CONVOLUTION,
        ),
        (
            "void at::native::vectorized_elementwise_kernel<4, at::native::CUDAFunctor_add<float>, at::detail::Array<char*, 3> >(int, at::native::CUDAFunctor_add<float>, at::detail::Array<char*, 3>)",
            "aten::add",
            ELEMENTWISE,
        ),
        (
            "void at::native::vectorized_elementwise_kernel<4, at::native::(anonymous namespace)::prelu_kernel(at::TensorIterator&)::{lambda()#1}>",
            "aten::_prelu_kernel",
            ACTIVATION,
        ),
        (
            "void at::native::(anonymous namespace)::upsample_bilinear2d_out_frame<c10::Half, float>(...)",
            "aten::upsample_bilinear2d",
            RESIZE,
        ),
        (
            "void at::native::elementwise_kernel<128, 2, at::native::gpu_kernel_impl_nocast<at::native::direct_copy_kernel_cuda(at::TensorIteratorBase&)>",
            "aten::copy_",
            LAYOUT,
        ),
        (
            "void at::native::(anonymous namespace)::CatArrayBatchedCopy<float, unsigned int, 4, 64, 64>(...)",
            "aten::cat",
            LAYOUT,
        ),
        ("Memcpy DtoD (Device -> Device)", None, LAYOUT),
        ("Memset (Device)", None, OTHER),
    ],
)
def test_gpu_kernel_names_land_in_the_right_category(kernel, launcher, category):
    assert kernel_category(kernel, launcher) == category


def _event(name, device, start, end, parent=None, kernels=(), is_async=False):
    return SimpleNamespace(
        name=name, device_type=device, cpu_parent=parent, kernels=list(kernels),
        is_async=is_async, time_range=Interval(start, end),
    )  # fmt: skip


def test_kernels_take_the_op_torch_linked_them_to_and_unclaimed_ones_still_count():
    # what prof.events() holds after torch parsed a CUDA trace: ops with their kernels attached
    # (by correlation id), the kernel events themselves, and a runtime call that launched nothing
    conv = "sm90_xmma_fprop_implicit_gemm_f16f16_f16f32_f32_nhwckrsc_nhwc"
    transpose = "void cudnn::engines_precompiled::nchwToNhwcKernel<__half, __half, float, false>"
    outer = _event("aten::conv2d", DeviceType.CPU, 0.0, 50.0)
    inner = _event(
        "aten::cudnn_convolution", DeviceType.CPU, 1.0, 40.0, parent=outer,
        kernels=[Kernel(transpose, 0, 3.0), Kernel(conv, 0, 20.5)],
    )  # fmt: skip
    legacy = _event("aten::add", DeviceType.CPU, 60.0, 61.0, kernels=[Kernel("aten::add", 0, 7.0)])
    events = [
        outer,
        inner,
        legacy,  # a per-op CUDA time without a device event: not a kernel
        _event("cudaLaunchKernel", DeviceType.CPU, 2.0, 3.0, parent=inner),
        _event("cudaLaunchKernel", DeviceType.CPU, 0.0, 1.0, is_async=True, kernels=[Kernel(conv, 0, 20.5)]),
        _event(transpose, DeviceType.CUDA, 100.0, 103.0),
        _event(conv, DeviceType.CUDA, 103.5, 124.0),
        _event("Memset (Device)", DeviceType.CUDA, 130.0, 131.25),  # no op launched it
    ]  # fmt: skip
    rows = sorted(kernel_rows(events), key=lambda row: row["time_us"])
    assert rows == [
        {"name": "Memset (Device)", "category": OTHER, "caller": "", "time_us": 1.25},
        {"name": transpose, "category": LAYOUT, "caller": "aten::conv2d", "time_us": 3.0},
        {"name": conv, "category": CONVOLUTION, "caller": "aten::conv2d", "time_us": 20.5},
    ]


@pytest.mark.gpu
@needs_cuda
def test_gpu_kernels_are_attributed_and_layout_transposes_counted():
    from effprof.models import load_model

    model = load_model("mssnet", "small", device="cuda")
    result = op_time(model, (1, 3, 256, 256), LatencySpec("cuda", "fp16"), runs=2)
    assert not isinstance(result, Missing), result
    assert result.categories["share"].sum() == pytest.approx(1.0)
    assert result.share(CONVOLUTION) > 0.2
    assert result.share(OTHER) < 0.1, result.ops[result.ops["category"] == OTHER].head(10)
    assert (
        result.ops["caller"] != ""
    ).mean() > 0.9  # kernels linked to the aten op that launched them
    assert result.timer.endswith("GPU kernel time")
