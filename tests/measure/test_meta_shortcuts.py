"""The meta-only shape rules answer exactly what PyTorch's meta kernels answer (shape, strides,
dtype), or decline; a count with them equals one without (tests/measure/test_count_targets.py
counts one model on meta, with the rules, and under fake tensors, without them)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from effprof.measure.meta_shortcuts import SHAPE_ONLY

aten = torch.ops.aten


def _m(*shape: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.empty(shape, device="meta", dtype=dtype)


CASES: list[tuple[object, Callable[[], tuple]]] = [
    (aten.mm.default, lambda: (_m(4, 5), _m(5, 6))),
    (aten.mm.default, lambda: (_m(4, 5), _m(6, 5).t())),
    (aten.bmm.default, lambda: (_m(2, 4, 5), _m(2, 5, 3))),
    (aten.addmm.default, lambda: (_m(6), _m(4, 5), _m(6, 5).t())),
    (aten.addmm.default, lambda: (_m(4, 6), _m(4, 5), _m(5, 6))),
    (aten.baddbmm.default, lambda: (_m(1, 4, 3), _m(2, 4, 5), _m(2, 5, 3))),
    (aten.mm.default, lambda: (_m(4, 5, dtype=torch.float16), _m(5, 6, dtype=torch.float16))),
    (aten.mm.default, lambda: (_m(4, 5, dtype=torch.float64), _m(5, 6, dtype=torch.float64))),
    (aten.native_layer_norm.default, lambda: (_m(2, 7, 8), [8], _m(8), _m(8), 1e-5)),
    (aten.native_layer_norm.default, lambda: (_m(1, 8, 5, 5).permute(0, 2, 3, 1), [8], None, None, 1e-6)),
    (aten.native_layer_norm.default, lambda: (_m(2, 3, 4, 5), [4, 5], _m(4, 5), _m(4, 5), 1e-5)),
    (aten._softmax.default, lambda: (_m(2, 3, 4), -1, False)),
    (aten._softmax.default, lambda: (_m(2, 3, 4).transpose(1, 2), -1, False)),
    (aten._safe_softmax.default, lambda: (_m(2, 3, 4, dtype=torch.float64), 1)),
    (aten._softmax.default, lambda: (_m(2, 3, dtype=torch.float16), -1, True)),
    (aten.native_layer_norm.default, lambda: (_m(2, 8, dtype=torch.bfloat16), [8], None, None, 1e-5)),
]  # fmt: skip


@pytest.mark.parametrize(("op", "make"), CASES)
def test_rules_match_the_meta_kernel_or_decline(op: object, make: Callable[[], tuple]) -> None:
    args = make()
    ruled = SHAPE_ONLY[op](args, {})
    if ruled is None:
        assert args[0].dtype not in (torch.float32, torch.float64) or op is aten._softmax.default
        return
    real = op(*args)
    pairs = zip(ruled, real, strict=True) if isinstance(real, tuple) else [(ruled, real)]
    for mine, theirs in pairs:
        assert (mine.shape, mine.stride(), mine.dtype) == (
            theirs.shape,
            theirs.stride(),
            theirs.dtype,
        )
