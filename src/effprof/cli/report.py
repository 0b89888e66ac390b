"""``effprof report RUN_DIR...``: re-render the HTML report from stored runs."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from effprof.cli import app, console
from effprof.report.render import write_report


@app.command()
def report(
    run_dirs: list[Path] = typer.Argument(
        ..., help="run folders: a profile run, plus any compress runs for the compression section"
    ),
    out: Path = typer.Option(
        None, help="HTML file to write (default: report.html in the profile run's folder)"
    ),
) -> None:
    """Render the "why is it so cheap" report of stored runs (works offline, no model code needed)."""
    started = time.perf_counter()
    path = write_report(run_dirs, out)
    size = path.stat().st_size / 2**20
    seconds = time.perf_counter() - started
    console.print(f"report: {path} ({size:.1f} MiB, {seconds:.1f} s)", markup=False)
