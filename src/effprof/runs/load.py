"""Reading the run store into pandas."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pandas as pd

from effprof.results import EffprofError
from effprof.runs.store import RUN_FILE, RUNS_DIR, read_record, read_table

ID_COLUMNS = ["run_id", "created", "kind", "model", "variant", "status", "group", "parent"]


def run_dirs(root: str | Path) -> list[Path]:
    """Finished run folders under ``root`` (``root/runs/*`` or ``root`` itself being a runs dir)."""
    root = Path(root)
    base = root / RUNS_DIR if (root / RUNS_DIR).is_dir() else root
    if (base / RUN_FILE).is_file():
        return [base]
    return sorted(p for p in base.glob("*") if p.is_dir() and not p.name.endswith(".partial"))


def _flatten(prefix: str, values: dict[str, Any], row: dict[str, Any]) -> None:
    for key, value in values.items():
        name = f"{prefix}.{key}"
        if isinstance(value, dict):
            _flatten(name, value, row)
        elif isinstance(value, (list, tuple)):
            row[name] = ",".join(map(str, value))
        else:
            row[name] = value


def load_runs(root: str | Path = "reports/") -> pd.DataFrame:
    """One row per finished run: id columns, then ``params.*``, ``metrics.*``, ``env.*``."""
    rows = []
    for run_dir in run_dirs(root):
        try:
            record = read_record(run_dir)
        except EffprofError as err:
            warnings.warn(f"skipping {run_dir}: {err}", stacklevel=2)
            continue
        row: dict[str, Any] = {col: getattr(record, col) for col in ID_COLUMNS}
        row["path"] = str(run_dir)
        _flatten("params", record.params, row)
        _flatten("metrics", record.metrics, row)
        _flatten("env", record.env, row)
        rows.append(row)
    frame = pd.DataFrame(rows, columns=None if rows else [*ID_COLUMNS, "path"])
    if not frame.empty:
        frame["created"] = pd.to_datetime(frame["created"], utc=True)
    return frame


def load_table(run: str | Path, name: str) -> pd.DataFrame:
    """A stored table of one run folder, e.g. ``load_table(path, "ops")``."""
    return read_table(run, name)
