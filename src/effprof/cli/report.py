"""``effprof report RUN_DIR...``: re-render the HTML report from stored runs."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from effprof.cli import app, check_output_file, console


@app.command()
def report(
    run_dirs: list[Path] = typer.Argument(
        ...,
        help="run folders: profile runs (one report each), plus compress runs to show with them",
    ),
    out: Path = typer.Option(
        None, help="HTML file to write (default: report.html in the profile run's folder)"
    ),
) -> None:
    """Render the HTML report of stored profile runs (no model code needed)."""
    from effprof.report.render import write_reports

    if out is not None:
        check_output_file(out, "--out")
    started = time.perf_counter()
    for path in write_reports(run_dirs, out):
        size = path.stat().st_size / 2**20
        seconds = time.perf_counter() - started
        console.print(f"report: {path} ({size:.1f} MiB, {seconds:.1f} s)", markup=False)
