"""What the values inside run.json may be: the rule :func:`effprof.runs.record.read_record`
applies to ``metrics``, ``params`` and ``env`` before anything reads a number from them.

* Everywhere: plain JSON nested at most 32 deep; numbers finite (Python's JSON reader accepts
  ``NaN`` and ``Infinity``; effprof writes null) and integers within int64 (what pandas holds).
* ``params.pipeline`` (a compress run's settings) is an object.
* ``metrics`` hold one value each (a number, text, true/false or null: never a list or object),
  and a metric whose name carries a unit or a count holds a number, by the first rule of
  :data:`METRIC_RULES` its name matches: ``latency_median_ms`` a positive number,
  ``weights_bytes`` a number >= 0, ``fidelity_snr_db`` any number. A zero latency or speed-up is
  no measurement (the report divides by them).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

MAX_DEPTH = 32
INT64 = 2**63

# (name pattern, kind): kinds are "positive", "nonneg" and "number"; the first match wins.
METRIC_RULES: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), kind)
    for pattern, kind in (
        (r"(^|_)latency_(median|mean|p10|p90)_ms$", "positive"),
        (r"_median_ms$", "positive"),
        (r"_(speedup|size_x)(_vs_\w+)?$|(^|_)megapixels$|_mpix_s$|_per_s$", "positive"),
        (r"(^|_)(macs|flops|bias_flops|aten_calls)$|_bytes$|_count$|_calls$|_ops$", "nonneg"),
        (r"_(cv|share|ratio|fraction|error|seconds|threads|repeat|warmup|rounds)$", "nonneg"),
        (r"(^|_)share_", "nonneg"),  # time_share_convolution, macs_share_scale_1_2
        (r"_ms$|_s$|_db$|_per_byte$|_exponent$|_per_output_pixel$|^ssim$", "number"),
        (r"(^|_)(param|param_trainable|float_convs|int8_convs|test_inputs)$", "nonneg"),
    )
)
_KIND_TEXT = {"positive": "a number > 0", "nonneg": "a number >= 0", "number": "a number"}


def _shown(value: Any) -> str:
    return json.dumps(value)[:40]


def plain_problem(value: Any, where: str, depth: int = 0) -> str | None:
    """Why ``value`` (parsed JSON) is not plain data effprof can hold, or None."""
    if depth > MAX_DEPTH:
        return f"{where} is nested more than {MAX_DEPTH} deep"
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return None
    if isinstance(value, int):
        return None if -INT64 <= value < INT64 else f"{where} is an integer beyond int64"
    if isinstance(value, float):
        return None if math.isfinite(value) else f"{where} must be finite, not {value}"
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list):
        items = ((str(i), v) for i, v in enumerate(value))
    else:
        return f"{where} is not JSON data"
    for key, item in items:
        problem = plain_problem(item, f"{where}.{key}", depth + 1)
        if problem:
            return problem
    return None


def metric_kind(name: str) -> str | None:
    """The kind of number a metric must hold (``positive``, ``nonneg``, ``number``), or None when
    its name says nothing (a text metric such as ``input_shape``)."""
    return next((kind for pattern, kind in METRIC_RULES if pattern.search(name)), None)


def metric_problem(name: str, value: Any) -> str | None:
    """Why ``value`` cannot be the metric ``name``, or None."""
    where = f"metrics.{name}"
    if isinstance(value, (list, dict)):
        return (
            f"{where} must be one value (a number, text, true/false or null), not {_shown(value)}"
        )
    problem = plain_problem(value, where)
    if problem or value is None:
        return problem
    kind = metric_kind(name)
    if kind is None:
        return None
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not number or (kind == "positive" and value <= 0) or (kind == "nonneg" and value < 0):
        return f"{where} must be {_KIND_TEXT[kind]}, not {_shown(value)}"
    return None


# settings a reader takes apart (``params.pipeline.test_size``): an object when present
OBJECTS = (("params", "pipeline"),)


def values_problem(data: dict[str, Any]) -> str | None:
    """The first problem of a run.json's ``metrics``, ``params`` and ``env``, or None."""
    for group, name in OBJECTS:
        value = (data.get(group) or {}).get(name)
        if value is not None and not isinstance(value, dict):
            return f"{group}.{name} must be an object, not {_shown(value)}"
    for name, value in (data.get("metrics") or {}).items():
        problem = metric_problem(str(name), value)
        if problem:
            return problem
    for group in ("params", "env"):
        problem = plain_problem(data.get(group) or {}, group)
        if problem:
            return problem
    return None
