"""Fused regions: torch functions whose aten ops differ by device, seen as one call everywhere.

``F.scaled_dot_product_attention`` runs as one fused kernel on CPU and CUDA
(``_scaled_dot_product_flash_attention_for_cpu``, flash, efficient or cuDNN attention) but
decomposes into scale, ``bmm``, softmax and ``bmm`` on the meta device where effprof counts. So
that the counted trace and a timed trace line up call for call, both record each call of such a
function as one row named :data:`SDPA_OP` (the counter sums the MACs, FLOPs and bytes of its
decomposition; a timer times the whole call).

The function is wrapped where callers look it up at call time (``torch.nn.functional``, so
``nn.MultiheadAttention``, transformers and timm are covered); a module that imported the name
before the wrap keeps the original, and its ops are then counted one by one (still categorised as
attention by the counter's provenance rule).

>>> with fused_regions(on_enter, on_exit):   # doctest: +SKIP
...     model(x)
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Callable, Iterator
from typing import Any

import torch.nn.functional as F
from torch import Tensor

SDPA_OP = "effprof.scaled_dot_product_attention"
ATTENTION = "attention"

_lock = threading.Lock()
_listeners: list[tuple[Callable[[str, tuple, dict], None], Callable[[str, Any], None]]] = []
_original: Callable[..., Any] | None = None


def _wrapped(*args: Any, **kwargs: Any) -> Any:
    assert _original is not None
    if not _listeners or getattr(_active, "depth", 0):
        return _original(*args, **kwargs)
    enter, leave = _listeners[-1]
    _active.depth = 1
    try:
        enter(SDPA_OP, args, kwargs)
        out = _fused_layout(_original(*args, **kwargs))
        leave(SDPA_OP, out)
        return out
    finally:
        _active.depth = 0


def _fused_layout(out: Any) -> Any:
    """On meta, give the math decomposition's output the fused kernels' memory layout.

    The fused CPU and CUDA kernels write (batch, query, head, dim) and return it transposed to
    (batch, head, query, dim); the math path returns it contiguous. Without this, a following
    ``transpose(1, 2).reshape(...)`` costs a copy on meta that the real run does not make.
    """
    if isinstance(out, Tensor) and out.is_meta and out.dim() == 4:
        return out.transpose(1, 2).contiguous().transpose(1, 2)
    return out


_active = threading.local()


@contextlib.contextmanager
def fused_regions(
    enter: Callable[[str, tuple, dict], None], leave: Callable[[str, Any], None]
) -> Iterator[None]:
    """Call ``enter(name, args, kwargs)`` before and ``leave(name, output)`` after every fused
    function call while the block runs (the innermost block's listeners win); restore on exit."""
    global _original
    with _lock:
        if _original is None:
            _original = F.scaled_dot_product_attention
            F.scaled_dot_product_attention = functools.wraps(_original)(_wrapped)
        _listeners.append((enter, leave))
    try:
        yield
    finally:
        with _lock:
            _listeners.remove((enter, leave))
            if not _listeners and _original is not None:
                F.scaled_dot_product_attention = _original
                _original = None
