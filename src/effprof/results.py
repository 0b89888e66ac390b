"""Plain data shared by every layer: the user-error type and the "missing measurement" value."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


class EffprofError(Exception):
    """An error caused by the user's input or environment.

    The CLI prints ``str(error)`` as one line and exits with code 2; no traceback is shown.
    """


@dataclass(frozen=True)
class Missing:
    """A number that could not be measured, with the reason (never stored as 0).

    >>> Missing("CUDA out of memory at 1x3x2160x3840")
    Missing(reason='CUDA out of memory at 1x3x2160x3840')
    """

    reason: str

    def __bool__(self) -> bool:
        return False

    def __str__(self) -> str:
        return f"missing ({self.reason})"


def is_missing(value: Any) -> bool:
    """True for ``Missing``, ``None`` and NaN: the three shapes a missing number takes in a run."""
    if value is None or isinstance(value, Missing):
        return True
    return isinstance(value, float) and math.isnan(value)


@dataclass(frozen=True)
class Unreliable:
    """A measured number whose measurement failed a reliability test (spread, a busy host).

    >>> Unreliable(1658.2, "busy host: other processes kept 1.6 of 2 cores busy").value
    1658.2
    """

    value: Any
    reason: str


@dataclass(frozen=True)
class Partial:
    """A lower bound: a count that leaves something out (ops without a formula), with the reason."""

    value: Any
    reason: str


@dataclass(frozen=True)
class Split:
    """A metrics dict as run.json stores it: plain values (``None`` where missing) and the
    reasons of the missing, unreliable and partial ones."""

    values: dict[str, Any]
    missing: dict[str, str]
    unreliable: dict[str, str]
    partial: dict[str, str]


def split_statuses(values: dict[str, Any]) -> Split:
    """Unwrap ``Missing``, ``Unreliable`` and ``Partial`` values into plain values and reasons;
    a plain ``None`` (nothing to say: a reliable latency's unreliable reason) is left out, so
    every null in a run is a missing number with its reason."""
    out = Split({}, {}, {}, {})
    for name, value in values.items():
        if isinstance(value, Missing):
            out.values[name] = None
            out.missing[name] = value.reason
        elif isinstance(value, Unreliable):
            out.values[name] = value.value
            out.unreliable[name] = value.reason
        elif isinstance(value, Partial):
            out.values[name] = value.value
            out.partial[name] = value.reason
        elif value is not None:  # None without a reason means "none" (no unreliable reason...)
            out.values[name] = value
    return out
