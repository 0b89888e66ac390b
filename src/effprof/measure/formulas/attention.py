"""Fused attention kernels (flash, memory-efficient, cuDNN, the CPU flash kernel): one formula that
gives what their math decomposition costs on the meta device, op for op.

On meta, ``scaled_dot_product_attention`` runs PyTorch's math path: Q and K each scaled by
sqrt(scale) (1 FLOP per element), ``QK^T``, the mask added (a boolean mask first turned into
additive form: 1 FLOP per mask element; a causal mask built as an L x S boolean), softmax (5 per
score), then ``AV``. Fake and real CPU tensors reach a fused kernel instead; charging it the same
keeps a count independent of where it ran.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from effprof.measure.formulas.base import OpCost, aten, numel, register_formula
from effprof.measure.formulas.core import SOFTMAX_FLOPS_PER_ELEMENT


def attention_macs(query: Sequence[int], key: Sequence[int], value: Sequence[int]) -> int:
    """``QK^T`` and ``AV``: batch x heads x L x S x (E + Ev).

    12 heads of 128 tokens, 64 wide: 12 x 128 x 128 x 128 = 25,165,824 MACs.

    >>> attention_macs((1, 12, 128, 64), (1, 12, 128, 64), (1, 12, 128, 64))
    25165824
    """
    heads, length, width = numel(query[:-2]), int(query[-2]), int(query[-1])
    return heads * length * int(key[-2]) * (width + int(value[-1]))


def attention_extra_flops(
    query: Sequence[int],
    key: Sequence[int],
    mask: Sequence[int] | None,
    mask_is_bool: bool,
    is_causal: bool,
) -> int:
    """FLOPs beside the MACs, as the math path does them: scale Q and K (1 per element; K counted
    at Q's head count, as grouped-query attention repeats it), softmax (5 per score), add a mask
    (1 per score, plus 1 per element to make a boolean mask additive), causal (both).

    The 12-head example above, no mask: 2 x 98,304 + 5 x 196,608 = 1,179,648 FLOPs.

    >>> attention_extra_flops((1, 12, 128, 64), (1, 12, 128, 64), None, False, False)
    1179648
    """
    heads, length, span = numel(query[:-2]), int(query[-2]), int(key[-2])
    scores = heads * length * span
    flops = numel(query) + heads * span * int(key[-1]) + SOFTMAX_FLOPS_PER_ELEMENT * scores
    if mask is not None:
        flops += scores + (numel(mask) if mask_is_bool else 0)
    if is_causal:
        flops += scores + length * span
    return flops


def _fused(mask_at: int | None, causal_at: int) -> Any:
    def handler(args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> OpCost:
        q, k, v = (tuple(t.shape) for t in args[:3])
        mask = kwargs.get("attn_mask") if mask_at is None else _arg(args, mask_at, None)
        causal = bool(_arg(args, causal_at, kwargs.get("is_causal", False)))
        is_bool = isinstance(mask, torch.Tensor) and mask.dtype == torch.bool
        shape = tuple(mask.shape) if isinstance(mask, torch.Tensor) else None
        macs = attention_macs(q, k, v)
        return OpCost(macs, 2 * macs + attention_extra_flops(q, k, shape, is_bool, causal))

    handler.__doc__ = "Fused attention: QK^T and AV MACs, scaling, mask and softmax FLOPs."
    return handler


def _arg(args: tuple[Any, ...], index: int, default: Any) -> Any:
    return args[index] if 0 <= index < len(args) else default


# (position of the mask / attn_bias: None for the attn_mask keyword, -1 for none; of is_causal)
register_formula(aten._scaled_dot_product_flash_attention_for_cpu.default)(_fused(None, 4))
register_formula(aten._scaled_dot_product_flash_attention.default)(_fused(-1, 4))
register_formula(aten._scaled_dot_product_efficient_attention.default)(_fused(3, 6))
register_formula(aten._scaled_dot_product_cudnn_attention.default)(_fused(3, 6))
