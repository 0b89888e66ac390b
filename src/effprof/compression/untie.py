"""Untie shared modules so every use site owns a copy (outputs unchanged).

MSSNet shares one ``nn.PReLU`` (one parameter) between all of its ResBlocks. A dependency graph
sees that instance as one node joined to every block, so every block's hidden width would be
coupled into one pruning group (and widths 20, 60 and 100 cannot even be pruned together).
Giving each block its own copy of the same parameter leaves the function unchanged and lets
each block's width be pruned on its own. The state dict keeps its keys: PyTorch already writes a
shared module's parameters under every path it is reachable from.
"""

from __future__ import annotations

import copy

from torch import nn

UNTIE_TYPES: tuple[type[nn.Module], ...] = (nn.PReLU,)


def shared_modules(
    model: nn.Module, types: tuple[type[nn.Module], ...] = UNTIE_TYPES
) -> dict[str, int]:
    """{name of a shared module's first path: number of places it is used} for modules of ``types``."""
    uses: dict[int, list[str]] = {}
    for name, module in model.named_modules(remove_duplicate=False):
        if isinstance(module, types):
            uses.setdefault(id(module), []).append(name)
    return {names[0]: len(names) for names in uses.values() if len(names) > 1}


def untie_shared(model: nn.Module, types: tuple[type[nn.Module], ...] = UNTIE_TYPES) -> int:
    """Give every use site of a shared module of ``types`` its own deep copy, in place.

    Returns how many copies were made (MSSNet: 87 ResBlocks share one PReLU -> 86 copies).
    """
    seen: set[int] = set()
    copies = 0
    for parent in list(model.modules()):
        for child_name, child in list(parent.named_children()):
            if not isinstance(child, types):
                continue
            if id(child) in seen:
                setattr(parent, child_name, copy.deepcopy(child))
                copies += 1
            else:
                seen.add(id(child))
    return copies
