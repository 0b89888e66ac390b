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


def split_missing(values: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """Split a metrics dict into (numbers with ``None`` for missing ones, {name: reason}).

    This is how run.json stores them: ``metrics.latency_ms = null`` and
    ``missing.latency_ms = "CUDA out of memory"``.
    """
    numbers: dict[str, Any] = {}
    reasons: dict[str, str] = {}
    for name, value in values.items():
        if isinstance(value, Missing):
            numbers[name] = None
            reasons[name] = value.reason
        else:
            numbers[name] = value
    return numbers, reasons


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
