"""Reading the run store into pandas: one row per run, tables in long form, older schemas upgraded.

>>> runs = load_runs("reports/", kind="profile", status="finished")             # doctest: +SKIP
>>> runs["metrics.latency_median_ms"] / runs["metrics.megapixels"]               # doctest: +SKIP
>>> load_table(runs, "categories")  # every run's table stacked, run_id first   # doctest: +SKIP
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from effprof.results import EffprofError
from effprof.runs.find import find_run, scan_runs, store_root
from effprof.runs.ledger import RunStoreWarning, read_entries
from effprof.runs.record import RunRecord, read_record
from effprof.runs.store import (
    read_table,
)

# The fixed columns of load_runs, in order: name -> (dtype, meaning). After them come params.*,
# metrics.*, missing.*, unreliable.*, partial.* and env.* (each group sorted by name), flattened with dots.
ID_COLUMNS: dict[str, tuple[str, str]] = {
    "run_id": ("string", "folder name, e.g. 20261126-031400-profile-mssnet-small-3f9a"),
    "created": ("datetime64[ns, UTC]", "when the run started"),
    "kind": ("string", "profile | evaluate | train | compress ..."),
    "model": ("string", "registered name or package.module:callable"),
    "variant": ("string", "model variant; <NA> for models without variants"),
    "status": ("string", "finished | failed"),
    "error": ("string", "why a failed run failed; <NA> otherwise"),
    "group": ("string", "group the run belongs to, e.g. a compression pipeline"),
    "parent": ("string", "run this one derives from"),
    "sweep": ("string", "sweep (file stem) that ran this configuration; <NA> outside sweeps"),
    "config_hash": ("string", "stable hash of the sweep configuration; <NA> outside sweeps"),
    "schema_version": ("Int64", "run.json layout version the run was written with"),
    "path": ("string", "run folder"),
}
# The kinds of run effprof writes (RunWriter's ``kind``; a test finds every writer's).
RUN_KINDS = ("profile", "compress", "evaluate", "train", "retime")
GROUPS = ("params", "metrics", "missing", "unreliable", "partial", "env")
ERROR_NOTE = "error: "  # a failed run's first note of this form says why it failed


# --- one row per run ---------------------------------------------------------------------------


def _flatten(prefix: str, values: dict[str, Any], row: dict[str, Any]) -> None:
    for key, value in values.items():
        name = f"{prefix}.{key}"
        if isinstance(value, dict):
            _flatten(name, value, row)
        elif isinstance(value, (list, tuple)):
            row[name] = ",".join(map(str, value))
        else:
            row[name] = value


def run_error(record: RunRecord) -> str | None:
    """Why a failed run failed (its first ``error: ...`` note); None for other runs."""
    if record.status != "failed":
        return None
    for note in record.notes:
        if note.startswith(ERROR_NOTE):
            return note[len(ERROR_NOTE) :]
    return "failed (no reason recorded)"


def record_row(record: RunRecord, run_dir: Path) -> dict[str, Any]:
    """The flat row of one run (before dtypes are fixed)."""
    row: dict[str, Any] = {
        "run_id": record.run_id,
        "created": record.created,
        "kind": record.kind,
        "model": record.model,
        "variant": record.variant,
        "status": record.status,
        "error": run_error(record),
        "group": record.group,
        "parent": record.parent,
        "sweep": None,
        "config_hash": None,
        "schema_version": record.schema_version,
        "path": str(run_dir),
    }
    for group in GROUPS:
        _flatten(group, getattr(record, group) or {}, row)
    return row


def _is_null(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def column_dtype(name: str, values: Iterable[Any]) -> str:
    """The dtype a flattened column gets, from the Python types of its non-null values.

    bool -> ``boolean``; int -> ``Int64``; int and float -> ``float64``; str -> ``string``;
    anything mixed -> ``string`` (values as text); all null -> ``float64`` for ``metrics.*``,
    ``string`` for the rest. Nullable dtypes keep a missing value from turning ints into floats.
    """
    types = {type(v) for v in values if not _is_null(v)}
    if not types:
        return "float64" if name.startswith("metrics.") else "string"
    if types == {bool}:
        return "boolean"
    if types == {int}:
        return "Int64"
    if types <= {int, float}:
        return "float64"
    return "string"


def _typed_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    names: dict[str, None] = dict.fromkeys(ID_COLUMNS)
    for row in rows:
        names.update(dict.fromkeys(row))
    flat = [n for n in names if n not in ID_COLUMNS]
    ordered = list(ID_COLUMNS) + sorted(flat, key=lambda n: (GROUPS.index(n.split(".")[0]), n))
    data = {}
    for name in ordered:
        values = [row.get(name) for row in rows]
        if name == "created":
            data[name] = pd.to_datetime(
                pd.Series(values, dtype="object"), utc=True, format="ISO8601", errors="coerce"
            ).astype(ID_COLUMNS[name][0])
            continue
        dtype = ID_COLUMNS[name][0] if name in ID_COLUMNS else column_dtype(name, values)
        if dtype == "string":
            values = [None if _is_null(v) else str(v) for v in values]
        data[name] = pd.Series(values, dtype="object").astype(dtype)
    return pd.DataFrame(data, columns=ordered)


def _attach_ledger(frame: pd.DataFrame, root: Path) -> None:
    entries = {e.run_id: e for e in read_entries(root) if e.run_id}
    if not entries or frame.empty:
        return
    frame["sweep"] = frame["run_id"].map(lambda r: entries[r].sweep if r in entries else None)
    frame["config_hash"] = frame["run_id"].map(
        lambda r: entries[r].config_hash if r in entries else None
    )
    for column in ("sweep", "config_hash"):
        frame[column] = frame[column].astype("string")


def _module_name(value: Any) -> str | None:
    """The name a run records for a model given as an object (``__main__.TinyNet``), when
    ``value`` is a torch module (told without importing torch), else None."""
    mro = [f"{c.__module__}.{c.__qualname__}" for c in type(value).__mro__]
    if "torch.nn.modules.module.Module" not in mro:
        return None
    return mro[0]


def _coerce(value: Any, series: pd.Series) -> Any:
    """Filter values typed on a command line (``threads=4``) compared with numeric columns; a
    model given as an object stands for the name its runs record."""
    named = _module_name(value)
    if named is not None:
        return named
    if not isinstance(value, str):
        return value
    if pd.api.types.is_bool_dtype(series.dtype):
        return {"true": True, "false": False}.get(value.lower(), value)
    if pd.api.types.is_numeric_dtype(series.dtype):
        try:
            return float(value) if any(c in value for c in ".eE") else int(value)
        except ValueError:
            return value
    return value


def filter_runs(frame: pd.DataFrame, filters: dict[str, Any]) -> pd.DataFrame:
    """Keep rows matching every filter: value (==), list/tuple/set (isin), or callable(series)."""
    keep = pd.Series(True, index=frame.index)
    for key, wanted in filters.items():
        name = key.replace("__", ".")
        if name not in frame.columns:
            if frame.empty or name.split(".")[0] in GROUPS:
                return frame.iloc[0:0]  # no run has that option or metric
            raise EffprofError(
                f"cannot filter on {key!r}: no such column (use {', '.join(ID_COLUMNS)}, "
                "params.*, metrics.* or env.*)"
            )
        column = frame[name]
        if callable(wanted) and _module_name(wanted) is None:  # a module is callable too
            match = wanted(column)
        elif isinstance(wanted, (list, tuple, set, frozenset)):
            match = column.isin([_coerce(v, column) for v in wanted])
        elif wanted is None:
            match = column.isna()
        else:
            match = column == _coerce(wanted, column)
        keep &= pd.Series(match, index=frame.index).fillna(False).astype(bool)
    return frame[keep]


def load_runs(root: str | Path = "reports/", **filters: Any) -> pd.DataFrame:
    """One row per run under ``root``, filtered: ``load_runs("reports/", model="mssnet",
    variant=["small", "base"], **{"params.precision": "fp16"})`` (``params__precision`` works too;
    ``model=my_net`` matches the runs of a model profiled as an object).

    Columns: :data:`ID_COLUMNS`, then ``params.*`` (the run's options), ``metrics.*``, ``missing.*``
    (why a metric is null) and ``env.*``; dtypes as :func:`column_dtype` says. Rows are sorted by
    ``created``. Unreadable run folders are skipped with a :class:`RunStoreWarning`, and so is a
    filter that matches no run (the warning names it and the values the store holds).

    >>> import torch, effprof
    >>> for side in (16, 32):
    ...     _ = effprof.profile(torch.nn.Conv2d(3, 8, 1), (1, 3, side, side), out=tmp,
    ...                         count_only=True)
    >>> runs = load_runs(tmp, kind="profile").sort_values("metrics.macs")
    >>> runs["metrics.macs"].tolist(), runs["params.input"].tolist()
    ([6144, 24576], ['1x3x16x16', '1x3x32x32'])
    """
    frame = runs_frame(scan_runs(root), store_root(root))
    frame = frame.sort_values(["created", "run_id"], kind="stable").reset_index(drop=True)
    if not filters:
        return frame
    kept = filter_runs(frame, filters).reset_index(drop=True)
    if kept.empty and not frame.empty:
        warnings.warn(_no_match(frame, filters), RunStoreWarning, stacklevel=2)
    return kept


def _no_match(frame: pd.DataFrame, filters: dict[str, Any]) -> str:
    """Which filter left nothing, and what that column holds instead."""
    for key, wanted in filters.items():
        if not filter_runs(frame, {key: wanted}).empty:
            continue
        name = key.replace("__", ".")
        if name not in frame.columns:
            return f"no run matches {key}={wanted!r}: no run of the {len(frame)} has that column"
        present = frame[name].dropna().astype(str).unique().tolist()
        shown = ", ".join(present[:5]) + (" ..." if len(present) > 5 else "") or "none (all <NA>)"
        return f"no run matches {key}={wanted!r} among {len(frame)} runs; {name} holds: {shown}"
    return f"no run matches all of {filters} together among {len(frame)} runs"


def runs_frame(runs: Iterable[tuple[Path, RunRecord]], root: Path | None = None) -> pd.DataFrame:
    """The load_runs frame of the given (folder, record) pairs, in that order; ``root`` is the
    store whose sweep ledger names their ``sweep`` and ``config_hash``."""
    frame = _typed_frame([record_row(record, run_dir) for run_dir, record in runs])
    if root is not None:
        _attach_ledger(frame, root)
    return frame


# --- tables of runs -----------------------------------------------------------------------------


def _run_paths(run: Any, root: str | Path) -> list[Path]:
    if isinstance(run, pd.DataFrame):
        return [Path(p) for p in run["path"]]
    if isinstance(run, pd.Series):
        return [Path(run["path"])]
    if isinstance(run, RunRecord):
        return [find_run(run.run_id, root)]
    if isinstance(run, (str, Path)):
        return [find_run(run, root)]
    return [path for item in run for path in _run_paths(item, root)]


def _recorded_id(path: Path) -> str:
    """The run id run.json records (a folder renamed, say ``baseline``, keeps its run's id)."""
    try:
        return read_record(path).run_id
    except EffprofError:
        return path.name


def load_table(run: Any, name: str, root: str | Path = "reports/") -> pd.DataFrame:
    """A stored table (``"ops"``, ``"modules"``, ``"categories"``, ``"latency"``, ...) in long form,
    ``run_id`` first, so the tables of several runs stack: ``run`` is a run folder, a run id, a row
    or frame of :func:`load_runs`, or a list of these. With several runs, runs lacking the table
    are left out (a damaged one with a RunStoreWarning); with one, a missing or damaged table is
    an EffprofError. Tables are checked as :mod:`effprof.runs.tables` says.

    >>> import torch, effprof
    >>> run = effprof.profile(torch.nn.Conv2d(3, 8, 1), (1, 3, 8, 8), out=tmp, count_only=True)
    >>> first = load_table(run.path, "ops").iloc[0]
    >>> first["op"], int(first["macs"]), first["run_id"] == run.id
    ('aten.convolution.default', 1536, True)
    """
    paths = _run_paths(run, root)
    frames = []
    for path in paths:
        try:
            frame = read_table(path, name)
        except EffprofError as err:
            if len(paths) == 1:
                raise
            if (path / f"{name}.parquet").exists():  # damaged, not just absent: say so
                warnings.warn(f"{path.name}: {err}; left out", RunStoreWarning, stacklevel=2)
            continue
        run_id = _recorded_id(path)
        frame.insert(0, "run_id", pd.Series([run_id] * len(frame), dtype="string"))
        frames.append(frame)
    if not frames:
        return pd.DataFrame({"run_id": pd.Series([], dtype="string")})
    return pd.concat(frames, ignore_index=True)
