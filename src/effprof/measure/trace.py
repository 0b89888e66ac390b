"""What a counting trace keeps beside its rows: the module stack at call time and the bytes of
live activation storages. Shared by the counter and the per-call timer."""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from functools import partial
from typing import Any

import torch
from torch import nn
from torch.nn.modules.module import register_module_forward_hook, register_module_forward_pre_hook


class CallPaths:
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

    def __enter__(self) -> CallPaths:
        self._handles = (
            register_module_forward_pre_hook(self._enter),
            register_module_forward_hook(self._exit, always_call=True),
        )
        return self

    def __exit__(self, *exc: object) -> None:
        for handle in self._handles:
            handle.remove()


class LiveMemory:
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


def tensors_in(values: Any) -> Iterator[torch.Tensor]:
    """The tensors among ``values``, and those inside lists or tuples among them (one level)."""
    for value in values:
        if isinstance(value, torch.Tensor):
            yield value
        elif isinstance(value, (list, tuple)):
            yield from (v for v in value if isinstance(v, torch.Tensor))


_SPARSE_PARTS = {  # layout -> the tensors a sparse tensor stores
    torch.sparse_coo: ("_values", "_indices"),
    torch.sparse_csr: ("values", "crow_indices", "col_indices"),
    torch.sparse_csc: ("values", "ccol_indices", "row_indices"),
    torch.sparse_bsr: ("values", "crow_indices", "col_indices"),
    torch.sparse_bsc: ("values", "ccol_indices", "row_indices"),
}


def nbytes(tensor: torch.Tensor) -> int:
    """Bytes of a tensor's elements; for a sparse tensor, of the values and indices it stores
    (a 4x4 COO tensor with 3 float32 values: 3 x 4 + 2 x 3 x 8 = 60 bytes)."""
    parts = _SPARSE_PARTS.get(tensor.layout)
    if parts is None:
        return tensor.numel() * tensor.element_size()
    try:
        return sum(nbytes(getattr(tensor, part)()) for part in parts)
    except (RuntimeError, NotImplementedError):  # an uncoalesced or meta sparse tensor
        return tensor.numel() * tensor.element_size()
