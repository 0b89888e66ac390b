"""The run store: writing runs atomically and reading them back into pandas."""

from effprof.runs.compare import Comparison, compare_runs, resolve_runs
from effprof.runs.ledger import LedgerEntry, RunStoreWarning, read_entries, write_entry
from effprof.runs.load import (
    ID_COLUMNS,
    find_run,
    load_runs,
    load_table,
    read_run,
    run_dirs,
    scan_runs,
)
from effprof.runs.store import RunRecord, RunWriter, check_writable, read_record, read_table

__all__ = [
    "ID_COLUMNS",
    "Comparison",
    "LedgerEntry",
    "RunRecord",
    "RunStoreWarning",
    "RunWriter",
    "check_writable",
    "compare_runs",
    "find_run",
    "load_runs",
    "load_table",
    "read_entries",
    "read_record",
    "read_run",
    "read_table",
    "resolve_runs",
    "run_dirs",
    "scan_runs",
    "write_entry",
]
