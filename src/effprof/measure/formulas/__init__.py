"""Per-aten-op cost formulas: MACs, FLOPs and bias FLOPs from shapes, one registry entry per op.

The shape functions (``conv_macs``, ``interpolate_flops``, ``window_coverage``, ...) are pure and
carry a worked example; the registered handlers only unpack an aten call's arguments into them.
An op that has no entry here is *uncounted*: the counter lists it by name with its call count,
never as zero. ``base`` holds the registry, ``core`` the common ops and the lookup, ``windows``
pooling and grid sampling, ``attention`` the fused attention kernels, ``selection``
sorting, search, distances and FFTs.
"""

from __future__ import annotations

from effprof.measure.formulas import attention, selection, windows
from effprof.measure.formulas.base import (
    COUNTING_POLICY,
    FORMULAS,
    Formula,
    OpCost,
    aten_ops,
    numel,
    register_formula,
)
from effprof.measure.formulas.core import find_formula, is_memory_only

SUBMODULES = ("base", "core", "windows", "attention", "selection")

__all__ = [
    "COUNTING_POLICY",
    "FORMULAS",
    "SUBMODULES",
    "Formula",
    "OpCost",
    "aten_ops",
    "attention",
    "find_formula",
    "is_memory_only",
    "numel",
    "register_formula",
    "selection",
    "windows",
]
