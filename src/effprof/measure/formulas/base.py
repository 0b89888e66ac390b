"""The formula registry: what one aten call costs (MACs, FLOPs, bias FLOPs) and how handlers
register; the counting policy every run records."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from effprof._registry import Registry

aten = torch.ops.aten

COUNTING_POLICY = (
    "MACs are the multiply-accumulates of convolution (grouped, strided, dilated, transposed) and "
    "matrix products (mm, addmm, bmm, baddbmm, mv, dot; attention's QK^T and AV included); FLOPs "
    "are 2 x MACs plus the FLOPs of every other op by a documented per-element formula "
    "(elementwise add/mul/div: 1; PReLU: 2; bilinear resize: 7 per output element, 4 mul + 3 add; "
    "normalisation: 2 to normalise, 2 for the affine, 4 more where statistics are computed; "
    "softmax: 5; reductions: 1 per input element, vector norms 2; comparisons and transcendental "
    "functions count 1; any other op tagged pointwise by PyTorch: 1 per output element, any other "
    "reduction: 1 per input element; pooling: 1 per input element its windows cover (average) or "
    "that minus 1 per output (max), windows clipped to the input so padding and ceil_mode "
    "overhang cost nothing; grid sampling: a resize's FLOPs per output element plus its "
    "coordinates and weights per sampled point). Bias additions are listed separately as bias "
    "FLOPs and are not in FLOPs. Memory-only ops (views, copies, cat, pad, pixel (un)shuffle, "
    "nearest resize, in-place restrides, masks built by tril/triu, random fills) cost 0 FLOPs but their bytes "
    "are listed. scaled_dot_product_attention is one row (its QK^T and AV MACs, softmax, mask "
    "and scaling FLOPs; a fused kernel is charged what the math path costs); matrix products of "
    "two activations that feed or follow a softmax are attention, products with a weight are "
    "linear/matmul. Counting runs at the aten level in eval mode under no_grad, on the meta "
    "device, or where the forward reads tensor values under fake tensors, else on real CPU "
    "tensors (the run says which); an op with no formula is listed with its call count."
)


@dataclass(frozen=True)
class OpCost:
    """The cost of one aten call: MACs, FLOPs (including 2 x MACs, excluding bias) and bias FLOPs."""

    macs: int = 0
    flops: int = 0
    bias_flops: int = 0


Formula = Callable[[tuple[Any, ...], dict[str, Any], Any], OpCost]
FORMULAS: Registry[Any, Formula] = Registry("op formula")


def register_formula(*ops: Any) -> Callable[[Formula], Formula]:
    """Register one handler for aten ops (overloads such as ``aten.add.Tensor`` or whole packets)."""

    def decorate(handler: Formula) -> Formula:
        for op in ops:
            FORMULAS.add(op, handler)
        return handler

    return decorate


def aten_ops(names: str) -> tuple[Any, ...]:
    """Op packets from space-separated aten names: ``aten_ops("add mul")``."""
    return tuple(getattr(aten, name) for name in names.split())


def numel(shape: Sequence[int]) -> int:
    """Number of elements of a shape; ``numel((1, 64, 32, 32))`` is 65,536."""
    return math.prod(int(s) for s in shape)
