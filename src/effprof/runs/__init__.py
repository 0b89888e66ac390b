"""The run store: writing runs atomically and reading them back into pandas."""

from effprof.runs.load import load_runs, load_table, run_dirs
from effprof.runs.store import RunRecord, RunWriter, check_writable, read_record, read_table

__all__ = [
    "RunRecord",
    "RunWriter",
    "check_writable",
    "load_runs",
    "load_table",
    "read_record",
    "read_table",
    "run_dirs",
]
