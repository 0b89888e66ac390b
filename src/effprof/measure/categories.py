"""Op categories shared by counting (aten ops) and timing (torch.profiler events).

One table decides where an op's cost is attributed, so that "MACs by category" and "time by
category" in a report line up. Names are aten overload packets without the ``aten::`` prefix.
"""

from __future__ import annotations

CONVOLUTION = "convolution"
MATMUL = "linear/matmul"
ATTENTION = "attention"
ELEMENTWISE = "elementwise"
ACTIVATION = "activation"
RESIZE = "resampling"
NORMALIZATION = "normalization"
LAYOUT = "data movement"
REDUCTION = "reduction"
OTHER = "other"

CATEGORIES = (
    CONVOLUTION,
    MATMUL,
    ATTENTION,
    ELEMENTWISE,
    ACTIVATION,
    RESIZE,
    NORMALIZATION,
    LAYOUT,
    REDUCTION,
    OTHER,
)

_BY_NAME: dict[str, str] = {}
for _category, _names in {
    CONVOLUTION: "convolution _convolution conv2d conv1d conv3d cudnn_convolution mkldnn_convolution "
    "convolution_overrideable _nnpack_spatial_convolution slow_conv2d conv_transpose2d "
    "cudnn_convolution_transpose _slow_conv2d_forward thnn_conv2d",
    MATMUL: "mm addmm bmm baddbmm matmul linear _scaled_mm einsum mv dot addbmm addmv addr _sparse_mm _sparse_addmm",
    ATTENTION: "scaled_dot_product_attention _scaled_dot_product_flash_attention_for_cpu "
    "_scaled_dot_product_flash_attention _scaled_dot_product_efficient_attention "
    "_scaled_dot_product_cudnn_attention _scaled_dot_product_attention_math _flash_attention_forward "
    "_efficient_attention_forward",
    ELEMENTWISE: "_fft_r2c _fft_c2r _fft_c2c renorm log_sigmoid_forward polar add add_ sub sub_ mul mul_ div div_ neg abs exp log sqrt rsqrt pow clamp clamp_ "
    "where copysign maximum minimum fill_ zero_ lerp addcmul addcdiv reciprocal sign rsub erf sin cos clamp_min clamp_max masked_fill masked_fill_ eq ne gt lt ge le scatter_add scatter_add_ "
    "index_add index_add_ scatter_reduce scatter_reduce_",
    ACTIVATION: "prelu _prelu_kernel relu relu_ gelu silu sigmoid tanh leaky_relu hardswish "
    "hardsigmoid elu softmax _softmax log_softmax leaky_relu_ hardtanh hardtanh_ softplus sigmoid_ silu_ hardswish_ _log_softmax _safe_softmax",
    RESIZE: "upsample_bilinear2d upsample_nearest2d upsample_bicubic2d _upsample_bilinear2d_aa "
    "grid_sampler_2d interpolate avg_pool2d max_pool2d adaptive_avg_pool2d max_pool2d_with_indices upsample_nearest1d upsample_nearest3d _upsample_nearest_exact1d _upsample_nearest_exact2d _upsample_nearest_exact3d upsample_linear1d upsample_trilinear3d _adaptive_avg_pool2d "
    "grid_sampler_3d avg_pool1d avg_pool3d max_pool1d max_pool3d max_pool1d_with_indices "
    "max_pool3d_with_indices _adaptive_avg_pool3d adaptive_avg_pool1d adaptive_max_pool1d "
    "adaptive_max_pool2d adaptive_max_pool3d _upsample_bicubic2d_aa affine_grid_generator col2im",
    NORMALIZATION: "native_batch_norm _native_batch_norm_legit_no_training batch_norm "
    "native_layer_norm layer_norm native_group_norm group_norm instance_norm cudnn_batch_norm _native_batch_norm_legit",
    LAYOUT: "cat stack pixel_shuffle pixel_unshuffle copy_ _to_copy clone contiguous permute "
    "transpose view _unsafe_view reshape expand slice select pad constant_pad_nd reflection_pad2d "
    "replication_pad2d split split_with_sizes unsqueeze squeeze t detach alias as_strided "
    "empty_like empty new_empty narrow flip roll index_select index chunk _reshape_alias unbind unfold repeat gather reflection_pad1d reflection_pad3d replication_pad1d replication_pad3d empty_strided zeros ones full zeros_like ones_like full_like new_zeros new_ones new_full lift_fresh lift_fresh_copy scalar_tensor arange tril triu tril_ triu_ new_empty_strided "
    "as_strided_ transpose_ t_ squeeze_ unsqueeze_ resize_ detach_ expand_as view_as index_put "
    "index_put_ scatter scatter_ masked_scatter _unsafe_index split_with_sizes_copy unbind_copy "
    "embedding rand rand_like randn randn_like randint randint_like randperm uniform_ normal_ "
    "bernoulli_ bernoulli exponential_ random_ linspace logspace eye "
    "unsafe_split unsafe_chunk unsafe_split_with_sizes triu_indices tril_indices index_copy "
    "index_copy_ complex _local_scalar_dense _linalg_check_errors max_unpool2d max_unpool3d "
    "masked_select im2col",
    REDUCTION: "sum mean amax amin max min var std norm linalg_vector_norm prod cumsum cumprod "
    "sort topk argsort argmax argmin any all var_mean median kthvalue _unique2 unique_dim "
    "unique_consecutive bucketize searchsorted nonzero _cdist_forward _pdist_forward "
    "_embedding_bag _embedding_bag_forward_only logcumsumexp",
}.items():
    for _name in _names.split():
        _BY_NAME[_name] = _category


def op_category(name: str, tags: object = ()) -> str:
    """Category of an op name such as ``aten::convolution``, ``aten.add.Tensor`` or ``add_``;
    ``tags`` (PyTorch's op tags) place ops the table does not name: pointwise -> elementwise,
    reduction -> reduction, in-place view -> layout.

    >>> op_category("aten::upsample_bilinear2d"), op_category("aten.convolution.default")
    ('resampling', 'convolution')
    """
    base = name.split("::")[-1]
    for prefix in ("aten.", "effprof."):  # effprof.scaled_dot_product_attention: a fused region
        base = base.removeprefix(prefix)
    base = base.split(".")[0]
    if base in _BY_NAME:
        return _BY_NAME[base]
    tag_names = {str(t).rsplit(".", 1)[-1] for t in (tags or ())}  # Tag.pointwise -> pointwise
    if "inplace_view" in tag_names:
        return LAYOUT
    if "pointwise" in tag_names:
        return ELEMENTWISE
    if "reduction" in tag_names:
        return REDUCTION
    # cuDNN / oneDNN / cuBLAS kernel names seen in profiler traces.
    lowered = base.lower()
    if "conv" in lowered or "winograd" in lowered or "implicit_gemm" in lowered:
        return CONVOLUTION
    if "gemm" in lowered or "matmul" in lowered:
        return MATMUL
    return OTHER
