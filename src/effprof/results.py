"""Plain data shared by every layer: the user-error type and the "missing measurement" value."""

from __future__ import annotations

import math
import re
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


# --- a library's message as one plain line -----------------------------------------------------

# CSI (colours, cursor moves), OSC (window titles, links) and two-byte escape sequences
_ANSI = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[@-Z\\-_])")
_SUMMARY = re.compile(r"^<class '[\w.]+'>: (.+)$")  # torch's "## Exception summary" lines


def strip_ansi(text: str) -> str:
    """``text`` without terminal escape sequences (``\\x1b[96m...\\x1b[0m`` colours and others)."""
    return _ANSI.sub("", text)


def library_reason(err: BaseException, limit: int = 300) -> str:
    """A library's exception as one short plain line: escapes removed, the telling line of a
    multi-line dump (the first ``<class 'X'>: message`` of torch's exception summary, else the
    first non-empty line), cut at ``limit`` characters.

    >>> library_reason(RuntimeError("\\x1b[96mStep 3/3\\x1b[0m failed\\n\\n<class 'E'>: No ONNX function"))
    'No ONNX function'
    """
    lines = [line.strip() for line in strip_ansi(str(err)).splitlines() if line.strip()]
    summary = [m[1] for line in lines if (m := _SUMMARY.match(line))]
    text = summary[0] if summary else (lines[0] if lines else type(err).__name__)
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


_MODULE_CALLS = ("_call_impl", "_wrapped_call_impl")
_MODULE_FILE = "/".join(("torch", "nn", "modules", "module.py"))


def forward_failure(error: BaseException) -> str | None:
    """The one line for an exception raised inside a model's forward (its traceback runs through
    ``torch.nn.Module.__call__``): the model does not run on what it was given, the input's
    fault. None for any other exception, and for an EffprofError."""
    if isinstance(error, EffprofError):
        return None
    tb = error.__traceback__
    while tb is not None:
        code = tb.tb_frame.f_code
        if code.co_name in _MODULE_CALLS and code.co_filename.endswith(_MODULE_FILE):
            return (
                f"the model failed in its forward ({type(error).__name__}: "
                f"{library_reason(error)}); check that it runs on these inputs outside effprof"
            )
        tb = tb.tb_next
    return None
