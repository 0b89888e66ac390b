"""Pooling and grid sampling: the elements each window or sample point actually reads, checked
against PyTorch's own kernels (a sum pool of ones counts the covered elements) and hand counts."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from effprof.measure.counting import count_model
from effprof.measure.formulas.windows import (
    adaptive_window_total,
    grid_sample_flops,
    window_coverage,
)


class _Call(nn.Module):
    def __init__(self, fn) -> None:  # type: ignore[no-untyped-def]
        super().__init__()
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.fn(x)
        return out[0] if isinstance(out, tuple) else out


def test_efficientnet_pool_larger_than_its_input_is_charged_what_it_reads() -> None:
    # transformers' EfficientNet: avg_pool2d(kernel=1280, stride=1280, ceil_mode=True) on 7x7
    model = _Call(lambda x: F.avg_pool2d(x, 1280, 1280, ceil_mode=True))
    result = count_model(model, (1, 1280, 7, 7))
    assert result.output_shapes == ((1, 1280, 1, 1),)
    assert result.flops == 62_720  # 1280 channels x 49 elements, not 1280 x 1280^2
    assert result.complete


def _covered_by_torch(size: int, kernel: int, stride: int, padding: int, ceil: bool) -> int:
    """Elements read by every window of a 1-D average pool: a sum pool of ones."""
    ones = torch.ones(1, 1, 1, size)
    sums = F.avg_pool2d(ones, (1, kernel), (1, stride), (0, padding), ceil, divisor_override=1)
    return int(sums.sum())


CONFIGS = [
    (size, kernel, stride, padding, ceil)
    for size, kernel, stride, ceil in itertools.product((1, 4, 7, 13), (1, 2, 3, 5), (1, 2, 3), (False, True))
    for padding in range(kernel // 2 + 1)
    if (size + 2 * padding - kernel) // stride + 1 >= 1
]  # fmt: skip


@pytest.mark.parametrize(("size", "kernel", "stride", "padding", "ceil"), CONFIGS)
def test_window_coverage_equals_what_torch_sums(
    size: int, kernel: int, stride: int, padding: int, ceil: bool
) -> None:
    out = F.avg_pool1d(torch.ones(1, 1, size), kernel, stride, padding, ceil_mode=ceil).shape[-1]
    expected = _covered_by_torch(size, kernel, stride, padding, ceil)
    assert window_coverage(size, out, kernel, stride, padding) == expected


@pytest.mark.parametrize(
    ("size", "kernel", "dilation", "padding"), [(9, 3, 2, 1), (12, 2, 3, 1), (7, 3, 3, 0)]
)
def test_dilated_max_pool_coverage_equals_a_count_of_real_positions(
    size: int, kernel: int, dilation: int, padding: int
) -> None:
    out = F.max_pool1d(torch.zeros(1, 1, size), kernel, 1, padding, dilation).shape[-1]
    real = sum(0 <= o - padding + j * dilation < size for o in range(out) for j in range(kernel))
    assert window_coverage(size, out, kernel, 1, padding, dilation) == real


def test_avg_pool_with_and_without_count_include_pad_does_the_same_work() -> None:
    # 3x3 stride 1 pad 1 on 4x4: per dim 2+3+3+2 = 10 elements, 100 per channel; only the
    # divisor differs (PoolFormer pools with count_include_pad=False)
    for include in (True, False):
        model = nn.AvgPool2d(3, 1, 1, count_include_pad=include)
        assert count_model(model, (1, 2, 4, 4)).flops == 2 * 100


def test_max_pool_costs_covered_minus_one_compare_per_output() -> None:
    # 3x3 stride 2 pad 1 on 5x5 -> 3x3: per dim 2 + 3 + 2 = 7 covered, 49 per channel
    result = count_model(nn.MaxPool2d(3, 2, 1), (1, 4, 5, 5))
    assert result.flops == 4 * (49 - 9)


@pytest.mark.parametrize(
    ("module", "shape", "flops"),
    [
        (nn.AdaptiveAvgPool2d((3, 5)), (1, 2, 8, 7), 2 * (8 + 3 - 1) * (7 + 5 - 1)),
        (nn.AdaptiveMaxPool2d(3), (1, 2, 8, 8), 2 * (10 * 10 - 9)),
        (nn.AvgPool3d(2), (1, 1, 4, 4, 4), 64),
        (nn.MaxPool1d(2), (1, 3, 8), 3 * (8 - 4)),
        (nn.AvgPool1d(3, 2, 1), (1, 1, 8), 2 + 3 + 3 + 3),
    ],
)
def test_other_pools_count_their_windows(
    module: nn.Module, shape: tuple[int, ...], flops: int
) -> None:
    result = count_model(module, shape)
    assert result.complete, result.uncounted
    assert result.flops == flops


def test_adaptive_window_totals_equal_torch_windows() -> None:
    for size, out in itertools.product(range(1, 12), range(1, 12)):
        sums = F.adaptive_avg_pool1d(torch.ones(1, 1, size), out)
        starts = [(i * size) // out for i in range(out)]
        ends = [-(-(i + 1) * size // out) for i in range(out)]
        assert adaptive_window_total(size, out) == sum(
            e - s for s, e in zip(starts, ends, strict=True)
        )
        assert sums.shape[-1] == out


def test_grid_sample_is_a_bilinear_resize_plus_its_coordinates() -> None:
    grid = torch.zeros(1, 5, 6, 2)
    model = _Call(lambda x: F.grid_sample(x, grid.to(x.device), align_corners=False))
    result = count_model(model, (1, 4, 8, 8))
    assert result.complete
    sample = result.ops[result.ops["op"] == "aten.grid_sampler_2d.default"]
    assert sample["flops"].tolist() == [4 * 30 * 7 + 30 * 14]  # 7 per output + 14 per point
    assert grid_sample_flops((1, 4, 5, 6), "bilinear") == 1260
    assert sample["category"].tolist() == ["resampling"]
