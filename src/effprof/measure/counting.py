"""MACs, FLOPs, bytes and activation memory of one forward pass, counted per aten op.

The model runs once in eval mode under ``no_grad`` inside a ``TorchDispatchMode`` that sees every
aten call, and each call is costed by :mod:`effprof.measure.formulas`. It runs on the meta device
(a weightless copy on empty tensors: any size, no memory), or, when the forward reads tensor
values, under fake tensors and then on real CPU tensors (:mod:`effprof.measure.count_targets`);
the result says where (``counted_on``) and why. A model no target can count raises a one-line
:class:`~effprof.measure.count_failures.CountError`. Module attribution follows the module
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
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import pandas as pd
import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from effprof import schema as S
from effprof.measure.categories import CATEGORIES, op_category
from effprof.measure.count_failures import (
    UNAVAILABLE,
    CountError,
    CountFailure,
    classify,
    first_line,
)
from effprof.measure.count_targets import (
    CPU,
    ON,
    TARGET_TEXT,
    TARGETS,
    Target,
    count_dtype,
    dtype_text,
    meta_copy,
    shapes_cannot_tell,
)
from effprof.measure.formulas import COUNTING_POLICY, find_formula
from effprof.measure.meta_shortcuts import SHAPE_ONLY, direct_resizes
from effprof.measure.provenance import Provenance, uncalled_modules
from effprof.measure.regions import ATTENTION, fused_regions
from effprof.measure.trace import CallPaths, LiveMemory, nbytes, tensors_in
from effprof.models.inputs import InputSpec, as_inputs, check_representable, flat_tensors
from effprof.models.registry import pixel_map_scale
from effprof.results import EffprofError, Missing

__all__ = ["COUNTING_POLICY", "CountError", "CountResult", "count_model", "meta_copy", "shape_text"]

OP_COLUMNS = [
    *("seq", "op", "category", "module", "module_type", "macs", "flops", "bias_flops"),
    *("bytes_read", "bytes_written", "input_shapes", "output_shape", "counted", "live_bytes"),
]
_SUM_COLUMNS = ["macs", "flops", "bias_flops", "bytes_read", "bytes_written"]


def shape_text(shape: Sequence[int]) -> str:
    """``(1, 3, 64, 64)`` -> ``"1x3x64x64"``; a scalar -> ``"()"``."""
    return "x".join(str(int(s)) for s in shape) or "()"


class _CountingMode(TorchDispatchMode):
    """Records one row per aten call: cost, bytes, call-time module path, live bytes after it."""

    @classmethod
    def _should_skip_dynamo(cls) -> bool:
        # torch wraps a mode's __torch_dispatch__ in torch._dynamo.disable unless this says not
        # to, and that wrapper imports torch._dynamo on the first op (1.4 s of a cold CLI).
        # Counting never runs under torch.compile, so there is nothing to disable.
        return False

    def __init__(
        self, paths: CallPaths, memory: LiveMemory, provenance: Provenance, shortcuts: bool
    ) -> None:
        super().__init__()
        self.shape_rules = SHAPE_ONLY if shortcuts else {}
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
        self._region_inputs = list(tensors_in((*args, *kwargs.values())))

    def leave_region(self, name: str, out: Any) -> None:
        """Collapse the rows the fused function produced into one row named ``name``."""
        start, self._region_start = self._region_start, None
        if start is None:
            return
        inner = self.rows[start:]
        del self.rows[start:]
        for row in [r for r in self.provenance.relabel if r >= start]:
            del self.provenance.relabel[row]  # the fused row is attention as a whole
        outs = list(tensors_in(out if isinstance(out, (list, tuple)) else (out,)))
        path, module_type = self.paths.current
        total = [sum(r[i] for r in inner) for i in (5, 6, 7)]  # macs, flops, bias flops
        missing = sorted({r[1] for r in inner if not r[12]})
        if missing:
            self.failures.setdefault(name, f"holds ops without a formula: {', '.join(missing)}")
        self.rows.append(
            (len(self.rows), name, ATTENTION, path, module_type, *total,
             sum(nbytes(t) for t in self._region_inputs), sum(nbytes(t) for t in outs),
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
        if func.namespace == "prim":  # metadata queries (prim.device of a fake tensor): not ops
            return func(*args, **kwargs)
        rule = self.shape_rules.get(func)
        out = rule(args, kwargs) if rule is not None else None
        if out is None:
            out = func(*args, **kwargs)
        name, category, formula, is_view = self._op_info(func)
        outs = list(tensors_in(out if isinstance(out, (list, tuple)) else (out,)))
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
        inputs = list(tensors_in((*args, *kwargs.values())))
        category = self.provenance.observe(len(self.rows), func, category, inputs, outs)
        if is_view:
            read = written = 0
        else:
            read = sum(nbytes(t) for t in inputs)
            written = sum(nbytes(t) for t in outs)
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
    counted_on: str = "meta"  # "meta", "fake" or "cpu": see effprof.measure.count_targets
    fallback_reason: str = ""  # why the meta device did not count it ("" when it did)
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
        """MACs divided by the pixels of the largest per-pixel output: N x H x W of an
        N x C x H x W image (the image a restorer produces) or of an N x H x W map of the input
        image (a depth map, see :func:`effprof.models.registry.pixel_map_scale`); Missing when
        the model returns neither."""
        images = [s for s in self.output_shapes if len(s) == 4]
        images += [s for s in self.output_shapes if len(s) == 3 and pixel_map_scale(self.inputs, s)]
        if not images:
            shapes = ", ".join(shape_text(s) for s in self.output_shapes) or "none"
            return Missing(
                f"the model returns no N x C x H x W image or per-pixel map (outputs: {shapes})"
            )
        pixels = max(s[0] * s[-2] * s[-1] for s in images)
        return self.macs / pixels

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
            S.COUNTED_ON: self.counted_on,
            S.COUNTED_ON_REASON: self.counted_on_text(),
        }

    def counted_on_text(self) -> str:
        """Where the count ran and why: ``"the meta device"``, or ``"fake tensors (FakeTensorMode:
        ...), because on the meta device the forward reads tensor values: ..."``."""
        where = TARGET_TEXT[self.counted_on]
        if not self.fallback_reason:
            return where
        return f"{where}, because {self.fallback_reason}"


def count_model(
    model: nn.Module,
    inputs: InputSpec | Sequence[int],
    *,
    forward_kwargs: Mapping[str, Any] | None = None,
    dtype: torch.dtype | None = None,
    targets: Sequence[str] = TARGETS,
) -> CountResult:
    """Count MACs, FLOPs, bytes and activation memory of one forward: on meta, else under fake
    tensors, else on real CPU tensors (see :mod:`effprof.measure.count_targets`).

    ``inputs`` is an :class:`~effprof.models.inputs.InputSpec` or the shape of one image;
    ``forward_kwargs`` are passed to the forward as well (MSSNet's ``all_outputs=True``);
    ``dtype`` None counts the model in its own dtype; ``targets`` are tried in order ("meta",
    "fake", "cpu"), each only when the one before met a forward it cannot run (a forward that
    reads values). A model no target can count raises a
    :class:`~effprof.measure.count_failures.CountError` (an EffprofError) naming why.
    """
    if not isinstance(inputs, InputSpec) and (
        not tuple(inputs) or not all(isinstance(s, int) and s > 0 for s in inputs)
    ):
        raise EffprofError(f"input shape must be positive integers, got {tuple(inputs)!r}")
    spec = as_inputs(inputs)
    start = time.perf_counter()
    chosen = count_dtype(model, spec, dtype)
    check_representable(spec, chosen)
    extra = dict(forward_kwargs or {})
    skipped = shapes_cannot_tell(spec)
    if skipped:  # sparse inputs: only real tensors know how many values they store
        targets = [t for t in targets if t == CPU] or list(targets)[-1:]
    failures: list[CountFailure] = []
    unknown = [t for t in targets if t not in TARGETS]
    if unknown or not targets:
        raise EffprofError(f"unknown count targets {unknown}; known: {', '.join(TARGETS)}")
    for where in targets:
        try:
            with ON[where](model, spec, chosen, extra) as target:
                result = _count(target, spec, extra, start)
        except (KeyboardInterrupt, GeneratorExit):
            raise
        except BaseException as error:  # the user's forward may raise anything, SystemExit too
            failure = classify(error, where)
            if isinstance(error, EffprofError) and where == CPU:  # cpu_refusal's reason
                failure = CountFailure(where, UNAVAILABLE, first_line(error))
            failures.append(failure)
            if not failure.retry:
                break
            continue
        if failures:
            result = replace(result, fallback_reason=f"on the meta device {failures[0].text()}")
        elif skipped:
            result = replace(result, fallback_reason=skipped)
        return result
    raise CountError(type(model).__name__, spec.describe(), tuple(failures))


def _weight_storages(model: nn.Module) -> dict[int, int]:
    weights = {id(t): t for t in (*model.parameters(), *model.buffers())}.values()
    return {t.untyped_storage()._cdata: t.untyped_storage().nbytes() for t in weights}


def _count(
    target: Target, spec: InputSpec, forward_kwargs: dict[str, Any], start: float
) -> CountResult:
    model = target.model
    weight_storages = _weight_storages(model)
    memory = LiveMemory(set(weight_storages))
    given = flat_tensors((target.args, target.kwargs))
    for tensor in given:
        memory.track(tensor)
    paths = CallPaths(model)
    provenance = Provenance(weight_storages)
    mode = _CountingMode(paths, memory, provenance, shortcuts=target.shortcuts)
    resizes = direct_resizes(mode) if target.shortcuts else contextlib.nullcontext()
    with (
        torch.no_grad(), paths, fused_regions(mode.enter_region, mode.leave_region), mode, resizes,
    ):  # fmt: skip
        output = model(*target.args, **target.kwargs)
    outputs = tuple(tuple(t.shape) for t in flat_tensors(output))
    ops = pd.DataFrame(mode.rows, columns=OP_COLUMNS)
    for row, category in provenance.relabel.items():
        ops.loc[row, "category"] = category  # QK^T products, known once their softmax ran
    calls = Counter(
        op for op, counted in zip(ops["op"], ops["counted"], strict=True) if not counted
    )
    uncounted = pd.DataFrame(
        [(op, n, mode.failures.get(op, "")) for op, n in calls.most_common()],
        columns=["op", "calls", "reason"],
    )
    return CountResult(
        input_shape=spec.shape,
        dtype=dtype_text(model, spec, target.dtype),
        forward_kwargs=dict(forward_kwargs),
        inputs=spec,
        macs=int(ops["macs"].sum()),
        flops=int(ops["flops"].sum()),
        bias_flops=int(ops["bias_flops"].sum()),
        weights_bytes=sum(weight_storages.values()),
        input_bytes=sum(nbytes(t) for t in given),
        activation_peak_bytes=memory.peak_bytes,
        output_shapes=outputs,
        ops=ops,
        uncounted=uncounted,
        uncalled_modules=uncalled_modules(model, provenance.read),
        seconds=time.perf_counter() - start,
        counted_on=target.where,
    )
