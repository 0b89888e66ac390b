"""Pooling and grid sampling: ops whose cost is set by the input elements each window or sample
point actually reads.

A pooling window is clipped to the input: padding and the extra window of ``ceil_mode`` cover
nothing, so they cost nothing (``count_include_pad`` changes only the divisor, not the work).
Windows are separable, so the elements covered by all windows are the product over dimensions of
the per-dimension totals.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from effprof.measure.formulas.base import OpCost, aten, numel, register_formula
from effprof.measure.formulas.core import INTERPOLATE_FLOPS_PER_OUTPUT


def window_coverage(
    in_size: int, out_size: int, kernel: int, stride: int, padding: int = 0, dilation: int = 1
) -> int:
    """Input elements read by all ``out_size`` windows along one dimension, windows clipped to
    the input (padding and ceil-mode overhang read nothing).

    EfficientNet's ``avg_pool2d(kernel=1280, stride=1280, ceil_mode=True)`` on 7 positions: one
    window, 7 elements; a 3-wide, stride-2, padding-1 window on 4 positions: 2 + 3 = 5.

    >>> window_coverage(7, 1, 1280, 1280), window_coverage(4, 2, 3, 2, 1)
    (7, 5)
    """
    span = (kernel - 1) * dilation + 1

    def covered(o: int) -> int:
        start = o * stride - padding
        first = max(0, -(start // dilation)) if start < 0 else 0
        last = min(kernel - 1, (in_size - 1 - start) // dilation) if in_size - 1 >= start else -1
        return max(0, last - first + 1)

    full_lo = -(-padding // stride)  # first window starting inside the input
    full_hi = min(out_size - 1, (in_size - span + padding) // stride) if in_size >= span else -1
    if full_hi < full_lo:
        return sum(covered(o) for o in range(out_size))
    edges = [*range(min(full_lo, out_size)), *range(full_hi + 1, out_size)]
    return (full_hi - full_lo + 1) * kernel + sum(covered(o) for o in edges)


def adaptive_window_total(in_size: int, out_size: int) -> int:
    """Sum of the window lengths adaptive pooling uses along one dim: window i spans
    [floor(i * in / out), ceil((i + 1) * in / out)), which totals ``in + out - gcd(in, out)``
    (8 -> 3: 3 + 4 + 3 = 10).

    >>> adaptive_window_total(8, 3), adaptive_window_total(32, 1), adaptive_window_total(7, 14)
    (10, 32, 14)
    """
    return in_size + out_size - math.gcd(in_size, out_size)


def pool_flops(covered: int, outputs: int, op: str) -> int:
    """Pooling: average = one FLOP per covered element (adds, then one divide per output); max =
    ``covered - 1`` comparisons per output.

    A 2x2 average pool of 1x64x32x32 to 1x64x16x16 covers 65,536 elements: 65,536 FLOPs; max:
    65,536 - 16,384 = 49,152.

    >>> pool_flops(65536, 16384, "avg"), pool_flops(65536, 16384, "max")
    (65536, 49152)
    """
    return covered if op == "avg" else covered - outputs


def _spatial_params(args: tuple[Any, ...], dims: int, dilated: bool) -> list[tuple[int, ...]]:
    """(kernel, stride, padding, dilation) per spatial dim of a pooling call's arguments."""

    def expand(value: Any, default: int) -> list[int]:
        if value is None or (isinstance(value, (list, tuple)) and len(value) == 0):
            return [default] * dims
        values = [int(v) for v in (value if isinstance(value, (list, tuple)) else [value])]
        return values * dims if len(values) == 1 else values

    kernel = expand(args[1], 1)
    stride = expand(args[2] if len(args) > 2 else None, 0)
    stride = [s or k for s, k in zip(stride, kernel, strict=True)]
    padding = expand(args[3] if len(args) > 3 else None, 0)
    dilation = expand(args[4] if dilated and len(args) > 4 else None, 1)
    return list(zip(kernel, stride, padding, dilation, strict=True))


def _windowed(args: tuple[Any, ...], out: Any, dims: int, dilated: bool) -> tuple[int, int]:
    """(covered elements, outputs) of a pooling call over its last ``dims`` dimensions."""
    x = tuple(args[0].shape)
    result = tuple((out[0] if isinstance(out, (tuple, list)) else out).shape)
    per_dim = [
        window_coverage(x[-dims + i], result[-dims + i], *params)
        for i, params in enumerate(_spatial_params(args, dims, dilated))
    ]
    lead = numel(result[:-dims])
    return lead * math.prod(per_dim), numel(result)


def _pool(dims: int, op: str) -> Any:
    dilated = op == "max"

    def handler(args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> OpCost:
        covered, outputs = _windowed(args, out, dims, dilated)
        return OpCost(flops=pool_flops(covered, outputs, op))

    handler.__doc__ = f"{dims}-D {op} pooling over the elements its windows cover."
    return handler


for _dims, _avg, _max in [
    (1, [aten.avg_pool1d], [aten.max_pool1d, aten.max_pool1d_with_indices]),
    (2, [aten.avg_pool2d], [aten.max_pool2d, aten.max_pool2d_with_indices]),
    (3, [aten.avg_pool3d], [aten.max_pool3d, aten.max_pool3d_with_indices]),
]:
    register_formula(*_avg)(_pool(_dims, "avg"))
    register_formula(*_max)(_pool(_dims, "max"))


def _adaptive(op: str) -> Any:
    def handler(args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> OpCost:
        result = tuple((out[0] if isinstance(out, (tuple, list)) else out).shape)
        dims = len(args[1])
        x = tuple(args[0].shape)
        per_dim = [adaptive_window_total(x[-dims + i], result[-dims + i]) for i in range(dims)]
        covered = numel(result[:-dims]) * math.prod(per_dim)
        return OpCost(flops=pool_flops(covered, numel(result), op))

    handler.__doc__ = f"adaptive {op} pooling over the elements its windows cover."
    return handler


register_formula(aten._adaptive_avg_pool2d, aten._adaptive_avg_pool3d, aten.adaptive_avg_pool1d)(
    _adaptive("avg")
)
register_formula(aten.adaptive_max_pool1d, aten.adaptive_max_pool2d, aten.adaptive_max_pool3d)(
    _adaptive("max")
)


GRID_SAMPLE_MODES = ("bilinear", "nearest", "bicubic")  # aten's interpolation_mode 0, 1, 2
GRID_POINT_FLOPS = {
    # Per sampled location, shared by its channels: unnormalise each coordinate (mul + add),
    # then bilinear: floor, fraction and complement per axis (3 each) and 4 corner weights;
    # nearest: a round per axis; bicubic: floor and fraction per axis and 4 cubic-convolution
    # coefficients per axis at 6 FLOPs each.
    "bilinear": 2 * 2 + 2 * 3 + 4,
    "nearest": 2 * 2 + 2,
    "bicubic": 2 * 2 + 2 * 2 + 2 * 4 * 6,
}


def grid_sample_flops(output_shape: Sequence[int], mode: str) -> int:
    """FLOPs of sampling an N x C x H x W output at grid points: per output element as a resize
    of that mode (bilinear 7), plus per sampled location (N x H x W) its coordinates and weights.

    Mask2Former-style sampling of 1x32x8x8 points, bilinear: 2,048 x 7 + 64 x 14 = 15,232 FLOPs.

    >>> grid_sample_flops((1, 32, 8, 8), "bilinear")
    15232
    """
    points = int(output_shape[0]) * numel(output_shape[2:])
    return (
        numel(output_shape) * INTERPOLATE_FLOPS_PER_OUTPUT[mode] + points * GRID_POINT_FLOPS[mode]
    )


@register_formula(aten.grid_sampler_2d.default, aten.grid_sampler_3d.default)
def _grid_sampler(args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> OpCost:
    mode = GRID_SAMPLE_MODES[int(args[2])]
    shape = tuple(out.shape)
    if len(shape) == 5 and mode == "bilinear":  # 3-D "bilinear" is trilinear: 8 corners
        points = shape[0] * numel(shape[2:])
        per_point = 3 * 2 + 3 * 3 + 8 * 2  # unnormalise, floor/fraction/complement, weights
        return OpCost(flops=numel(shape) * INTERPOLATE_FLOPS_PER_OUTPUT["trilinear"]
                      + points * per_point)  # fmt: skip
    return OpCost(flops=grid_sample_flops(shape, mode))


@register_formula(aten.col2im.default)
def _col2im(args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> OpCost:
    """``F.fold``: every column element is added into its place (overlaps sum): 1 per input
    element. Its inverse ``im2col`` (``F.unfold``) only copies."""
    return OpCost(flops=numel(tuple(args[0].shape)))


@register_formula(aten.affine_grid_generator.default)
def _affine_grid(args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> OpCost:
    """Every grid point is ``theta @ (x, y, 1)``: per output coordinate, one MAC per column of
    theta (a 2-D grid: 3 per coordinate, 2 coordinates per point)."""
    macs = numel(tuple(out.shape)) * int(args[0].shape[-1])
    return OpCost(macs, 2 * macs)


ANTIALIAS_INTERP_SIZE = {"bilinear": 2, "bicubic": 4}


def antialias_taps(in_size: int, out_size: int, interp_size: int) -> int:
    """Taps per output of an antialiased resize along one axis, as PyTorch sizes its weights:
    the support widens with the downscale factor, ``ceil(support) x 2 + 1``.

    Bilinear 8 -> 4: support 2, 5 taps; 4 -> 8 (upsampling): support 1, 3 taps.

    >>> antialias_taps(8, 4, 2), antialias_taps(4, 8, 2)
    (5, 3)
    """
    scale = in_size / out_size
    support = interp_size / 2 * scale if scale >= 1.0 else interp_size / 2
    return math.ceil(support) * 2 + 1


def antialias_resize_flops(
    input_shape: Sequence[int], output_shape: Sequence[int], mode: str
) -> int:
    """Two separable passes of weighted sums (a multiply and an add per tap, less one add):
    along W at the input height, then along H at the output size.

    Bilinear 1x3x8x8 -> 1x3x4x4: 3 x 8 x 4 x 9 + 3 x 4 x 4 x 9 = 1,296 FLOPs.

    >>> antialias_resize_flops((1, 3, 8, 8), (1, 3, 4, 4), "bilinear")
    1296
    """
    size = ANTIALIAS_INTERP_SIZE[mode]
    lead = numel(output_shape[:-2])
    (h_in, w_in), (h_out, w_out) = input_shape[-2:], output_shape[-2:]
    taps_w, taps_h = antialias_taps(w_in, w_out, size), antialias_taps(h_in, h_out, size)
    return lead * (h_in * w_out * (2 * taps_w - 1) + h_out * w_out * (2 * taps_h - 1))


def _antialias(mode: str) -> Any:
    def handler(args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> OpCost:
        return OpCost(flops=antialias_resize_flops(tuple(args[0].shape), tuple(out.shape), mode))

    handler.__doc__ = f"Antialiased {mode} resize: two separable passes of weighted sums."
    return handler


register_formula(aten._upsample_bilinear2d_aa)(_antialias("bilinear"))
register_formula(aten._upsample_bicubic2d_aa)(_antialias("bicubic"))
