"""fvcore and thop, run on a real model and explained against effprof's per-op table.

Used by :mod:`effprof.measure.crosscheck`. Both tools print, warn and log; :func:`quiet` keeps
that out of the caller's output. thop mutates the model it profiles (buffers, hooks it cannot
remove when a module is shared), so callers hand it a copy.
"""

from __future__ import annotations

import contextlib
import copy
import io
import logging
import warnings
from collections import Counter
from collections.abc import Iterator, Mapping
from typing import Any

import pandas as pd
import torch
from torch import nn

from effprof.measure.counting import CountResult
from effprof.models.inputs import flat_tensors

FVCORE_MAC_OPS = {"conv", "addmm", "bmm", "einsum", "matmul", "mm", "linear"}


class ForwardCall(nn.Module):
    """``model(*args, **kwargs)`` as a module of positional tensors returning a tuple of tensors
    (what JIT tracing and module hooks need; dict and ``ModelOutput`` results are flattened)."""

    def __init__(self, model: nn.Module, kwargs: Mapping[str, Any]) -> None:
        super().__init__()
        self.model = model
        self.kwargs = dict(kwargs)

    def forward(self, *args: torch.Tensor) -> Any:
        out = self.model(*args, **self.kwargs)
        if isinstance(out, torch.Tensor):
            return out
        return tuple(flat_tensors(out))


def untie_shared_modules(model: nn.Module) -> nn.Module:
    """A deep copy where every module registered under several parents gets its own copy there.

    Outputs are unchanged (copies start with the same weights); shared weights become separate.
    """
    model = copy.deepcopy(model)
    seen: set[int] = set()

    def walk(module: nn.Module) -> None:
        for name, child in list(module._modules.items()):
            if child is None:
                continue
            if id(child) in seen:
                child = copy.deepcopy(child)
                module._modules[name] = child
            seen.add(id(child))
            walk(child)

    seen.add(id(model))
    walk(model)
    return model


def hook_visits(model: nn.Module) -> Counter[int]:
    """How often ``model.apply`` reaches each module (id): > 1 for modules under several parents."""
    visits: Counter[int] = Counter({id(model): 1})

    def walk(module: nn.Module) -> None:
        for child in module.children():
            visits[id(child)] += 1
            walk(child)

    walk(model)
    return visits


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Keep fvcore's and thop's prints, warnings and log records out of the caller's output."""
    previous = logging.root.manager.disable
    logging.disable(logging.CRITICAL)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(previous)


def op_packet(op: str) -> str:
    """``aten._prelu_kernel.default`` -> ``prelu``; ``aten::add`` -> ``add`` (for matching)."""
    name = op.split("::")[-1]
    if name.startswith(("aten.", "effprof.")):  # effprof.scaled_dot_product_attention: fused row
        name = name.split(".")[1]
    name = name.strip("_")
    return name.removesuffix("_kernel")


# fvcore's operator names -> the aten packets effprof records for them (after op_packet).
FVCORE_ALIASES: dict[str, tuple[str, ...]] = {
    "batch_norm": ("native_batch_norm", "native_batch_norm_legit", "native_batch_norm_legit_no_training", "cudnn_batch_norm"),
    "layer_norm": ("native_layer_norm",),
    "group_norm": ("native_group_norm",),
    "instance_norm": ("native_batch_norm", "native_batch_norm_legit"),
    "adaptive_avg_pool2d": ("adaptive_avg_pool2d",),
    "upsample_bilinear2d": ("upsample_bilinear2d",),
    "upsample_nearest2d": ("upsample_nearest2d",),
    "linear": ("addmm", "mm"),
    "matmul": ("mm", "bmm"),
    "einsum": ("bmm", "mm"),
}  # fmt: skip


# What aten runs instead when the first names are absent: a global average pool is a mean.
FVCORE_FALLBACKS: dict[str, tuple[str, ...]] = {"adaptive_avg_pool2d": ("mean",)}


def _packets_for(name: str) -> set[str]:
    packet = op_packet(name)
    return {packet, *FVCORE_ALIASES.get(packet, ())}


def effprof_ops_for(count: CountResult, name: str) -> pd.DataFrame:
    """effprof's op rows that a tool's op name stands for (fvcore's ``batch_norm`` is aten's
    ``_native_batch_norm_legit_no_training``, its ``scaled_dot_product_attention`` effprof's
    fused attention row, ...)."""
    packets = count.ops["op"].map(op_packet)
    ops = count.ops[packets.isin(_packets_for(name))]
    if ops.empty:
        ops = count.ops[packets.isin(FVCORE_FALLBACKS.get(op_packet(name), ()))]
    return ops


def effprof_flops_for(count: CountResult, name: str) -> tuple[int, int]:
    """(FLOPs, output elements) of effprof's ops that a tool's op name stands for."""
    ops = effprof_ops_for(count, name)
    elements = sum(_first_numel(text) for text in ops["output_shape"])
    return int(ops["flops"].sum()), elements


def _first_numel(shapes: str) -> int:
    """Elements of the first shape in an ops-table cell: ``"1x12x4x4, 3"`` -> 192; ``"()"`` -> 1."""
    first = shapes.split(", ")[0]
    return 1 if first in ("()", "") else torch.Size(int(d) for d in first.split("x")).numel()


def category_text(
    count: CountResult, ops: pd.DataFrame | None = None, beyond_macs: bool = True
) -> str:
    """FLOPs by category, largest first: ``"resampling 212,337,664, activation ..."``. With
    ``beyond_macs`` only what is not 2 FLOPs per MAC (a convolution adds nothing, attention its
    softmax and scaling), so the parts sum to ``FLOPs - 2 x MACs``; else every FLOP."""
    ops = count.ops if ops is None else ops
    flops = ops["flops"] - 2 * ops["macs"] if beyond_macs else ops["flops"]
    beyond = flops.groupby(ops["category"]).sum()
    beyond = beyond[beyond > 0].sort_values(ascending=False)
    return ", ".join(f"{c} {int(v):,}" for c, v in beyond.items()) or "nothing else"


def run_fvcore(
    call: nn.Module, args: tuple[torch.Tensor, ...], count: CountResult, params: int
) -> dict[str, Any]:
    """fvcore's count of ``call(*args)`` and an explanation of how it differs from effprof's."""
    with quiet():
        from fvcore.nn import FlopCountAnalysis, parameter_count

        analysis = FlopCountAnalysis(call, tuple(args))
        analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
        analysis.tracer_warnings("none")
        total = int(analysis.total())
        by_op = {k: int(v) for k, v in analysis.by_operator().items()}
        unsupported = dict(analysis.unsupported_ops())
        uncalled = sorted(analysis.uncalled_modules())
        fv_params = int(parameter_count(call)[""])
    macs = sum(v for k, v in by_op.items() if k in FVCORE_MAC_OPS)
    same = "equals" if macs == count.macs else f"differs by {macs - count.macs:+,} from"
    text = [f"fvcore's 'flops' are MACs for conv/matmul: its {macs:,} {same} effprof's MACs."]
    for op, value in by_op.items():
        if op not in FVCORE_MAC_OPS:
            mine, elements = effprof_flops_for(count, op)
            per = (
                f" ({value / elements:g} vs {mine / elements:g} per output element)"
                if elements
                else ""
            )
            text.append(f"It adds {value:,} for {op}, where effprof counts {mine:,} FLOPs{per}.")
    if unsupported:
        skipped = ", ".join(f"{op} x{n}" for op, n in unsupported.items())
        rows = [effprof_ops_for(count, op) for op in unsupported]
        mine_flops, mine_macs = (sum(int(r[c].sum()) for r in rows) for c in ("flops", "macs"))
        of_them = f", {mine_macs:,} MACs among them" if mine_macs else ""
        text.append(
            f"It counts 0 for ops it has no handle for: {skipped} (effprof: {mine_flops:,} FLOPs"
            f"{of_them})."
        )
    top = [m.removeprefix("model.") for m in uncalled if m.rpartition(".")[0] not in uncalled]
    if top:
        text.append(f"Its trace never reaches {len(top)} modules ({', '.join(top)}).")
    same = "equals" if fv_params == params else "differs from"
    text.append(f"Its parameter count {fv_params:,} {same} effprof's (all modules, shared once).")
    return {"tool_value": total, "macs": macs, "params": fv_params, "explanation": " ".join(text)}


def _thop_layers(info: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """Flatten thop's nested layer info to {path: ops} for leaf entries."""
    flat: dict[str, float] = {}
    for name, (ops, _params, children) in info.items():
        path = f"{prefix}{name}"
        if children:
            flat.update(_thop_layers(children, path + "."))
        else:
            flat[path] = ops
    return flat


def run_thop(call: nn.Module, args: tuple[torch.Tensor, ...]) -> tuple[int, int, dict[str, float]]:
    """thop's (ops, params, {module path: ops}); thop mutates ``call``, so pass a copy."""
    with quiet(), torch.no_grad():
        import thop

        ops, params, info = thop.profile(
            call, inputs=tuple(args), verbose=False, ret_layer_info=True
        )
    return int(ops), int(params), _thop_layers(info)


def _by_type(model: nn.Module, layers: Mapping[str, float]) -> dict[str, int]:
    types = {
        f"model.{n}" if n else "model": type(m).__name__
        for n, m in model.named_modules(remove_duplicate=False)
    }
    totals: Counter[str] = Counter()
    for path, ops in layers.items():
        if ops:
            totals[types.get(path, "?")] += int(ops)
    return dict(totals)


def explain_thop(
    model: nn.Module,
    total: int,
    layers: Mapping[str, float],
    count: CountResult,
    untied: tuple[int, dict[str, float], str] | None,
    thop_params: int,
    params: int,
) -> str:
    """Why thop's total differs from effprof's: shared modules, its own rules, what it cannot see."""
    from thop.profile import register_hooks

    call = ForwardCall(model, {})
    visits = hook_visits(call)
    by_type = _by_type(model, layers)
    text = [f"thop's {total:,} = " + " + ".join(f"{t} {v:,}" for t, v in by_type.items()) + "."]
    paths: dict[int, list[str]] = {}
    for name, module in call.named_modules(remove_duplicate=False):
        paths.setdefault(id(module), []).append(name)
    for name, module in call.named_modules():
        n = visits[id(module)]
        if n < 2 or type(module) not in register_hooks:
            continue
        tied = sum(layers.get(p, 0) for p in paths[id(module)])
        once = int(tied) // (n * n)
        text.append(
            f"The one {type(module).__name__} instance {name.removeprefix('model.')} is registered "
            f"under {n} parent modules: thop hooks it once per parent ({n} hooks, so each of its "
            f"calls is counted {n} times) and adds its total once per parent ({n} times): "
            f"{n}^2 = {n * n:,} x {once:,} = {int(tied):,}, {int(tied) - once:,} more than counting "
            "each call once."
        )
    if untied is not None:
        u_total, u_layers, same = untied
        u_type = _by_type(model, u_layers)  # the untied copy has the same paths and types
        conv = sum(v for t, v in u_type.items() if t.startswith(("Conv", "Linear")))
        mine = int(
            count.ops.loc[count.ops["module_type"].str.startswith(("Conv", "Linear")), "macs"].sum()
        )
        rel = "equals" if conv == mine else f"differs by {conv - mine:+,} from"
        rest = ", ".join(
            f"{t} {v:,}" for t, v in u_type.items() if not t.startswith(("Conv", "Linear"))
        )
        text.append(
            f"With every shared module untied ({same}), thop reports {u_total:,}: its conv/linear "
            f"part {conv:,} {rel} effprof's MACs {mine:,}; the rest is thop's own per-module rules "
            f"({rest or 'none'})."
        )
    known = {t.__name__ for t in register_hooks}
    outside = count.ops[~count.ops["module_type"].isin(known)]
    if outside["flops"].sum():
        text.append(
            "thop sees only modules of the types it has rules for: effprof counts "
            f"{int(outside['flops'].sum()):,} FLOPs in ops outside them "
            f"({category_text(count, outside, beyond_macs=False)}), "
            "e.g. functional calls, which thop omits."
        )
    text.append(_explain_thop_params(call, visits, count, thop_params, params))
    return " ".join(text)


def _explain_thop_params(
    call: nn.Module, visits: Counter[int], count: CountResult, thop_params: int, params: int
) -> str:
    from thop.profile import register_hooks

    hooked = [
        m for m in call.modules() if type(m) in register_hooks and not isinstance(m, nn.Sequential)
    ]
    shared = sum((visits[id(m)] - 1) * sum(p.numel() for p in m.parameters()) for m in hooked)
    uncalled = int(count.uncalled_modules["params"].sum())
    owned = {id(p) for m in hooked for p in m.parameters()}
    unknown = sum(p.numel() for p in call.parameters() if id(p) not in owned)
    parts = [f"effprof's {params:,}"]
    parts += [f"+{shared:,} for shared modules counted once per parent"] if shared else []
    parts += [f"-{uncalled:,} in modules never called"] if uncalled else []
    parts += [f"-{unknown:,} in modules of types thop has no rule for"] if unknown else []
    predicted = params + shared - uncalled - unknown
    verdict = "exactly" if predicted == thop_params else f"predicted {predicted:,}"
    return f"Its parameter count {thop_params:,} = {' '.join(parts)} ({verdict})."
