"""Numeric precision of a measurement: the model and inputs cast and moved, OOM as Missing.

* ``fp32`` / ``tf32``: float32 tensors (the TF32 flags are set by
  :func:`effprof.backends.backend_flags`, re-exported here);
* ``fp16`` / ``bf16``: weights and floating inputs cast to half precision (pure half inference,
  the ``.half()`` column of the GPU anchors), not autocast. Integer inputs (token ids, point
  indices) keep their dtype.
"""

from __future__ import annotations

import copy
import gc
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from effprof.backends import backend_flags, num_threads
from effprof.models.inputs import InputSpec, as_inputs
from effprof.results import Missing

__all__ = [
    "DEVICES", "PRECISION_DTYPES", "backend_flags", "is_out_of_memory", "make_inputs",
    "model_device_type", "num_threads", "oom_missing", "prepare_model", "release_memory",
    "synchronize", "tensor_bytes", "unsupported",
]  # fmt: skip

DEVICES = ("cpu", "cuda")
PRECISION_DTYPES: dict[str, torch.dtype] = {
    "fp32": torch.float32,
    "tf32": torch.float32,
    "fp16": torch.float16,
    "bf16": torch.bfloat16,
}
_OOM_MARKERS = ("out of memory", "not enough memory", "can't allocate memory", "failed to allocate")


def is_out_of_memory(error: BaseException) -> bool:
    """True for CUDA OOM, the CPU allocator's "not enough memory", Python's MemoryError and
    ONNX Runtime's allocation failures (its exceptions are not RuntimeErrors)."""
    if isinstance(error, (torch.cuda.OutOfMemoryError, MemoryError)):
        return True
    return isinstance(error, Exception) and any(m in str(error).lower() for m in _OOM_MARKERS)


def oom_missing(error: BaseException) -> Missing:
    """``Missing("out of memory: <first line of the error>")``, after freeing cached memory."""
    first = (str(error).strip().splitlines() or [type(error).__name__])[0]
    release_memory()
    return Missing(f"out of memory: {first[:300]}")


def release_memory() -> None:
    """Collect garbage and return cached CUDA blocks, so a failed measurement does not leak."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def unsupported(device: str, precision: str, cuda_graphs: bool, compile: bool) -> Missing | None:
    """Why a configuration cannot be measured on ``device`` (a ``Missing``), or None if it can."""
    if device == "cuda" and not torch.cuda.is_available():
        return Missing("CUDA requested but no CUDA device is available")
    if device == "cpu" and precision == "tf32":
        return Missing("tf32 is a CUDA tensor-core mode; it does not exist on cpu")
    if device == "cpu" and cuda_graphs:
        return Missing("CUDA graphs need a CUDA device; not available on cpu")
    if cuda_graphs and compile:
        return Missing(
            "cuda_graphs and compile together are not measured: use one "
            "(torch.compile mode='reduce-overhead' already uses CUDA graphs)"
        )
    return None


def prepare_model(
    model: nn.Module, device: str, precision: str, channels_last: bool
) -> tuple[nn.Module, list[str]]:
    """The model on ``device`` in ``precision`` / memory format, copied if anything must change.

    The caller's model is never modified: a deep copy is cast and moved.
    """
    dtype = PRECISION_DTYPES[precision]
    tensors = [*model.parameters(), *model.buffers()]
    float_tensors = [t for t in tensors if t.is_floating_point()]
    same_device = all(t.device.type == device for t in tensors)
    same_dtype = all(t.dtype == dtype for t in float_tensors)
    notes: list[str] = []
    if same_device and same_dtype and not channels_last:
        return model, notes
    prepared = copy.deepcopy(model).to(device=device, dtype=dtype)
    if not same_dtype:
        notes.append(f"weights cast to {dtype} (a copy; the caller's model is unchanged)")
    if channels_last:
        prepared = prepared.to(memory_format=torch.channels_last)
        notes.append("model and input in channels_last memory format")
    return prepared, notes


def make_inputs(
    inputs: InputSpec | Sequence[int], device: str, precision: str, channels_last: bool
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """(args, kwargs) of one forward: seeded values (never zeros) on ``device``, floating tensors
    in ``precision``, 4-D float tensors in channels_last when asked."""
    args, kwargs = as_inputs(inputs).build(device, PRECISION_DTYPES[precision])
    if channels_last:
        args = tuple(_channels_last(a) for a in args)
        kwargs = {k: _channels_last(v) for k, v in kwargs.items()}
    return args, kwargs


def _channels_last(value: Any) -> Any:
    if isinstance(value, torch.Tensor) and value.dim() == 4 and value.is_floating_point():
        return value.contiguous(memory_format=torch.channels_last)
    return value


def synchronize(device: str) -> None:
    """Wait for queued CUDA work; a no-op on cpu where ops run synchronously."""
    if device == "cuda":
        torch.cuda.synchronize()


def model_device_type(model: nn.Module) -> str:
    """Device type of the model's first parameter or buffer (``cpu`` for a model without any)."""
    for tensor in [*model.parameters(), *model.buffers()]:
        return tensor.device.type
    return "cpu"


def tensor_bytes(model: nn.Module) -> int:
    """Bytes of the model's parameters and buffers, shared tensors counted once."""
    seen: dict[int, int] = {}
    for tensor in [*model.parameters(), *model.buffers()]:
        seen[id(tensor)] = tensor.numel() * tensor.element_size()
    return sum(seen.values())
