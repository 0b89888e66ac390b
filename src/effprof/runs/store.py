"""The run store: one folder per run under ``<root>/runs/``, ``run.json`` written last and atomically.

Layout of a run folder::

    reports/runs/20261126-031400-profile-mssnet-small-3f9a/
        run.json          # RunRecord: config ("params"), env, metrics, missing reasons, notes
        ops.parquet       # tables, one parquet file each (names listed in run.json "tables")
        modules.parquet
        latency.parquet
        report.html       # derived artifacts, written after run.json

A folder is built as ``<id>.partial`` and renamed once ``run.json`` is in place, so a crash never
leaves a folder that looks finished; readers skip anything without a valid run.json.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from effprof.results import EffprofError, split_missing

SCHEMA_VERSION = 1
RUNS_DIR = "runs"
RUN_FILE = "run.json"
PARTIAL_SUFFIX = ".partial"


@dataclass
class RunRecord:
    """Everything run.json holds. ``params`` is the run's configuration (not a parameter count:
    that is ``metrics["param_count"]``); ``missing`` maps a metric name to why it is null."""

    run_id: str
    kind: str
    created: str
    model: str
    variant: str | None
    params: dict[str, Any]
    env: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    tables: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    group: str | None = None
    parent: str | None = None
    status: str = "finished"
    schema_version: int = SCHEMA_VERSION

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, sort_keys=False, default=_json_default)


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "item"):  # numpy / torch scalars
        return obj.item()
    if isinstance(obj, (set, tuple)):
        return list(obj)
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()[:40] or "model"


def new_run_id(kind: str, model: str, variant: str | None) -> str:
    """``20261126-031400-profile-mssnet-small-3f9a``: sortable by time, readable, unique."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    parts = [stamp, _slug(kind), _slug(model)] + ([_slug(variant)] if variant else [])
    return "-".join([*parts, secrets.token_hex(2)])


def check_writable(root: str | Path) -> Path:
    """Fail early, before any measurement, when ``root`` cannot hold runs."""
    root = Path(root)
    target = root / RUNS_DIR
    try:
        target.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=target, prefix=".probe-"):
            pass
    except OSError as err:
        raise EffprofError(f"--out {str(root)!r} is not writable ({err.strerror or err})") from None
    return root


def write_json_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that readers see the old file or the new one, never half."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class RunWriter:
    """Builds one run folder; nothing is visible as a run until :meth:`finish`.

    >>> writer = RunWriter(root, "profile", "mssnet", "small", params={...})  # doctest: +SKIP
    >>> writer.start(); writer.add_table("ops", ops_df); path = writer.finish(metrics, env)  # doctest: +SKIP
    """

    def __init__(
        self,
        root: str | Path,
        kind: str,
        model: str,
        variant: str | None,
        params: dict[str, Any],
        run_id: str | None = None,
        group: str | None = None,
        parent: str | None = None,
    ) -> None:
        self.root = Path(root)
        self.kind = kind
        self.model = model
        self.variant = variant
        self.params = params
        self.run_id = run_id or new_run_id(kind, model, variant)
        self.group = group
        self.parent = parent
        self.tables: list[str] = []
        self.files: list[str] = []
        self.created = datetime.now(timezone.utc).isoformat(timespec="seconds")

    @property
    def final_dir(self) -> Path:
        return self.root / RUNS_DIR / self.run_id

    @property
    def work_dir(self) -> Path:
        return self.root / RUNS_DIR / (self.run_id + PARTIAL_SUFFIX)

    def start(self) -> RunWriter:
        """Create the partial folder."""
        self.work_dir.mkdir(parents=True, exist_ok=False)
        return self

    def add_table(self, name: str, frame: pd.DataFrame) -> None:
        """Store a DataFrame as ``<name>.parquet``."""
        if not re.fullmatch(r"[a-z0-9_]+", name):
            raise ValueError(f"table name {name!r} must be lowercase letters, digits and _")
        frame.to_parquet(self.work_dir / f"{name}.parquet", index=False)
        if name not in self.tables:
            self.tables.append(name)

    def file_path(self, name: str) -> Path:
        """A path inside the run folder for an artifact (onnx model, checkpoint...); recorded."""
        if name not in self.files:
            self.files.append(name)
        return self.work_dir / name

    def finish(
        self,
        metrics: dict[str, Any],
        env: dict[str, Any],
        notes: list[str] | None = None,
        status: str = "finished",
    ) -> Path:
        """Write run.json (metrics with ``Missing`` values split into null + reason), then publish."""
        numbers, reasons = split_missing(metrics)
        record = RunRecord(
            run_id=self.run_id,
            kind=self.kind,
            created=self.created,
            model=self.model,
            variant=self.variant,
            params=self.params,
            env=env,
            metrics=numbers,
            missing=reasons,
            notes=list(notes or []),
            tables=self.tables,
            files=self.files,
            group=self.group,
            parent=self.parent,
            status=status,
        )
        write_json_atomic(self.work_dir / RUN_FILE, record.to_json())
        os.replace(self.work_dir, self.final_dir)
        return self.final_dir

    def abandon(self) -> None:
        """Remove the partial folder (bad input discovered late: nothing half written is left)."""
        shutil.rmtree(self.work_dir, ignore_errors=True)


def read_record(run_dir: str | Path) -> RunRecord:
    """Read run.json of one run folder; a missing or corrupt file is an EffprofError."""
    path = Path(run_dir) / RUN_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        known = set(RunRecord.__dataclass_fields__)
        return RunRecord(**{k: v for k, v in data.items() if k in known})
    except FileNotFoundError:
        raise EffprofError(f"{str(run_dir)!r} is not a run folder (no {RUN_FILE})") from None
    except (json.JSONDecodeError, TypeError, UnicodeDecodeError) as err:
        raise EffprofError(f"{str(path)!r} is corrupt: {err}") from None


def read_table(run_dir: str | Path, name: str) -> pd.DataFrame:
    """One stored table of a run."""
    path = Path(run_dir) / f"{name}.parquet"
    if not path.is_file():
        raise EffprofError(f"run {str(run_dir)!r} has no table {name!r}")
    return pd.read_parquet(path)
