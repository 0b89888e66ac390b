"""Where a count runs: on the meta device, under fake tensors, or on real CPU tensors.

The meta device is the fast path: the model is copied without its weights and run on empty
tensors, so any size is counted without memory or time. A forward that reads a value
(``Tensor.item()``, ``if mask.all():``) cannot run on meta; PyTorch's ``FakeTensorMode`` runs it
on fake CPU tensors (shapes only, still no memory) and lets library code that checks for fake
tensors take its tracing path (transformers' mask helpers do). A forward that needs the values
themselves (a data-dependent output shape, a Python number read from a tensor) runs on real CPU
tensors, which needs the model's weights. The counter tries them in that order; each target is a
context manager that yields the model and the inputs to run under the same counting mode.

The dtype counted is the model's own (a float64 model is counted in float64, its float inputs cast
to it) unless the caller names one; lazy modules are materialised by one forward first.
"""

from __future__ import annotations

import contextlib
import copy
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import psutil
import torch
import torch.utils._pytree as pytree
from torch import nn

from effprof.models.inputs import InputSpec, torch_dtype
from effprof.results import EffprofError

META = "meta"
FAKE = "fake"
CPU = "cpu"
TARGETS = (META, FAKE, CPU)
TARGET_TEXT = {
    META: "the meta device",
    FAKE: "fake tensors (FakeTensorMode: shapes only, no memory)",
    CPU: "real CPU tensors",
}
CPU_INPUT_SHARE = 16  # a real CPU count may take inputs of at most 1/16 of the available memory


@dataclass(frozen=True)
class Target:
    """A model and its inputs, ready to run under the counting mode; ``shortcuts`` says the
    meta-only shape rules may answer for the kernels."""

    where: str
    model: nn.Module
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    dtype: torch.dtype | None
    shortcuts: bool


def is_lazy(tensor: torch.Tensor) -> bool:
    """True for a lazy module's parameter or buffer that no forward has shaped yet."""
    return nn.parameter.is_lazy(tensor)


def _tensors(model: nn.Module) -> list[torch.Tensor]:
    return [*model.parameters(), *model.buffers()]


def float_dtypes(model: nn.Module) -> set[torch.dtype]:
    """The floating dtypes of the model's initialised parameters and buffers."""
    return {t.dtype for t in _tensors(model) if not is_lazy(t) and t.is_floating_point()}


def count_dtype(model: nn.Module, spec: InputSpec, dtype: torch.dtype | None) -> torch.dtype | None:
    """The float dtype the count runs in: ``dtype`` when given (the model is cast to it), else
    the model's own when its floating tensors share one (float inputs are cast to it, as a
    float64 model needs float64 inputs); None for a model of mixed dtypes or without floating
    tensors (counted as it is, inputs as the spec gives them)."""
    if dtype is not None:
        return dtype
    own = float_dtypes(model)
    return next(iter(own)) if len(own) == 1 else None


def dtype_text(model: nn.Module, spec: InputSpec, dtype: torch.dtype | None) -> str:
    """``"float32"``; ``"mixed (float32, float64)"`` for a model counted in its own dtypes; the
    primary input's dtype for a model without floating tensors (``"complex64"``)."""
    if dtype is not None:
        return str(dtype).removeprefix("torch.")
    names = sorted(str(d).removeprefix("torch.") for d in float_dtypes(model))
    return f"mixed ({', '.join(names)})" if names else spec.primary.dtype


def shapes_cannot_tell(spec: InputSpec) -> str:
    """Why shapes alone cannot count these inputs ("" when they can): a sparse tensor's work
    depends on how many values it stores, which meta and fake tensors do not know."""
    sparse = [f"{t.label} ({t.layout})" for t in spec.tensors if t.layout != "strided"]
    if not sparse:
        return ""
    return (
        f"the inputs {', '.join(sparse)} are sparse: the work depends on how many values they "
        "store, which only real tensors know"
    )


def meta_copy(model: nn.Module, dtype: torch.dtype | None = torch.float32) -> nn.Module:
    """A deep copy of ``model`` on the meta device in eval mode, floating tensors cast to
    ``dtype`` (None: each keeps its own).

    Parameters and buffers are replaced by meta tensors before copying, so no weight data is
    copied; tied parameters stay tied; a lazy module's parameters stay lazy, on meta.
    """
    memo: dict[int, Any] = {}
    for tensor in _tensors(model):
        if id(tensor) in memo:
            continue
        if is_lazy(tensor):
            kind = nn.UninitializedParameter if isinstance(tensor, nn.Parameter) else None
            target = dtype if dtype is not None and tensor.dtype.is_floating_point else None
            meta = (
                kind(
                    device="meta", dtype=target or tensor.dtype, requires_grad=tensor.requires_grad
                )
                if kind is not None
                else nn.UninitializedBuffer(device="meta", dtype=target or tensor.dtype)
            )
        else:
            cast = dtype is not None and tensor.is_floating_point()
            meta = torch.empty_like(tensor, device="meta", dtype=dtype if cast else tensor.dtype)
            if isinstance(tensor, nn.Parameter):
                meta = nn.Parameter(meta, requires_grad=tensor.requires_grad)
        memo[id(tensor)] = meta
    return copy.deepcopy(model, memo).eval()


def _inputs(
    spec: InputSpec, device: str, dtype: torch.dtype | None, extra: Mapping[str, Any]
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    args, kwargs = spec.build(device, dtype)
    kwargs.update(extra)
    return args, kwargs


def materialise(model: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """Shape a lazy model's parameters by one forward (uncounted), on whatever device it is."""
    if any(is_lazy(t) for t in _tensors(model)):
        with torch.no_grad():
            model(*args, **kwargs)


@contextlib.contextmanager
def _eval(model: nn.Module) -> Iterator[nn.Module]:
    """``model`` in eval mode, each module's train flag restored after."""
    flags = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for module, training in flags:
            module.training = training


@contextlib.contextmanager
def _quiet_logger(name: str) -> Iterator[None]:
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        logger.setLevel(level)


@contextlib.contextmanager
def same_ops_as_meta() -> Iterator[None]:
    """Kernels that fuse a whole layer on the CPU switched off for the block, so a count on fake
    or real CPU tensors sees the ops a meta count sees (meta never takes these paths):
    ``nn.MultiheadAttention`` / ``nn.TransformerEncoderLayer``'s fast path and oneDNN's RNN
    layers. Fused attention kernels need no switch: their formula is the math path's cost."""
    fastpath = torch.backends.mha.get_fastpath_enabled()
    onednn = torch._C._get_mkldnn_enabled()  # backends.mkldnn.flags() also resets TF32: warns
    torch.backends.mha.set_fastpath_enabled(False)
    torch._C._set_mkldnn_enabled(False)
    try:
        yield
    finally:
        torch._C._set_mkldnn_enabled(onednn)
        torch.backends.mha.set_fastpath_enabled(fastpath)


@contextlib.contextmanager
def on_meta(
    model: nn.Module, spec: InputSpec, dtype: torch.dtype | None, extra: Mapping[str, Any]
) -> Iterator[Target]:
    """The model on meta: itself when it already is there in ``dtype`` (built under
    ``torch.device("meta")``: no copy), else a weightless copy."""
    tensors = _tensors(model)
    own = not any(map(is_lazy, tensors)) and all(t.is_meta for t in tensors)
    own = own and (dtype is None or all(t.dtype == dtype for t in tensors if t.is_floating_point()))
    args, kwargs = _inputs(spec, "meta", dtype, extra)
    if own:
        with _eval(model):
            yield Target(META, model, args, kwargs, dtype, shortcuts=True)
        return
    copied = meta_copy(model, dtype)
    materialise(copied, args, kwargs)
    yield Target(META, copied, args, kwargs, dtype, shortcuts=True)


@contextlib.contextmanager
def on_fake(
    model: nn.Module, spec: InputSpec, dtype: torch.dtype | None, extra: Mapping[str, Any]
) -> Iterator[Target]:
    """The model and inputs as fake CPU tensors, inside a ``FakeTensorMode`` held for the block
    (tensors the forward makes are fake too; real constants it holds are read as fake)."""
    from torch._subclasses.fake_tensor import FakeTensorMode  # imports torch._dynamo: only here

    meta = meta_copy(model, dtype)
    args, kwargs = _inputs(spec, "meta", dtype, extra)
    quiet = _quiet_logger("torch._subclasses.fake_tensor")  # it logs each refused op's traceback
    with quiet, FakeTensorMode(allow_non_fake_inputs=True), same_ops_as_meta():

        def fake(value: Any) -> Any:
            if not isinstance(value, torch.Tensor) or not value.is_meta:
                return value
            made = torch.empty_strided(value.shape, value.stride(), dtype=value.dtype, device="cpu")
            if isinstance(value, nn.Parameter):
                return nn.Parameter(made, requires_grad=value.requires_grad)
            return made

        memo = {id(t): fake(t) for t in _tensors(meta) if not is_lazy(t)}
        faked = copy.deepcopy(meta, memo).eval()
        args, kwargs = pytree.tree_map(fake, (args, kwargs))
        materialise(faked, args, kwargs)
        yield Target(FAKE, faked, args, kwargs, dtype, shortcuts=False)


def cpu_refusal(model: nn.Module, spec: InputSpec) -> str | None:
    """Why the model cannot be counted on real CPU tensors, or None when it can."""
    tensors = [t for t in _tensors(model) if not is_lazy(t)]
    if any(t.is_meta for t in tensors):
        return "its weights are on the meta device (build it with weights to count on the CPU)"
    needed = sum(
        torch.empty((), dtype=torch_dtype(t.dtype)).element_size() * _numel(t.shape)
        for t in spec.tensors
    )
    available = psutil.virtual_memory().available
    if needed * CPU_INPUT_SHARE > available:
        return (
            f"its inputs ({spec.describe()}) take {needed:,} bytes, more than 1/{CPU_INPUT_SHARE} "
            f"of the {available:,} bytes of memory available"
        )
    return None


def _numel(shape: tuple[int, ...]) -> int:
    total = 1
    for d in shape:
        total *= d
    return total


@contextlib.contextmanager
def on_cpu(
    model: nn.Module, spec: InputSpec, dtype: torch.dtype | None, extra: Mapping[str, Any]
) -> Iterator[Target]:
    """The model on real CPU tensors: itself when it is there in ``dtype`` (eval mode, flags
    restored), else a copy moved and cast; inputs are the factory's example or seeded values."""
    refusal = cpu_refusal(model, spec)
    if refusal is not None:
        raise EffprofError(f"cannot run on {TARGET_TEXT[CPU]}: {refusal}")
    tensors = [t for t in _tensors(model) if not is_lazy(t)]
    own = len(tensors) == len(_tensors(model)) and all(t.device.type == "cpu" for t in tensors)
    own = own and (dtype is None or all(t.dtype == dtype for t in tensors if t.is_floating_point()))
    args, kwargs = _inputs(spec, "cpu", dtype, extra)
    with same_ops_as_meta():
        if own:
            with _eval(model):
                yield Target(CPU, model, args, kwargs, dtype, shortcuts=False)
            return
        copied = copy.deepcopy(model).to("cpu")
        if dtype is not None:
            for tensor in _tensors(copied):
                if tensor.is_floating_point() and not is_lazy(tensor):
                    tensor.data = tensor.data.to(dtype)
        copied.eval()
        materialise(copied, args, kwargs)
        yield Target(CPU, copied, args, kwargs, dtype, shortcuts=False)


ON = {META: on_meta, FAKE: on_fake, CPU: on_cpu}
