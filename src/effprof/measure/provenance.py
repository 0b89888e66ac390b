"""What a traced op read: which weights (so unused modules are found by what ran, not by which
``forward`` was entered) and whether a matrix product is attention.

A matrix product with a weight (a parameter or buffer, or a view of one) as an operand is a
linear layer. A product of two activations is *attention* when a softmax consumes its result
(``QK^T``) or when one operand came out of a softmax (``AV``): the tracker tags tensors along
the short chain of cheap ops that sit between them in an attention block (scaling, adding a mask
or a relative-position bias, views, dropout) and relabels the product's row once the softmax
shows up. A product of two activations without a softmax in reach (a Gram matrix, a dynamic
filter) stays linear/matmul.

>>> tracker = Provenance(weight_storages)          # doctest: +SKIP
>>> tracker.observe(row, func, category, inputs, outputs)   # doctest: +SKIP
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable
from typing import Any

import pandas as pd
import torch
from torch import nn

from effprof.measure.categories import (
    ACTIVATION,
    ATTENTION,
    ELEMENTWISE,
    LAYOUT,
    MATMUL,
)

SOFTMAX_OPS = ("_softmax", "_safe_softmax", "softmax", "_log_softmax")
_CARRIERS = (ELEMENTWISE, LAYOUT)  # ops that carry a score / probability tag through
_DROPOUT = ("native_dropout", "dropout")


def _packet(func: Any) -> str:
    return str(getattr(func, "overloadpacket", func)).split(".")[-1].removeprefix("aten::")


class Provenance:
    """Per-op bookkeeping for one counting trace (see the module docstring)."""

    def __init__(self, weight_storages: Iterable[int]) -> None:
        self.weights = set(weight_storages)
        self.read: set[int] = set()  # weight storages some op read
        self.relabel: dict[int, str] = {}  # row -> category, decided after the row was written
        self._scores: dict[int, frozenset[int]] = {}  # tensor id -> rows of products it holds
        self._probs: set[int] = set()  # tensor ids holding softmax output (or views of it)

    def _storage(self, tensor: torch.Tensor) -> int | None:
        try:
            return tensor.untyped_storage()._cdata
        except (RuntimeError, NotImplementedError):
            return None

    def is_weight(self, tensor: torch.Tensor) -> bool:
        """True for a parameter or buffer, or any view of one."""
        return self._storage(tensor) in self.weights

    def _tag(self, table: Any, tensor: torch.Tensor, value: Any) -> None:
        key = id(tensor)
        if isinstance(table, dict):
            table[key] = value
        else:
            table.add(key)
        weakref.finalize(tensor, _forget, table, key)

    def observe(
        self,
        row: int,
        func: Any,
        category: str,
        inputs: list[torch.Tensor],
        outputs: list[torch.Tensor],
    ) -> str:
        """Record one op; returns its category (attention for an ``AV`` product)."""
        for tensor in inputs:
            storage = self._storage(tensor)
            if storage in self.weights:
                self.read.add(storage)
        name = _packet(func)
        scores = frozenset().union(*(self._scores.get(id(t), frozenset()) for t in inputs))
        from_probs = any(id(t) in self._probs for t in inputs)
        if category == MATMUL and len(inputs) >= 2 and not any(map(self.is_weight, inputs)):
            if from_probs:
                return ATTENTION  # AV: the probabilities times the values
            for tensor in outputs:
                self._tag(self._scores, tensor, frozenset({row}))  # maybe QK^T: wait for a softmax
            return category
        if name in SOFTMAX_OPS and scores:
            for earlier in scores:
                self.relabel[earlier] = ATTENTION
            for tensor in outputs:
                self._tag(self._probs, tensor, True)
            return ATTENTION
        if category in _CARRIERS or name in _DROPOUT or (category == ACTIVATION and from_probs):
            for tensor in outputs:
                if scores:
                    self._tag(self._scores, tensor, scores)
                if from_probs:
                    self._tag(self._probs, tensor, True)
        return category


def _forget(table: Any, key: int) -> None:
    if isinstance(table, dict):
        table.pop(key, None)
    else:
        table.discard(key)


def _storage_key(tensor: torch.Tensor) -> int:
    return tensor.untyped_storage()._cdata


def uncalled_modules(model: nn.Module, read: set[int]) -> pd.DataFrame:
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
