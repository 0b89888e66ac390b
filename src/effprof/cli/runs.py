"""``effprof runs``: the stored runs, newest last, filtered by model, kind and age; a table or JSON.

The table shows every run id whole whatever the terminal's width (its column never folds; a
table printed into a file or a pipe is as wide as its longest line), so an id can be copied into
``effprof report`` or ``effprof compare``.
"""

from __future__ import annotations

import fnmatch
import math
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from effprof import schema as S
from effprof.cli import app, console, err_console
from effprof.cli.boundary import one_line
from effprof.results import EffprofError

RUN_COLUMNS = {
    "run_id": "run",
    "kind": "kind",
    "model": "model",
    "variant": "variant",
    f"metrics.{S.INPUT_SHAPE}": "input",
    "env.device_name": "device",
    f"metrics.{S.LATENCY.median_ms}": "latency ms",
}
_AGE = re.compile(r"^(?P<number>\d+(?:\.\d+)?)\s*(?P<unit>s|m|min|h|d|w)$")
_AGE_SECONDS = {"s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DATE = re.compile(
    r"^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?(?:Z|[+-]\d{2}:?\d{2})?$"
)
MAX_AGE_DAYS = 100 * 366
SINCE_HELP = "a date (2026-01-31), a date and time (2026-01-31T14:00, local unless it says) or an age (30m, 12h, 7d, 2w)"


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """The moment ``--since`` names, timezone-aware: an ISO date or date and time (local time
    unless it has an offset), or an age before ``now``: ``parse_since("2d")`` is two days ago."""
    now = now or datetime.now(timezone.utc)
    shown = f"--since {text!r}"
    text = text.strip()
    age = _AGE.match(text)
    if age:
        seconds = float(age["number"]) * _AGE_SECONDS[age["unit"]]
        if seconds > MAX_AGE_DAYS * 86400:
            raise EffprofError(f"{shown} reaches past {MAX_AGE_DAYS // 366} years back")
        return now - timedelta(seconds=seconds)
    if not _DATE.match(text):
        raise EffprofError(f"malformed {shown}: give {SINCE_HELP}")
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace(" ", "T"))
    except ValueError as error:
        raise EffprofError(f"{shown} is not a date: {error}") from None
    return moment if moment.tzinfo else moment.astimezone()  # naive: the local time


def _cell(value: Any) -> str:
    """A table cell: blank for every shape of missing (None, NaN, pd.NA), numbers with commas."""
    if value is None or type(value).__name__ in ("NAType", "NaTType"):
        return ""
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:,.2f}"
    return one_line(value)  # a stored run's text: no terminal escapes reach the screen


def _matches(values: Any, patterns: list[str]) -> Any:
    """Which values match any of ``patterns`` (exact, or a glob such as ``mssnet*``)."""
    import pandas as pd

    def match(value: Any) -> bool:
        return not pd.isna(value) and any(fnmatch.fnmatchcase(str(value), p) for p in patterns)

    return values.map(match).astype(bool)


def _print_table(frame: Any) -> None:
    """A table as wide as its content needs (piped: one line per run); on a terminal too narrow
    for the whole ids, plain lines instead, one per run, that the terminal wraps."""
    columns = [c for c in RUN_COLUMNS if c in frame.columns]
    rows = [[_cell(value) for value in row] for row in frame[columns].itertuples(index=False)]
    table = Table()
    for column in columns:
        whole = column == "run_id"  # the id never folds nor is cut: it is what gets copied
        table.add_column(RUN_COLUMNS[column], no_wrap=whole, overflow="fold")
    for row in rows:
        table.add_row(*row)
    natural = Console(width=10_000).measure(table)
    if not console.is_terminal:
        Console(file=console.file, width=natural.maximum).print(table)
    elif console.width >= natural.minimum:
        console.print(table)
    else:
        for row in [[RUN_COLUMNS[c] for c in columns], *rows]:
            line = "  ".join(cell or "-" for cell in row)
            console.print(line, markup=False, highlight=False, soft_wrap=True)


@app.command()
def runs(
    root: Path = typer.Option(Path("reports/"), "--root", help="run store root"),
    model: list[str] = typer.Option(
        [], "--model", help="only runs of this model (repeatable; globs such as 'mssnet*')"
    ),
    kind: list[str] = typer.Option(
        [], "--kind", help="only runs of this kind: profile | compress | evaluate | train | retime"
    ),
    since: str = typer.Option(None, "--since", help=f"only runs made since {SINCE_HELP}"),
    json_out: bool = typer.Option(False, "--json", help="print the runs as one JSON document"),
) -> None:
    """List stored runs, newest last; unreadable run folders are skipped with a warning."""
    from effprof.runs import check_store_root
    from effprof.runs.find import scan_runs, store_root
    from effprof.runs.load import RUN_KINDS, runs_frame

    unknown = [k for k in kind if k not in RUN_KINDS]
    if unknown:
        raise EffprofError(
            f"unknown --kind {unknown[0]!r}: runs are of kind {', '.join(RUN_KINDS)}"
        )
    moment = parse_since(since) if since is not None else None
    pairs = list(scan_runs(check_store_root(root, "--root")))
    frame = runs_frame(pairs, store_root(root)).sort_values(["created", "run_id"], kind="stable")
    if model:
        frame = frame[_matches(frame["model"], model)]
    if kind:
        frame = frame[frame["kind"].isin(kind)]
    if moment is not None:
        frame = frame[frame["created"] >= moment]
    if json_out:
        from dataclasses import asdict

        from effprof.cli.documents import print_document

        records = {str(path): record for path, record in pairs}
        print_document("runs", {"root": str(root), "runs": [
            {**asdict(records[path]), "path": path} for path in frame["path"]
        ]})  # fmt: skip
        return
    if frame.empty:
        which = " matching the filters" if model or kind or since else ""
        err_console.print(
            f"no runs{which} under {root}", markup=False, highlight=False, soft_wrap=True
        )
        return
    _print_table(frame)
