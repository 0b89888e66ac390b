"""The sweep ledger: what became of each configuration of a sweep, one small JSON file each.

Layout, beside the runs of the same store::

    reports/sweeps/sweep-variants/3f9a0c1d2e4b5a69.json   # one file per configuration hash

A file holds the latest attempt of one configuration (status ``finished`` or ``failed``, the run it
wrote, the error, the host). One file per configuration means shards of one sweep running at the
same time on different machines never write the same file, and each file is replaced atomically.
``--resume`` reads these files; :func:`effprof.runs.load_runs` joins them to give every run its
``sweep`` and ``config_hash`` columns.

While a configuration runs, its sweep holds a claim beside it (``<hash>.claim``, created with
``O_EXCL`` so exactly one process gets it, naming that process): two sweeps started on the same
store never run the same configuration at once, and one leaves alone what a sweep still running
has finished (:func:`finished_elsewhere`). A claim whose process died is taken over; one
held on another host is respected (remove the file if that sweep is gone).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from effprof.results import EffprofError
from effprof.runs.record import RunStoreWarning, dumps_json, read_capped_text
from effprof.runs.store import owner_alive, owner_record, read_owner, write_text_atomic

SWEEPS_DIR = "sweeps"
CLAIM_SUFFIX = ".claim"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class LedgerEntry:
    """The latest attempt of one configuration of one sweep."""

    sweep: str
    config_hash: str
    status: str  # "finished" or "failed"
    run_id: str | None
    error: str | None = None
    config: dict[str, Any] = field(default_factory=dict)
    started: str | None = None
    seconds: float | None = None
    host: str | None = None
    executor: str | None = None
    owner: dict[str, Any] | None = None  # the sweep process that recorded it (host, pid, start)


def finished_elsewhere(entry: LedgerEntry | None, before: LedgerEntry | None) -> bool:
    """Whether another sweep finished this configuration while this one runs: the entry changed
    since this sweep read the ledger (``before``), or a sweep process still alive recorded it."""
    if entry is None or entry.status != "finished":
        return False
    running = owner_alive(entry.owner) is True and entry.owner != owner_record()
    return entry != before or running


def check_sweep_name(name: str) -> str:
    """A sweep name is used as a folder name: letters, digits, ``.``, ``_`` and ``-``."""
    if not _NAME.match(name):
        raise ValueError(f"sweep name {name!r} must be letters, digits, '.', '_' or '-'")
    return name


def ledger_dir(root: str | Path, sweep: str) -> Path:
    """``<root>/sweeps/<sweep>``."""
    return Path(root) / SWEEPS_DIR / check_sweep_name(sweep)


def write_entry(root: str | Path, entry: LedgerEntry) -> Path:
    """Record (or replace) the outcome of one configuration, atomically."""
    folder = ledger_dir(root, entry.sweep)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{entry.config_hash}.json"
    write_text_atomic(path, dumps_json(asdict(entry), indent=1))
    return path


def read_entries(root: str | Path, sweep: str | None = None) -> list[LedgerEntry]:
    """Ledger entries of one sweep (or of every sweep) in a store; corrupt files are skipped with a warning."""
    base = Path(root) / SWEEPS_DIR
    folders = (
        [ledger_dir(root, sweep)] if sweep else sorted(p for p in base.glob("*") if p.is_dir())
    )
    known = set(LedgerEntry.__dataclass_fields__)
    entries = []
    for folder in folders:
        for path in sorted(folder.glob("*.json")):
            try:
                entries.append(_entry(json.loads(read_capped_text(path, 2**20)), known))
            except (OSError, ValueError, TypeError, RecursionError, EffprofError) as err:
                warnings.warn(f"skipping ledger file {path}: {err}", RunStoreWarning, stacklevel=2)
    return entries


def _entry(data: Any, known: set[str]) -> LedgerEntry:
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    entry = LedgerEntry(**{k: v for k, v in data.items() if k in known})
    texts = (entry.sweep, entry.config_hash, entry.status)
    if not all(isinstance(v, str) for v in texts) or not isinstance(
        entry.run_id, (str, type(None))
    ):
        raise ValueError("sweep, config_hash, status and run_id must be strings")
    return entry


def read_entry(root: str | Path, sweep: str, config_hash: str) -> LedgerEntry | None:
    """The latest attempt of one configuration, or None (never run, or its file is unreadable)."""
    path = ledger_dir(root, sweep) / f"{config_hash}.json"
    try:
        return _entry(
            json.loads(read_capped_text(path, 2**20)), set(LedgerEntry.__dataclass_fields__)
        )
    except (OSError, ValueError, TypeError, RecursionError, EffprofError):
        return None


# --- claims ------------------------------------------------------------------------------------


def claim_path(root: str | Path, sweep: str, config_hash: str) -> Path:
    """``<root>/sweeps/<sweep>/<hash>.claim``."""
    return ledger_dir(root, sweep) / f"{config_hash}{CLAIM_SUFFIX}"


def claim(root: str | Path, sweep: str, config_hash: str) -> dict[str, Any] | None:
    """Take one configuration for this process. Returns None when taken, else the owner record
    of the live process holding it (``{}`` when the holder cannot be read or told apart)."""
    path = claim_path(root, sweep, config_hash)
    path.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
        except FileExistsError:
            holder = read_owner(path)
            if owner_alive(holder) is False:  # its process died: take it over
                path.unlink(missing_ok=True)
                continue
            return holder or {}
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(json.dumps(owner_record()))
        return None
    return {}


def release(root: str | Path, sweep: str, config_hash: str) -> None:
    """Give back a claim this process holds (someone else's is left alone)."""
    path = claim_path(root, sweep, config_hash)
    if read_owner(path) == owner_record():
        with contextlib.suppress(OSError):
            path.unlink()
