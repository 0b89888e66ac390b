"""Parameter and buffer counts: total, trainable, bytes, by dtype and by module.

Every tensor is counted once, under its first state-dict style name, however many modules share
it (MSSNet's single PReLU weight is one parameter, not one per ResBlock). The module of a tensor
is where that first name puts it, so names do not depend on which path calls a module.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import torch
from torch import nn

TENSOR_COLUMNS = ["name", "module", "module_type", "shape", "dtype", "numel", "bytes", "aliases"]


def _module_types(model: nn.Module) -> dict[str, str]:
    return {name: type(m).__name__ for name, m in model.named_modules()}


def _tensor_table(
    named: list[tuple[str, torch.Tensor]], types: dict[str, str], extra: dict[str, list[object]]
) -> pd.DataFrame:
    first: dict[int, int] = {}
    positions: list[int] = []
    rows: list[list[object]] = []
    for position, (name, tensor) in enumerate(named):
        if id(tensor) in first:
            rows[first[id(tensor)]][7] += 1  # type: ignore[operator]
            continue
        first[id(tensor)] = len(rows)
        positions.append(position)
        module = name.rpartition(".")[0]
        shape = "x".join(map(str, tensor.shape)) or "()"
        dtype = str(tensor.dtype).removeprefix("torch.")
        nbytes = tensor.numel() * tensor.element_size()
        rows.append([name, module, types.get(module, ""), shape, dtype, tensor.numel(), nbytes, 1])
    table = pd.DataFrame(rows, columns=TENSOR_COLUMNS)
    for column, values in extra.items():
        table[column] = [values[i] for i in positions]
    return table


@dataclass(frozen=True, eq=False)
class ParamSummary:
    """Unique parameters and buffers of a model; ``tensors`` has one row per unique parameter."""

    total: int
    trainable: int
    bytes: int
    buffer_numel: int
    buffer_bytes: int
    tensors: pd.DataFrame
    buffers: pd.DataFrame

    def to_frame(self) -> pd.DataFrame:
        """One row per unique parameter: name, module, shape, dtype, numel, bytes, trainable, aliases."""
        return self.tensors

    def by_module(self, depth: int | None = None) -> pd.DataFrame:
        """Parameters per owning module (cut to ``depth`` name components); sums equal the totals."""
        modules = self.tensors["module"]
        if depth is not None:
            modules = modules.map(lambda p: ".".join(p.split(".")[:depth]))
        grouped = self.tensors.assign(module=modules).groupby("module", sort=False)
        table = grouped[["numel", "bytes"]].sum().rename(columns={"numel": "params"})
        table["trainable"] = grouped.apply(
            lambda g: int(g["numel"][g["trainable"]].sum()), include_groups=False
        )
        if depth is None:
            table.insert(0, "module_type", grouped["module_type"].first())
        return table.reset_index()

    def by_dtype(self) -> pd.DataFrame:
        """Parameters and bytes per dtype."""
        grouped = self.tensors.groupby("dtype")
        table = grouped[["numel", "bytes"]].sum().rename(columns={"numel": "params"})
        return table.reset_index()

    def summary(self) -> dict[str, int]:
        """Headline numbers for run.json."""
        return {
            "params": self.total,
            "trainable_params": self.trainable,
            "params_bytes": self.bytes,
            "buffer_elements": self.buffer_numel,
            "buffers_bytes": self.buffer_bytes,
        }


def count_params(model: nn.Module) -> ParamSummary:
    """Count unique parameters (shared ones once) and buffers of ``model``; works on meta models.

    >>> count_params(nn.Sequential(nn.Conv2d(3, 8, 3), nn.PReLU())).total  # 8*3*3*3 + 8 + 1
    225
    """
    types = _module_types(model)
    named = list(model.named_parameters(remove_duplicate=False))
    trainable = [p.requires_grad for _, p in named]
    tensors = _tensor_table(named, types, {"trainable": trainable})
    named_buffers = [
        (n, b) for n, b in model.named_buffers(remove_duplicate=False) if b is not None
    ]
    buffers = _tensor_table(named_buffers, types, {})
    return ParamSummary(
        total=int(tensors["numel"].sum()),
        trainable=int(tensors["numel"][tensors["trainable"]].sum()) if len(tensors) else 0,
        bytes=int(tensors["bytes"].sum()),
        buffer_numel=int(buffers["numel"].sum()),
        buffer_bytes=int(buffers["bytes"].sum()),
        tensors=tensors,
        buffers=buffers,
    )
