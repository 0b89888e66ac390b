"""Finding runs in a store: scanning its folders (skipping what cannot be read, with a warning),
resolving a run id or path to its folder, and telling which files belong to a store.

A store is a folder with ``runs/`` inside (``reports/``); every function here also takes that
``runs/`` folder or one run folder where it says so.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator
from pathlib import Path

from effprof.results import EffprofError
from effprof.runs.ledger import CLAIM_SUFFIX, SWEEPS_DIR, RunStoreWarning
from effprof.runs.record import RUN_FILE, RunRecord, read_record
from effprof.runs.store import OWNER_FILE, PARTIAL_SUFFIX, RUNS_DIR, partial_state, resumable_file


def read_run(run_dir: str | Path) -> RunRecord:
    """run.json of one run folder, checked, in the current layout (see :func:`read_record`)."""
    return read_record(run_dir)


# --- scanning the store ------------------------------------------------------------------------


def store_root(root: str | Path) -> Path:
    """The store root for ``root`` given as the store (``reports/``) or its ``runs/`` folder."""
    root = Path(root)
    if not (root / RUNS_DIR).is_dir() and root.name == RUNS_DIR:
        return root.parent
    return root


def check_store_root(root: str | Path, option: str = "root") -> Path:
    """``root`` if it is a folder (a store, its runs/ folder or one run); else a one-line error."""
    root = Path(root)
    try:
        is_dir = root.is_dir()
    except (OSError, ValueError):
        is_dir = False
    if not is_dir:
        what = "does not exist" if not root.exists() else "is not a folder"
        raise EffprofError(f"{option} {str(root)!r} {what}")
    return root


def _is_run_file(path: Path) -> bool:
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False


def _candidates(root: str | Path) -> list[Path]:
    root = Path(root)
    if _is_run_file(root / RUN_FILE):
        return [root]
    base = store_root(root) / RUNS_DIR
    try:
        entries = list(base.iterdir())
    except (OSError, ValueError):
        return []
    return sorted(p for p in entries if p.is_dir() and not p.name.startswith("."))


def scan_runs(root: str | Path) -> Iterator[tuple[Path, RunRecord]]:
    """Every readable run under ``root``. Corrupt, foreign and too-new folders are skipped with a
    one-line :class:`RunStoreWarning` naming the folder, never raised; a half-written folder whose
    writer still runs is skipped silently, one whose writer died is skipped with a warning."""
    for run_dir in _candidates(root):
        if run_dir.name.endswith(PARTIAL_SUFFIX):
            why = _partial_reason(run_dir)
            if why:
                warnings.warn(
                    f"skipping {run_dir}: half-written ({why})", RunStoreWarning, stacklevel=3
                )
            continue
        try:
            yield run_dir, read_record(run_dir)
        except EffprofError as err:
            reason = str(err).replace(repr(str(run_dir / RUN_FILE)), RUN_FILE)
            warnings.warn(f"skipping {run_dir}: {reason}", RunStoreWarning, stacklevel=3)


def _partial_reason(folder: Path) -> str | None:
    """Why a partial folder is worth a warning (None while its writer still runs)."""
    state = partial_state(folder)
    if state == "running":
        return None
    if state == "unknown":
        return "still running, or it crashed"
    keep = resumable_file(folder)
    if keep is not None:
        return f"its writer was killed or crashed; continue it with --resume {keep}"
    return "its writer was killed or crashed; removed the next time a run is written here"


def run_dirs(root: str | Path) -> list[Path]:
    """Readable run folders under ``root`` (a store, its ``runs/`` folder, or one run folder)."""
    return [path for path, _ in scan_runs(root)]


# --- the store's own files ---------------------------------------------------------------------

_RUN_FILES = (RUN_FILE, OWNER_FILE)


def _run_folder_files(folder: Path) -> set[str] | None:
    """The names a run folder owns (None when ``folder`` is not a run folder): run.json, the
    owner file, tables, and the files its record lists."""
    if not ((folder / RUN_FILE).exists() or (folder / OWNER_FILE).exists()
            or folder.name.endswith(PARTIAL_SUFFIX)):  # fmt: skip
        return None
    names = set(_RUN_FILES)
    with contextlib.suppress(EffprofError):
        names.update(read_record(folder).files)
    return names


def store_file_reason(path: str | Path) -> str | None:
    """Why writing ``path`` would destroy part of a run store (a run's run.json, a table, a file
    its record lists, a sweep ledger entry), or None. Links are resolved first."""
    path = Path(path)
    try:
        resolved = Path(os.path.realpath(path))
        folder = resolved.parent
        owned = _run_folder_files(folder)
        if owned is not None and (resolved.name in owned or resolved.suffix == ".parquet"):
            return f"it is {resolved.name!r} of the run {str(folder)!r}"
        if folder.parent.name == SWEEPS_DIR and resolved.suffix in (".json", CLAIM_SUFFIX):
            return f"it is an entry of the sweep ledger {str(folder)!r}"
    except (OSError, ValueError):
        return None
    return None


# --- finding one run ---------------------------------------------------------------------------


def find_run(spec: str | Path, root: str | Path = "reports/") -> Path:
    """A run folder from a path, or from a run id (whole, or a unique prefix or suffix) in ``root``."""
    path = Path(spec)
    if (path / RUN_FILE).exists() or (path / RUN_FILE).is_symlink():
        return path  # a run folder, readable or not: its reader says what is wrong
    if os.sep in str(spec) and path.is_dir():  # a path, not an id (ids have no separator)
        raise EffprofError(f"{str(spec)!r} is a folder but not a run folder (no {RUN_FILE})")
    text = str(spec)
    names = [p.name for p in _candidates(root) if not p.name.endswith(PARTIAL_SUFFIX)]
    if text in names:
        return store_root(root) / RUNS_DIR / text
    matches = [n for n in names if n.startswith(text) or n.endswith(text)]
    if len(matches) == 1:
        return store_root(root) / RUNS_DIR / matches[0]
    if matches:
        shown = ", ".join(matches[:5]) + (" ..." if len(matches) > 5 else "")
        raise EffprofError(f"{text!r} matches {len(matches)} runs in {str(root)!r}: {shown}")
    raise EffprofError(f"{text!r} is neither a run folder nor a run id in {str(root)!r}")
