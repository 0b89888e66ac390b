"""Torch backend flags and thread counts, each set inside a context manager and restored after.

The one place effprof sets them, for measuring (``effprof.measure``) and for training
(``effprof.training``), so both mean the same by a precision name:

* ``fp32``: float32 with TF32 *off* for cuDNN convolutions and cuBLAS matmuls (PyTorch enables
  TF32 convolutions by default, which would make "fp32" silently a TF32 number);
* ``tf32``: float32 with TF32 allowed for convolutions and matmuls (CUDA only);
* ``fp16`` / ``bf16``: the TF32 flags are left as they are (half-precision kernels do not read
  them).

torch >= 2.9 has a new TF32 API (``fp32_precision``); its documentation says the legacy
``allow_tf32`` flags must not be mixed with it, so the new one is used wherever it exists.

>>> with backend_flags("fp32", "cuda") as notes, num_threads(1) as threads:  # doctest: +SKIP
...     model(x)
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

# fp32_precision values of the new (torch >= 2.9) TF32 API: "ieee" = full fp32, "tf32" = allowed.
_TF32_SETTING = {"fp32": "ieee", "tf32": "tf32"}


def _new_api() -> bool:
    backends = torch.backends
    return hasattr(backends.cudnn, "conv") and hasattr(backends.cuda.matmul, "fp32_precision")


def _read_tf32() -> tuple[object, object]:
    backends = torch.backends
    if _new_api():
        return backends.cudnn.conv.fp32_precision, backends.cuda.matmul.fp32_precision
    return backends.cudnn.allow_tf32, backends.cuda.matmul.allow_tf32


def _write_tf32(conv: object, matmul: object) -> None:
    backends = torch.backends
    if _new_api():
        backends.cudnn.conv.fp32_precision = conv
        backends.cuda.matmul.fp32_precision = matmul
    else:
        backends.cudnn.allow_tf32, backends.cuda.matmul.allow_tf32 = conv, matmul


@contextlib.contextmanager
def backend_flags(
    precision: str, device: str, *, cudnn_benchmark: bool = True
) -> Iterator[list[str]]:
    """Set cudnn.benchmark and the TF32 flags for ``precision``; restore both on exit.

    Yields notes saying what was set (only on cuda, where the flags matter).
    """
    backends = torch.backends
    notes: list[str] = []
    saved_benchmark = backends.cudnn.benchmark
    saved_tf32 = _read_tf32()
    setting = _TF32_SETTING.get(precision)
    try:
        backends.cudnn.benchmark = cudnn_benchmark
        if setting is not None:
            if _new_api():
                _write_tf32(setting, setting)
            else:
                _write_tf32(setting == "tf32", setting == "tf32")
        if device == "cuda":
            notes.append(f"cudnn.benchmark={cudnn_benchmark}")
            if setting is not None:
                allowed = "allowed" if setting == "tf32" else "disabled"
                notes.append(f"TF32 {allowed} for cuDNN convolutions and cuBLAS matmuls")
        yield notes
    finally:
        backends.cudnn.benchmark = saved_benchmark
        _write_tf32(*saved_tf32)


@contextlib.contextmanager
def num_threads(threads: int | None) -> Iterator[int]:
    """Set ``torch.set_num_threads(threads)`` (None keeps the current value); restore on exit.

    Yields the number of intra-op threads in effect.
    """
    saved = torch.get_num_threads()
    try:
        if threads is not None:
            torch.set_num_threads(threads)
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(saved)
