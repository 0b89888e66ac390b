"""MACs, FLOPs, bytes and activation memory of one forward pass, counted per aten op on ``meta``.

The model is deep-copied onto the meta device (no weights are copied, no data is computed), run
once in eval mode under ``no_grad`` inside a ``TorchDispatchMode`` that sees every aten call, and
each call is costed by :mod:`effprof.measure.formulas`. Module attribution follows the module
stack at *call time* (global forward hooks), so a shared module is charged to the path that called
it and functional calls (``F.interpolate``, ``torch.cat``, ``x + y``) to the enclosing module.
Module paths are state-dict style names; the root module's own ops have the path ``""``.

Activation memory: every op output's storage is tracked from creation until its last tensor dies
(weak references), so ``live_bytes`` after each op is what eager PyTorch would hold at that moment
without a caching allocator: the input and every live intermediate, weights excluded, nothing
saved for backward. ``activation_peak_bytes`` is its maximum over the trace.
"""

from __future__ import annotations

import contextlib
import copy
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import pandas as pd
import torch
from torch import nn
from torch.nn.modules.module import register_module_forward_hook, register_module_forward_pre_hook
from torch.utils._python_dispatch import TorchDispatchMode, _disable_current_modes

from effprof import schema as S
from effprof.measure.categories import CATEGORIES, op_category
from effprof.measure.formulas import COUNTING_POLICY, find_formula
from effprof.measure.provenance import Provenance
from effprof.measure.regions import ATTENTION, fused_regions
from effprof.models.inputs import InputSpec, as_inputs, flat_tensors
from effprof.results import EffprofError, Missing

OP_COLUMNS = [
    *("seq", "op", "category", "module", "module_type", "macs", "flops", "bias_flops"),
    *("bytes_read", "bytes_written", "input_shapes", "output_shape", "counted", "live_bytes"),
]
_SUM_COLUMNS = ["macs", "flops", "bias_flops", "bytes_read", "bytes_written"]


def meta_copy(model: nn.Module, dtype: torch.dtype = torch.float32) -> nn.Module:
    """A deep copy of ``model`` on the meta device in eval mode, floating tensors cast to ``dtype``.

    Parameters and buffers are replaced by meta tensors before copying, so no weight data is
    copied; tied parameters stay tied.
    """
    memo: dict[int, Any] = {}
    for tensor in (*model.parameters(), *model.buffers()):
        if id(tensor) in memo:
            continue
        target = dtype if tensor.is_floating_point() else tensor.dtype
        meta = torch.empty_like(tensor, device="meta", dtype=target)
        if isinstance(tensor, nn.Parameter):
            meta = nn.Parameter(meta, requires_grad=tensor.requires_grad)
        memo[id(tensor)] = meta
    return copy.deepcopy(model, memo).eval()


class _CallPaths:
    """The module stack at call time, as state-dict style paths (via global forward hooks)."""

    def __init__(self, root: nn.Module) -> None:
        self.root = root
        self.stack: list[tuple[nn.Module, str]] = []
        self.called: set[int] = set()
        self._relative: dict[int, dict[int, str]] = {}

    def _names_under(self, module: nn.Module) -> dict[int, str]:
        names = self._relative.get(id(module))
        if names is None:
            names = {}
            for name, sub in module.named_modules(remove_duplicate=False):
                names.setdefault(id(sub), name)
            self._relative[id(module)] = names
        return names

    def _path_of(self, module: nn.Module) -> str:
        if not self.stack:
            return "" if module is self.root else type(module).__name__
        for ancestor, ancestor_path in reversed(self.stack):
            rel = self._names_under(ancestor).get(id(module))
            if rel is not None:
                return ".".join(p for p in (ancestor_path, rel) if p)
        # A module that is not part of the model tree (built inside forward, for instance).
        return ".".join(p for p in (self.stack[-1][1], f"<{type(module).__name__}>") if p)

    def _enter(self, module: nn.Module, args: Any) -> None:
        self.called.add(id(module))
        self.stack.append((module, self._path_of(module)))

    def _exit(self, module: nn.Module, args: Any, output: Any) -> None:
        while self.stack:
            if self.stack.pop()[0] is module:
                break

    @property
    def current(self) -> tuple[str, str]:
        """(path, type name) of the innermost running module."""
        if not self.stack:
            return "", ""
        module, path = self.stack[-1]
        return path, type(module).__name__

    def __enter__(self) -> _CallPaths:
        self._handles = (
            register_module_forward_pre_hook(self._enter),
            register_module_forward_hook(self._exit, always_call=True),
        )
        return self

    def __exit__(self, *exc: object) -> None:
        for handle in self._handles:
            handle.remove()


class _LiveMemory:
    """Bytes of live activation storages: a storage is born with the first op output using it and
    dies with the last tensor that references it. Weight storages are excluded."""

    def __init__(self, excluded: set[int]) -> None:
        self.excluded = excluded
        self.storages: dict[int, list[int]] = {}  # storage id -> [nbytes, live tensor refs]
        self.refs: dict[int, weakref.ref] = {}
        self.live_bytes = 0
        self.peak_bytes = 0

    def track(self, tensor: torch.Tensor) -> None:
        try:
            storage = tensor.untyped_storage()
        except (RuntimeError, NotImplementedError):  # sparse / nested tensors: no plain storage
            return
        key = storage._cdata
        if key in self.excluded:
            return
        entry = self.storages.get(key)
        if entry is None:
            entry = self.storages[key] = [storage.nbytes(), 0]
            self.live_bytes += entry[0]
            self.peak_bytes = max(self.peak_bytes, self.live_bytes)
        entry[1] += 1
        ref = weakref.ref(tensor, partial(self._release, key))
        self.refs[id(ref)] = ref

    def _release(self, key: int, ref: weakref.ref) -> None:
        self.refs.pop(id(ref), None)
        entry = self.storages.get(key)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] == 0:
            del self.storages[key]
            self.live_bytes -= entry[0]


def _tensors(values: Any) -> Iterator[torch.Tensor]:
    for value in values:
        if isinstance(value, torch.Tensor):
            yield value
        elif isinstance(value, (list, tuple)):
            yield from (v for v in value if isinstance(v, torch.Tensor))


def _nbytes(tensor: torch.Tensor) -> int:
    return tensor.numel() * tensor.element_size()


def shape_text(shape: Sequence[int]) -> str:
    """``(1, 3, 64, 64)`` -> ``"1x3x64x64"``; a scalar -> ``"()"``."""
    return "x".join(str(int(s)) for s in shape) or "()"


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


_aten = torch.ops.aten
ShapeRule = Callable[[tuple[Any, ...], dict[str, Any]], "torch.Tensor | None"]
SHAPE_ONLY: dict[Any, ShapeRule] = {
    op: _resize_output
    for name in ("upsample_bilinear2d", "upsample_nearest2d", "upsample_bicubic2d")
    for op in (getattr(_aten, name).vec, getattr(_aten, name).default)
}
SHAPE_ONLY[_aten.cat.default] = _cat_output
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
def _direct_resizes(mode: _CountingMode) -> Iterator[None]:
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


class _CountingMode(TorchDispatchMode):
    """Records one row per aten call: cost, bytes, call-time module path, live bytes after it."""

    @classmethod
    def _should_skip_dynamo(cls) -> bool:
        # torch wraps a mode's __torch_dispatch__ in torch._dynamo.disable unless this says not
        # to, and that wrapper imports torch._dynamo on the first op (1.4 s of a cold CLI).
        # Counting never runs under torch.compile, so there is nothing to disable.
        return False

    def __init__(self, paths: _CallPaths, memory: _LiveMemory, provenance: Provenance) -> None:
        super().__init__()
        self.paths = paths
        self.memory = memory
        self.provenance = provenance
        self.rows: list[tuple[Any, ...]] = []
        self._info: dict[Any, tuple[str, str, Any, bool]] = {}
        self.failures: dict[str, str] = {}  # op name -> why it is uncounted
        self._region_start: int | None = None

    def enter_region(self, name: str, args: tuple, kwargs: dict) -> None:
        """A fused function starts (:mod:`effprof.measure.regions`): its ops become one row."""
        self._region_start = len(self.rows)
        self._region_inputs = list(_tensors((*args, *kwargs.values())))

    def leave_region(self, name: str, out: Any) -> None:
        """Collapse the rows the fused function produced into one row named ``name``."""
        start, self._region_start = self._region_start, None
        if start is None:
            return
        inner = self.rows[start:]
        del self.rows[start:]
        for row in [r for r in self.provenance.relabel if r >= start]:
            del self.provenance.relabel[row]  # the fused row is attention as a whole
        outs = list(_tensors(out if isinstance(out, (list, tuple)) else (out,)))
        path, module_type = self.paths.current
        total = [sum(r[i] for r in inner) for i in (5, 6, 7)]  # macs, flops, bias flops
        self.rows.append(
            (len(self.rows), name, ATTENTION, path, module_type, *total,
             sum(_nbytes(t) for t in self._region_inputs), sum(_nbytes(t) for t in outs),
             ", ".join(shape_text(t.shape) for t in self._region_inputs),
             ", ".join(shape_text(t.shape) for t in outs),
             all(r[12] for r in inner), self.memory.live_bytes)
        )  # fmt: skip

    def _op_info(self, func: Any) -> tuple[str, str, Any, bool]:
        info = self._info.get(func)
        if info is None:
            returns = func._schema.returns
            is_view = bool(returns) and all(
                r.alias_info is not None and not r.alias_info.is_write for r in returns
            )
            name = str(func)
            category = op_category(name, getattr(func, "tags", ()))
            info = self._info[func] = (name, category, find_formula(func), is_view)
        return info

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        kwargs = kwargs or {}
        rule = SHAPE_ONLY.get(func)
        out = rule(args, kwargs) if rule is not None else None
        if out is None:
            out = func(*args, **kwargs)
        name, category, formula, is_view = self._op_info(func)
        outs = list(_tensors(out if isinstance(out, (list, tuple)) else (out,)))
        macs = flops = bias = 0
        counted = formula is not None
        if formula is None:
            self.failures.setdefault(name, "no formula")
        else:
            try:
                cost = formula(args, kwargs, out)
                macs, flops, bias = cost.macs, cost.flops, cost.bias_flops
            except Exception as error:  # a formula that cannot read this call: list it, never 0
                counted = False
                self.failures[name] = f"formula failed: {type(error).__name__}: {error}"
        inputs = list(_tensors((*args, *kwargs.values())))
        category = self.provenance.observe(len(self.rows), func, category, inputs, outs)
        if is_view:
            read = written = 0
        else:
            read = sum(_nbytes(t) for t in inputs)
            written = sum(_nbytes(t) for t in outs)
        for tensor in outs:
            self.memory.track(tensor)
        path, module_type = self.paths.current
        self.rows.append(
            (len(self.rows), name, category, path, module_type, macs, flops, bias, read, written,
             ", ".join(shape_text(t.shape) for t in inputs),
             ", ".join(shape_text(t.shape) for t in outs),
             counted, self.memory.live_bytes)
        )  # fmt: skip
        return out


@dataclass(frozen=True, eq=False)
class CountResult:
    """One counted forward pass: totals, per-op table, uncounted ops, never-called modules."""

    input_shape: tuple[int, ...]
    dtype: str
    forward_kwargs: dict[str, Any]
    inputs: InputSpec
    macs: int
    flops: int
    bias_flops: int
    weights_bytes: int
    input_bytes: int
    activation_peak_bytes: int
    output_shapes: tuple[tuple[int, ...], ...]
    ops: pd.DataFrame
    uncounted: pd.DataFrame
    uncalled_modules: pd.DataFrame
    seconds: float
    policy: str = field(default=COUNTING_POLICY, repr=False)

    @property
    def complete(self) -> bool:
        """True when every aten op of the trace had a formula."""
        return self.uncounted.empty

    def to_frame(self) -> pd.DataFrame:
        """The per-op table (one row per aten call)."""
        return self.ops

    def by_module(self, depth: int | None = None) -> pd.DataFrame:
        """Totals per call-time module path, cut to ``depth`` components (None: full paths).

        Every op is in exactly one row, so the columns sum to the totals; depth 1 gives the
        top-level children (MSSNet: ``E1_1``, ``D3_3``, ...), ``""`` the root's own ops.
        """
        paths = self.ops["module"]
        if depth is not None:
            paths = paths.map(lambda p: ".".join(p.split(".")[:depth]))
        grouped = self.ops.assign(module=paths).groupby("module", sort=False)
        table = grouped[_SUM_COLUMNS].sum()
        table.insert(0, "calls", grouped.size())
        return table.reset_index()

    def by_category(self) -> pd.DataFrame:
        """Totals per op category (convolution, resize, ...) with each category's share of FLOPs."""
        grouped = self.ops.groupby("category")
        table = grouped[_SUM_COLUMNS].sum()
        table.insert(0, "calls", grouped.size())
        table["flops_share"] = table["flops"] / max(self.flops, 1)
        order = [c for c in CATEGORIES if c in table.index]
        return table.loc[order].reset_index()

    def macs_per_output_pixel(self) -> float | Missing:
        """MACs divided by N x H x W of the largest N x C x H x W output (the image a restorer
        produces); Missing when the model returns no such image."""
        images = [s for s in self.output_shapes if len(s) == 4]
        if not images:
            shapes = ", ".join(shape_text(s) for s in self.output_shapes) or "none"
            return Missing(f"the model returns no N x C x H x W image (outputs: {shapes})")
        shape = max(images, key=lambda s: s[0] * s[2] * s[3])
        return self.macs / (shape[0] * shape[2] * shape[3])

    def summary(self) -> dict[str, Any]:
        """Headline numbers with units in their names, for run.json."""
        return {
            S.INPUT_SHAPE: shape_text(self.input_shape),
            S.INPUTS: self.inputs.describe(),
            S.OUTPUT_SHAPES: ", ".join(shape_text(s) for s in self.output_shapes),
            S.DTYPE: self.dtype,
            S.MACS: self.macs,
            S.FLOPS: self.flops,
            S.BIAS_FLOPS: self.bias_flops,
            S.MACS_PER_OUTPUT_PIXEL: self.macs_per_output_pixel(),
            S.WEIGHTS_BYTES: self.weights_bytes,
            S.ACTIVATION_PEAK_BYTES: self.activation_peak_bytes,
            S.ATEN_CALLS: len(self.ops),
            S.UNCOUNTED_OPS: len(self.uncounted),
            S.UNCOUNTED_CALLS: int(self.uncounted["calls"].sum()) if len(self.uncounted) else 0,
            S.COUNT_SECONDS: self.seconds,
        }


def _storage_key(tensor: torch.Tensor) -> int:
    return tensor.untyped_storage()._cdata


def _uncalled(model: nn.Module, read: set[int]) -> pd.DataFrame:
    """Top-most modules holding parameters none of whose parameters or buffers any op read.

    Decided by what ran, not by which ``forward`` was entered: a ModuleList that its parent loops
    over, or a relative-position table read by an index op, is used.
    """
    held: dict[str, int] = {}  # module path -> parameters under it
    used: set[str] = set()  # module paths with a parameter or buffer some op read
    tensors = [(n, t, True) for n, t in model.named_parameters(remove_duplicate=False)]
    tensors += [(n, t, False) for n, t in model.named_buffers(remove_duplicate=False)]
    for name, tensor, is_param in tensors:
        parts = name.split(".")[:-1]
        was_read = _storage_key(tensor) in read
        for depth in range(len(parts) + 1):
            path = ".".join(parts[:depth])
            if is_param:
                held[path] = held.get(path, 0) + tensor.numel()
            if was_read:
                used.add(path)
    rows = []
    skip: list[str] = []
    types = {name: type(m).__name__ for name, m in model.named_modules(remove_duplicate=False)}
    for name in types:
        if name == "" or name not in held or name in used:
            continue
        if any(name.startswith(s + ".") for s in skip):
            continue
        rows.append((name, types[name], held[name]))
        skip.append(name)
    return pd.DataFrame(rows, columns=["module", "module_type", "params"])


def count_model(
    model: nn.Module,
    inputs: InputSpec | Sequence[int],
    *,
    forward_kwargs: Mapping[str, Any] | None = None,
    dtype: torch.dtype = torch.float32,
) -> CountResult:
    """Count MACs, FLOPs, bytes and activation memory of one forward on meta.

    ``inputs`` is an :class:`~effprof.models.inputs.InputSpec` or the shape of one image;
    ``forward_kwargs`` are passed to the forward as well (MSSNet's ``all_outputs=True``).
    """
    if not isinstance(inputs, InputSpec) and (
        not tuple(inputs) or not all(isinstance(s, int) and s > 0 for s in inputs)
    ):
        raise EffprofError(f"input shape must be positive integers, got {tuple(inputs)!r}")
    spec = as_inputs(inputs)
    start = time.perf_counter()
    with _on_meta(model, dtype) as meta:
        return _count(model, meta, spec, dict(forward_kwargs or {}), dtype, start)


@contextlib.contextmanager
def _on_meta(model: nn.Module, dtype: torch.dtype) -> Iterator[nn.Module]:
    """The model on meta in eval mode: itself when it already is on meta in ``dtype`` (built
    under ``torch.device("meta")``: no copy, its train/eval flags restored after), else a copy."""
    tensors = [*model.parameters(), *model.buffers()]
    on_meta = all(t.is_meta for t in tensors) and all(
        t.dtype == dtype for t in tensors if t.is_floating_point()
    )
    if not on_meta:
        yield meta_copy(model, dtype)
        return
    flags = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for module, training in flags:
            module.training = training


def _count(
    model: nn.Module,
    meta: nn.Module,
    spec: InputSpec,
    forward_kwargs: dict[str, Any],
    dtype: torch.dtype,
    start: float,
) -> CountResult:
    weights = {id(t): t for t in (*meta.parameters(), *meta.buffers())}.values()
    weight_storages = {t.untyped_storage()._cdata: t.untyped_storage().nbytes() for t in weights}
    args, kwargs = spec.build("meta", dtype)
    kwargs.update(forward_kwargs or {})
    memory = _LiveMemory(set(weight_storages))
    given = flat_tensors((args, kwargs))
    for tensor in given:
        memory.track(tensor)
    paths = _CallPaths(meta)
    provenance = Provenance(weight_storages)
    try:
        mode = _CountingMode(paths, memory, provenance)
        with (
            torch.no_grad(), paths, fused_regions(mode.enter_region, mode.leave_region), mode,
            _direct_resizes(mode),
        ):  # fmt: skip
            output = meta(*args, **kwargs)
    except (
        NotImplementedError,
        RuntimeError,
        ValueError,
        TypeError,
        AssertionError,
        IndexError,
    ) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise EffprofError(
            f"cannot count {type(model).__name__} on the meta device with inputs "
            f"{spec.describe()}: {first[:300]}"
        ) from error
    outputs = tuple(tuple(t.shape) for t in flat_tensors(output))
    ops = pd.DataFrame(mode.rows, columns=OP_COLUMNS)
    for row, category in provenance.relabel.items():
        ops.loc[row, "category"] = category  # QK^T products, known once their softmax ran
    missing = ops[~ops["counted"]]
    uncounted = missing.groupby("op", sort=False).size().rename("calls").reset_index()
    uncounted["reason"] = uncounted["op"].map(mode.failures)
    uncounted = uncounted.sort_values("calls", ascending=False, kind="stable").reset_index(
        drop=True
    )
    return CountResult(
        input_shape=spec.shape,
        dtype=str(dtype).removeprefix("torch."),
        forward_kwargs=dict(forward_kwargs or {}),
        inputs=spec,
        macs=int(ops["macs"].sum()),
        flops=int(ops["flops"].sum()),
        bias_flops=int(ops["bias_flops"].sum()),
        weights_bytes=sum(weight_storages.values()),
        input_bytes=sum(_nbytes(t) for t in given),
        activation_peak_bytes=memory.peak_bytes,
        output_shapes=outputs,
        ops=ops,
        uncounted=uncounted,
        uncalled_modules=_uncalled(meta, provenance.read),
        seconds=time.perf_counter() - start,
    )
