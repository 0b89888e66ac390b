"""Sorting, selection and search: comparisons, charged as a comparison sort or a binary search
would make them, and the distance and spectral ops the same models use."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from effprof.measure.formulas.base import OpCost, aten, numel, register_formula


def _log2_ceil(value: int) -> int:
    return max(1, math.ceil(math.log2(max(int(value), 2))))


def sort_flops(input_shape: Sequence[int], dim_size: int) -> int:
    """Comparisons of a sort along a dimension of ``dim_size``: ``numel x ceil(log2(dim_size))``.

    Sorting each of 4 rows of 1,024: 4,096 x 10 = 40,960 comparisons.

    >>> sort_flops((4, 1024), 1024)
    40960
    """
    return numel(input_shape) * _log2_ceil(dim_size)


def topk_flops(input_shape: Sequence[int], k: int) -> int:
    """Comparisons of a heap selection of the ``k`` largest: ``numel x ceil(log2(k + 1))``.

    The 16 nearest of 4 rows of 1,024 distances: 4,096 x 5 = 20,480 comparisons.

    >>> topk_flops((4, 1024), 16)
    20480
    """
    return numel(input_shape) * _log2_ceil(int(k) + 1)


def search_flops(values_shape: Sequence[int], boundaries: int) -> int:
    """A binary search per value among ``boundaries`` sorted ones (bucketize, searchsorted).

    1,000 values among 15 boundaries: 1,000 x 4 = 4,000 comparisons.

    >>> search_flops((1000,), 15)
    4000
    """
    return numel(values_shape) * _log2_ceil(int(boundaries) + 1)


def _sorted_along(position: int) -> Any:
    def handler(args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> OpCost:
        shape = tuple(args[0].shape)
        dim = kwargs.get("dim", args[position] if len(args) > position else -1)
        size = int(shape[int(dim)]) if shape and isinstance(dim, int) else 1
        return OpCost(flops=sort_flops(shape, size))

    handler.__doc__ = "A sort (or a selection that costs as one) along one dim."
    return handler


register_formula(aten.sort.default, aten.sort.stable, aten.median.dim)(_sorted_along(1))
register_formula(aten.kthvalue.default)(_sorted_along(2))


@register_formula(aten.median.default, aten._unique2.default, aten.unique_dim.default,
                  aten.unique_consecutive.default)  # fmt: skip
def _sort_all(args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> OpCost:
    """A sort of every element (a median of all, unique values)."""
    shape = tuple(args[0].shape)
    return OpCost(flops=sort_flops(shape, numel(shape)))


@register_formula(aten.topk.default)
def _topk(args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> OpCost:
    return OpCost(flops=topk_flops(tuple(args[0].shape), int(args[1])))


@register_formula(aten.bucketize.Tensor)
def _bucketize(args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> OpCost:
    """bucketize(values, boundaries): a binary search per value."""
    return OpCost(flops=search_flops(tuple(out.shape), int(args[1].shape[-1])))


@register_formula(aten.searchsorted.Tensor)
def _searchsorted(args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> OpCost:
    """searchsorted(sorted_sequence, values): a binary search per value."""
    return OpCost(flops=search_flops(tuple(out.shape), int(args[0].shape[-1])))


def distance_flops(pairs: int, width: int) -> int:
    """p-norm distances: per pair and coordinate a subtract, a power (square) and an add, and
    a root per pair. 64 x 64 pairs of 32-wide points: 4,096 x (3 x 32 + 1) = 397,312 FLOPs.

    >>> distance_flops(64 * 64, 32)
    397312
    """
    return pairs * (3 * int(width) + 1)


@register_formula(aten._cdist_forward.default)
def _cdist(args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> OpCost:
    return OpCost(flops=distance_flops(numel(tuple(out.shape)), int(args[0].shape[-1])))


@register_formula(aten._pdist_forward.default)
def _pdist(args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> OpCost:
    return OpCost(flops=distance_flops(numel(tuple(out.shape)), int(args[0].shape[-1])))


@register_formula(aten._embedding_bag_forward_only.default, aten._embedding_bag.default)
def _embedding_bag(args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> OpCost:
    """A bag sum or mean: one add per gathered element (indices x embedding width); max mode
    compares as many."""
    width = int(args[0].shape[-1])
    return OpCost(flops=numel(tuple(args[1].shape)) * width)


def fft_flops(signals: int, length: int, real: bool) -> int:
    """The usual FFT estimate: ``5 n log2 n`` FLOPs per complex transform of length n, half for a
    real one. 32 real signals of 1,024 points: 32 x 2.5 x 1,024 x 10 = 819,200 FLOPs.

    >>> fft_flops(32, 1024, real=True)
    819200
    """
    n = max(int(length), 1)
    per_signal = 5 * n * math.log2(n) if n > 1 else 0
    return int(signals * per_signal / (2 if real else 1))


def _fft(real: bool, length_from_output: bool) -> Any:
    def handler(args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> OpCost:
        # the real side's length: the input of r2c, the output of c2r
        shape = tuple((out if length_from_output else args[0]).shape)
        length = numel([shape[int(d)] for d in args[1]])
        return OpCost(flops=fft_flops(numel(shape) // max(length, 1), length, real))

    handler.__doc__ = "An FFT over the given dims: 5 n log2 n per signal, half when real."
    return handler


register_formula(aten._fft_r2c.default)(_fft(real=True, length_from_output=False))
register_formula(aten._fft_c2r.default)(_fft(real=True, length_from_output=True))
register_formula(aten._fft_c2c.default)(_fft(real=False, length_from_output=False))
