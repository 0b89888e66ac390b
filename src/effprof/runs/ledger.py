"""The sweep ledger: what became of each configuration of a sweep, one small JSON file each.

Layout, beside the runs of the same store::

    reports/sweeps/sweep-variants/3f9a0c1d2e4b5a69.json   # one file per configuration hash

A file holds the latest attempt of one configuration (status ``finished`` or ``failed``, the run it
wrote, the error, the host). One file per configuration means shards of one sweep running at the
same time on different machines never write the same file, and each file is replaced atomically.
``--resume`` reads these files; :func:`effprof.runs.load_runs` joins them to give every run its
``sweep`` and ``config_hash`` columns.
"""

from __future__ import annotations

import json
import re
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from effprof.runs.store import write_json_atomic

SWEEPS_DIR = "sweeps"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class RunStoreWarning(UserWarning):
    """Something in the store was skipped (corrupt, half-written, newer schema); loading went on."""


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
    write_json_atomic(path, json.dumps(asdict(entry), indent=1))
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
                data = json.loads(path.read_text(encoding="utf-8"))
                entries.append(LedgerEntry(**{k: v for k, v in data.items() if k in known}))
            except (OSError, ValueError, TypeError) as err:
                warnings.warn(f"skipping ledger file {path}: {err}", RunStoreWarning, stacklevel=2)
    return entries
