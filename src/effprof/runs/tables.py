"""A run's tables (one parquet file each), written with their name inside and read back checked.

Reading trusts nothing (the rule of :mod:`effprof.files`): the file must be a regular file of at
most 512 MiB, a parquet file (a truncated or foreign file is refused before pandas sees it) of at
most 10 million rows and 2 GiB once decoded (a small file can hold a column of a billion equal
values), and the table the file names inside it (written by :func:`write_table`) must be the one
asked for, so two swapped files are told apart. A table declared in :data:`TABLES` must then have
its columns, each of its kind: ``text``; ``int`` / ``count`` (>= 0) / ``positive`` (>= 1)
integers; ``number`` (finite, or NaN for missing) / ``nonneg`` (>= 0) numbers; ``bool``;
``json`` (text holding a JSON object). Nulls are allowed everywhere (they are how a missing value
is written), and a column of no values (an empty table) passes. Each problem is one
``EffprofError`` line naming the file and the column.

A new table that the report or the comparison reads is declared with one line in
:data:`TABLES`; a column ending in ``?`` may be absent.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from effprof.files import NOT_THERE, check_file, shown_path
from effprof.results import EffprofError

MAX_TABLE_BYTES = 512 * 2**20
MAX_TABLE_ROWS = 10_000_000
MAX_TABLE_DECODED_BYTES = 2 * 2**30
NAME_KEY = b"effprof.table"  # parquet key-value metadata: the table's name

_TIMING = {
    "round": "count", "position": "count", "candidate": "text", "runtime": "text",
    "threads": "positive", "median_ms": "nonneg", "p10_ms": "nonneg", "p90_ms": "nonneg",
    "cv": "nonneg", "repeat": "count", "reliable": "bool", "ratio": "nonneg",
}  # fmt: skip
_SAMPLES = {"sample": "count", "latency_ms": "nonneg", "device": "text", "precision": "text",
            "timer": "text", "threads": "positive"}  # fmt: skip
_COUNTS = {"macs": "count", "flops": "count", "bias_flops": "count", "bytes_read": "count",
           "bytes_written": "count"}  # fmt: skip

# table -> column -> kind: the columns effprof's own readers (the report, the comparison page)
# rely on. Other columns and other tables are read unchecked beyond the file rules above.
TABLES: dict[str, dict[str, str]] = {
    "ops": {"seq": "count", "op": "text", "category": "text", "module": "text",
            "module_type": "text", **_COUNTS, "counted": "bool", "live_bytes": "count"},
    "modules": {"module": "text", "calls": "count", **_COUNTS},
    "categories": {"category": "text", "calls": "count", **_COUNTS, "flops_share": "nonneg"},
    "attribution": {"dimension": "text", "group": "text", "rank": "count", "calls": "count",
                    "repeats": "positive", "macs": "count", "flops": "count", "params": "nonneg",
                    "written_bytes": "count", "time_ms": "nonneg", "live_peak_bytes": "count",
                    "macs_share": "nonneg", "flops_share": "nonneg", "params_share": "nonneg",
                    "written_bytes_share": "nonneg", "time_ms_share": "nonneg"},
    "component_notes": {"dimension": "text", "note": "text"},
    "counterfactuals": {"name": "text", "kind": "text", "isolates": "text", "macs": "count",
                        "flops": "count", "params": "count", "activation_peak_bytes": "count",
                        "macs_ratio": "nonneg", "flops_ratio": "nonneg",
                        "params_ratio": "nonneg", "activation_ratio": "nonneg"},
    "counterfactual_groups": {"name": "text", "dimension": "text", "group": "text",
                              "macs": "count", "ratio_to_real": "nonneg"},
    "crosscheck": {"counter": "text", "input_shape": "text", "reports": "text",
                   "tool_value": "count", "macs": "count", "flops": "count", "params": "count",
                   "seconds": "nonneg", "status": "text", "explanation": "text"},
    "latency": _SAMPLES,
    "ort_latency": _SAMPLES,
    "torch_latency": _SAMPLES,
    "int8_latency": _TIMING,
    "threads_trial": _TIMING,
    "retimed_rounds": _TIMING,
    "op_labels": {"seq": "count", "part": "text", "time_ms": "nonneg?", "scale": "text?",
                  "stage": "text?"},
    "optime_categories": {"category": "text", "time_ms": "nonneg", "share": "nonneg"},
    "optime_ops": {"name": "text", "category": "text", "caller": "text", "calls": "nonneg",
                   "time_ms": "nonneg", "share": "nonneg"},
    "peers": {"network": "text", "citation": "text"},
    "peers_meta": {"title": "text", "about": "text", "columns": "json"},
    "roofline_layers": {"module": "text", "category": "text", "calls": "count",
                        "flops": "count", "bytes_moved": "nonneg", "measured_ms": "nonneg",
                        "intensity_flops_per_byte": "nonneg", "roofline_ms": "nonneg",
                        "bound": "text", "attained_flops_per_s": "nonneg",
                        "roofline_fraction": "nonneg", "part": "text?", "scale": "text?",
                        "stage": "text?"},
    "scaling": {"resolution": "text", "positions": "positive", "height": "positive?",
                "width": "positive?", "padded_height": "positive?", "padded_width": "positive?",
                "pixels": "positive?", "padded_pixels": "positive?", "macs": "count",
                "flops": "count", "activation_peak_bytes": "count"},
    "scaling_3x": {"quantity": "text", "base": "text", "larger": "text", "base_value": "number",
                   "predicted": "number", "ratio_predicted": "number", "checked": "number",
                   "check_source": "text", "error": "number"},
    "scaling_fits": {"quantity": "text", "law": "text", "a": "number", "b": "number",
                     "c": "number", "k": "number", "alpha": "number", "n": "count",
                     "max_error": "number", "passed": "bool", "p_min": "nonneg",
                     "p_max": "nonneg", "exponent_at_max": "number"},
    "uncalled_modules": {"module": "text", "module_type": "text", "params": "count"},
    "uncounted": {"op": "text", "calls": "count", "reason": "text"},
    "memory": {"quantity": "text", "bytes": "nonneg", "device": "text", "method": "text"},
    "params": {"name": "text", "module": "text", "module_type": "text", "numel": "count",
               "bytes": "count", "trainable": "bool"},
}  # fmt: skip


def write_table(frame: pd.DataFrame, path: Path, name: str) -> None:
    """``frame`` as parquet at ``path``, its ``name`` stored in the file's metadata."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(frame, preserve_index=False)
    metadata = {**(table.schema.metadata or {}), NAME_KEY: name.encode()}
    pq.write_table(table.replace_schema_metadata(metadata), path)


def read_checked_table(path: str | Path, name: str) -> pd.DataFrame:
    """The table ``name`` stored at ``path``, checked as the module docstring says."""
    import pyarrow.parquet as pq

    path = Path(path)
    shown = shown_path(path, "table")
    check_file(path, MAX_TABLE_BYTES, "table", missing=NOT_THERE)
    try:
        parquet = pq.ParquetFile(path)
        meta = parquet.metadata
        decoded = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
        stored = (parquet.schema_arrow.metadata or {}).get(NAME_KEY)
    except Exception as err:  # pyarrow's own error types for truncated and foreign files
        raise EffprofError(f"{shown} is not a readable parquet file ({_why(err)})") from None
    if meta.num_rows > MAX_TABLE_ROWS or decoded > MAX_TABLE_DECODED_BYTES:
        raise EffprofError(
            f"{shown} holds {meta.num_rows:,} rows, {decoded / 2**20:,.0f} MiB decoded: more than "
            f"a run's table ({MAX_TABLE_ROWS:,} rows, {MAX_TABLE_DECODED_BYTES // 2**30} GiB)"
        )
    if stored is not None and stored != name.encode():
        said = stored.decode("utf-8", "replace")[:40]
        raise EffprofError(f"{shown} holds the table {said!r}, not {name!r} (files swapped?)")
    try:
        frame = parquet.read().to_pandas()
    except Exception as err:
        raise EffprofError(f"{shown} is not a readable parquet file ({_why(err)})") from None
    check_columns(frame, name, shown)
    return frame


def _why(err: Exception) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0][:120]}" if text else type(err).__name__


# --- column kinds ------------------------------------------------------------------------------


def _values(column: pd.Series) -> pd.Series:
    return column[column.notna()]


def _is_int(column: pd.Series) -> bool:
    return pd.api.types.is_integer_dtype(column.dtype) and not pd.api.types.is_bool_dtype(
        column.dtype
    )


def _is_number(column: pd.Series) -> bool:
    return _is_int(column) or pd.api.types.is_float_dtype(column.dtype)


def _finite(column: pd.Series) -> bool:
    return bool(np.isfinite(_values(column).to_numpy(dtype="float64")).all())


def _is_bool(column: pd.Series) -> bool:
    if pd.api.types.is_bool_dtype(column.dtype):
        return True
    return bool(_values(column).map(lambda v: isinstance(v, (bool, np.bool_))).all())


def _json_object(value: Any) -> bool:
    try:
        return isinstance(json.loads(value), dict)
    except (TypeError, ValueError, RecursionError):
        return False


# kind -> (what the column must be, the check of its non-null values)
KINDS: dict[str, tuple[str, Callable[[pd.Series], bool]]] = {
    "text": ("text", lambda c: bool(_values(c).map(lambda v: isinstance(v, str)).all())),
    "int": ("integers", _is_int),
    "count": ("integers >= 0", lambda c: _is_int(c) and bool((_values(c) >= 0).all())),
    "positive": ("integers >= 1", lambda c: _is_int(c) and bool((_values(c) >= 1).all())),
    "number": ("finite numbers", lambda c: _is_number(c) and _finite(c)),
    "nonneg": (
        "finite numbers >= 0",
        lambda c: _is_number(c) and _finite(c) and bool((_values(c) >= 0).all()),
    ),
    "bool": ("true/false", _is_bool),
    "json": ("JSON objects as text", lambda c: bool(_values(c).map(_json_object).all())),
}


def check_columns(frame: pd.DataFrame, name: str, shown: str) -> None:
    """Refuse a table declared in :data:`TABLES` that lacks a column or holds a wrong kind."""
    for column, kind in TABLES.get(name, {}).items():
        optional = kind.endswith("?")
        if column not in frame.columns:
            if optional:
                continue
            raise EffprofError(f"{shown} has no column {column!r}, which the {name!r} table has")
        values = frame[column]
        if not values.notna().any():
            continue  # no values: nothing a reader could misuse
        what, check = KINDS[kind.rstrip("?")]
        if not check(values):
            raise EffprofError(f"{shown}: column {column!r} must hold {what}")
