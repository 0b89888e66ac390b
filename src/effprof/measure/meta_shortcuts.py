"""Meta-device shortcuts: the output of common ops from shapes alone, skipping torch's Python
meta kernels and decompositions (most of a meta count's time), and resizes handed straight to the
counting mode. Each rule returns what the meta kernel would (shape, dtype, layout) or None to let
the real kernel run; they are used on the meta device only, never on fake or real tensors.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode, _disable_current_modes


def _resize_output(args: tuple[Any, ...], kwargs: dict[str, Any]) -> torch.Tensor:
    """The output of a resize on meta, from shapes alone (torch's meta kernel for bilinear
    resizes runs a Python decomposition of dozens of ops: most of a meta count's time)."""
    x = args[0]
    size = args[1] if len(args) > 1 else kwargs.get("output_size")
    if size is not None and len(size) == x.dim() - 2:  # every .default call: the size is given
        spatial = tuple(int(v) for v in size)
    else:  # a .vec call by scale factors (its size computed by torch's own helper)
        from torch._decomp.decompositions import upsample_compute_output_size

        scales = args[3] if len(args) > 3 else kwargs.get("scale_factors")
        if isinstance(scales, (int, float)):
            scales = None
        spatial = upsample_compute_output_size(x.shape, size, scales)
    channels_last = (
        x.dim() == 4
        and x.is_contiguous(memory_format=torch.channels_last)
        and not x.is_contiguous()
    )
    layout = torch.channels_last if channels_last else torch.contiguous_format
    return torch.empty((*x.shape[:2], *spatial), dtype=x.dtype, device="meta", memory_format=layout)


def _elementwise_output(args: tuple[Any, ...], kwargs: dict[str, Any]) -> torch.Tensor | None:
    """The output of a dtype-preserving float op on contiguous tensors of one dtype, from shapes
    (its broadcast shape, contiguous, the same dtype: what the meta kernel gives for such inputs,
    without its Python type-promotion and stride logic); None for anything else."""
    tensors = [a for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor)]
    if not tensors:
        return None
    dtype = tensors[0].dtype
    if not dtype.is_floating_point:
        return None
    for tensor in tensors:
        if tensor.dtype != dtype or not tensor.is_contiguous():
            return None
    shape = torch.broadcast_shapes(*(t.shape for t in tensors))
    return torch.empty(shape, dtype=dtype, device="meta")


def _cat_output(args: tuple[Any, ...], kwargs: dict[str, Any]) -> torch.Tensor | None:
    """``cat`` of contiguous float tensors of one dtype and rank: the shapes joined along
    ``dim``, contiguous (what the meta kernel gives); None for anything else (empty legacy
    1-D tensors, mixed dtypes or layouts)."""
    tensors = args[0] if args else kwargs.get("tensors")
    dim = args[1] if len(args) > 1 else kwargs.get("dim", 0)
    if not tensors or not all(isinstance(t, torch.Tensor) for t in tensors):
        return None
    first = tensors[0]
    if not first.dtype.is_floating_point or first.dim() == 0:
        return None
    dim = dim % first.dim()
    for tensor in tensors:
        if tensor.dtype != first.dtype or tensor.dim() != first.dim() or not tensor.is_contiguous():
            return None
        if any(tensor.shape[i] != first.shape[i] for i in range(first.dim()) if i != dim):
            return None
    shape = list(first.shape)
    shape[dim] = sum(t.shape[dim] for t in tensors)
    return torch.empty(shape, dtype=first.dtype, device="meta")


_FULL = (torch.float32, torch.float64)  # dtypes whose norms and softmax compute in themselves


def _dense_full(x: Any) -> torch.Tensor | None:
    """``x`` when it is a dense float32/64 tensor (any strides), else None."""
    if not isinstance(x, torch.Tensor) or x.dtype not in _FULL or x.layout != torch.strided:
        return None
    return x


def _matmul_output(args: tuple[Any, ...], kwargs: dict[str, Any]) -> torch.Tensor | None:
    """``mm`` / ``bmm`` (and ``addmm`` / ``baddbmm`` with a bias that broadcasts): the product's
    shape, contiguous, as the meta kernel gives for dense float32/64 operands."""
    if kwargs:
        return None
    operands = args[1:3] if len(args) >= 3 else args[:2]
    lhs, rhs = operands if len(operands) == 2 else (None, None)
    if not (isinstance(lhs, torch.Tensor) and isinstance(rhs, torch.Tensor)):
        return None
    if lhs.dtype not in _FULL or rhs.dtype != lhs.dtype or lhs.layout != torch.strided:
        return None  # (any strides: the product is written contiguous)
    if rhs.layout != torch.strided or lhs.dim() != rhs.dim() or lhs.dim() not in (2, 3):
        return None
    if lhs.shape[-1] != rhs.shape[-2] or (lhs.dim() == 3 and lhs.shape[0] != rhs.shape[0]):
        return None
    shape = (*lhs.shape[:-1], rhs.shape[-1])
    if len(args) >= 3:  # the bias of addmm / baddbmm
        bias = args[0]
        if not isinstance(bias, torch.Tensor) or bias.dtype != lhs.dtype:
            return None
        if torch.broadcast_shapes(bias.shape, shape) != torch.Size(shape):
            return None
    return torch.empty(shape, dtype=lhs.dtype, device="meta")


def _layer_norm_output(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """``native_layer_norm``: (output of the input's shape, mean and rstd with the normalised
    dims kept as 1), all contiguous as the kernels write them (a permuted input too)."""
    x = _dense_full(args[0]) if args else None
    if x is None or kwargs or len(args) < 2:
        return None
    axis = x.dim() - len(args[1])
    stats = (*x.shape[:axis], *([1] * len(args[1])))
    empty = torch.empty
    return (empty(x.shape, dtype=x.dtype, device="meta"),
            empty(stats, dtype=x.dtype, device="meta"), empty(stats, dtype=x.dtype, device="meta"))  # fmt: skip


def _softmax_output(args: tuple[Any, ...], kwargs: dict[str, Any]) -> torch.Tensor | None:
    """``_softmax`` / ``_safe_softmax``: the input's shape and dtype, contiguous as the kernels
    write it (no half-to-float)."""
    x = _dense_full(args[0]) if args else None
    if (
        x is None
        or kwargs.get("dtype") is not None
        or (len(args) > 2 and args[2] not in (False, None))
    ):
        return None
    return torch.empty(x.shape, dtype=x.dtype, device="meta")


_aten = torch.ops.aten
ShapeRule = Callable[[tuple[Any, ...], dict[str, Any]], "torch.Tensor | None"]
SHAPE_ONLY: dict[Any, ShapeRule] = {
    op: _resize_output
    for name in ("upsample_bilinear2d", "upsample_nearest2d", "upsample_bicubic2d")
    for op in (getattr(_aten, name).vec, getattr(_aten, name).default)
}
SHAPE_ONLY[_aten.cat.default] = _cat_output
for _op in (_aten.mm.default, _aten.bmm.default, _aten.addmm.default, _aten.baddbmm.default):
    SHAPE_ONLY[_op] = _matmul_output
SHAPE_ONLY[_aten.native_layer_norm.default] = _layer_norm_output
SHAPE_ONLY[_aten._softmax.default] = _softmax_output
SHAPE_ONLY[_aten._safe_softmax.default] = _softmax_output
for _name in [
    "add.Tensor",
    "sub.Tensor",
    "mul.Tensor",
    "div.Tensor",
    "add.Scalar",
    "mul.Scalar",
    "_prelu_kernel.default",
    "relu.default",
    "gelu.default",
    "silu.default",
    "sigmoid.default",
    "tanh.default",
    "leaky_relu.default",
    "hardswish.default",
    "hardsigmoid.default",
    "elu.default",
    "neg.default",
    "exp.default",
    "erf.default",
    "clamp.default",
    "clamp_min.default",
]:
    _packet, _overload = _name.split(".")
    SHAPE_ONLY[getattr(getattr(_aten, _packet), _overload)] = _elementwise_output


_RESIZES = {  # torch._C._nn's .vec function -> the .default overload, takes align_corners
    "upsample_bilinear2d": (_aten.upsample_bilinear2d.default, True),
    "upsample_bicubic2d": (_aten.upsample_bicubic2d.default, True),
    "upsample_nearest2d": (_aten.upsample_nearest2d.default, False),
}
_resize_lock = threading.RLock()  # counts in other threads wait; a nested count does not


@contextlib.contextmanager
def direct_resizes(mode: TorchDispatchMode) -> Iterator[None]:
    """On meta, a resize goes straight to the counting mode as its ``.default`` overload.

    ``F.interpolate`` calls the ``.vec`` overloads through ``torch._C._nn`` (looked up at call
    time). In torch both overloads reach the dispatch mode only through Python decompositions
    that import ``torch._dynamo`` on first use: 1.4 s of a cold ``effprof count``, more than the
    count itself. While counting, those three functions are wrapped: for a 4-D meta tensor, the
    output size is computed as ATen's ``compute_output_size`` does (``int(size * scale)``) and
    the call handed to ``mode`` as the dispatcher would hand it (the ``.default`` overload, its
    scales, the other modes off), so the op counted, its shape and its formula are the same;
    any other call goes to the original."""
    originals = {name: getattr(torch._C._nn, name) for name in _RESIZES}

    def direct(name: str) -> Callable[..., Any]:
        default, corners = _RESIZES[name]
        original = originals[name]

        def call(*args: Any, **kwargs: Any) -> Any:
            if not kwargs and len(args) == (4 if corners else 3):
                x, size, *align, scales = args
                if isinstance(x, torch.Tensor) and x.is_meta and x.dim() == 4:
                    if size is None and scales is not None and len(scales) == 2:
                        size = [int(x.shape[2 + i] * scales[i]) for i in range(2)]
                    if size is not None:
                        scale_h, scale_w = scales if scales is not None else (None, None)
                        call_args = (x, list(size), *align, scale_h, scale_w)
                        with _disable_current_modes():
                            return mode.__torch_dispatch__(default, (), call_args, {})
            return original(*args, **kwargs)

        return call

    with _resize_lock:
        try:
            for name in _RESIZES:
                setattr(torch._C._nn, name, direct(name))
            yield
        finally:
            for name, function in originals.items():
                setattr(torch._C._nn, name, function)
