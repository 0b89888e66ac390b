"""The run store: writing runs atomically and reading them back into pandas."""

from effprof.runs.budget import BudgetCheck, Rule, Verdict, check_budget, parse_rules
from effprof.runs.compare import Comparison, compare_runs, resolve_runs
from effprof.runs.find import check_store_root, find_run, read_run, run_dirs, scan_runs
from effprof.runs.ledger import (
    LedgerEntry,
    RunStoreWarning,
    claim,
    finished_elsewhere,
    read_entries,
    read_entry,
    release,
    write_entry,
)
from effprof.runs.load import ID_COLUMNS, load_runs, load_table
from effprof.runs.record import RunRecord, dumps_json, read_record
from effprof.runs.store import (
    RunWriter,
    check_writable,
    owner_record,
    read_table,
    remove_run,
    stored_table,
    write_text_atomic,
)

__all__ = [
    "ID_COLUMNS",
    "BudgetCheck",
    "Comparison",
    "LedgerEntry",
    "Rule",
    "RunRecord",
    "RunStoreWarning",
    "RunWriter",
    "Verdict",
    "check_budget",
    "check_store_root",
    "check_writable",
    "claim",
    "compare_runs",
    "dumps_json",
    "find_run",
    "finished_elsewhere",
    "load_runs",
    "load_table",
    "owner_record",
    "parse_rules",
    "read_entries",
    "read_entry",
    "read_record",
    "read_run",
    "read_table",
    "release",
    "remove_run",
    "resolve_runs",
    "run_dirs",
    "scan_runs",
    "stored_table",
    "write_entry",
    "write_text_atomic",
]
