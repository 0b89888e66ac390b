"""The same model counted by effprof, FlopCounterMode, fvcore and thop, each difference explained.

effprof and FlopCounterMode count on the meta device at the requested shape; fvcore (JIT trace)
and thop (module hooks) run the real model on CPU, at ``shape`` when given (they take seconds to
minutes at large shapes). Every explanation is written from what was measured: per-op and
per-module-type totals of each tool set against effprof's per-op table at the same shape.
"""

from __future__ import annotations

import contextlib
import copy
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import pandas as pd
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from effprof.measure.count_targets import ON, count_dtype
from effprof.measure.counting import CountResult, count_model, shape_text
from effprof.measure.params import count_params
from effprof.measure.tool_counters import (
    ForwardCall,
    category_text,
    explain_thop,
    hook_visits,
    op_packet,
    run_fvcore,
    run_thop,
    untie_shared_modules,
)
from effprof.models.inputs import InputSpec, as_inputs, flat_tensors
from effprof.models.registry import ReferenceCount
from effprof.results import EffprofError

COLUMNS = [
    *("counter", "input_shape", "reports", "tool_value", "macs", "flops", "params"),
    *("seconds", "status", "explanation"),
]
REPORTS = {
    "effprof": "MACs; FLOPs = 2 x MACs + other ops (bias FLOPs apart)",
    "FlopCounterMode": "FLOPs of conv/matmul/attention only (2 per MAC)",
    "fvcore": "'flops' that are MACs for conv/matmul, plus its own counts for a few other ops",
    "thop": "'MACs' from per-module-type rules (conv/linear MACs, 1 per PReLU element, ...)",
}


@dataclass(frozen=True, eq=False)
class CrossCheck:
    """One row per counter (and reference), with what each number means and why it differs."""

    table: pd.DataFrame
    effprof: CountResult

    def to_frame(self) -> pd.DataFrame:
        """The side-by-side table."""
        return self.table

    @property
    def explanations(self) -> list[str]:
        """Every row's explanation, prefixed with its counter."""
        texts = []
        for row in self.table.itertuples():
            text = row.explanation if isinstance(row.explanation, str) else row.status
            texts.append(f"{row.counter}: {text}")
        return texts


def _real_copy(model: nn.Module) -> nn.Module:
    """A CPU float32 eval copy; a meta model gets freshly initialised (seeded) weights."""
    if any(t.is_meta for t in (*model.parameters(), *model.buffers())):
        real = copy.deepcopy(model).to_empty(device="cpu")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            for module in real.modules():
                if hasattr(module, "reset_parameters"):
                    module.reset_parameters()
    else:
        real = copy.deepcopy(model).to("cpu")
    return real.float().eval()


def _explain_effprof(count: CountResult, params: int) -> str:
    text = [
        f"{count.macs:,} MACs; FLOPs = 2 x MACs + {count.flops - 2 * count.macs:,} FLOPs beyond "
        f"the multiply-accumulates ({category_text(count)}); bias FLOPs {count.bias_flops:,} "
        "listed apart."
    ]
    if not count.complete:
        calls = ", ".join(f"{r.op} x{r.calls}" for r in count.uncounted.itertuples())
        text.append(f"Ops without a formula (not in the totals): {calls}.")
    if len(count.uncalled_modules):
        names = ", ".join(count.uncalled_modules["module"])
        held = int(count.uncalled_modules["params"].sum())
        text.append(
            f"{len(count.uncalled_modules)} modules holding {held:,} of the {params:,} parameters "
            f"are never called by this forward ({names}): parameter counts that walk the model "
            "include them, FLOPs cannot."
        )
    return " ".join(text)


def _explain_flop_counter(total: int, by_op: Mapping[str, int], count: CountResult) -> str:
    twice = 2 * count.macs
    if total == twice:
        head = f"its {total:,} equals effprof's 2 x {count.macs:,} MACs exactly."
    else:
        diffs = []
        for op, value in by_op.items():
            mine = 2 * int(
                count.ops.loc[count.ops["op"].map(op_packet) == op_packet(op), "macs"].sum()
            )
            if mine != value:
                diffs.append(f"{op}: {value:,} vs effprof 2 x MACs {mine:,}")
        head = f"its {total:,} differs from effprof's 2 x MACs {twice:,} ({'; '.join(diffs)})."
    return (
        "FlopCounterMode counts only convolution, matrix products and attention, at 2 FLOPs per "
        f"MAC: {head} effprof's FLOPs are {count.flops - total:,} higher because it also counts "
        f"the FLOPs beyond the multiply-accumulates: {category_text(count)}."
    )


def run_flop_counter(
    model: nn.Module, inputs: InputSpec, kwargs: Mapping[str, Any], where: str = "meta"
) -> tuple[int, dict[str, int]]:
    """FlopCounterMode's total FLOPs and its per-op counts for one forward on ``where`` (the
    target effprof's count ran on: meta, fake or real CPU tensors; see
    :mod:`effprof.measure.count_targets`). Off meta, attention runs PyTorch's math path, whose
    matrix products FlopCounterMode counts (it has no formula for the CPU's fused kernel)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    dtype = count_dtype(model, inputs, None)
    attention = sdpa_kernel([SDPBackend.MATH]) if where != "meta" else contextlib.nullcontext()
    with (
        ON[where](model, inputs, dtype, dict(kwargs)) as target, attention, torch.no_grad(),
        FlopCounterMode(display=False) as counter,
    ):  # fmt: skip
        target.model(*target.args, **target.kwargs)
    by_op = {str(op): int(v) for op, v in counter.get_flop_counts().get("Global", {}).items()}
    return int(counter.get_total_flops()), by_op


def pixel_unshuffle_conv_macs(count: CountResult) -> tuple[int, int]:
    """(calls, MACs) that this trace's pixel-unshuffles would cost as the official grouped conv.

    The official MSSNet unshuffles with a 2x2 stride-2 conv, groups = input channels, fixed 0/1
    kernel: every output element is r x r MACs (C_in / groups = 1), r^2 = C_out / C_in.
    """
    ops = count.ops[count.ops["op"].str.startswith("aten.pixel_unshuffle")]
    macs = 0
    for row in ops.itertuples():
        out = [int(s) for s in row.output_shape.split("x")]
        c_in = int(row.input_shapes.split(",")[0].split("x")[1])
        macs += torch.Size(out).numel() * (out[1] // c_in)
    return len(ops), macs


def _explain_reference(ref: ReferenceCount, ours: int, count: CountResult) -> str:
    diff = ref.value - ours
    head = f"{ref.label} ({ref.counter} at {shape_text(ref.input_shape)}): {ref.value:,}; "
    head += f"{ref.counter} on this model: {ours:,}"
    if diff == 0:
        return head + ", equal."
    calls, macs = pixel_unshuffle_conv_macs(count)
    as_counted = 2 * macs if ref.counter == "FlopCounterMode" else macs
    if calls and as_counted == diff:
        return (
            f"{head}, {diff:+,}. The official code implements pixel-unshuffle as a grouped 2x2 "
            "stride-2 convolution with a fixed 0/1 kernel; counted as a convolution its "
            f"{calls} calls cost {macs:,} MACs = {as_counted:,} by {ref.counter}'s rules: exactly "
            "the difference."
        )
    return f"{head}, {diff:+,}: not explained by the known causes (pixel-unshuffle as conv: {as_counted:,})."


def _row(counter: str, shape: Sequence[int], **values: Any) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(COLUMNS)
    row.update(counter=counter, input_shape=shape_text(shape), status="ok")
    row["reports"] = REPORTS.get(counter.split(" ")[0], "")
    row.update(values)
    return row


def _timed(counter: str, shape: Sequence[int], run: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """A table row from ``run()``; a third-party counter that fails is a missing value, not a crash."""
    start = time.perf_counter()
    try:
        values = run()
    except Exception as error:
        message = (str(error).strip().splitlines() or [""])[0]
        return _row(counter, shape, status=f"missing: {type(error).__name__}: {message}"[:300])
    return _row(counter, shape, seconds=time.perf_counter() - start, **values)


def _effprof_row(count: CountResult, params: int, explanation: str) -> dict[str, Any]:
    return _row("effprof", count.input_shape, tool_value=count.flops, macs=count.macs,
                flops=count.flops, params=params, seconds=count.seconds, explanation=explanation)  # fmt: skip


def _reference_row(
    model: nn.Module, ref: ReferenceCount, kwargs: dict[str, Any], fvcore_row: dict[str, Any] | None
) -> dict[str, Any]:
    ref_kwargs = dict(ref.forward_kwargs) if ref.forward_kwargs is not None else kwargs
    shape = tuple(ref.input_shape)
    ours: Any = None
    if ref.counter == "FlopCounterMode":
        ours = run_flop_counter(model, as_inputs(shape), ref_kwargs)[0]
    elif (
        fvcore_row is not None
        and fvcore_row["input_shape"] == shape_text(shape)
        and ref_kwargs == kwargs
    ):
        ours = fvcore_row["tool_value"]
    if isinstance(ours, int):
        text = _explain_reference(ref, ours, count_model(model, shape, forward_kwargs=ref_kwargs))
    else:
        ran = (
            "did not run"
            if fvcore_row is None
            else f"ran at {fvcore_row['input_shape']} with {_forward_text(kwargs)}"
        )
        text = (
            f"not compared: the reference is {ref.counter} at {shape_text(shape)} with "
            f"{_forward_text(ref_kwargs)}; {ref.counter} {ran} here."
        )
    return _row(ref.label, shape, reports=f"reference, {ref.counter}'s rules", tool_value=ref.value,
                macs=ref.value // 2 if ref.counter == "FlopCounterMode" else ref.value,
                status="reference (not run here)", explanation=text)  # fmt: skip


def _forward_text(kwargs: Mapping[str, Any]) -> str:
    """``{"all_outputs": True}`` -> ``"forward(all_outputs=True)"``; {} -> the plain forward."""
    if not kwargs:
        return "the plain forward"
    return "forward(" + ", ".join(f"{k}={v!r}" for k, v in kwargs.items()) + ")"


def _same_outputs(a: Any, b: Any) -> str:
    pairs = list(zip(flat_tensors(a), flat_tensors(b), strict=True))
    if all(torch.equal(p, q) for p, q in pairs):
        return "outputs identical"
    return f"outputs differ by at most {max(float((p - q).abs().max()) for p, q in pairs):.3g}"


TOOLS = ("FlopCounterMode", "fvcore", "thop")


def cross_check(
    model: nn.Module,
    inputs: InputSpec | Sequence[int],
    *,
    forward_kwargs: Mapping[str, Any] | None = None,
    real_inputs: InputSpec | Sequence[int] | None = None,
    references: Sequence[ReferenceCount] = (),
    tools: Sequence[str] = TOOLS,
) -> CrossCheck:
    """Count ``model`` with effprof and ``tools`` side by side; explain each difference in words.

    effprof and FlopCounterMode count on meta at ``inputs``; fvcore and thop run the real model
    on CPU at ``real_inputs`` (default ``inputs``; they take seconds to minutes at large sizes).
    When the model shares a module between parents, thop also runs on a copy with every shared
    module untied. A counter that cannot run gets a row saying why, never an exception.
    """
    unknown = sorted(set(tools) - set(TOOLS))
    if unknown:
        raise EffprofError(f"unknown counter(s) {', '.join(unknown)}; known: {', '.join(TOOLS)}")
    kwargs = dict(forward_kwargs or {})
    main = as_inputs(inputs)
    real_spec = as_inputs(real_inputs) if real_inputs is not None else main
    count = count_model(model, main, forward_kwargs=kwargs)
    params = count_params(model).total
    rows = [_effprof_row(count, params, _explain_effprof(count, params))]
    if "FlopCounterMode" in tools:

        def flop_counter() -> dict[str, Any]:
            total, by_op = run_flop_counter(model, main, kwargs, count.counted_on)
            return {"tool_value": total, "macs": total // 2, "flops": total,
                    "explanation": _explain_flop_counter(total, by_op, count)}  # fmt: skip

        rows.append(_timed("FlopCounterMode", main.shape, flop_counter))
    fvcore_row = None
    if {"fvcore", "thop"} & set(tools):
        real_rows, fvcore_row = _real_rows(model, count, main, real_spec, kwargs, params, tools)
        rows.extend(real_rows)
    rows.extend(_reference_row(model, ref, kwargs, fvcore_row) for ref in references)
    table = pd.DataFrame(rows, columns=COLUMNS)
    for column in ("tool_value", "macs", "flops", "params"):
        table[column] = table[column].astype("Int64")
    table["seconds"] = table["seconds"].astype(float)
    return CrossCheck(table=table, effprof=count)


def _real_rows(
    model: nn.Module, count: CountResult, main: InputSpec, real_spec: InputSpec,
    kwargs: dict[str, Any], params: int, tools: Sequence[str],
) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:  # fmt: skip
    """The rows of the tools that run the real model (fvcore, thop) at ``real_spec``."""
    rows: list[dict[str, Any]] = []
    real_count = count
    if real_spec.describe() != main.describe():
        try:
            real_count = count_model(model, real_spec, forward_kwargs=kwargs)
        except EffprofError as error:
            reason = f"missing: the model does not run at {real_spec.describe()}: {error}"[:300]
            return [
                _row(t, real_spec.shape, status=reason) for t in ("fvcore", "thop") if t in tools
            ], None
        rows.append(_effprof_row(real_count, params, "effprof at the inputs fvcore and thop ran."))
    real = _real_copy(model)
    args, given = real_spec.build("cpu", seed=0)
    call_kwargs = {**given, **kwargs}
    fvcore_row = None
    if "fvcore" in tools:
        run = partial(run_fvcore, ForwardCall(real, call_kwargs), args, real_count, params)
        fvcore_row = _timed("fvcore", real_spec.shape, run)
        rows.append(fvcore_row)
    if "thop" in tools:
        rows.extend(_thop_rows(real, call_kwargs, args, real_count, params))
    return rows, fvcore_row


def _thop_rows(
    real: nn.Module,
    kwargs: dict[str, Any],
    args: tuple[torch.Tensor, ...],
    count: CountResult,
    params: int,
) -> list[dict[str, Any]]:
    """thop on the model as it is and, when it shares modules, on an untied copy."""
    shape = tuple(args[0].shape) if args else count.input_shape
    untied_row, untied = None, None
    if any(n > 1 for n in hook_visits(real).values()):

        def thop_untied() -> dict[str, Any]:
            nonlocal untied
            copy_ = untie_shared_modules(real)
            with torch.no_grad():
                same = _same_outputs(
                    ForwardCall(real, kwargs)(*args), ForwardCall(copy_, kwargs)(*args)
                )
            total, thop_params, layers = run_thop(ForwardCall(copy_, kwargs), args)
            untied = (total, layers, same)
            return {"tool_value": total, "macs": total, "params": thop_params,
                    "explanation": f"thop on a copy with every shared module untied ({same})."}  # fmt: skip

        untied_row = _timed("thop (shared modules untied)", shape, thop_untied)

    def thop_tied() -> dict[str, Any]:
        total, thop_params, layers = run_thop(ForwardCall(copy.deepcopy(real), kwargs), args)
        text = explain_thop(real, total, layers, count, untied, thop_params, params)
        return {"tool_value": total, "macs": total, "params": thop_params, "explanation": text}

    return [_timed("thop", shape, thop_tied)] + ([untied_row] if untied_row else [])
