"""The run store: one folder per run under ``<root>/runs/``, ``run.json`` written last and atomically.

Layout of a run folder::

    reports/runs/20261126-031400-profile-mssnet-small-3f9a/
        run.json          # RunRecord: config ("params"), env, metrics, missing reasons, notes
        ops.parquet       # tables, one parquet file each (names listed in run.json "tables")
        modules.parquet
        latency.parquet
        report.html       # derived artifacts, written after run.json

A folder is built as ``<id>.partial`` and renamed once ``run.json`` is in place, so a crash never
leaves a folder that looks finished; readers skip anything without a valid run.json. A partial
folder names its writer (host, pid, process start time) in ``.owner.json``: one whose writer died
(SIGKILL, power loss) is removed the next time a run is written into the store on that host.

Nothing is created before a run is written: :func:`check_writable` only checks, and a run that
fails while being written removes its folder and any store folder it created (a full disk
included). Files get the mode ``open()`` would give them under the process umask.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import socket
import tempfile
import warnings
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from effprof.files import os_reason, write_text_atomic
from effprof.results import EffprofError, split_statuses
from effprof.runs.record import RUN_FILE, RunRecord, RunStoreWarning, read_capped_text
from effprof.runs.tables import read_checked_table, write_table

RUNS_DIR = "runs"
PARTIAL_SUFFIX = ".partial"
OWNER_FILE = ".owner.json"  # in a partial folder: which process is writing it
MIN_FREE_BYTES = 16 * 2**20  # a run with its report.html (plotly inlined: about 5 MiB)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()[:40] or "model"


def new_run_id(kind: str, model: str, variant: str | None) -> str:
    """``20261126-031400-profile-mssnet-small-3f9a``: sortable by time, readable, unique."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    parts = [stamp, _slug(kind), _slug(model)] + ([_slug(variant)] if variant else [])
    return "-".join([*parts, secrets.token_hex(2)])


def _existing_ancestor(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if candidate.exists() or candidate.is_symlink():
            return candidate
    return Path(".")


def check_writable(root: str | Path, min_free_bytes: int | None = None) -> Path:
    """Fail early, before any measurement, when ``root`` cannot hold runs (not a folder, not
    writable, less than ``min_free_bytes`` free, default :data:`MIN_FREE_BYTES`). Creates
    nothing: the folders are made when a run is written (and removed again if that fails)."""
    root = Path(root)
    min_free_bytes = MIN_FREE_BYTES if min_free_bytes is None else min_free_bytes
    shown = f"--out {str(root)!r}"
    try:
        existing = _existing_ancestor(root / RUNS_DIR)
        if not existing.is_dir():
            raise EffprofError(f"{shown} is not writable ({str(existing)!r} is not a folder)")
        if not os.access(existing, os.W_OK | os.X_OK):
            raise EffprofError(
                f"{shown} is not writable (no write permission on {str(existing)!r})"
            )
        with tempfile.NamedTemporaryFile(dir=existing, prefix=".effprof-probe-"):
            pass
        free = shutil.disk_usage(existing).free
    except OSError as err:
        raise EffprofError(f"{shown} is not writable ({os_reason(err)})") from None
    except ValueError as err:  # an embedded NUL byte
        raise EffprofError(f"{shown} is not a usable path ({err})") from None
    if free < min_free_bytes:
        raise EffprofError(
            f"{shown} has {free / 2**20:.1f} MiB free; a run needs at least "
            f"{min_free_bytes / 2**20:.0f} MiB"
        )
    return root


write_json_atomic = write_text_atomic  # the name the ledger and executors know


# --- who is writing a partial folder -----------------------------------------------------------


def _process_started(pid: int) -> float | None:
    import psutil

    try:
        return psutil.Process(pid).create_time()
    except (psutil.Error, OSError):
        return None


def owner_record() -> dict[str, Any]:
    """This process as the owner of a partial folder or a claim: host, pid and start time."""
    return {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "started": _process_started(os.getpid()),
    }


def owner_alive(owner: Any) -> bool | None:
    """Whether the process an owner record names still runs: None when it cannot be told (no
    record, or another host)."""
    if not isinstance(owner, dict) or owner.get("host") != socket.gethostname():
        return None
    pid = owner.get("pid")
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return None
    started = _process_started(pid)
    return started is not None and started == owner.get("started")


def read_owner(path: Path) -> dict[str, Any] | None:
    """An owner record written by :func:`owner_record`, or None when absent or unreadable."""
    try:
        data = json.loads(read_capped_text(path, 4096))
    except (OSError, ValueError, EffprofError):
        return None
    return data if isinstance(data, dict) else None


def partial_state(folder: Path) -> str:
    """``running`` (its writer is alive), ``stale`` (its writer died: killed or crashed) or
    ``unknown`` (written on another host, or by an effprof that recorded no owner)."""
    alive = owner_alive(read_owner(folder / OWNER_FILE))
    return "unknown" if alive is None else ("running" if alive else "stale")


def resumable_file(folder: Path) -> Path | None:
    """The file a partial folder keeps for resuming (a training checkpoint), if it holds one."""
    owner = read_owner(folder / OWNER_FILE) or {}
    name = owner.get("resumable")
    if isinstance(name, str) and "/" not in name and (folder / name).is_file():
        return folder / name
    return None


def remove_stale_partials(runs_dir: Path) -> list[Path]:
    """Remove the partial folders of this host whose writer is dead, except those holding a file
    to resume from; returns what was removed."""
    removed = []
    for folder in sorted(runs_dir.glob(f"*{PARTIAL_SUFFIX}")):
        stale = folder.is_dir() and partial_state(folder) == "stale"
        if stale and resumable_file(folder) is None:
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


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

        self._made: list[Path] = []  # folders start() created, removed again by abandon()

    @property
    def final_dir(self) -> Path:
        return self.root / RUNS_DIR / self.run_id

    @property
    def work_dir(self) -> Path:
        return self.root / RUNS_DIR / (self.run_id + PARTIAL_SUFFIX)

    @contextlib.contextmanager
    def _writing(self, what: str) -> Iterator[None]:
        """An OSError while writing (full disk, permissions) removes the partial run and becomes
        a one-line EffprofError."""
        try:
            yield
        except OSError as err:
            self.abandon()
            raise EffprofError(
                f"cannot write {what} of run {self.run_id} under {str(self.root)!r} "
                f"({os_reason(err)}); nothing was kept"
            ) from None

    def start(self) -> RunWriter:
        """Create the partial folder (and the store's folders if new), owned by this process."""
        missing = [p for p in (self.work_dir, *self.work_dir.parents) if not p.exists()]
        self._made = missing  # deepest first
        with self._writing("the run folder"):
            self.work_dir.mkdir(parents=True, exist_ok=False)
            write_text_atomic(self.work_dir / OWNER_FILE, json.dumps(owner_record()))
            remove_stale_partials(self.work_dir.parent)
        return self

    def keep_for_resume(self, name: str) -> Path:
        """Mark ``name`` (e.g. checkpoint.pt) as what an interrupted run resumes from: a partial
        folder holding it is never removed as stale. Returns its path."""
        with self._writing("the run folder"):
            owner = owner_record() | {"resumable": name}
            write_text_atomic(self.work_dir / OWNER_FILE, json.dumps(owner))
        return self.file_path(name)

    def add_table(self, name: str, frame: pd.DataFrame) -> None:
        """Store a DataFrame as ``<name>.parquet``."""
        if not re.fullmatch(r"[a-z0-9_]+", name):
            raise ValueError(f"table name {name!r} must be lowercase letters, digits and _")
        with self._writing(f"table {name!r}"):
            write_table(frame, self.work_dir / f"{name}.parquet", name)
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
        """Write run.json (``Missing`` values split into null + reason, ``Unreliable`` and
        ``Partial`` ones into their number + reason; non-finite numbers null with a reason),
        then publish the folder under its final name."""
        split = split_statuses(metrics)
        record = RunRecord(
            run_id=self.run_id,
            kind=self.kind,
            created=self.created,
            model=self.model,
            variant=self.variant,
            params=self.params,
            env=env,
            metrics=split.values,
            missing=split.missing,
            unreliable=split.unreliable,
            partial=split.partial,
            notes=list(notes or []),
            tables=self.tables,
            files=self.files,
            group=self.group,
            parent=self.parent,
            status=status,
        )
        with self._writing(RUN_FILE):
            write_text_atomic(self.work_dir / RUN_FILE, record.to_json())
            (self.work_dir / OWNER_FILE).unlink(missing_ok=True)
            os.replace(self.work_dir, self.final_dir)
        return self.final_dir

    def abandon(self) -> None:
        """Remove the partial folder, and the store folders start() made if they are empty (bad
        input discovered late, or a failed write: nothing half written is left)."""
        shutil.rmtree(self.work_dir, ignore_errors=True)
        for folder in self._made[1:]:
            with contextlib.suppress(OSError):
                folder.rmdir()  # only when empty: another run may have arrived meanwhile


def remove_run(run_dir: str | Path) -> None:
    """Delete a run folder (and the store's runs/ folder if that leaves it empty)."""
    run_dir = Path(run_dir)
    shutil.rmtree(run_dir, ignore_errors=True)
    with contextlib.suppress(OSError):
        run_dir.parent.rmdir()


def read_table(run_dir: str | Path, name: str) -> pd.DataFrame:
    """One stored table of a run, checked (:func:`effprof.runs.tables.read_checked_table`); a
    missing, damaged or foreign table is an EffprofError."""
    path = Path(run_dir) / f"{name}.parquet"
    if not re.fullmatch(r"[a-z0-9_]+", name) or not (path.exists() or path.is_symlink()):
        raise EffprofError(f"run {str(run_dir)!r} has no table {name!r}")
    return read_checked_table(path, name)


def stored_table(run_dir: str | Path, record: RunRecord, name: str) -> pd.DataFrame | None:
    """A table the run lists in run.json, or None: when it lists no such table, or (with one
    :class:`RunStoreWarning` naming the run and the reason) when the file is absent or damaged,
    so a reader leaves out what needs it and uses the rest."""
    if name not in record.tables:
        return None
    try:
        return read_table(run_dir, name)
    except EffprofError as err:
        file = Path(run_dir) / f"{name}.parquet"
        reason = str(err).replace(repr(str(file)), repr(file.name))
        warnings.warn(
            f"run {record.run_id}: {reason}; left out with what needs it",
            RunStoreWarning,
            stacklevel=2,
        )
        return None
