"""The core formulas: convolution, matrix products, pointwise ops, resizes, normalisation,
softmax, reductions, sorting and memory-only ops; and how an aten overload finds its formula."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from effprof.measure.formulas.base import (
    FORMULAS,
    Formula,
    OpCost,
    aten,
    aten_ops,
    numel,
    register_formula,
)


def find_formula(func: Any) -> Formula | None:
    """The handler for an aten overload: its own entry, else its packet's, else the default for
    its PyTorch tag (pointwise, reduction, in-place view) or a pure view; None if uncounted."""
    if func in FORMULAS:
        return FORMULAS.get(func)
    packet = getattr(func, "overloadpacket", None)
    if packet is not None and packet in FORMULAS:
        return FORMULAS.get(packet)
    tags = set(getattr(func, "tags", ()))
    if torch.Tag.inplace_view in tags or _is_pure_view(func):
        return _memory_only
    if torch.Tag.pointwise in tags:
        return _pointwise_default
    if torch.Tag.reduction in tags:
        return _reduction
    return None


def _is_pure_view(func: Any) -> bool:
    """An op whose every output aliases an input without writing it (a view): 0 FLOPs."""
    schema = getattr(func, "_schema", None)
    returns = schema.returns if schema is not None else ()
    return bool(returns) and all(
        r.alias_info is not None and not r.alias_info.is_write for r in returns
    )


# ----------------------------------------------------------------------------- shape functions


def conv_macs(
    input_shape: Sequence[int],
    weight_shape: Sequence[int],
    output_shape: Sequence[int],
    transposed: bool = False,
) -> int:
    """Multiply-accumulates of a (grouped, strided, dilated or transposed) convolution.

    A regular conv does ``N x C_out x prod(out spatial) x (C_in / groups) x prod(kernel)``; a
    transposed conv scatters every *input* position: ``N x C_in x prod(in spatial) x
    (C_out / groups) x prod(kernel)`` (its weight is ``C_in x C_out/groups x k...``). Padding is
    counted as if it were data, as torch.utils.flop_counter does.

    A 3x3 conv, 64->64 channels, on 32x32: 37,748,736 MACs.

    >>> conv_macs((1, 64, 32, 32), (64, 64, 3, 3), (1, 64, 32, 32))
    37748736
    """
    batch = int(input_shape[0])
    spatial = (input_shape if transposed else output_shape)[2:]
    w_out, w_in, *kernel = weight_shape
    return batch * numel(spatial) * numel(kernel) * int(w_out) * int(w_in)


def bias_flops(output_shape: Sequence[int]) -> int:
    """One addition per output element; a conv output of 1x64x32x32: 65,536 bias FLOPs.

    >>> bias_flops((1, 64, 32, 32))
    65536
    """
    return numel(output_shape)


def matmul_macs(lhs_shape: Sequence[int], rhs_shape: Sequence[int]) -> int:
    """MACs of ``lhs @ rhs`` with shared leading batch dims: ``batch x m x k x n``.

    A 128x256 by 256x512 product: 16,777,216 MACs; 4 of them batched (bmm): 67,108,864.

    >>> matmul_macs((128, 256), (256, 512)), matmul_macs((4, 128, 256), (4, 256, 512))
    (16777216, 67108864)
    """
    *batch, m, k = lhs_shape
    n = rhs_shape[-1] if len(rhs_shape) > 1 else 1
    return numel(batch) * int(m) * int(k) * int(n)


def elementwise_flops(output_shape: Sequence[int], flops_per_element: int) -> int:
    """``flops_per_element`` per output element; an add of two 1x64x32x32 tensors: 65,536 FLOPs.

    >>> elementwise_flops((1, 64, 32, 32), 1), elementwise_flops((1, 64, 32, 32), 2)
    (65536, 131072)
    """
    return numel(output_shape) * flops_per_element


INTERPOLATE_FLOPS_PER_OUTPUT: dict[str, int] = {
    # Weighted sum of the neighbours, weights taken as precomputed per row/column:
    "nearest": 0,  # a gather: memory only
    "linear": 3,  # 2 mul + 1 add
    "bilinear": 7,  # 4 mul + 3 add
    "bicubic": 31,  # 16 mul + 15 add
    "trilinear": 15,  # 8 mul + 7 add
}


def interpolate_flops(output_shape: Sequence[int], mode: str) -> int:
    """FLOPs of a resize: ``INTERPOLATE_FLOPS_PER_OUTPUT[mode]`` per output element.

    A bilinear 2x upsampling of 1x64x32x32 to 1x64x64x64: 262,144 outputs x 7 = 1,835,008 FLOPs.

    >>> interpolate_flops((1, 64, 64, 64), "bilinear"), interpolate_flops((1, 64, 64, 64), "nearest")
    (1835008, 0)
    """
    return numel(output_shape) * INTERPOLATE_FLOPS_PER_OUTPUT[mode]


def norm_flops(input_shape: Sequence[int], affine: bool, computes_stats: bool) -> int:
    """Per element: 2 to normalise ((x - mean) * inv_std), 2 for the affine (* gamma + beta), 4 to
    compute the statistics (mean: 1 add; variance: subtract, square, add). Per-channel square
    roots are ignored.

    Eval-mode batch norm with affine on 1x64x32x32: 65,536 x 4 = 262,144 FLOPs; layer norm with
    affine (statistics computed): 65,536 x 8 = 524,288 FLOPs.

    >>> norm_flops((1, 64, 32, 32), True, False), norm_flops((1, 64, 32, 32), True, True)
    (262144, 524288)
    """
    per_element = 2 + (2 if affine else 0) + (4 if computes_stats else 0)
    return numel(input_shape) * per_element


SOFTMAX_FLOPS_PER_ELEMENT = 5  # max (compare), subtract, exp, sum (add), divide


def softmax_flops(input_shape: Sequence[int]) -> int:
    """Five FLOPs per element (compare for the max, subtract, exp, add for the sum, divide).

    >>> softmax_flops((8, 1000))
    40000
    """
    return numel(input_shape) * SOFTMAX_FLOPS_PER_ELEMENT


def reduction_flops(input_shape: Sequence[int]) -> int:
    """One FLOP (add or compare) per input element; a mean over 1x64x32x32: 65,536 FLOPs.

    >>> reduction_flops((1, 64, 32, 32))
    65536
    """
    return numel(input_shape)


# ----------------------------------------------------------------------------- handlers


def _shape(t: Any) -> tuple[int, ...]:
    return tuple(t.shape)


def _first_tensor(out: Any) -> torch.Tensor:
    return out[0] if isinstance(out, (tuple, list)) else out


@register_formula(aten.convolution.default, aten._convolution.default)
def _convolution(args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> OpCost:
    x, w, bias, transposed = args[0], args[1], args[2], bool(args[6])
    macs = conv_macs(_shape(x), _shape(w), _shape(out), transposed)
    return OpCost(macs, 2 * macs, bias_flops(_shape(out)) if bias is not None else 0)


def sparse_matmul_macs(lhs: torch.Tensor, rhs_shape: Sequence[int]) -> int:
    """MACs of ``sparse @ dense``: every stored value of the sparse operand meets a row of the
    dense one, ``nnz x n``. A 1,000 x 1,000 matrix holding 5,000 values times 1,000 x 64:
    320,000 MACs (a dense product would be 64,000,000)."""
    stored = lhs._nnz() if lhs.layout == torch.sparse_coo else lhs.values().numel()
    return int(stored) * (int(rhs_shape[-1]) if len(rhs_shape) > 1 else 1)


def _product_macs(lhs: torch.Tensor, rhs: torch.Tensor) -> int:
    if lhs.layout != torch.strided:
        return sparse_matmul_macs(lhs, _shape(rhs))
    if rhs.layout != torch.strided:  # dense @ sparse: each stored value meets a column of lhs
        return sparse_matmul_macs(rhs, (int(lhs.shape[-2]), 1)) * int(lhs.shape[-2])
    return matmul_macs(_shape(lhs), _shape(rhs))


@register_formula(aten.mm.default, aten.bmm.default, aten._sparse_mm.default)
def _matmul(args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> OpCost:
    macs = _product_macs(args[0], args[1])
    return OpCost(macs, 2 * macs)


@register_formula(aten.addmm.default, aten.baddbmm.default, aten._sparse_addmm.default)
def _matmul_plus_bias(args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> OpCost:
    macs = _product_macs(args[1], args[2])
    return OpCost(macs, 2 * macs, bias_flops(_shape(out)))


@register_formula(aten.addbmm.default)
def _summed_batches(args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> OpCost:
    """``input + sum_b batch1[b] @ batch2[b]``: the batched MACs, the input added once per output."""
    macs = matmul_macs(_shape(args[1]), _shape(args[2]))
    return OpCost(macs, 2 * macs, bias_flops(_shape(out)))


@register_formula(aten.addmv.default, aten.addr.default)
def _vector_plus_bias(args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> OpCost:
    """``input + mat @ vec`` (m x k MACs) or ``input + outer(a, b)`` (m x n MACs)."""
    macs = numel(_shape(args[1])) if args[2].dim() == 1 and args[1].dim() == 2 else 0
    macs = macs or numel(_shape(out))
    return OpCost(macs, 2 * macs, bias_flops(_shape(out)))


@register_formula(aten.mv.default, aten.dot.default)
def _vector_product(args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> OpCost:
    macs = numel(_shape(args[0]))  # m x k for mv, k for dot
    return OpCost(macs, 2 * macs)


def _pointwise(flops_per_element: int) -> Formula:
    def handler(args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> OpCost:
        return OpCost(flops=elementwise_flops(_shape(_first_tensor(out)), flops_per_element))

    handler.__doc__ = f"{flops_per_element} FLOP(s) per output element."
    return handler


POINTWISE_FLOPS_PER_ELEMENT: dict[int, str] = {
    # Transcendentals (exp, erf, tanh, ...) and comparisons count as one FLOP each.
    1: "add add_ sub sub_ rsub mul mul_ div div_ neg abs exp log sqrt rsqrt reciprocal pow "
    "maximum minimum where sign erf tanh sin cos relu relu_ clamp_min clamp_max masked_fill "
    "masked_fill_ "
    "eq ne gt lt ge le",
    # compare + multiply (PReLU, leaky ReLU) or two compares (hardtanh, clamp)
    2: "_prelu_kernel leaky_relu leaky_relu_ hardtanh hardtanh_ clamp clamp_",
    # lerp a + w*(b - a); addcmul a + v*b*c; softplus log(1 + exp(x)); renorm (norm 2, scale 1)
    3: "lerp addcmul addcdiv softplus renorm",
    # sigmoid 1/(1 + exp(-x)): neg, exp, add, div; elu; hardsigmoid (add, 2 compares, div);
    # log-sigmoid -log(1 + exp(-x)); polar (cos, sin, 2 mul); log-cumsum-exp (exp, add, log: 3+1)
    4: "sigmoid sigmoid_ elu hardsigmoid log_sigmoid_forward polar logcumsumexp",
    # silu x*sigmoid(x); gelu 0.5*x*(1 + erf(x/sqrt2)); hardswish
    5: "silu silu_ gelu hardswish hardswish_",
}
for _per_element, _ops in POINTWISE_FLOPS_PER_ELEMENT.items():
    register_formula(*aten_ops(_ops))(_pointwise(_per_element))


def _resize(mode: str) -> Formula:
    def handler(args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> OpCost:
        return OpCost(flops=interpolate_flops(_shape(out), mode))

    handler.__doc__ = (
        f"{mode} resize: {INTERPOLATE_FLOPS_PER_OUTPUT[mode]} FLOPs per output element."
    )
    return handler


RESIZE_OPS: dict[str, str] = {
    "nearest": "upsample_nearest1d upsample_nearest2d upsample_nearest3d _upsample_nearest_exact1d "
    "_upsample_nearest_exact2d _upsample_nearest_exact3d",
    "linear": "upsample_linear1d",
    "bilinear": "upsample_bilinear2d",
    "bicubic": "upsample_bicubic2d",
    "trilinear": "upsample_trilinear3d",
}
for _mode, _ops in RESIZE_OPS.items():
    register_formula(*aten_ops(_ops))(_resize(_mode))


@register_formula(aten.native_batch_norm.default, aten._native_batch_norm_legit.default)
def _batch_norm(args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> OpCost:
    x, weight, training = args[0], args[1], bool(args[5])
    return OpCost(flops=norm_flops(_shape(x), weight is not None, training))


@register_formula(aten._native_batch_norm_legit.no_stats)
def _batch_norm_no_stats(args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> OpCost:
    return OpCost(flops=norm_flops(_shape(args[0]), args[1] is not None, True))


@register_formula(aten._native_batch_norm_legit_no_training.default)
def _batch_norm_eval(args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> OpCost:
    return OpCost(flops=norm_flops(_shape(args[0]), args[1] is not None, False))


@register_formula(aten.native_layer_norm.default)
def _layer_norm(args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> OpCost:
    return OpCost(flops=norm_flops(_shape(args[0]), args[2] is not None, True))


@register_formula(aten.native_group_norm.default)
def _group_norm(args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> OpCost:
    return OpCost(flops=norm_flops(_shape(args[0]), args[1] is not None, True))


@register_formula(aten._softmax, aten._log_softmax, aten._safe_softmax)
def _softmax(args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> OpCost:
    return OpCost(flops=softmax_flops(_shape(args[0])))


@register_formula(aten.sum, aten.mean, aten.amax, aten.amin, aten.prod)
def _reduction(args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> OpCost:
    return OpCost(flops=reduction_flops(_shape(args[0])))


def vector_norm_flops(input_shape: Sequence[int]) -> int:
    """Two FLOPs per input element (square or abs, then add); roots per output are ignored.

    The L2 norm of each row of 64x128: 16,384 FLOPs.

    >>> vector_norm_flops((64, 128))
    16384
    """
    return 2 * numel(input_shape)


@register_formula(aten.linalg_vector_norm.default)
def _vector_norm(args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> OpCost:
    return OpCost(flops=vector_norm_flops(_shape(args[0])))


@register_formula(
    aten.max.dim, aten.max.default, aten.min.dim, aten.min.default, aten.argmax.default,
    aten.argmin.default, aten.cumsum.default, aten.cumprod.default, aten.any.dim,
    aten.any.default, aten.all.dim, aten.all.default, aten.nonzero.default,
)  # fmt: skip
def _compare_reduction(args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> OpCost:
    """One compare (or add / multiply, for cumsum / cumprod) per input element."""
    return OpCost(flops=reduction_flops(_shape(args[0])))


@register_formula(aten.var.correction, aten.std.correction, aten.var_mean.correction)
def _variance(args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> OpCost:
    """Mean (1 add) then subtract, square, add: 4 per input element."""
    return OpCost(flops=4 * numel(_shape(args[0])))


@register_formula(aten.scatter_add.default, aten.scatter_add_.default, aten.index_add.default,
                  aten.index_add_.default, aten.scatter_reduce.two, aten.scatter_reduce_.two)  # fmt: skip
def _scatter_accumulate(args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> OpCost:
    """One add (or reduce) per scattered source element."""
    source = args[3] if len(args) > 3 and isinstance(args[3], torch.Tensor) else args[0]
    return OpCost(flops=numel(_shape(source)))


def _pointwise_default(args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> OpCost:
    """Any op PyTorch tags pointwise without a formula of its own: 1 FLOP per output element."""
    return OpCost(flops=elementwise_flops(_shape(_first_tensor(out)), 1))


MEMORY_ONLY_OPS = (
    # Views, copies, concatenation, padding, (un)shuffles, allocation: 0 FLOPs, bytes still listed.
    "view _unsafe_view _reshape_alias reshape expand permute transpose t unsqueeze squeeze slice "
    "select split split_with_sizes unbind alias detach as_strided unfold clone copy_ _to_copy cat "
    "stack flip roll repeat index index_select gather pixel_shuffle pixel_unshuffle constant_pad_nd "
    "reflection_pad1d reflection_pad2d reflection_pad3d replication_pad1d replication_pad2d "
    "replication_pad3d empty empty_like empty_strided new_empty new_empty_strided zeros zeros_like "
    "new_zeros ones ones_like new_ones full full_like fill_ zero_ lift_fresh lift_fresh_copy "
    "scalar_tensor arange as_strided_ transpose_ t_ squeeze_ unsqueeze_ resize_ detach_ "
    "narrow expand_as view_as index_put index_put_ scatter scatter_ masked_scatter "
    "_unsafe_index split_with_sizes_copy unbind_copy embedding tril triu tril_ triu_ "
    # random fills (dropout masks, MAE's patch shuffle noise): values drawn, no model arithmetic
    "rand rand_like randn randn_like randint randint_like randperm uniform_ normal_ bernoulli_ "
    "bernoulli exponential_ random_ linspace logspace eye "
    # splits, index building, scalar reads and checks, unpooling scatters, patch extraction
    "unsafe_split unsafe_chunk unsafe_split_with_sizes triu_indices tril_indices index_copy "
    "index_copy_ complex _local_scalar_dense _linalg_check_errors max_unpool2d max_unpool3d "
    "masked_select im2col"
)


@register_formula(*aten_ops(MEMORY_ONLY_OPS))
def _memory_only(args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> OpCost:
    """0 FLOPs: the op only moves, aliases or allocates memory."""
    return OpCost()


def is_memory_only(func: Any) -> bool:
    """True when ``func`` is registered as moving or aliasing memory only (0 FLOPs on purpose)."""
    return find_formula(func) is _memory_only
