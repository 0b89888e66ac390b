"""run.json: the record of one run, written as strict JSON and read back checked.

Writing: every non-finite float (NaN, +-inf) becomes ``null``; in ``metrics`` its name also gets a
``missing`` reason, so run.json is valid JSON for any reader (``allow_nan=False``).

Reading trusts nothing in the file: it must be a regular file of at most 16 MiB (a symlink to
``/dev/zero`` or a FIFO is refused, never read), JSON whose top level is an object, with every
field of the right type, ``created`` an ISO 8601 date, and the values inside ``metrics``,
``params`` and ``env`` as :mod:`effprof.runs.values` says. Anything else is an ``EffprofError``
naming the file and the first problem; the store's readers skip such runs with a warning.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import MISSING, asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from effprof import schema
from effprof.files import read_small_text
from effprof.results import EffprofError
from effprof.runs.values import values_problem

SCHEMA_VERSION = schema.SCHEMA_VERSION
RUN_FILE = "run.json"
MAX_RECORD_BYTES = 16 * 2**20
NON_FINITE_REASON = "not a finite number ({value}) when the run was written"
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


class RunStoreWarning(UserWarning):
    """Something in the store was skipped (corrupt, half-written, newer schema); loading went on."""


@dataclass
class RunRecord:
    """Everything run.json holds. ``params`` is the run's configuration (not a parameter count:
    that is ``metrics["param_count"]``); ``missing`` maps a metric name to why it is null,
    ``unreliable`` and ``partial`` to why its number is unreliable or a lower bound (the
    statuses of :mod:`effprof.schema`)."""

    run_id: str
    kind: str
    created: str
    model: str
    variant: str | None
    params: dict[str, Any]
    env: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)
    unreliable: dict[str, str] = field(default_factory=dict)
    partial: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    tables: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    group: str | None = None
    parent: str | None = None
    status: str = "finished"
    schema_version: int = SCHEMA_VERSION

    def to_json(self) -> str:
        """Strict JSON (no NaN/Infinity); non-finite metrics become null with a missing reason."""
        data = asdict(self)
        reasons = dict(data["missing"])
        for name, value in data["metrics"].items():
            if isinstance(value, float) and not math.isfinite(value):
                reasons.setdefault(name, NON_FINITE_REASON.format(value=value))
        data["missing"] = reasons
        return dumps_json(data, indent=1)

    def metric_status(self, name: str) -> str:
        """``measured``, ``missing``, ``unreliable`` or ``partial`` (:mod:`effprof.schema`)."""
        if name in self.missing or self.metrics.get(name) is None:
            return schema.MISSING
        if name in self.unreliable:
            return schema.UNRELIABLE
        if name in self.partial:
            return schema.PARTIAL
        return schema.MEASURED

    def metric_reason(self, name: str) -> str | None:
        """Why a metric is missing, unreliable or partial (None when measured)."""
        for reasons in (self.missing, self.unreliable, self.partial):
            if name in reasons:
                return reasons[name]
        return None


# --- strict JSON -------------------------------------------------------------------------------


def finite_json(value: Any) -> Any:
    """``value`` with every non-finite float (also inside dicts and lists) replaced by None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):  # numpy / torch scalars
        return finite_json(value.item())
    if isinstance(value, dict):
        return {str(k): finite_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [finite_json(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def dumps_json(value: Any, **options: Any) -> str:
    """``json.dumps`` that never writes NaN or Infinity (they become null)."""
    return json.dumps(finite_json(value), allow_nan=False, **options)


# --- reading -----------------------------------------------------------------------------------


def read_capped_text(path: str | Path, limit: int = MAX_RECORD_BYTES) -> str:
    """A small UTF-8 file of the store (see :func:`effprof.files.read_small_text`)."""
    return read_small_text(path, limit)


def _optional(kind: type) -> Callable[[Any], bool]:
    return lambda v: v is None or isinstance(v, kind)


def _str_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _names(value: Any) -> bool:
    return _str_list(value) and all(_NAME.match(v) for v in value)


def _reasons(value: Any) -> bool:
    return isinstance(value, dict) and all(isinstance(v, str) for v in value.values())


def _date(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return 1678 <= when.year <= 2261  # what pandas' datetime64[ns] holds


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


# field -> (check, what it must be); fields absent from a file take the dataclass defaults
FIELD_CHECKS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "run_id": (lambda v: isinstance(v, str) and bool(v), "a non-empty string"),
    "kind": (lambda v: isinstance(v, str) and bool(v), "a non-empty string"),
    "created": (_date, "an ISO 8601 date such as 2026-01-31T12:00:00+00:00"),
    "model": (lambda v: isinstance(v, str), "a string"),
    "variant": (_optional(str), "a string or null"),
    "params": (lambda v: isinstance(v, dict), "an object"),
    "env": (lambda v: isinstance(v, dict), "an object"),
    "metrics": (lambda v: isinstance(v, dict), "an object"),
    "missing": (_reasons, "an object of metric: reason strings"),
    "unreliable": (_reasons, "an object of metric: reason strings"),
    "partial": (_reasons, "an object of metric: reason strings"),
    "notes": (_str_list, "a list of strings"),
    "tables": (_names, "a list of table names"),
    "files": (_names, "a list of file names"),
    "group": (_optional(str), "a string or null"),
    "parent": (_optional(str), "a string or null"),
    "status": (lambda v: isinstance(v, str) and bool(v), "a non-empty string"),
    "schema_version": (_count, "a non-negative integer"),
}


def record_from_dict(data: Any, source: str) -> RunRecord:
    """A RunRecord from parsed run.json, every field checked; the first problem is an error."""
    if not isinstance(data, dict):
        raise EffprofError(f"{source} is corrupt: its top level is not a JSON object")
    required = [
        name
        for name, f in RunRecord.__dataclass_fields__.items()
        if f.default is MISSING and f.default_factory is MISSING
    ]
    absent = [name for name in required if name not in data]
    if absent:
        raise EffprofError(f"{source} is corrupt: no {', '.join(absent)}")
    for name, (check, expected) in FIELD_CHECKS.items():
        if name in data and not check(data[name]):
            shown = json.dumps(data[name])[:40]
            raise EffprofError(f"{source} is corrupt: {name} must be {expected}, not {shown}")
    problem = values_problem(data)
    if problem:
        raise EffprofError(f"{source} is corrupt: {problem}")
    known = set(RunRecord.__dataclass_fields__)
    return RunRecord(**{k: v for k, v in data.items() if k in known})


def _upgrade_v0(data: dict[str, Any], run_dir: Path) -> dict[str, Any]:
    """v0: run.json before ``schema_version`` existed. It had no ``status`` (every written run was
    finished), no ``missing`` reasons and no ``tables`` list (the parquet files are the tables)."""
    data.setdefault("status", "finished")
    data.setdefault("missing", {})
    data.setdefault("tables", sorted(p.stem for p in run_dir.glob("*.parquet")))
    data["schema_version"] = 1
    return data


def _upgrade_v1(data: dict[str, Any], run_dir: Path) -> dict[str, Any]:
    """v1 -> v2: the statuses. A v1 run kept a failed reliability test in ``<prefix>
    latency_reliable`` flags and uncounted ops in ``uncounted_ops``; v2 names the numbers they
    concern in ``unreliable`` and ``partial``. Names written twice-prefixed are renamed."""
    data["schema_version"] = 2
    if not isinstance(data.get("metrics"), dict) or not isinstance(data.get("missing", {}), dict):
        return data  # the checks that follow say what is wrong with it
    metrics = {schema.RENAMED.get(k, k): v for k, v in (data.get("metrics") or {}).items()}
    missing = {schema.RENAMED.get(k, k): v for k, v in (data.get("missing") or {}).items()}
    unreliable: dict[str, str] = {}
    for names in (schema.LATENCY, schema.ORT, schema.TORCH, schema.CUDA):
        if metrics.get(names.reliable) is False:
            reason = metrics.get(names.unreliable_reason) or "failed the reliability test"
            unreliable.update({n: str(reason) for n in names.timed if metrics.get(n) is not None})
    if metrics.get(schema.INT8_SPEEDUP_RELIABLE) is False and metrics.get(schema.INT8_SPEEDUP):
        reason = metrics.get(schema.INT8_SPEEDUP_UNRELIABLE) or "within-round ratios disagree"
        unreliable[schema.INT8_SPEEDUP] = str(reason)
    partial: dict[str, str] = {}
    uncounted = metrics.get(schema.UNCOUNTED_OPS)
    if isinstance(uncounted, int) and uncounted > 0:
        reason = f"{uncounted} op(s) without a formula are not in the totals"
        partial.update({n: reason for n in (schema.MACS, schema.FLOPS) if n in metrics})
    data.update(metrics=metrics, missing=missing, unreliable=unreliable, partial=partial)
    data["schema_version"] = 2
    return data


# version -> function that lifts a run.json dict from that version to the next one
UPGRADES: dict[int, Callable[[dict[str, Any], Path], dict[str, Any]]] = {
    0: _upgrade_v0,
    1: _upgrade_v1,
}


def upgrade_record(data: dict[str, Any], run_dir: Path) -> dict[str, Any]:
    """Lift a run.json dict of any older schema to the current one; a newer schema is an error."""
    version = data.get("schema_version", 0)
    if not _count(version):
        raise EffprofError(f"schema_version must be a non-negative integer, not {version!r}")
    if version > SCHEMA_VERSION:
        raise EffprofError(
            f"schema_version {version!r} is newer than this effprof reads ({SCHEMA_VERSION}); "
            "upgrade effprof"
        )
    while version < SCHEMA_VERSION:
        data = UPGRADES[version](dict(data), run_dir)
        version = data["schema_version"]
    return data


def read_record(run_dir: str | Path) -> RunRecord:
    """run.json of one run folder in the current layout (older schemas upgraded; the record's
    ``schema_version`` stays the one it was written with); unreadable -> EffprofError."""
    run_dir = Path(run_dir)
    path = run_dir / RUN_FILE
    source = repr(str(path))
    try:
        text = read_capped_text(path)
    except FileNotFoundError:
        raise EffprofError(f"{str(run_dir)!r} is not a run folder (no {RUN_FILE})") from None
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as err:
        reason = "nested too deeply" if isinstance(err, RecursionError) else str(err)
        raise EffprofError(f"{source} is corrupt: {reason}") from None
    if not isinstance(data, dict):
        raise EffprofError(f"{source} is corrupt: its top level is not a JSON object")
    written = data.get("schema_version", 0)
    try:
        data = upgrade_record(data, run_dir) | {"schema_version": written}
    except EffprofError as err:
        raise EffprofError(f"{source}: {err}") from None
    return record_from_dict(data, source)
