"""Numeric precision, backend flags and threads for a measurement, each set and restored.

Shared by latency, memory and op-time so the three measure the same configuration:

* ``fp32``: float32 tensors with TF32 *off* for cuDNN convolutions and cuBLAS matmuls (PyTorch
  enables TF32 convolutions by default, which would make "fp32" silently a TF32 number);
* ``tf32``: float32 tensors with TF32 allowed for convolutions and matmuls (CUDA only);
* ``fp16`` / ``bf16``: weights and input cast to half precision (pure half inference, the
  ``.half()`` column of the GPU anchors), not autocast.
"""

from __future__ import annotations

import contextlib
import copy
import gc
from collections.abc import Iterator

import torch
from torch import Tensor, nn

from effprof.results import Missing

DEVICES = ("cpu", "cuda")
PRECISION_DTYPES: dict[str, torch.dtype] = {
    "fp32": torch.float32,
    "tf32": torch.float32,
    "fp16": torch.float16,
    "bf16": torch.bfloat16,
}
# fp32_precision values of the new (torch >= 2.9) TF32 API: "ieee" = full fp32, "tf32" = allowed.
_TF32_SETTING = {"fp32": "ieee", "tf32": "tf32"}
INPUT_SEED = 0
_OOM_MARKERS = ("out of memory", "not enough memory", "can't allocate memory", "failed to allocate")


def is_out_of_memory(error: BaseException) -> bool:
    """True for CUDA OOM, the CPU allocator's "not enough memory" and Python's MemoryError."""
    if isinstance(error, (torch.cuda.OutOfMemoryError, MemoryError)):
        return True
    return isinstance(error, RuntimeError) and any(m in str(error).lower() for m in _OOM_MARKERS)


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


def _set_tf32(conv: str, matmul: str) -> None:
    backends = torch.backends
    backends.cudnn.conv.fp32_precision = conv
    backends.cuda.matmul.fp32_precision = matmul


@contextlib.contextmanager
def backend_flags(
    precision: str, device: str, *, cudnn_benchmark: bool = True
) -> Iterator[list[str]]:
    """Set cudnn.benchmark and the TF32 flags for ``precision``; restore both on exit.

    Yields notes saying what was set (only on cuda, where the flags matter). Uses the fp32_precision API of torch >= 2.9 (the
    legacy ``allow_tf32`` flags must not be mixed with it) and falls back to ``allow_tf32``.
    """
    backends = torch.backends
    notes: list[str] = []
    saved_benchmark = backends.cudnn.benchmark
    new_api = hasattr(backends.cudnn, "conv") and hasattr(backends.cuda.matmul, "fp32_precision")
    setting = _TF32_SETTING.get(precision)
    if new_api:
        saved = (backends.cudnn.conv.fp32_precision, backends.cuda.matmul.fp32_precision)
    else:
        saved = (backends.cudnn.allow_tf32, backends.cuda.matmul.allow_tf32)
    try:
        backends.cudnn.benchmark = cudnn_benchmark
        if setting is not None:
            if new_api:
                _set_tf32(setting, setting)
            else:
                backends.cudnn.allow_tf32 = backends.cuda.matmul.allow_tf32 = setting == "tf32"
        if device == "cuda":
            notes.append(f"cudnn.benchmark={cudnn_benchmark}")
            if setting is not None:
                allowed = "allowed" if setting == "tf32" else "disabled"
                notes.append(f"TF32 {allowed} for cuDNN convolutions and cuBLAS matmuls")
        yield notes
    finally:
        backends.cudnn.benchmark = saved_benchmark
        if new_api:
            _set_tf32(*saved)
        else:
            backends.cudnn.allow_tf32, backends.cuda.matmul.allow_tf32 = saved


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


def random_input(
    shape: tuple[int, ...], device: str, precision: str, channels_last: bool
) -> Tensor:
    """A seeded uniform [0, 1) image batch (never zeros) on ``device`` in ``precision``."""
    generator = torch.Generator().manual_seed(INPUT_SEED)
    x = torch.rand(shape, generator=generator).to(device=device, dtype=PRECISION_DTYPES[precision])
    if channels_last and x.dim() == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    return x


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


def first_tensor(output: object) -> Tensor:
    """The first tensor of a model output (a tensor, or a list / tuple / dict holding tensors)."""
    if isinstance(output, Tensor):
        return output
    values = list(output.values()) if isinstance(output, dict) else output
    if isinstance(values, (list, tuple)):
        for item in values:
            with contextlib.suppress(TypeError):
                return first_tensor(item)
    raise TypeError(f"model output {type(output).__name__} holds no tensor")
